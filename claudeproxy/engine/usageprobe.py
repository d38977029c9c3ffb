"""
The subscription's usage before the first request, spending no quota: the
stream-json control request C{get_usage}, which the CLI answers with what
its own C{/usage} shows (it fetches C{GET /api/oauth/usage} from
Anthropic's API host with the user's login; no model request is made).

The probe starts its own short-lived CLI, with the daemon's flags and
environment (its isolation), so no process meant for a request is touched:
a process that has answered C{initialize} or read a user line is bound to
those settings.  It writes only the control request (never C{initialize},
never a user line), reads the C{control_response}, and closes the CLI's
stdin, on which it exits; it is killed only if it does not (or never
answers).  Not killed at once: a CLI whose stored login's access token
nears its expiry refreshes it at start, and a kill between the token
endpoint's answer and the credentials file's write would lose the rotated
refresh token, and with it the login.

The answer (the same shape on 2.1.197 and 2.1.332; the schema is marked
experimental):

    {"session": {...}, "subscription_type": "max" | null,
     "rate_limits_available": bool,
     "rate_limits": null | {"five_hour": {"utilization": 0-100, "resets_at": ISO 8601} | null,
                            "seven_day": ..., "seven_day_oauth_apps": ..., "seven_day_opus": ...,
                            "seven_day_sonnet": ...,
                            "extra_usage": {"is_enabled", "monthly_limit", "used_credits",
                                            "utilization", "currency"} | null,
                            "model_scoped": [{"display_name", "utilization", "resets_at"}]},
     "behaviors": ...}

C{rate_limits} is null when plan limits do not apply or cannot be read (an
API key, a login without the C{user:profile} scope, such as a
C{CLAUDE_CODE_OAUTH_TOKEN} from C{claude setup-token}).  The extra usage
figures are in cents of C{currency}.

L{parse_answer} is pure; L{ask} runs the process (reactor and spawner
passed in); L{UsageChecker} asks at start and every few minutes while no
request runs.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config import DEFAULTS
from .lines import LineBuffer, LineTooLong
from .process import Killer, Spawner, kill_group, stream_json_argv

#: the control request's id
REQUEST_ID = "claudeproxy-usage"
#: the windows of the answer, by the names the CLI's rate_limit_event uses
WINDOWS = ("five_hour", "seven_day", "seven_day_oauth_apps", "seven_day_opus", "seven_day_sonnet")
#: a probe that has no answer by then is killed
PROBE_TIMEOUT = 30.0
#: how often usage is asked for while idle (seconds)
DEFAULT_INTERVAL = DEFAULTS.usage_check
#: the CLI refreshes a stored login's access token that expires within
#: this many seconds, when it starts (2.1.197 and 2.1.332)
REFRESH_WINDOW = 300.0
#: how long a CLI that has answered may take to exit once its stdin is
#: closed (~30-40 ms measured on both versions) before it is killed: it may
#: be saving a refreshed login, which a kill would lose
EXIT_GRACE = 5.0
#: the shortest wait between two checks
MIN_DELAY = 5.0


def refresh_due(stored: Optional[Mapping[str, Any]], now: float) -> Optional[float]:
    """
    Seconds until the stored login's access token enters the CLI's refresh
    window (a usage check then makes its CLI refresh it, alone, while no
    request starts other CLIs); None when there is nothing to refresh.
    """
    if stored is None or not stored.get("refreshable"):
        return None
    expires = stored.get("expires_at")
    if not isinstance(expires, (int, float)):
        return None
    return expires - REFRESH_WINDOW + 1.0 - now


def probe_argv(claude: str, settings: Sequence[str]) -> list[str]:
    """
    A stream-json CLI with the daemon's isolation flags and nothing to do.
    """
    return stream_json_argv(claude, ("--system-prompt", "", *settings), partial=False)


def request_line() -> bytes:
    """
    The C{get_usage} control request (C{skip_behaviors}: 2.1.332 then skips
    its scan of the local transcripts; 2.1.197 ignores it).
    """
    request = {"subtype": "get_usage", "skip_behaviors": True}
    return json.dumps({"type": "control_request", "request_id": REQUEST_ID, "request": request}).encode() + b"\n"


@attrs.frozen
class UsageReport:
    """
    What the CLI answered, at C{observed_at}: the windows (utilization
    0..1 and C{resetsAt} in epoch seconds, as the rate_limit_event has
    them), the extra usage, the subscription; or why there is nothing.
    """

    observed_at: float
    available: bool = False
    windows: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    extra_usage: Optional[Mapping[str, Any]] = None
    subscription_type: Optional[str] = None
    model_scoped: tuple[Mapping[str, Any], ...] = ()
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """
        As L{claudeproxy.engine.planguard} and C{/v1/usage} take it.
        """
        return {
            "observed_at": self.observed_at,
            "available": self.available,
            "windows": {k: dict(v) for k, v in self.windows.items()},
            "extra_usage": dict(self.extra_usage) if self.extra_usage is not None else None,
            "subscription_type": self.subscription_type,
            "model_scoped": [dict(m) for m in self.model_scoped],
            "error": self.error,
        }


def epoch(value: Any) -> Optional[float]:
    """
    An ISO 8601 time (or epoch seconds) as epoch seconds.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def _window(w: Any, now: float) -> Optional[dict[str, Any]]:
    if not isinstance(w, Mapping):
        return None
    out: dict[str, Any] = {"observed_at": now, "source": "get_usage"}
    utilization = w.get("utilization")
    if isinstance(utilization, (int, float)) and not isinstance(utilization, bool):
        out["utilization"] = utilization / 100.0
    resets = epoch(w.get("resets_at"))
    if resets is not None:
        out["resetsAt"] = resets
    return out


