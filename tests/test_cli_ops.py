"""
The C{claudeproxy} command: C{launchd} and C{systemd} (what they write,
and the C{launchctl}/C{systemctl} argv they run, recorded by an injected
runner), and C{doctor} (against small fake C{claude} scripts and real
loopback sockets).
"""

from __future__ import annotations

import http.server
import io
import json
import os
import plistlib
import shlex
import socket
import stat
import threading
from typing import Any, Mapping, Optional, Sequence

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.versions import NEWEST_TESTED, OLDEST_TESTED
from claudeproxy.ops import cli, systemd
from claudeproxy.ops.servicespec import Completed, absolute_args, run_process
from tests import realhome
from tests.harness import free_port

UID = 501
TESTED_VERSION = "%s (Claude Code)" % (OLDEST_TESTED,)


class Recorder:
    """
    A runner that records every argv.  C{launchctl}, C{systemctl} and
    anything in C{canned} get canned answers; other commands (the fake
    CLI) really run.
    """

    def __init__(self, canned: Optional[Mapping[tuple[str, ...], Completed]] = None) -> None:
        self.canned = dict(canned or {})
        self.calls: list[list[str]] = []
        self.envs: list[Optional[Mapping[str, str]]] = []

    def __call__(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        cwd: Optional[str] = None,
    ) -> Completed:
        self.calls.append(list(argv))
        self.envs.append(env)
        key = tuple(argv)
        if key in self.canned:
            return self.canned[key]
        if argv[0] in ("launchctl", "systemctl"):
            return Completed(0)
        return run_process(argv, env=env, timeout=timeout, cwd=cwd)

    def service_calls(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] in ("launchctl", "systemctl")]


def executable(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


AUTH_HELP = """Usage: claude auth [options] [command]

Manage authentication

Commands:
  login [options]   Sign in to your Anthropic account
  logout            Log out from your Anthropic account
  status [options]  Show authentication status
"""
MAIN_HELP = """Usage: claude [options] [command] [prompt]

Commands:
  mcp               Configure and manage MCP servers
"""
LOGGED_OUT = '{"loggedIn": false, "authMethod": "none", "apiProvider": "firstParty"}'
LOGGED_IN = '{"loggedIn": true, "authMethod": "claude.ai", "apiProvider": "firstParty", "subscriptionType": "max"}'
API_KEY = (
    '{"loggedIn": true, "authMethod": "api_key", "apiProvider": "firstParty", "apiKeySource": "ANTHROPIC_API_KEY"}'
)
REQUEST_NOT_LOGGED_IN = json.dumps(
    {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "result": "Invalid API key · Please run /login",
        "api_error_status": 401,
    }
)
REQUEST_OK = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "OK"})


def fake_claude(
    directory: str,
    auth_status: Optional[tuple[str, int]] = (LOGGED_OUT, 1),
    request: tuple[str, int] = (REQUEST_OK, 0),
    version_status: int = 0,
    version: str = TESTED_VERSION,
) -> str:
    """
    A C{claude} that answers C{--version}, C{auth --help}, C{auth status}
    (C{auth_status}: its JSON and exit status; None for a CLI without the
    subcommand) and C{-p} (C{request}).  With C{ANTHROPIC_API_KEY} set, it
    reports an API-key login, as the real one does.
    """
    if auth_status is None:
        auth = "printf '%%s' %s; exit 0" % (shlex.quote(MAIN_HELP),)
        status = 'echo "unexpected" >&2; exit 64'
    else:
        auth = "printf '%%s' %s; exit 0" % (shlex.quote(AUTH_HELP),)
        status = 'if [ -n "$ANTHROPIC_API_KEY" ]; then echo %s; exit 0; fi; echo %s; exit %d' % (
            shlex.quote(API_KEY),
            shlex.quote(auth_status[0]),
            auth_status[1],
        )
    script = """#!/bin/sh
case "$1" in
  --version) echo %(version)s; exit %(version_status)d;;
  auth)
    case "$2" in
      --help) %(auth)s;;
      status) %(status)s;;
    esac;;
  -p) echo %(request)s; exit %(request_status)d;;
esac
echo "unexpected: $*" >&2
exit 64
""" % {
        "version": shlex.quote(version),
        "version_status": version_status,
        "auth": auth,
        "status": status,
        "request": shlex.quote(request[0]),
        "request_status": request[1],
    }
    os.makedirs(directory, exist_ok=True)
    return executable(os.path.join(directory, "claude"), script)


