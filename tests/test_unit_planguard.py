"""
Unit tests for the plan guard (engine/planguard.py): the plan's own limit
and the reserve, from the rate_limit_info the CLI reports (shapes as seen
on 2.1.197 and 2.1.332 with the fake upstream's unified headers) and from
the usage asked for with get_usage.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.limits import merge_limits
from claudeproxy.engine.planguard import PLAN_LIMIT_REACHED, RESERVE_REACHED, pause
from tests.test_unit_routes import RoutesTestCase, chat_body

NOW = 1_800_000_000.0
WEEK_RESET = NOW + 4 * 86400
#: 2.1.197, the weekly window used up and extra usage paying (the request was served)
OLD_EXTRA = {"status": "rejected", "resetsAt": WEEK_RESET, "rateLimitType": "seven_day", "overageStatus": "allowed",
             "overageResetsAt": NOW + 20 * 86400, "isUsingOverage": True, "overageInUse": True}  # fmt: skip
#: 2.1.332, the same
NEW_EXTRA = dict(
    OLD_EXTRA,
    unifiedWindows={
        "five_hour": {"utilization": 0.25, "resetsAt": NOW + 3600, "status": "allowed"},
        "seven_day": {"utilization": 1, "resetsAt": WEEK_RESET, "status": "rejected"},
    },
)
#: the weekly window used up, no extra usage (the request got a 429)
REJECTED = {"status": "rejected", "resetsAt": WEEK_RESET, "rateLimitType": "seven_day", "overageStatus": "rejected",
            "overageDisabledReason": "org_level_disabled", "isUsingOverage": False}  # fmt: skip
ALLOWED = {"status": "allowed", "resetsAt": NOW + 3600, "rateLimitType": "five_hour", "overageStatus": "rejected",
           "isUsingOverage": False}  # fmt: skip


def seen(info: dict, at: float = NOW) -> dict:
    return dict(info, observed_at=at)


class PlanLimitTests(SynchronousTestCase):
    def test_extra_usage_in_use_pauses(self) -> None:
        for info in (OLD_EXTRA, NEW_EXTRA, REJECTED):
            p = pause(seen(info), merge_limits({}, info, NOW), None, "deny", 0, NOW + 10)
            assert p is not None
            self.assertEqual((p.code, p.window, p.resets_at), (PLAN_LIMIT_REACHED, "seven_day", WEEK_RESET))
            self.assertEqual(p.summary(), "paused: weekly limit reached, resets 2027-01-19T08:00:00Z")
            e = p.error(NOW + 10)
            self.assertEqual((e.status, e.code, e.type), (429, PLAN_LIMIT_REACHED, "rate_limit_error"))
            self.assertEqual(e.headers(), {"Retry-After": str(4 * 86400 - 10), "x-should-retry": "false"})
            self.assertIn("weekly limit is reached; it resets 2027-01-19T08:00:00Z", e.message)
            self.assertIn("--extra-usage allow", e.message)

    def test_allow_lets_through(self) -> None:
        self.assertIsNone(pause(seen(OLD_EXTRA), None, None, "allow", 0, NOW))

    def test_until_reset_or_allowed(self) -> None:
        self.assertIsNone(pause(seen(OLD_EXTRA), None, None, "deny", 0, WEEK_RESET))
        # a later report says the plan allows again
        self.assertIsNone(pause(seen(ALLOWED, NOW + 5), None, None, "deny", 0, NOW + 6))
        self.assertIsNone(pause(None, None, None, "deny", 0, NOW))

    def test_probe_newer_than_report(self) -> None:
        """
        Usage asked for after the last report decides: the weekly window
        back under 100% ends the pause, at 100% starts one.
        """
        probed = {
            "observed_at": NOW + 60,
            "windows": {"seven_day": {"utilization": 0.4, "resetsAt": WEEK_RESET + 7 * 86400}},
        }
        self.assertIsNone(pause(seen(OLD_EXTRA), None, probed, "deny", 0, NOW + 61))
        full = {"observed_at": NOW + 60, "windows": {"five_hour": {"utilization": 1.0, "resetsAt": NOW + 3600}}}
        p = pause(seen(ALLOWED), None, full, "deny", 0, NOW + 61)
        assert p is not None
        self.assertEqual((p.code, p.window), (PLAN_LIMIT_REACHED, "five_hour"))
        # but a report after the probe wins
        self.assertIsNone(pause(seen(ALLOWED, NOW + 70), None, full, "deny", 0, NOW + 71))


class ReserveTests(SynchronousTestCase):
    def test_reserve(self) -> None:
        info = dict(
            ALLOWED, unifiedWindows={"seven_day": {"utilization": 0.85, "resetsAt": WEEK_RESET, "status": "allowed"}}
        )
        limits = merge_limits({}, info, NOW)
        p = pause(seen(info), limits, None, "deny", 20, NOW)
        assert p is not None
        self.assertEqual((p.code, p.window, p.utilization), (RESERVE_REACHED, "seven_day", 0.85))
        self.assertEqual(
            p.summary(), "paused: reserve reached (weekly limit at 85%, 20% kept for you), resets 2027-01-19T08:00:00Z"
        )
        e = p.error(NOW)
        self.assertEqual((e.status, e.code), (429, RESERVE_REACHED))
        self.assertEqual(e.headers()["x-should-retry"], "false")
        self.assertIsNone(pause(seen(info), limits, None, "deny", 10, NOW))
        self.assertIsNone(pause(seen(info), limits, None, "deny", 0, NOW))
        # past its reset the window no longer counts
        self.assertIsNone(pause(seen(info), limits, None, "deny", 20, WEEK_RESET + 1))

    def test_reserve_from_probe_and_fullest(self) -> None:
        probed = {
            "observed_at": NOW,
            "windows": {
                "five_hour": {"utilization": 0.9, "resetsAt": NOW + 3600, "observed_at": NOW},
                "seven_day": {"utilization": 0.95, "resetsAt": WEEK_RESET, "observed_at": NOW},
            },
        }
        p = pause(None, {}, probed, "deny", 20, NOW)
        assert p is not None
        self.assertEqual((p.code, p.window), (RESERVE_REACHED, "seven_day"))

    def test_rejected_window_counts_full_with_allow(self) -> None:
        limits = merge_limits({}, OLD_EXTRA, NOW)
        p = pause(seen(OLD_EXTRA), limits, None, "allow", 5, NOW)
        assert p is not None
        self.assertEqual((p.code, p.window), (RESERVE_REACHED, "seven_day"))


class GuardRouteTests(RoutesTestCase):
    """
    The routes with the daemon built on a MemoryReactor and a fake
    spawner: a report that the plan's window is used up, then requests.
    """

    def test_refused_before_any_process(self) -> None:
        import time

        self.build()
        now = time.time()
        self.daemon.proxy.turns.quota = dict(OLD_EXTRA, resetsAt=now + 3600, observed_at=now)
        code, body, response = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body()))
        self.assertEqual(
            (code, body["error"]["code"], body["error"]["type"]), (429, PLAN_LIMIT_REACHED, "rate_limit_error")
        )
        self.assertEqual(response.headers.getRawHeaders("x-should-retry"), ["false"])
        self.assertLessEqual(int(response.headers.getRawHeaders("retry-after")[0]), 3600)
        body = json.dumps({"model": "sonnet", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        code, answer, _ = self.json_answer(self.request("POST", "/v1/messages", body.encode()))
        self.assertEqual(code, 429)
        self.assertEqual(answer["type"], "error")
        self.assertEqual(answer["error"]["type"], "rate_limit_error")
        self.assertTrue(
            answer["error"]["message"].startswith("plan_limit_reached: the subscription's weekly limit is reached"),
            answer,
        )
        # no CLI was started
        self.assertEqual(self.spawner.calls, [])
        code, health, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(health["status"], "paused")
        self.assertTrue(health["plan_guard"]["summary"].startswith("paused: weekly limit reached, resets "))

    def test_allowed(self) -> None:
        import time

        self.build(extra_usage="allow")
        now = time.time()
        self.daemon.proxy.turns.quota = dict(OLD_EXTRA, resetsAt=now + 3600, observed_at=now)
        code, health, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual((health["status"], health["plan_guard"]["summary"]), ("ok", "serving"))
