"""
Unit tests for the plan guard (engine/planguard.py): the plan's own limit, from the rate_limit_info the CLI reports (shapes as seen
on 2.1.197 and 2.1.332 with the fake upstream's unified headers) and from
the usage asked for with get_usage.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.limits import merge_limits
from claudeproxy.engine.planguard import PLAN_LIMIT_REACHED, pause

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
            p = pause(seen(info), merge_limits({}, info, NOW), None, "deny", NOW + 10)
            assert p is not None
            self.assertEqual((p.code, p.window, p.resets_at), (PLAN_LIMIT_REACHED, "seven_day", WEEK_RESET))
            self.assertEqual(p.summary(), "paused: weekly limit reached, resets 2027-01-19T08:00:00Z")
            e = p.error(NOW + 10)
            self.assertEqual((e.status, e.code, e.type), (429, PLAN_LIMIT_REACHED, "rate_limit_error"))
            self.assertEqual(e.headers(), {"Retry-After": str(4 * 86400 - 10), "x-should-retry": "false"})
            self.assertIn("weekly limit is reached; it resets 2027-01-19T08:00:00Z", e.message)
            self.assertIn("--extra-usage allow", e.message)

    def test_allow_lets_through(self) -> None:
        self.assertIsNone(pause(seen(OLD_EXTRA), None, None, "allow", NOW))

    def test_until_reset_or_allowed(self) -> None:
        self.assertIsNone(pause(seen(OLD_EXTRA), None, None, "deny", WEEK_RESET))
        # a later report says the plan allows again
        self.assertIsNone(pause(seen(ALLOWED, NOW + 5), None, None, "deny", NOW + 6))
        self.assertIsNone(pause(None, None, None, "deny", NOW))

    def test_probe_newer_than_report(self) -> None:
        """
        Usage asked for after the last report decides: the weekly window
        back under 100% ends the pause, at 100% starts one.
        """
        probed = {
            "observed_at": NOW + 60,
            "windows": {"seven_day": {"utilization": 0.4, "resetsAt": WEEK_RESET + 7 * 86400}},
        }
        self.assertIsNone(pause(seen(OLD_EXTRA), None, probed, "deny", NOW + 61))
        full = {"observed_at": NOW + 60, "windows": {"five_hour": {"utilization": 1.0, "resetsAt": NOW + 3600}}}
        p = pause(seen(ALLOWED), None, full, "deny", NOW + 61)
        assert p is not None
        self.assertEqual((p.code, p.window), (PLAN_LIMIT_REACHED, "five_hour"))
        # but a report after the probe wins
        self.assertIsNone(pause(seen(ALLOWED, NOW + 70), None, full, "deny", NOW + 71))