class Workspace(SynchronousTestCase):
    """
    A fake home, a fake virtualenv (C{bin/python}, C{bin/twistd}) and a
    bin directory with C{claude} and C{node}.
    """

    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        self.home = os.path.join(root, "home")
        self.venv_bin = os.path.join(root, "venv", "bin")
        self.bin = os.path.join(root, "npm", "bin")
        self.node_bin = os.path.join(root, "node", "bin")
        for d in (self.home, self.venv_bin, self.bin, self.node_bin):
            os.makedirs(d)
        self.python = executable(os.path.join(self.venv_bin, "python"), "#!/bin/sh\n")
        self.twistd = executable(os.path.join(self.venv_bin, "twistd"), "#!/bin/sh\n")
        executable(os.path.join(self.node_bin, "node"), "#!/bin/sh\n")
        self.claude = fake_claude(self.bin)
        self.env: dict[str, str] = {"HOME": self.home, "PATH": "%s:%s:/usr/bin:/bin" % (self.bin, self.node_bin)}

    def run_cli(
        self, argv: Sequence[str], platform: str = "darwin", runner: Optional[Recorder] = None, cwd: str = "/srv"
    ) -> tuple[int, str, Recorder]:
        runner = runner if runner is not None else Recorder()
        out = io.StringIO()
        status = cli.main(
            list(argv),
            runner=runner,
            env=self.env,
            out=out,
            platform=platform,
            uid=UID,
            executable=self.python,
            cwd=cwd,
        )
        return status, out.getvalue(), runner


# -- launchd -------------------------------------------------------------------


