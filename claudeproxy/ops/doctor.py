"""
C{claudeproxy doctor}: is everything the daemon needs in place?  The
Claude Code CLI (found, runs, logged in), the port (free, or a claudeproxy
answering on it), and the launchd or systemd service when one is
installed.  Every problem is printed with the command that fixes it; the
exit status is 1 when there is one.
"""

from __future__ import annotations

import http.client
import json
import os
import plistlib
import re
import shlex
import shutil
import tempfile
import time
from typing import Any, Callable, Mapping, Optional, Sequence, TextIO

import attrs

from ..engine import loginprobe
from ..engine.errors import error_from_result
from ..engine.isolation import isolation_args, isolation_env
from ..engine.loginprobe import read_stored_login
from ..engine.usersetup import scan
from ..engine.versions import version_warning
from . import launchd, systemd
from .servicespec import Runner, ServiceSpec, home_of, twistd_beside

OK = "ok"
INFO = "info"
WARN = "warn"
FAIL = "FAIL"

INSTALL_CLI = "npm install -g @anthropic-ai/claude-code   # then run `claude` once and log in"
LOGIN = "claude auth login   # or run `claude` and type /login"
TINY_PROMPT = "Reply with the single word OK."


@attrs.frozen
class Check:
    """
    One finding: what was checked, how it went, and (for problems) the
    command that fixes it.
    """

    name: str
    status: str
    detail: str
    fix: Optional[str] = None


@attrs.frozen
class DoctorConfig:
    """
    What the doctor looks at: the environment the daemon would get, the
    CLI it would use (C{claude}, else C{claude} on PATH), where it listens,
    and which service manager applies.
    """

    env: Mapping[str, str]
    host: str = "127.0.0.1"
    port: int = 3456
    claude: Optional[str] = None
    timeout: float = 5.0
    cli_timeout: float = 60.0
    keep_api_key: bool = False
    use_claude_settings: bool = False
    platform: str = "linux"
    uid: int = 0
    executable: str = "python3"
    label: str = launchd.DEFAULT_LABEL
    unit: str = systemd.DEFAULT_UNIT


# -- the CLI -------------------------------------------------------------------


def cli_env(config: DoctorConfig) -> dict[str, str]:
    """
    The CLI's environment as the daemon gives it: without
    C{ANTHROPIC_API_KEY} unless C{--keep-api-key}, kept from the user's
    set-up and from compacting.
    """
    env = dict(config.env)
    if not config.keep_api_key:
        env.pop("ANTHROPIC_API_KEY", None)
    env.update(isolation_env(config.use_claude_settings))
    return env


def check_user_setup(config: DoctorConfig) -> Check:
    """
    What the user's own Claude Code set-up holds, and that API requests
    get none of it.
    """
    return Check("your Claude Code set-up", INFO, scan(config.env).summary(config.use_claude_settings))