def parse_answer(line: Mapping[str, Any], now: float) -> Optional[UsageReport]:
    """
    The report in a C{control_response} line answering L{REQUEST_ID}, or
    None if the line is something else.
    """
    if line.get("type") != "control_response":
        return None
    response = line.get("response")
    if not isinstance(response, Mapping) or response.get("request_id") != REQUEST_ID:
        return None
    if response.get("subtype") != "success":
        return UsageReport(now, error="the CLI answered get_usage with an error: %s" % (response.get("error"),))
    body = response.get("response")
    if not isinstance(body, Mapping):
        return UsageReport(now, error="the CLI's get_usage answer has no body")
    subscription = body.get("subscription_type")
    limits = body.get("rate_limits")
    if not isinstance(limits, Mapping):
        why = (
            "the CLI could not read the plan's usage"
            if body.get("rate_limits_available")
            else "plan limits do not apply to this login, or it cannot read them (no user:profile scope, "
            "e.g. a CLAUDE_CODE_OAUTH_TOKEN from claude setup-token)"
        )
        return UsageReport(
            now, False, subscription_type=subscription if isinstance(subscription, str) else None, error=why
        )
    windows = {}
    for name in WINDOWS:
        w = _window(limits.get(name), now)
        if w is not None:
            windows[name] = w
    extra = limits.get("extra_usage")
    scoped = limits.get("model_scoped")
    return UsageReport(
        now,
        True,
        windows,
        dict(extra) if isinstance(extra, Mapping) else None,
        subscription if isinstance(subscription, str) else None,
        tuple(dict(m) for m in scoped if isinstance(m, Mapping)) if isinstance(scoped, list) else (),
    )