class LaunchdTests(Workspace):
    @property
    def plist_path(self) -> str:
        return os.path.join(self.home, "Library", "LaunchAgents", "com.claudeproxy.plist")

    def test_print(self) -> None:
        """
        C{print} writes the agent to stdout, with this environment's
        twistd, the C{claude} found on PATH, node's directory on PATH, and
        logs under C{~/Library/Logs/claudeproxy}; it touches nothing.
        """
        status, out, runner = self.run_cli(["launchd", "print"], platform="linux")
        self.assertEqual(status, 0)
        self.assertEqual(runner.calls, [])
        self.assertFalse(os.path.exists(self.plist_path))
        plist = plistlib.loads(out.encode("utf-8"))
        self.assertEqual(plist["Label"], "com.claudeproxy")
        self.assertEqual(
            plist["ProgramArguments"], [self.twistd, "-n", "--pidfile=", "claudeproxy", "--claude", self.claude]
        )
        self.assertIs(plist["KeepAlive"], True)
        self.assertIs(plist["RunAtLoad"], True)
        self.assertEqual(plist["ThrottleInterval"], 10)
        logs = os.path.join(self.home, "Library", "Logs", "claudeproxy")
        self.assertEqual(os.path.dirname(plist["StandardOutPath"]), logs)
        self.assertEqual(os.path.dirname(plist["StandardErrorPath"]), logs)
        env = plist["EnvironmentVariables"]
        self.assertEqual(env["HOME"], self.home)
        path = env["PATH"].split(":")
        self.assertEqual(path[:2], [self.bin, self.node_bin])
        for d in ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"):
            self.assertIn(d, path)

    def test_extra_args(self) -> None:
        """
        Arguments after C{--} go to C{twistd claudeproxy}; file names in
        them become absolute.
        """
        status, out, _ = self.run_cli(
            [
                "launchd",
                "print",
                "--",
                "--api-key-file",
                "~/.claudeproxy-key",
                "--model-alias",
                "gpt-4o=sonnet",
                "--max-concurrent=2",
            ],
            cwd="/srv/here",
        )
        self.assertEqual(status, 0)
        args = plistlib.loads(out.encode("utf-8"))["ProgramArguments"]
        self.assertEqual(
            args[4:],
            [
                "--claude",
                self.claude,
                "--api-key-file",
                os.path.join(self.home, ".claudeproxy-key"),
                "--model-alias",
                "gpt-4o=sonnet",
                "--max-concurrent=2",
            ],
        )

    def test_extra_claude_wins(self) -> None:
        """
        A C{--claude} after C{--} is used instead of the one on PATH.
        """
        status, out, _ = self.run_cli(["launchd", "print", "--", "--claude=bin/claude"], cwd="/opt/x")
        self.assertEqual(status, 0)
        args = plistlib.loads(out.encode("utf-8"))["ProgramArguments"]
        self.assertEqual(args[4:], ["--claude=/opt/x/bin/claude"])

    def test_install(self) -> None:
        """
        C{install} writes the plist that C{print} shows, creates the log
        directory, and (re)loads the agent into C{gui/UID}.
        """
        _, printed, _ = self.run_cli(["launchd", "print"])
        status, out, runner = self.run_cli(["launchd", "install"])
        self.assertEqual(status, 0, out)
        with open(self.plist_path, encoding="utf-8") as f:
            self.assertEqual(f.read(), printed)
        self.assertTrue(os.path.isdir(os.path.join(self.home, "Library", "Logs", "claudeproxy")))
        self.assertEqual(
            runner.calls,
            [
                ["launchctl", "bootout", "gui/%d/com.claudeproxy" % UID],
                ["launchctl", "bootstrap", "gui/%d" % UID, self.plist_path],
            ],
        )
        self.assertIn("claudeproxy doctor", out)

    def test_install_label(self) -> None:
        status, out, runner = self.run_cli(["launchd", "install", "--label", "org.example.cp"])
        self.assertEqual(status, 0, out)
        path = os.path.join(self.home, "Library", "LaunchAgents", "org.example.cp.plist")
        with open(path, "rb") as f:
            self.assertEqual(plistlib.load(f)["Label"], "org.example.cp")
        self.assertEqual(runner.calls[-1], ["launchctl", "bootstrap", "gui/%d" % UID, path])

    def test_install_fails(self) -> None:
        """
        A failing C{launchctl bootstrap} is reported with the command to
        retry, and a non-zero status.
        """
        bootstrap = ("launchctl", "bootstrap", "gui/%d" % UID, self.plist_path)
        runner = Recorder({bootstrap: Completed(5, "", "Bootstrap failed: 5: Input/output error\n")})
        status, out, _ = self.run_cli(["launchd", "install"], runner=runner)
        self.assertEqual(status, 1)
        self.assertIn("Input/output error", out)
        self.assertIn("launchctl bootstrap gui/%d %s" % (UID, self.plist_path), out)

    def test_install_not_macos(self) -> None:
        """
        On Linux, C{install} refuses and points to systemd; nothing is
        written or run.
        """
        status, out, runner = self.run_cli(["launchd", "install"], platform="linux")
        self.assertEqual(status, 2)
        self.assertIn("claudeproxy systemd install", out)
        self.assertEqual(runner.calls, [])
        self.assertFalse(os.path.exists(self.plist_path))

    def test_uninstall(self) -> None:
        self.run_cli(["launchd", "install"])
        status, out, runner = self.run_cli(["launchd", "uninstall"])
        self.assertEqual(status, 0, out)
        self.assertFalse(os.path.exists(self.plist_path))
        self.assertEqual(runner.calls, [["launchctl", "bootout", "gui/%d/com.claudeproxy" % UID]])

    def test_status_running(self) -> None:
        self.run_cli(["launchd", "install"])
        printed = "com.claudeproxy = {\n\tstate = running\n\tpid = 4242\n\tlast exit code = (never exited)\n}\n"
        runner = Recorder({("launchctl", "print", "gui/%d/com.claudeproxy" % UID): Completed(0, printed)})
        status, out, _ = self.run_cli(["launchd", "status"], runner=runner)
        self.assertEqual(status, 0, out)
        self.assertIn("state = running, pid = 4242", out)

    def test_status_not_loaded(self) -> None:
        self.run_cli(["launchd", "install"])
        runner = Recorder(
            {("launchctl", "print", "gui/%d/com.claudeproxy" % UID): Completed(113, "", "Could not find service\n")}
        )
        status, out, _ = self.run_cli(["launchd", "status"], runner=runner)
        self.assertEqual(status, 3)
        self.assertIn("launchctl bootstrap gui/%d %s" % (UID, self.plist_path), out)

    def test_extra_args_only_for_install_and_print(self) -> None:
        status, out, runner = self.run_cli(["launchd", "status", "--", "--listen", "tcp:1"])
        self.assertEqual(status, 2)
        self.assertIn("only for install and print", out)
        self.assertEqual(runner.calls, [])