def check_print_mode_login(claude: str, config: DoctorConfig, runner: Runner, timeout: float) -> Check:
    """
    Whether C{-p} runs, as the daemon starts them, take the login
    (L{claudeproxy.engine.loginprobe}: nothing is sent to Anthropic).
    """
    workdir = tempfile.mkdtemp(prefix="claudeproxy-doctor-")
    try:
        done = runner(
            loginprobe.probe_argv(claude, isolation_args(config.use_claude_settings)),
            env=loginprobe.probe_env(cli_env(config)),
            timeout=timeout,
            cwd=workdir,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = loginprobe.verdict(done.stdout)
    if verdict == loginprobe.REFUSED:
        return Check("-p login", FAIL, loginprobe.REFUSED_WARNING, None)
    if verdict == loginprobe.ACCEPTED:
        return Check("-p login", OK, "the CLI takes the login in -p mode, as the daemon runs it")
    return Check(
        "-p login",
        WARN,
        "could not tell whether -p runs take the login (status %d): %s"
        % (done.returncode, _tail(done.stdout + done.stderr)),
    )


def find_cli(config: DoctorConfig) -> tuple[Optional[str], Check]:
    if config.claude is not None:
        path = os.path.abspath(os.path.expanduser(config.claude))
        if not os.access(path, os.X_OK):
            return None, Check("Claude Code CLI", FAIL, "%s is missing or not executable" % (path,), INSTALL_CLI)
        return path, Check("Claude Code CLI", OK, path)
    found = shutil.which("claude", path=config.env.get("PATH", os.defpath))
    if found is None:
        return None, Check(
            "Claude Code CLI",
            FAIL,
            "`claude` is not on PATH (%s)" % (config.env.get("PATH", ""),),
            INSTALL_CLI,
        )
    return os.path.abspath(found), Check("Claude Code CLI", OK, os.path.abspath(found))


def check_node(claude: str, env: Mapping[str, str]) -> Optional[Check]:
    """
    A CLI installed as a node script needs node on PATH; the native build
    does not.
    """
    try:
        with open(os.path.realpath(claude), "rb") as f:
            first = f.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!") or b"node" not in first:
        return None
    node = shutil.which("node", path=env.get("PATH", os.defpath))
    if node is None:
        return Check(
            "node",
            FAIL,
            "%s is a node script but `node` is not on PATH" % (claude,),
            "install Node.js 18 or later (e.g. `brew install node`), or put its bin directory on PATH",
        )
    return Check("node", OK, node)


def check_version(claude: str, env: Mapping[str, str], runner: Runner, timeout: float) -> Check:
    done = runner([claude, "--version"], env=env, timeout=timeout)
    text = (done.stdout or done.stderr).strip()
    if not done.ok or not text:
        return Check(
            "CLI version",
            FAIL,
            "`%s --version` failed (status %d): %s" % (claude, done.returncode, _tail(text)),
            "npm install -g @anthropic-ai/claude-code@latest",
        )
    first = text.splitlines()[0]
    warning = version_warning(first)
    if warning is not None:
        return Check("CLI version", WARN, "%s: %s" % (first, warning))
    return Check("CLI version", OK, first)


def _tail(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


def _json_object(text: str) -> Optional[dict[str, Any]]:
    """
    The first JSON object in C{text} (the CLI may print notices first).
    """
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        return obj if isinstance(obj, dict) else None
    return None


def has_auth_status(claude: str, env: Mapping[str, str], runner: Runner, timeout: float) -> bool:
    """
    Whether this CLI has C{claude auth status} (2.x does; older ones do
    not, and would take C{auth} for a prompt).
    """
    done = runner([claude, "auth", "--help"], env=env, timeout=timeout)
    return done.ok and re.search(r"(?m)^\s+status\b", done.stdout) is not None


def stored_login_words(env: Mapping[str, str], now: float) -> str:
    """
    When the stored login's access token expires, in words (empty when
    the CLI's login is not in a credentials file: C{CLAUDE_CODE_OAUTH_TOKEN},
    the macOS Keychain).
    """
    if env.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return "; CLAUDE_CODE_OAUTH_TOKEN: a long-lived token, no refresh"
    stored = read_stored_login(env, now)
    if stored is None or stored["expires_at"] is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stored["expires_at"]))
    if stored["expires_in"] <= 0:
        state = "expired %s" % (when,)
    else:
        state = "expires %s" % (when,)
    return "; access token %s (%s)" % (
        state,
        "the CLI refreshes it itself" if stored["refreshable"] else "no refresh token: run `claude`, then /login",
    )


def check_login(
    claude: str, env: Mapping[str, str], runner: Runner, timeout: float, clock: Callable[[], float] = time.time
) -> Check:
    """
    C{claude auth status --json} when the CLI has it, else one tiny real
    request; with when the stored login's access token expires.
    """
    if has_auth_status(claude, env, runner, timeout):
        done = runner([claude, "auth", "status", "--json"], env=env, timeout=timeout)
        status = _json_object(done.stdout)
        if status is not None and "loggedIn" in status:
            method = str(status.get("authMethod", "unknown"))
            if not status.get("loggedIn"):
                return Check("CLI login", FAIL, "not logged in (claude auth status: authMethod %s)" % (method,), LOGIN)
            who = ", ".join(
                "%s %s" % (k, status[k])
                for k in ("authMethod", "subscriptionType", "email", "apiKeySource")
                if status.get(k)
            )
            if method == "api_key":
                return Check(
                    "CLI login",
                    WARN,
                    "logged in with an API key (%s): requests are billed per token, not to a subscription" % (who,),
                    "claude auth logout && " + LOGIN,
                )
            return Check("CLI login", OK, "logged in (%s)%s" % (who, stored_login_words(env, clock())))
        return Check(
            "CLI login",
            FAIL,
            "`claude auth status --json` gave no answer (status %d): %s"
            % (done.returncode, _tail(done.stdout + done.stderr)),
            LOGIN,
        )
    return check_login_by_request(claude, env, runner, timeout)


