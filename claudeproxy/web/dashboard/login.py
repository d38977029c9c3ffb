"""
The CLI's login state: asked once at start (C{claude auth status --json},
on CLIs that have it: 2.x), then kept up to date by the requests served (a
C{cli_not_logged_in} error means logged out, a served turn logged in).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional, Sequence

import attrs
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from ...engine import loginprobe


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


def run_check(
    reactor: Any, claude: str, args: Sequence[str], env: Mapping[str, str], path: str
) -> Deferred[tuple[bytes, int]]:
    """
    Run C{claude args}; fires with its standard output and exit code.
    """
    done: Deferred[tuple[bytes, int]] = Deferred()
    started = maybeDeferred(
        reactor.spawnProcess, _Output(reactor, done), claude, [claude, *args], env=dict(env), path=path
    )
    # a CLI that cannot be started fails the check
    started.addErrback(done.errback)
    return done


def probe(reactor: Any, claude: str, env: Mapping[str, str], path: str, now: float) -> Deferred[LoginState]:
    """
    Run C{claude auth status --json}; fires with what it says (never fails).
    """
    ran = run_check(reactor, claude, ["auth", "status", "--json"], env, path)
    state: Deferred[LoginState] = ran.addCallback(lambda result: from_auth_status(result[0], now))
    state.addErrback(lambda _: LoginState(source="auth status", checked_at=now))
    return state


def print_mode_refused(
    reactor: Any, claude: str, env: Mapping[str, str], settings: Sequence[str], path: str, now: float
) -> Deferred[bool]:
    """
    Whether the CLI refuses, in C{-p} mode, a login that C{claude auth
    status} says is there (L{claudeproxy.engine.loginprobe}); fires False
    when it cannot tell (never fails).
    """
    status = probe(reactor, claude, env, path, now)

    def asked(state: LoginState) -> Any:
        if state.logged_in is not True:
            return False
        argv = loginprobe.probe_argv(claude, settings)
        d = run_check(reactor, claude, argv[1:], loginprobe.probe_env(env), path)
        d.addCallback(lambda result: loginprobe.verdict(result[0].decode("utf-8", "replace")) == loginprobe.REFUSED)
        return d

    refused: Deferred[bool] = status.addCallback(asked)
    refused.addErrback(lambda _: False)
    return refused