# -- systemd -------------------------------------------------------------------


def exec_start(unit: str) -> list[str]:
    line = [x for x in unit.splitlines() if x.startswith("ExecStart=")][0]
    return shlex.split(line[len("ExecStart=") :].replace("%%", "%").replace("$$", "$"))


class SystemdTests(Workspace):
    @property
    def unit_path(self) -> str:
        return os.path.join(self.home, ".config", "systemd", "user", "claudeproxy.service")

    def test_print(self) -> None:
        status, out, runner = self.run_cli(["systemd", "print", "--", "--max-queued", "3"], platform="linux")
        self.assertEqual(status, 0)
        self.assertEqual(runner.calls, [])
        self.assertEqual(
            exec_start(out),
            [self.twistd, "-n", "--pidfile=", "claudeproxy", "--claude", self.claude, "--max-queued", "3"],
        )
        lines = out.splitlines()
        self.assertIn("Restart=always", lines)
        self.assertIn("WantedBy=default.target", lines)
        path = [x for x in lines if x.startswith("Environment=PATH=")][0][len("Environment=PATH=") :]
        self.assertEqual(path.split(":")[:2], [self.bin, self.node_bin])
        self.assertIn("Environment=HOME=%s" % (self.home,), lines)

    def test_quoting(self) -> None:
        """
        Words with spaces, quotes, C{%} and C{$} survive the unit file's
        quoting.
        """
        words = ["/a b/twistd", "-n", "--pidfile=", 'say "hi"', "100%", "$HOME", "back\\slash", ""]
        self.assertEqual(exec_start("ExecStart=" + systemd.exec_line(words)), words)

    def test_install(self) -> None:
        status, out, runner = self.run_cli(["systemd", "install"], platform="linux")
        self.assertEqual(status, 0, out)
        with open(self.unit_path, encoding="utf-8") as f:
            self.assertEqual(f.read(), self.run_cli(["systemd", "print"], platform="linux")[1])
        self.assertEqual(
            runner.calls,
            [
                ["systemctl", "--user", "is-active", "--quiet", "claudeproxy.service"],
                ["systemctl", "--user", "daemon-reload"],
                ["systemctl", "--user", "enable", "--now", "claudeproxy.service"],
                ["systemctl", "--user", "restart", "claudeproxy.service"],
            ],
        )
        self.assertIn("loginctl enable-linger", out)

    def test_install_not_running(self) -> None:
        """
        A unit that was not running is started by C{enable --now}, not
        restarted.
        """
        runner = Recorder(
            {("systemctl", "--user", "is-active", "--quiet", "claudeproxy.service"): Completed(3, "inactive\n")}
        )
        status, out, _ = self.run_cli(["systemd", "install"], platform="linux", runner=runner)
        self.assertEqual(status, 0, out)
        self.assertEqual(runner.calls[-1], ["systemctl", "--user", "enable", "--now", "claudeproxy.service"])

    def test_install_xdg(self) -> None:
        xdg = os.path.join(self.home, "conf")
        self.env["XDG_CONFIG_HOME"] = xdg
        status, out, _ = self.run_cli(["systemd", "install", "--unit", "cp"], platform="linux")
        self.assertEqual(status, 0, out)
        self.assertTrue(os.path.exists(os.path.join(xdg, "systemd", "user", "cp.service")))

    def test_install_fails(self) -> None:
        enable = ("systemctl", "--user", "enable", "--now", "claudeproxy.service")
        runner = Recorder({enable: Completed(1, "", "Failed to connect to bus\n")})
        status, out, _ = self.run_cli(["systemd", "install"], platform="linux", runner=runner)
        self.assertEqual(status, 1)
        self.assertIn("Failed to connect to bus", out)

    def test_install_not_linux(self) -> None:
        status, out, runner = self.run_cli(["systemd", "install"], platform="darwin")
        self.assertEqual(status, 2)
        self.assertIn("claudeproxy launchd install", out)
        self.assertEqual(runner.calls, [])

    def test_uninstall(self) -> None:
        self.run_cli(["systemd", "install"], platform="linux")
        status, out, runner = self.run_cli(["systemd", "uninstall"], platform="linux")
        self.assertEqual(status, 0, out)
        self.assertFalse(os.path.exists(self.unit_path))
        self.assertEqual(
            runner.calls,
            [
                ["systemctl", "--user", "disable", "--now", "claudeproxy.service"],
                ["systemctl", "--user", "daemon-reload"],
            ],
        )

    def test_status(self) -> None:
        key = ("systemctl", "--user", "status", "--no-pager", "claudeproxy.service")
        runner = Recorder({key: Completed(3, "claudeproxy.service - ...\n   Active: inactive (dead)\n")})
        status, out, _ = self.run_cli(["systemd", "status"], platform="linux", runner=runner)
        self.assertEqual(status, 3)
        self.assertIn("Active: inactive (dead)", out)
        self.assertIn("not installed", out)