def check_login_by_request(claude: str, env: Mapping[str, str], runner: Runner, timeout: float) -> Check:
    """
    Ask the CLI a one-word question with the cheapest model, in an empty
    directory, and read its JSON result.
    """
    workdir = tempfile.mkdtemp(prefix="claudeproxy-doctor-")
    try:
        done = runner(
            [claude, "-p", "--output-format", "json", "--model", "haiku", TINY_PROMPT],
            env=env,
            timeout=timeout,
            cwd=workdir,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = _json_object(done.stdout)
    if result is None:
        return Check(
            "CLI login",
            FAIL,
            "a test request gave no JSON result (status %d): %s" % (done.returncode, _tail(done.stdout + done.stderr)),
            LOGIN,
        )
    if not result.get("is_error"):
        return Check("CLI login", OK, "logged in (a test request to haiku was answered)")
    error = error_from_result(result)
    if error.status == 401:
        return Check("CLI login", FAIL, "not logged in: %s" % (_tail(error.message),), LOGIN)
    return Check("CLI login", FAIL, "a test request failed (%d): %s" % (error.status, _tail(error.message)), None)


# -- the port ------------------------------------------------------------------


@attrs.frozen
class PortProbe:
    """
    What is on the port: C{free}, C{claudeproxy} (with its /health), or
    C{other}.
    """

    state: str
    detail: str
    health: Optional[dict[str, Any]] = None


def probe_port(host: str, port: int, timeout: float) -> PortProbe:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read(1024 * 1024)
    except ConnectionRefusedError:
        return PortProbe("free", "nothing listens there")
    except TimeoutError:
        return PortProbe("other", "something listens there but gave no HTTP answer within %gs" % (timeout,))
    except (OSError, http.client.HTTPException) as e:
        return PortProbe("other", "something listens there but does not answer HTTP (%s)" % (e,))
    finally:
        conn.close()
    try:
        health = json.loads(body)
    except ValueError:
        health = None
    if isinstance(health, dict) and "status" in health and isinstance(health.get("cli"), dict):
        return PortProbe(
            "claudeproxy", "claudeproxy %s (status %s)" % (health.get("version"), health["status"]), health
        )
    return PortProbe(
        "other", "something else answers there (GET /health gave %d %s)" % (response.status, response.reason)
    )


def check_port(config: DoctorConfig, service_running: bool) -> list[Check]:
    name = "port %s:%d" % (config.host, config.port)
    probe = probe_port(config.host, config.port, config.timeout)
    if probe.state == "free":
        if service_running:
            return [
                Check(
                    name,
                    FAIL,
                    "the service is running but nothing answers on the port (it may use another --listen, "
                    "or be failing to start: see its log)",
                    "claudeproxy doctor --port PORT   # with the port it listens on",
                )
            ]
        return [
            Check(
                name,
                OK,
                "free; no daemon running",
                "start it: twistd -n claudeproxy   (or run it as a service: claudeproxy %s install)"
                % ("launchd" if config.platform == "darwin" else "systemd",),
            )
        ]
    if probe.state == "other":
        return [
            Check(
                name,
                FAIL,
                probe.detail,
                "stop what holds the port, or run claudeproxy elsewhere: twistd -n claudeproxy "
                "--listen tcp:PORT:interface=127.0.0.1",
            )
        ]
    checks = [Check(name, OK, "daemon answering: " + probe.detail)]
    health = probe.health or {}
    cli = health.get("cli") or {}
    if health.get("status") not in ("ok", "paused"):
        error = cli.get("error") or "status %s" % (health.get("status"),)
        checks.append(
            Check(
                "daemon's CLI",
                FAIL,
                "the running daemon cannot use its CLI: %s" % (error,),
                INSTALL_CLI + "; then restart the daemon",
            )
        )
    else:
        checks.append(Check("daemon's CLI", OK, "%s %s" % (cli.get("path"), cli.get("version") or "")))
    mode = warm_mode(health.get("pool") or {})
    if mode is not None:
        checks.append(mode)
    guard = health.get("plan_guard") or {}
    if guard.get("paused"):
        checks.append(
            Check(
                "plan guard",
                WARN,
                "%s: API requests get 429 until then" % (guard.get("summary"),),
                "wait for the reset, or restart the daemon with --extra-usage allow (spends extra usage)"
                if guard["paused"].get("code") == "plan_limit_reached"
                else "wait for the reset, or restart the daemon with a smaller --reserve",
            )
        )
    return checks


def warm_mode(pool: Mapping[str, Any]) -> Optional[Check]:
    """
    How the running daemon's warm processes serve requests: generic ones
    bound to each request when it arrives, or keyed ones (and why).
    """
    mode = pool.get("mode")
    if mode == "generic":
        return Check("warm processes", OK, "generic: each is bound to a request's settings and history when it arrives")
    if mode == "keyed":
        why = pool.get("binding_off")
        if why:
            return Check(
                "warm processes",
                WARN,
                "keyed (each started for one combination of settings): %s" % (why,),
                "npm install -g @anthropic-ai/claude-code@latest; then restart the daemon",
            )
        return Check("warm processes", INFO, "keyed (--late-binding off)")
    return None


# -- the service ---------------------------------------------------------------


def _program_problems(argv: Sequence[str], reinstall: str) -> list[Check]:
    problems: list[Check] = []
    if argv and not os.access(argv[0], os.X_OK):
        problems.append(Check("service program", FAIL, "%s is gone" % (argv[0],), reinstall))
    for i, arg in enumerate(argv):
        path = None
        if arg == "--claude" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--claude="):
            path = arg.split("=", 1)[1]
        if path is not None and not os.access(path, os.X_OK):
            problems.append(
                Check("service CLI", FAIL, "the service runs --claude %s, which is gone" % (path,), reinstall)
            )
    return problems


def check_launchd(config: DoctorConfig, runner: Runner) -> tuple[list[Check], bool]:
    home = home_of(config.env)
    spec = ServiceSpec(twistd="", args=(), home=home, path="")
    agent = launchd.Agent(config.label, spec, config.uid)
    if not os.path.exists(agent.plist_path):
        return [
            Check("launchd", INFO, "no agent installed (optional)", "run at login: claudeproxy launchd install")
        ], False
    checks: list[Check] = []
    try:
        with open(agent.plist_path, "rb") as f:
            argv = plistlib.load(f).get("ProgramArguments") or []
        checks += _program_problems([str(a) for a in argv], "claudeproxy launchd install")
    except (OSError, plistlib.InvalidFileException, AttributeError) as e:
        checks.append(
            Check("launchd", FAIL, "%s is unreadable: %s" % (agent.plist_path, e), "claudeproxy launchd install")
        )
    st = launchd.query(agent, runner)
    if not st.loaded:
        checks.append(
            Check(
                "launchd",
                FAIL,
                "%s is installed but not loaded" % (agent.plist_path,),
                "launchctl bootstrap %s %s" % (agent.domain, agent.plist_path),
            )
        )
        return checks, False
    if st.state != "running":
        checks.append(
            Check(
                "launchd",
                FAIL,
                "%s is loaded but not running (state = %s, last exit code = %s); see %s"
                % (agent.target, st.state or "?", st.last_exit or "?", agent.log_dir),
                "launchctl kickstart -k %s" % (agent.target,),
            )
        )
        return checks, False
    checks.append(Check("launchd", OK, "%s running (pid %s)" % (agent.target, st.pid or "?")))
    return checks, True


def check_systemd(config: DoctorConfig, runner: Runner) -> tuple[list[Check], bool]:
    home = home_of(config.env)
    spec = ServiceSpec(twistd="", args=(), home=home, path="")
    unit = systemd.Unit(config.unit, spec, systemd.config_home(config.env, home))
    if not os.path.exists(unit.path):
        return [
            Check("systemd", INFO, "no user unit installed (optional)", "run at login: claudeproxy systemd install")
        ], False
    checks: list[Check] = []
    try:
        with open(unit.path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("ExecStart="):
                    words = shlex.split(line[len("ExecStart=") :].replace("%%", "%").replace("$$", "$"))
                    checks += _program_problems(words, "claudeproxy systemd install")
    except (OSError, ValueError) as e:
        checks.append(Check("systemd", FAIL, "%s is unreadable: %s" % (unit.path, e), "claudeproxy systemd install"))
    done = runner(["systemctl", "--user", "is-active", unit.service], timeout=30)
    state = done.stdout.strip() or done.stderr.strip()
    if done.returncode == 127:
        checks.append(Check("systemd", WARN, "systemctl is not available: %s" % (_tail(done.stderr),)))
        return checks, False
    if state != "active":
        checks.append(
            Check(
                "systemd",
                FAIL,
                "%s is installed but not active (%s); see journalctl --user -u %s -e"
                % (unit.service, state or "status %d" % done.returncode, unit.name),
                "systemctl --user enable --now %s && systemctl --user restart %s" % (unit.service, unit.service),
            )
        )
        return checks, False
    checks.append(Check("systemd", OK, "%s active" % (unit.service,)))
    return checks, True


def check_service(config: DoctorConfig, runner: Runner) -> tuple[list[Check], bool]:
    if config.platform == "darwin":
        return check_launchd(config, runner)
    if config.platform.startswith("linux"):
        return check_systemd(config, runner)
    return [], False


# -- all of it -----------------------------------------------------------------


def diagnose(config: DoctorConfig, runner: Runner) -> list[Check]:
    checks: list[Check] = []
    twistd = twistd_beside(config.executable)
    if not os.access(twistd, os.X_OK):
        checks.append(
            Check(
                "twistd",
                WARN,
                "%s is missing: this environment cannot run the daemon" % (twistd,),
                "pip install claudeproxy",
            )
        )
    claude, found = find_cli(config)
    checks.append(found)
    if claude is not None:
        env = cli_env(config)
        node = check_node(claude, env)
        if node is not None:
            checks.append(node)
        version = check_version(claude, env, runner, config.cli_timeout)
        checks.append(version)
        if version.status != FAIL:
            login = check_login(claude, env, runner, config.cli_timeout)
            checks.append(login)
            if login.status == OK:
                checks.append(check_print_mode_login(claude, config, runner, config.cli_timeout))
        if "ANTHROPIC_API_KEY" in config.env and not config.keep_api_key:
            checks.append(
                Check(
                    "ANTHROPIC_API_KEY",
                    INFO,
                    "set here, but the daemon removes it so the subscription login is used (--keep-api-key keeps it)",
                )
            )
    checks.append(check_user_setup(config))
    service, running = check_service(config, runner)
    checks += check_port(config, running)
    checks += service
    return checks


def report(checks: Sequence[Check], out: TextIO) -> int:
    for check in checks:
        out.write("%-5s %s: %s\n" % (check.status, check.name, check.detail))
        if check.fix:
            out.write("      %s %s\n" % ("fix:" if check.status in (FAIL, WARN) else "hint:", check.fix))
    failures = sum(1 for c in checks if c.status == FAIL)
    warnings = sum(1 for c in checks if c.status == WARN)
    if failures:
        out.write("%d problem%s found.\n" % (failures, "" if failures == 1 else "s"))
        return 1
    out.write("all good%s.\n" % (" (%d warning%s)" % (warnings, "" if warnings == 1 else "s") if warnings else "",))
    return 0


def run(config: DoctorConfig, runner: Runner, out: TextIO) -> int:
    return report(diagnose(config, runner), out)
