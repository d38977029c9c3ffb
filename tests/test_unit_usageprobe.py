"""
Unit tests for the usage check (engine/usageprobe.py): the CLI's get_usage
answer as 2.1.197 and 2.1.332 give it (captured from both, against a fake
of Anthropic's account API), the probe process driven through a fake
spawner, and the checker's timer on a Clock.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.planguard import PLAN_LIMIT_REACHED, pause
from claudeproxy.engine.usageprobe import REQUEST_ID, Asked, UsageChecker, UsageReport, ask, epoch, parse_answer
from tests.fakes import FakeTransport

NOW = 1_796_529_000.0
LIMITS = {
    "five_hour": {"utilization": 12, "resets_at": "2026-12-06T08:00:00.000000+00:00"},
    "seven_day": {"utilization": 64, "resets_at": "2026-12-10T12:00:00.000000+00:00"},
    "seven_day_oauth_apps": None,
    "seven_day_opus": None,
    "seven_day_sonnet": {"utilization": 3, "resets_at": "2026-12-10T12:00:00+00:00"},
    "extra_usage": {"is_enabled": True, "monthly_limit": 5000, "used_credits": 1234, "utilization": 24.68, "currency": "USD"},
}  # fmt: skip
SESSION = {"total_cost_usd": 0, "total_api_duration_ms": 0, "total_duration_ms": 545, "total_lines_added": 0,
           "total_lines_removed": 0, "model_usage": {}}  # fmt: skip
SCAN = {"request_count": 0, "session_count": 0, "behaviors": [], "agents": [], "skills": [], "plugins": [], "mcp_servers": []}  # fmt: skip
#: 2.1.197's answer (it sends the transcript scan whatever it is asked)
OLD = {"type": "control_response", "response": {"subtype": "success", "request_id": REQUEST_ID, "response": {
    "session": SESSION, "subscription_type": "max", "rate_limits_available": True, "rate_limits": LIMITS,
    "behaviors": {"day": SCAN, "week": SCAN}}}}  # fmt: skip
#: 2.1.332's, asked with skip_behaviors
NEW = {"type": "control_response", "response": {"subtype": "success", "request_id": REQUEST_ID, "response": {
    "session": SESSION, "subscription_type": "max", "rate_limits_available": True, "rate_limits": LIMITS,
    "behaviors": None}}}  # fmt: skip
#: either, with CLAUDE_CODE_OAUTH_TOKEN alone (or nonessential traffic off)
NONE = {"type": "control_response", "response": {"subtype": "success", "request_id": REQUEST_ID, "response": {
    "session": SESSION, "subscription_type": None, "rate_limits_available": False, "rate_limits": None,
    "behaviors": None}}}  # fmt: skip


class ParseTests(SynchronousTestCase):
    def test_both_versions(self) -> None:
        for line in (OLD, NEW):
            report = parse_answer(line, NOW)
            assert report is not None
            self.assertTrue(report.available)
            self.assertEqual(set(report.windows), {"five_hour", "seven_day", "seven_day_sonnet"})
            week = report.windows["seven_day"]
            self.assertEqual(week["utilization"], 0.64)
            self.assertEqual(week["resetsAt"], epoch("2026-12-10T12:00:00Z"))
            self.assertEqual(week["observed_at"], NOW)
            self.assertEqual(report.extra_usage, LIMITS["extra_usage"])
            self.assertEqual((report.subscription_type, report.error), ("max", None))

    def test_unavailable(self) -> None:
        report = parse_answer(NONE, NOW)
        assert report is not None
        self.assertFalse(report.available)
        self.assertEqual(report.windows, {})
        self.assertIn("CLAUDE_CODE_OAUTH_TOKEN", report.error or "")
        # it says nothing of the plan: a pause from the last report holds
        info = {"status": "rejected", "resetsAt": NOW + 3600, "rateLimitType": "five_hour", "observed_at": NOW - 5}
        self.assertIsNotNone(pause(info, None, report.to_json(), "deny", 0, NOW))

    def test_error_and_other_lines(self) -> None:
        error = {"type": "control_response", "response": {"subtype": "error", "request_id": REQUEST_ID, "error": "no"}}
        report = parse_answer(error, NOW)
        assert report is not None
        self.assertIn("with an error: no", report.error or "")
        self.assertIsNone(parse_answer({"type": "system", "subtype": "init"}, NOW))
        other = {"type": "control_response", "response": {"subtype": "success", "request_id": "x", "response": {}}}
        self.assertIsNone(parse_answer(other, NOW))

    def test_full_window_pauses(self) -> None:
        limits = dict(LIMITS, seven_day={"utilization": 100, "resets_at": "2026-12-10T12:00:00Z"})
        line = json.loads(json.dumps(NEW))
        line["response"]["response"]["rate_limits"] = limits
        report = parse_answer(line, NOW)
        assert report is not None
        p = pause(None, None, report.to_json(), "deny", 0, NOW)
        assert p is not None
        self.assertEqual((p.code, p.window), (PLAN_LIMIT_REACHED, "seven_day"))


class ProbeTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.spawned: list[tuple[Any, str, list[str], dict[str, str], str]] = []
        self.killed: list[int] = []

    def spawner(self, protocol: Any, executable: str, args: Any, env: Any, path: str) -> Any:
        self.spawned.append((protocol, executable, list(args), dict(env), path))
        transport = FakeTransport(4242)
        protocol.makeConnection(transport)
        return transport

    def ask(self) -> Asked:
        return ask(
            self.clock,
            self.spawner,
            "/opt/claude",
            {"HOME": "/h"},
            ("--setting-sources", ""),
            "/work",
            self.clock.seconds,
            self.killed.append,
            timeout=30,
        )

    def test_asks_kills_and_reports(self) -> None:
        asked = self.ask()
        [(protocol, executable, argv, env, path)] = self.spawned
        self.assertEqual((executable, env, path), ("/opt/claude", {"HOME": "/h"}, "/work"))
        self.assertEqual(
            argv[:6], ["/opt/claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json"]
        )
        self.assertEqual(argv[-2:], ["--setting-sources", ""])
        # only the control request: never initialize, never a user line
        [line] = protocol.transport.written
        self.assertEqual(
            json.loads(line),
            {
                "type": "control_request",
                "request_id": REQUEST_ID,
                "request": {"subtype": "get_usage", "skip_behaviors": True},
            },
        )
        got: list[UsageReport] = []
        asked.done.addCallback(got.append)
        protocol.outReceived(b'{"type":"system","subtype":"status"}\n' + json.dumps(OLD).encode()[:50])
        self.assertEqual(self.killed, [])
        protocol.outReceived(json.dumps(OLD).encode()[50:] + b"\n")
        # answered: its stdin is closed, on which it exits by itself (not killed: it may be saving a refreshed login)
        self.assertEqual((protocol.transport.stdin_closed, self.killed), (True, []))
        self.assertEqual(got, [])
        ended: list[None] = []
        protocol.ended.addCallback(ended.append)
        protocol.processEnded(Failure(ProcessDone(0)))
        # then its group is killed (anything it left), and the child guard's record can go
        self.assertEqual((self.killed, ended), ([4242], [None]))
        [report] = got
        self.assertTrue(report.available)
        self.assertEqual(report.windows["five_hour"]["utilization"], 0.12)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_killed_if_it_does_not_exit(self) -> None:
        asked = self.ask()
        protocol = self.spawned[0][0]
        protocol.outReceived(json.dumps(NEW).encode() + b"\n")
        self.clock.advance(4.9)
        self.assertEqual(self.killed, [])
        self.clock.advance(0.1)
        self.assertEqual(self.killed, [4242])
        got: list[UsageReport] = []
        asked.done.addCallback(got.append)
        protocol.processEnded(Failure(ProcessDone(0)))
        self.assertTrue(got[0].available)
        self.assertEqual(self.killed, [4242])

    def test_timeout(self) -> None:
        asked = self.ask()
        protocol = self.spawned[0][0]
        got: list[UsageReport] = []
        asked.done.addCallback(got.append)
        self.clock.advance(30)
        self.assertEqual(self.killed, [4242])
        protocol.processEnded(Failure(ProcessDone(0)))
        self.assertIn("did not answer get_usage within 30s", got[0].error or "")

    def test_ended_without_answer(self) -> None:
        asked = self.ask()
        protocol = self.spawned[0][0]
        protocol.errReceived(b"boom\n")
        got: list[UsageReport] = []
        asked.done.addCallback(got.append)
        protocol.processEnded(Failure(ProcessDone(0)))
        self.assertEqual(got[0].error, "the CLI ended without answering get_usage: boom")

    def test_spawn_fails(self) -> None:
        def broken(
            protocol: ProcessProtocol, executable: str, args: Sequence[str], env: Mapping[str, str], path: str
        ) -> Any:
            raise OSError("no such file")

        asked = ask(self.clock, broken, "/opt/claude", {}, (), "/w", self.clock.seconds, self.killed.append)
        got: list[UsageReport] = []
        asked.done.addCallback(got.append)
        self.assertIn("could not be started: no such file", got[0].error or "")
        self.assertFalse(self.clock.getDelayedCalls())


class CheckerTests(SynchronousTestCase):
    def test_at_start_then_every_interval_skipping_busy(self) -> None:
        clock = Clock()
        runs: list[Deferred[UsageReport]] = []
        kills: list[int] = []
        reports: list[UsageReport] = []
        busy = [False]

        def run() -> Asked:
            d: Deferred[UsageReport] = Deferred()
            runs.append(d)
            return Asked(d, lambda: kills.append(len(runs)))

        checker = UsageChecker(clock, run, lambda: busy[0], reports.append, 300)
        checker.start()
        self.assertEqual(len(runs), 1)
        # no second check while one runs
        clock.advance(1000)
        self.assertEqual(len(runs), 1)
        runs[0].callback(UsageReport(clock.seconds(), True))
        self.assertEqual(len(reports), 1)
        busy[0] = True
        clock.advance(300)
        self.assertEqual((len(runs), checker.skipped), (1, 1))
        busy[0] = False
        clock.advance(300)
        self.assertEqual(len(runs), 2)
        stopped = checker.stop()
        self.assertIs(stopped, runs[1])
        self.assertEqual(kills, [2])
        runs[1].callback(UsageReport(clock.seconds(), error="stopped"))
        self.assertFalse(clock.getDelayedCalls())


class StoredLoginTests(SynchronousTestCase):
    def test_credentials_file(self) -> None:
        from claudeproxy.engine.loginprobe import credentials_path, stored_login

        text = json.dumps(
            {
                "claudeAiOauth": {
                    "accessToken": "a",
                    "refreshToken": "r",
                    "expiresAt": int((NOW + 600) * 1000),
                    "scopes": ["user:inference"],
                    "subscriptionType": "max",
                }
            }
        )
        stored = stored_login(text, NOW)
        assert stored is not None
        self.assertEqual(
            stored,
            {
                "has_access_token": True,
                "refreshable": True,
                "expires_at": NOW + 600,
                "expires_in": 600.0,
                "scopes": ["user:inference"],
                "subscription": "max",
            },
        )
        # what a CLI leaves after its refresh was refused (invalid_grant)
        wiped = stored_login(
            json.dumps({"claudeAiOauth": {"accessToken": "", "refreshToken": "", "expiresAt": 0}}), NOW
        )
        assert wiped is not None
        self.assertEqual((wiped["has_access_token"], wiped["refreshable"], wiped["expires_at"]), (False, False, None))
        self.assertIsNone(stored_login("{}", NOW))
        self.assertIsNone(stored_login("not json", NOW))
        self.assertEqual(credentials_path({"HOME": "/h"}), "/h/.claude/.credentials.json")
        self.assertEqual(credentials_path({"HOME": "/h", "CLAUDE_CONFIG_DIR": "/c"}), "/c/.credentials.json")


class RefreshAheadTests(SynchronousTestCase):
    def test_refresh_due(self) -> None:
        from claudeproxy.engine.usageprobe import refresh_due

        stored = {"refreshable": True, "expires_at": NOW + 900}
        self.assertEqual(refresh_due(stored, NOW), 601.0)
        self.assertIsNone(refresh_due(dict(stored, refreshable=False), NOW))
        self.assertIsNone(refresh_due(None, NOW))
        self.assertIsNone(refresh_due({"refreshable": True, "expires_at": None}, NOW))

    def test_checks_when_due(self) -> None:
        """
        A check is made when the token enters the CLI's refresh window,
        before the interval; if requests run then, a few seconds later.
        """
        clock = Clock()
        runs: list[Deferred[UsageReport]] = []
        busy = [False]
        expires = [clock.seconds() + 400.0]

        def run() -> Asked:
            d: Deferred[UsageReport] = Deferred()
            runs.append(d)
            return Asked(d, lambda: None)

        from claudeproxy.engine.usageprobe import refresh_due

        checker = UsageChecker(
            clock,
            run,
            lambda: busy[0],
            lambda r: None,
            3600,
            lambda: refresh_due({"refreshable": True, "expires_at": expires[0]}, clock.seconds()),
        )
        checker.start()
        runs[0].callback(UsageReport(clock.seconds()))
        busy[0] = True
        clock.advance(101)
        self.assertEqual(len(runs), 1)
        busy[0] = False
        clock.advance(5)
        self.assertEqual(len(runs), 2)
        # refreshed: the next is due when the new token nears its expiry
        expires[0] = clock.seconds() + 3600
        runs[1].callback(UsageReport(clock.seconds()))
        clock.advance(3299)
        self.assertEqual(len(runs), 2)
        clock.advance(2)
        self.assertEqual(len(runs), 3)
        checker.stop()


class GuardedTests(SynchronousTestCase):
    def test_child_guard_record_removed(self) -> None:
        """
        Through the daemon's child guard, the probe's process is recorded
        from its spawn until it has ended.
        """
        from claudeproxy.engine.reaper import ChildGuard

        clock = Clock()
        guard = ChildGuard(clock, stamp=lambda pid: 0.0)
        spawned: list[Any] = []

        def spawner(protocol: Any, executable: str, args: Any, env: Any, path: str) -> Any:
            transport = FakeTransport(4343)
            protocol.makeConnection(transport)
            spawned.append(protocol)
            return transport

        ask(clock, guard.wrap(spawner), "/opt/claude", {}, (), "/w", clock.seconds, lambda pid: None)
        self.assertIn(4343, guard.groups)
        spawned[0].processEnded(Failure(ProcessDone(0)))
        self.assertNotIn(4343, guard.groups)