class HelperTests(SynchronousTestCase):
    def test_absolute_args(self) -> None:
        self.assertEqual(
            absolute_args(["--claude", "../c", "--api-key-file=~/k", "--listen", "x"], "/w/d", "/h"),
            ("--claude", "/w/c", "--api-key-file=/h/k", "--listen", "x"),
        )

    def test_version(self) -> None:
        out = io.StringIO()
        self.assertEqual(cli.main(["--version"], out=out, env={}), 0)
        self.assertIn("claudeproxy ", out.getvalue())

    def test_usage_error(self) -> None:
        out = io.StringIO()
        self.assertEqual(cli.main(["launchd", "frobnicate"], out=out, env={}), 2)
        self.assertIn("invalid choice", out.getvalue())


# -- doctor --------------------------------------------------------------------


class Health(http.server.BaseHTTPRequestHandler):
    body: dict[str, Any] = {}

    def do_GET(self) -> None:
        data = json.dumps(self.body).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Doctoring(Workspace):
    """
    A workspace where C{claudeproxy doctor} runs against a free port.
    """

    def setUp(self) -> None:
        super().setUp()
        self.port = free_port()

    def doctor(
        self, *extra: str, platform: str = "linux", runner: Optional[Recorder] = None
    ) -> tuple[int, str, Recorder]:
        return self.run_cli(
            ["doctor", "--port", str(self.port), "--timeout", "1", "--cli-timeout", "30", *extra],
            platform=platform,
            runner=runner,
        )

    def line(self, out: str, name: str) -> str:
        for line in out.splitlines():
            if line[6:].startswith(name + ":"):
                return line
        self.fail("no %r line in:\n%s" % (name, out))