class _Probe(ProcessProtocol):
    """
    Writes the request, reads lines until the answer, then kills the CLI.
    C{done} fires with the report once the process is gone.
    """

    def __init__(
        self, reactor: Any, killer: Killer, clock: Callable[[], float], timeout: float, done: Deferred[UsageReport]
    ) -> None:
        self.reactor = reactor
        self.killer = killer
        self.clock = clock
        self.done = done
        self.report: Optional[UsageReport] = None
        self.lines = LineBuffer()
        self.pid: Optional[int] = None
        self.timer = reactor.callLater(timeout, self._timed_out, timeout)
        self.stderr = b""
        self._group_killed = False
        #: fires once the process is reaped and its group killed (the
        #: daemon's child guard keeps its record until then)
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.pid = getattr(self.transport, "pid", None)
        assert self.transport is not None
        self.transport.write(request_line())

    def outReceived(self, data: bytes) -> None:
        try:
            lines = self.lines.feed(data)
        except LineTooLong:
            self._end(UsageReport(self.clock(), error="the CLI wrote a line too long to read"))
            return
        for raw in lines:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                report = parse_answer(obj, self.clock())
                if report is not None:
                    self._answered(report)
                    return

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-2048:]

    def _timed_out(self, timeout: float) -> None:
        self._end(UsageReport(self.clock(), error="the CLI did not answer get_usage within %gs" % (timeout,)))

    def _answered(self, report: UsageReport) -> None:
        """
        The CLI answered: close its stdin and let it exit by itself, killed
        only after L{EXIT_GRACE}.
        """
        if self.report is None:
            self.report = report
        if self.timer.active():
            self.timer.cancel()
        assert self.transport is not None
        self.transport.closeStdin()
        self.timer = self.reactor.callLater(EXIT_GRACE, self._end, report)

    def _end(self, report: UsageReport) -> None:
        if self.report is None:
            self.report = report
        if self.timer.active():
            self.timer.cancel()
        if self.pid is not None:
            self._kill_group()
        elif self.transport is not None:
            try:
                self.transport.signalProcess("KILL")
            except ProcessExitedAlready:
                pass

    def _kill_group(self) -> None:
        if not self._group_killed and self.pid is not None:
            self._group_killed = True
            self.killer(self.pid)

    def processEnded(self, reason: Failure) -> None:
        if self.timer.active():
            self.timer.cancel()
        # whatever the CLI left in its group goes with it
        self._kill_group()
        self.ended.callback(None)
        if self.report is None:
            tail = self.stderr.decode("utf-8", "replace").strip()
            self.report = UsageReport(
                self.clock(), error="the CLI ended without answering get_usage" + (": " + tail if tail else "")
            )
        self.done.callback(self.report)


@attrs.frozen
class Asked:
    """
    A probe under way: C{done} fires with its report once the process is
    gone; C{kill} ends it now (C{done} then fires with an error report).
    """

    done: Deferred[UsageReport]
    kill: Callable[[], None]


def ask(
    reactor: Any,
    spawner: Spawner,
    claude: str,
    env: Mapping[str, str],
    settings: Sequence[str],
    workdir: str,
    clock: Callable[[], float],
    killer: Killer = kill_group,
    timeout: float = PROBE_TIMEOUT,
) -> Asked:
    """
    Start a CLI, ask it C{get_usage}, kill it.  Its C{done} fires with the
    report once the process is gone (never fails: a report with C{error}
    says what went wrong).
    """
    done: Deferred[UsageReport] = Deferred()
    protocol = _Probe(reactor, killer, clock, timeout, done)
    argv = probe_argv(claude, settings)
    try:
        spawner(protocol, claude, argv, env, workdir)
    except Exception as e:
        if protocol.timer.active():
            protocol.timer.cancel()
        done.callback(UsageReport(clock(), error="the CLI could not be started: %s" % (e,)))
    return Asked(done, lambda: protocol._end(UsageReport(clock(), error="stopped")))


class UsageChecker:
    """
    Asks for the usage at start, then every C{interval} seconds, and
    sooner when C{due()} says (seconds; see L{refresh_due}); a check due
    while requests run (C{busy()}) is tried again later.  Each report goes
    to C{on_report}.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        run: Callable[[], Asked],
        busy: Callable[[], bool],
        on_report: Callable[[UsageReport], None],
        interval: float = DEFAULT_INTERVAL,
        due: Callable[[], Optional[float]] = lambda: None,
    ) -> None:
        self.reactor = reactor
        self.due = due
        self.run = run
        self.busy = busy
        self.on_report = on_report
        self.interval = interval
        self.running: Optional[Asked] = None
        self.checks = 0
        self.skipped = 0
        self._call: Any = None
        self._stopped = True

    def start(self) -> None:
        self._stopped = False
        self._tick()

    def stop(self) -> Optional[Deferred[UsageReport]]:
        """
        Stop asking and kill the check still running, if any; fires once
        its process is gone.
        """
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        running = self.running
        if running is None:
            return None
        running.kill()
        return running.done

    def _schedule(self) -> None:
        if self._stopped:
            return
        delay = self.interval
        due = self.due()
        if due is not None:
            delay = min(delay, max(MIN_DELAY, due))
        self._call = self.reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._call = None
        if self._stopped:
            return
        if self.running is not None or self.busy():
            self.skipped += 1
            self._schedule()
            return
        self.checks += 1
        asked = self.running = self.run()

        def got(report: UsageReport) -> UsageReport:
            self.running = None
            if report.error is not None:
                self.log.info("usage check: {error}", error=report.error)
            self.on_report(report)
            self._schedule()
            return report

        asked.done.addCallback(got)
