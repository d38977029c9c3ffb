"""
The CLI's login state: asked once at start (C{claude auth status --json},
on CLIs that have it: 2.x), then kept up to date by the requests served (a
C{cli_not_logged_in} error means logged out, a served turn logged in).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ...engine import loginprobe
from ...engine.pool import ProcessManager


@attrs.frozen
class LoginState:
    #: None: not known
    logged_in: Optional[bool] = None
    method: Optional[str] = None
    #: C{auth status} or C{request}
    source: str = ""
    checked_at: Optional[float] = None
    #: the login's C{subscriptionType} (C{pro}, C{max}, ...) where C{auth status} says
    subscription: Optional[str] = None
    #: its C{planTier} (C{pro}, C{max_5x}, C{max_20x}, ...), which CLI 2.1.332 adds
    plan_tier: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def has_auth_status(version: Optional[str]) -> bool:
    """
    Whether a CLI of this C{--version} output has C{claude auth status}
    (older ones would take the words for a prompt).
    """
    m = re.match(r"\s*(\d+)\.", version or "")
    return m is not None and int(m.group(1)) >= 2


def from_auth_status(output: bytes, now: float) -> LoginState:
    text = output.decode("utf-8", "replace")
    start = text.find("{")
    try:
        status = json.loads(text[start:]) if start != -1 else None
    except ValueError:
        status = None
    if not isinstance(status, Mapping) or "loggedIn" not in status:
        return LoginState(source="auth status", checked_at=now)
    method = status.get("authMethod")
    plan = status.get("subscriptionType")
    tier = status.get("planTier")
    return LoginState(
        bool(status["loggedIn"]),
        str(method) if method else None,
        "auth status",
        now,
        plan if isinstance(plan, str) and plan else None,
        tier if isinstance(tier, str) and tier else None,
    )


#: a check that has not ended by then is killed
CHECK_TIMEOUT = 20.0


class _Output(ProcessProtocol):
    """
    A short CLI run's standard output and exit code; its standard input is
    closed at once (a C{-p} CLI reading a pipe would wait for the end of
    it), and it is killed after L{CHECK_TIMEOUT}.
    """

    def __init__(self, reactor: Any, done: Deferred[tuple[bytes, int]]) -> None:
        self.reactor = reactor
        self.done = done
        self.out: list[bytes] = []
        self.timeout: Any = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.closeStdin()
        self.timeout = self.reactor.callLater(CHECK_TIMEOUT, self._kill)

    def _kill(self) -> None:
        assert self.transport is not None
        try:
            self.transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def processEnded(self, reason: Failure) -> None:
        if self.timeout is not None and self.timeout.active():
            self.timeout.cancel()
        code = getattr(reason.value, "exitCode", None)
        self.done.callback((b"".join(self.out), code if isinstance(code, int) else -1))


class Checks:
    """
    The short CLI runs under way, so that a daemon stopping can end them
    (a check's answer no longer matters then) and wait for them to end.
    """

    def __init__(self) -> None:
        self.running: set[_Output] = set()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        for output in list(self.running):
            if output.transport is not None:
                output._kill()


def run_check(
    reactor: Any,
    claude: str,
    args: Sequence[str],
    env: Mapping[str, str],
    path: str,
    checks: Optional[Checks] = None,
) -> Deferred[tuple[bytes, int]]:
    """
    Run C{claude args}; fires with its standard output and exit code.
    Under C{checks}, it is ended when they stop (none starts after that).
    """
    done: Deferred[tuple[bytes, int]] = Deferred()
    if checks is not None and checks.stopped:
        done.errback(ProcessExitedAlready("the daemon is stopping"))
        return done
    output = _Output(reactor, done)
    if checks is not None:
        running = checks.running
        running.add(output)

        def ended(result: Any) -> Any:
            running.discard(output)
            return result

        done.addBoth(ended)
    started = maybeDeferred(reactor.spawnProcess, output, claude, [claude, *args], env=dict(env), path=path)
    # a CLI that cannot be started fails the check
    started.addErrback(done.errback)
    return done


def probe(
    reactor: Any, claude: str, env: Mapping[str, str], path: str, now: float, checks: Optional[Checks] = None
) -> Deferred[LoginState]:
    """
    Run C{claude auth status --json}; fires with what it says (never fails).
    """
    ran = run_check(reactor, claude, ["auth", "status", "--json"], env, path, checks)
    state: Deferred[LoginState] = ran.addCallback(lambda result: from_auth_status(result[0], now))
    state.addErrback(lambda _: LoginState(source="auth status", checked_at=now))
    return state


def print_mode_refused(
    reactor: Any,
    claude: str,
    env: Mapping[str, str],
    settings: Sequence[str],
    path: str,
    now: float,
    checks: Optional[Checks] = None,
) -> Deferred[bool]:
    """
    Whether the CLI refuses, in C{-p} mode, a login that C{claude auth
    status} says is there (L{claudeproxy.engine.loginprobe}); fires False
    when it cannot tell (never fails).
    """
    status = probe(reactor, claude, env, path, now, checks)

    def asked(state: LoginState) -> Any:
        if state.logged_in is not True:
            return False
        argv = loginprobe.probe_argv(claude, settings)
        d = run_check(reactor, claude, argv[1:], loginprobe.probe_env(env), path, checks)
        d.addCallback(lambda result: loginprobe.verdict(result[0].decode("utf-8", "replace")) == loginprobe.REFUSED)
        return d

    refused: Deferred[bool] = status.addCallback(asked)
    refused.addErrback(lambda _: False)
    return refused


class CLILogin:
    """
    What the daemon knows of the CLI's login, for C{/health} and the
    dashboard: asked with C{claude auth status} the first time the
    dashboard's figures are wanted, then told by the requests served (a
    C{cli_not_logged_in} error, a served turn).  A "not logged in" answer
    also asks, once, whether the CLI refuses in C{-p} mode a login it has
    (L{print_mode_warning}).
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        manager: ProcessManager,
        cli_version: Callable[[], Optional[str]],
        wallclock: Callable[[], float],
        in_background: Callable[[Deferred[Any]], None],
    ) -> None:
        self.reactor = reactor
        self.manager = manager
        self.cli_version = cli_version
        self.wallclock = wallclock
        self.in_background = in_background
        self.state = LoginState()
        #: set when the CLI refuses the subscription login in -p mode
        self.print_mode_warning: Optional[str] = None
        self._print_mode_asked = False
        self._print_mode_wanted = False
        self._probed = False
        self.checks = Checks()

    def stop(self) -> None:
        """
        The daemon is stopping: checks under way are ended, none starts.
        """
        self.checks.stop()

    def seen(self, status: int, error_code: Optional[str]) -> None:
        """
        What a request's outcome says about the CLI's login.
        """
        if error_code == "cli_not_logged_in":
            self.state = attrs.evolve(self.state, logged_in=False, source="request", checked_at=self.wallclock())
            self._check_print_mode()
        elif status == 200 and self.state.logged_in is not True:
            self.state = attrs.evolve(self.state, logged_in=True, source="request", checked_at=self.wallclock())

    def version_known(self) -> None:
        """
        The service has read the CLI's version: a check a request asked for
        before then runs now.
        """
        if self._print_mode_wanted:
            self._print_mode_wanted = False
            self._check_print_mode()

    def _check_print_mode(self) -> None:
        if self._print_mode_asked or self.manager.claude is None:
            return
        version = self.cli_version()
        if version is None:
            # asked once the version is known (L{version_known})
            self._print_mode_wanted = True
            return
        if not has_auth_status(version):
            # a CLI older than 2.x would take "auth status" for a prompt
            return
        self._print_mode_asked = True

        def got(refused: bool) -> None:
            if refused:
                self.print_mode_warning = loginprobe.REFUSED_WARNING
                self.log.error("{refusal}", refusal=loginprobe.REFUSED_WARNING)

        d = print_mode_refused(
            self.reactor,
            self.manager.claude,
            self.manager.env,
            self.manager.settings,
            self.manager.workdir,
            self.wallclock(),
            self.checks,
        )
        d.addCallback(got)
        self.in_background(d)

    def probe(self) -> None:
        """
        The first time the figures are asked for, ask the CLI whether it is
        logged in (C{claude auth status}, ~1 s, not awaited: the next
        refresh shows it), unless requests already told.
        """
        if self._probed or self.state.source or self.manager.claude is None:
            return
        if not has_auth_status(self.cli_version()):
            return
        self._probed = True

        def got(state: LoginState) -> None:
            if not self.state.source:
                self.state = state

        d = probe(
            self.reactor, self.manager.claude, self.manager.env, self.manager.workdir, self.wallclock(), self.checks
        )
        d.addCallback(got)
        self.in_background(d)

    def to_json(self) -> dict[str, Any]:
        """
        The CLI's login for /health and /v1/usage: logged in or not, and
        what its credentials file says (when the access token expires,
        whether it can be refreshed; no secrets).
        """
        state = self.state.to_json()
        env = self.manager.env
        if env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            state["token"] = "CLAUDE_CODE_OAUTH_TOKEN (a long-lived token: no refresh, no expiry the CLI knows)"
            state["stored"] = None
        else:
            state["stored"] = loginprobe.read_stored_login(env, self.wallclock())
        if state["logged_in"] is False:
            state["fix"] = "run `claude` in a terminal, then /login; requests are served again as soon as it is done"
        return state