class DoctorTests(Doctoring):
    def serve_health(self, body: dict[str, Any]) -> None:
        handler = type("H", (Health,), {"body": body})
        server = http.server.HTTPServer(("127.0.0.1", 0), handler)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join()

        self.addCleanup(stop)

    def test_missing_cli(self) -> None:
        """
        No C{claude} on PATH: a failure naming the install command.
        """
        self.env["PATH"] = self.node_bin
        status, out, runner = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertTrue(self.line(out, "Claude Code CLI").startswith("FAIL"), out)
        self.assertIn("fix: npm install -g @anthropic-ai/claude-code", out)
        self.assertEqual([c for c in runner.calls if c[0] != "systemctl"], [])

    def test_missing_cli_option(self) -> None:
        status, out, _ = self.doctor("--claude", os.path.join(self.home, "nope"))
        self.assertEqual(status, 1, out)
        self.assertIn("is missing or not executable", self.line(out, "Claude Code CLI"))

    def test_logged_out(self) -> None:
        """
        C{claude auth status} says logged out (JSON, exit 1): a failure
        naming C{claude auth login}; the version is reported.
        """
        status, out, runner = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertEqual(self.line(out, "Claude Code CLI"), "ok    Claude Code CLI: %s" % (self.claude,))
        self.assertIn(TESTED_VERSION, self.line(out, "CLI version"))
        self.assertTrue(self.line(out, "CLI login").startswith("FAIL"), out)
        self.assertIn("not logged in", self.line(out, "CLI login"))
        self.assertIn("fix: claude auth login", out)
        self.assertIn([self.claude, "auth", "status", "--json"], runner.calls)
        self.assertIn("1 problem found.", out)

    def test_api_key_is_removed(self) -> None:
        """
        The CLI is checked as the daemon runs it: without
        C{ANTHROPIC_API_KEY}, unless C{--keep-api-key}.
        """
        self.env["ANTHROPIC_API_KEY"] = "sk-ant-test"
        status, out, runner = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertTrue(self.line(out, "CLI login").startswith("FAIL"), out)
        self.assertTrue(self.line(out, "ANTHROPIC_API_KEY").startswith("info"), out)
        for argv, env in zip(runner.calls, runner.envs, strict=True):
            if argv[0] == self.claude:
                self.assertIsNotNone(env)
                assert env is not None
                self.assertNotIn("ANTHROPIC_API_KEY", env)
        status, out, _ = self.doctor("--keep-api-key")
        self.assertTrue(self.line(out, "CLI login").startswith("warn"), out)
        self.assertIn("billed per token", out)

    def test_logged_in(self) -> None:
        """
        Logged in, port free, no service: all good, exit status 0.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        status, out, _ = self.doctor()
        self.assertEqual(status, 0, out)
        self.assertIn("logged in (authMethod claude.ai, subscriptionType max)", self.line(out, "CLI login"))
        self.assertTrue(self.line(out, "port 127.0.0.1:%d" % self.port).startswith("ok"), out)
        self.assertIn("free", self.line(out, "port 127.0.0.1:%d" % self.port))
        self.assertTrue(self.line(out, "systemd").startswith("info"), out)
        self.assertTrue(out.endswith("all good.\n"), out)

    def test_logged_in_token_expiry(self) -> None:
        """
        A stored login (the credentials file): the check says when its
        access token expires and that the CLI refreshes it, never the
        token itself.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        os.makedirs(os.path.join(self.home, ".claude"))
        with open(os.path.join(self.home, ".claude", ".credentials.json"), "w") as f:
            json.dump(
                {
                    "claudeAiOauth": {
                        "accessToken": "sk-ant-oat-secret",
                        "refreshToken": "sk-ant-ort-secret",
                        "expiresAt": 4102444800000,
                        "scopes": ["user:inference", "user:profile"],
                        "subscriptionType": "max",
                    }
                },
                f,
            )
        status, out, _ = self.doctor()
        self.assertEqual(status, 0, out)
        self.assertIn(
            "access token expires 2100-01-01 00:00:00 UTC (the CLI refreshes it itself)", self.line(out, "CLI login")
        )
        self.assertNotIn("secret", out)

    def test_cli_outside_tested_versions(self) -> None:
        """
        A CLI older than the oldest tested version, or newer than the
        newest, is a warning naming both; the login is still checked.
        """
        for version, word in (("2.0.1 (Claude Code)", "older"), ("9.0.0 (Claude Code)", "newer")):
            fake_claude(self.bin, auth_status=(LOGGED_IN, 0), version=version)
            status, out, _ = self.doctor()
            line = self.line(out, "CLI version")
            self.assertTrue(line.startswith("warn"), out)
            self.assertIn(word, line)
            self.assertIn(OLDEST_TESTED, line)
            self.assertIn(NEWEST_TESTED, line)
            self.assertIn("logged in", self.line(out, "CLI login"))

    def test_no_auth_subcommand(self) -> None:
        """
        A CLI without C{auth status} is asked one tiny question instead;
        its login error is recognised.
        """
        fake_claude(self.bin, auth_status=None, request=(REQUEST_NOT_LOGGED_IN, 1))
        status, out, runner = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertIn("not logged in", self.line(out, "CLI login"))
        self.assertIn("fix: claude auth login", out)
        self.assertNotIn([self.claude, "auth", "status", "--json"], runner.calls)
        asked = [c for c in runner.calls if c[:2] == [self.claude, "-p"]]
        self.assertEqual(len(asked), 1)
        self.assertIn("haiku", asked[0])

    def test_no_auth_subcommand_logged_in(self) -> None:
        fake_claude(self.bin, auth_status=None, request=(REQUEST_OK, 0))
        status, out, _ = self.doctor()
        self.assertEqual(status, 0, out)
        self.assertTrue(self.line(out, "CLI login").startswith("ok"), out)

    def test_version_fails(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0), version_status=1)
        status, out, _ = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertTrue(self.line(out, "CLI version").startswith("FAIL"), out)

    def test_port_taken(self) -> None:
        """
        Something listens on the port but is not claudeproxy: a failure
        suggesting another --listen.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        self.port = s.getsockname()[1]
        status, out, _ = self.doctor()
        self.assertEqual(status, 1, out)
        line = self.line(out, "port 127.0.0.1:%d" % self.port)
        self.assertTrue(line.startswith("FAIL"), out)
        self.assertIn("something listens there", line)
        self.assertIn("--listen tcp:PORT:interface=127.0.0.1", out)

    def test_daemon_answering(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.serve_health({"status": "ok", "version": "0.1.0", "cli": {"path": self.claude, "version": TESTED_VERSION}})
        status, out, _ = self.doctor()
        self.assertEqual(status, 0, out)
        self.assertIn(
            "daemon answering: claudeproxy 0.1.0 (status ok)", self.line(out, "port 127.0.0.1:%d" % self.port)
        )
        self.assertTrue(self.line(out, "daemon's CLI").startswith("ok"), out)

    def test_daemon_says_how_warm_processes_serve(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        cli = {"path": self.claude, "version": TESTED_VERSION}
        self.serve_health({"status": "ok", "version": "0.1.0", "cli": cli, "pool": {"mode": "generic"}})
        status, out, _ = self.doctor()
        self.assertIn("generic: each is bound to a request", self.line(out, "warm processes"))
        why = "the CLI refused get_binary_version: unknown"
        self.serve_health(
            {"status": "ok", "version": "0.1.0", "cli": cli, "pool": {"mode": "keyed", "binding_off": why}}
        )
        status, out, _ = self.doctor()
        self.assertIn("keyed (each started for one combination of settings): " + why, self.line(out, "warm processes"))

    def test_daemon_degraded(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.serve_health(
            {"status": "degraded", "version": "0.1.0", "cli": {"path": None, "error": "`claude` was not found"}}
        )
        status, out, _ = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertIn("`claude` was not found", self.line(out, "daemon's CLI"))

    def test_other_http_server(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.serve_health({"hello": "world"})
        status, out, _ = self.doctor()
        self.assertEqual(status, 1, out)
        self.assertIn("something else answers there", out)

    def test_systemd_inactive(self) -> None:
        """
        An installed unit that is not active: a failure with the
        C{systemctl} command that starts it.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.run_cli(["systemd", "install"], platform="linux")
        runner = Recorder({("systemctl", "--user", "is-active", "claudeproxy.service"): Completed(3, "inactive\n")})
        status, out, _ = self.doctor(runner=runner)
        self.assertEqual(status, 1, out)
        line = self.line(out, "systemd")
        self.assertTrue(line.startswith("FAIL"), out)
        self.assertIn("inactive", line)
        self.assertIn("fix: systemctl --user enable --now claudeproxy.service", out)

    def test_systemd_active_but_port_free(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.run_cli(["systemd", "install"], platform="linux")
        runner = Recorder({("systemctl", "--user", "is-active", "claudeproxy.service"): Completed(0, "active\n")})
        status, out, _ = self.doctor(runner=runner)
        self.assertEqual(status, 1, out)
        self.assertTrue(self.line(out, "systemd").startswith("ok"), out)
        self.assertIn("nothing answers on the port", self.line(out, "port 127.0.0.1:%d" % self.port))

    def test_launchd_states(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        target = "gui/%d/com.claudeproxy" % UID
        status, out, _ = self.doctor(platform="darwin")
        self.assertEqual(status, 0, out)
        self.assertIn("claudeproxy launchd install", self.line(out, "launchd") + out)
        self.run_cli(["launchd", "install"])
        runner = Recorder({("launchctl", "print", target): Completed(113, "", "Could not find service")})
        status, out, _ = self.doctor(platform="darwin", runner=runner)
        self.assertEqual(status, 1, out)
        self.assertIn("not loaded", self.line(out, "launchd"))
        self.assertIn("fix: launchctl bootstrap gui/%d " % UID, out)
        self.serve_health({"status": "ok", "version": "0.1.0", "cli": {"path": self.claude, "version": "x"}})
        runner = Recorder({("launchctl", "print", target): Completed(0, "\tstate = running\n\tpid = 77\n")})
        status, out, _ = self.doctor(platform="darwin", runner=runner)
        self.assertEqual(status, 0, out)
        self.assertIn("running (pid 77)", self.line(out, "launchd"))

    def test_service_program_gone(self) -> None:
        """
        An installed agent whose twistd no longer exists: reinstall.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        self.run_cli(["launchd", "install"])
        os.remove(self.twistd)
        status, out, _ = self.doctor(platform="darwin")
        self.assertEqual(status, 1, out)
        self.assertIn("%s is gone" % (self.twistd,), out)
        self.assertIn("fix: claudeproxy launchd install", out)


class DoctorUserSetupTests(Doctoring):
    """
    What the doctor says of the user's own Claude Code set-up, and of a
    CLI that refuses the login in -p mode (a future --bare default).
    """

    def test_print_mode_login_taken(self) -> None:
        """
        The probe runs -p as the daemon does (the user's set-up off),
        against an address where nothing listens: nothing reaches
        Anthropic.
        """
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        status, out, runner = self.doctor()
        self.assertEqual(status, 0, out)
        self.assertTrue(self.line(out, "-p login").startswith("ok"), out)
        (probe,) = [(c, e) for c, e in zip(runner.calls, runner.envs, strict=True) if c[1:2] == ["-p"]]
        argv, env = probe
        self.assertIn("--setting-sources", argv)
        assert env is not None
        self.assertEqual(env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:1")
        self.assertEqual(env["DISABLE_COMPACT"], "1")

    def test_print_mode_login_refused(self) -> None:
        refused = json.dumps(
            {"type": "result", "subtype": "success", "is_error": True, "result": "Not logged in · Please run /login"}
        )
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0), request=(refused, 1))
        status, out, _ = self.doctor()
        self.assertEqual(status, 1, out)
        line = self.line(out, "-p login")
        self.assertTrue(line.startswith("FAIL"), out)
        self.assertIn("refuses the subscription login in -p mode", line)
        self.assertIn("--bare", line)

    def test_user_setup(self) -> None:
        realhome.make(self.home)
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        status, out, _ = self.doctor()
        self.assertEqual(status, 0, out)
        line = self.line(out, "your Claude Code set-up")
        self.assertTrue(line.startswith("info"), out)
        self.assertIn("3 CLAUDE.md files, 1 rules file, 7 hooks, output style Explanatory", line)
        self.assertIn("1 plugin", line)
        self.assertTrue(line.endswith("not applied to API requests"), line)
        _, out, _ = self.doctor("--use-claude-settings")
        self.assertIn("your settings apply (--use-claude-settings)", self.line(out, "your Claude Code set-up"))

    def test_empty_setup(self) -> None:
        fake_claude(self.bin, auth_status=(LOGGED_IN, 0))
        _, out, _ = self.doctor()
        self.assertIn("nothing of your Claude Code set-up found", self.line(out, "your Claude Code set-up"))
