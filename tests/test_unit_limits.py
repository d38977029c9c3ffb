"""
Unit tests for the limit windows (engine/limits.py): what the CLI's
rate_limit_info lines carry on 2.1.197 and 2.1.332, merged, and the pace.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.limits import describe, merge_limits, pace

NOW = 1_800_000_000.0
#: as CLI 2.1.197 reports it under the thresholds
OLD = {"status": "allowed", "resetsAt": NOW + 3600, "rateLimitType": "five_hour", "overageStatus": "rejected",
       "overageDisabledReason": "org_level_disabled", "isUsingOverage": False}  # fmt: skip
#: and past the weekly warning threshold
OLD_WARNING = {"status": "allowed_warning", "resetsAt": NOW + 4 * 86400, "rateLimitType": "seven_day",
               "utilization": 0.8, "isUsingOverage": False, "surpassedThreshold": 0.75}  # fmt: skip
#: as CLI 2.1.332 reports it: every window
NEW = dict(
    OLD,
    unifiedWindows={
        "five_hour": {"utilization": 0.25, "resetsAt": NOW + 3600, "status": "allowed"},
        "seven_day": {"utilization": 0.5, "resetsAt": NOW + 4 * 86400, "status": "allowed"},
    },
)


class LimitsTests(SynchronousTestCase):
    def test_old_cli(self) -> None:
        limits = merge_limits({}, OLD, NOW)
        self.assertEqual(
            limits["windows"], {"five_hour": {"status": "allowed", "resetsAt": NOW + 3600, "observed_at": NOW}}
        )
        self.assertEqual(limits["overage"]["overageStatus"], "rejected")
        limits = merge_limits(limits, OLD_WARNING, NOW + 10)
        self.assertEqual(set(limits["windows"]), {"five_hour", "seven_day"})
        self.assertEqual(limits["windows"]["seven_day"]["utilization"], 0.8)
        # an event under the thresholds keeps the utilization known for the same period
        limits = merge_limits(limits, dict(OLD_WARNING, status="allowed", utilization=None), NOW + 20)
        self.assertEqual(limits["windows"]["seven_day"]["utilization"], 0.8)

    def test_new_cli(self) -> None:
        limits = merge_limits({}, NEW, NOW)
        self.assertEqual(limits["windows"]["seven_day"]["utilization"], 0.5)
        self.assertEqual(limits["windows"]["five_hour"]["utilization"], 0.25)

    def test_pace(self) -> None:
        # 3 of 7 days gone, 80% used: the rest goes in 0.75 days
        week = {"utilization": 0.8, "resetsAt": NOW + 4 * 86400}
        self.assertAlmostEqual(pace(week, "seven_day", NOW) or 0, NOW + 0.75 * 86400)
        # 3 of 7 days gone, 20% used: not reached before the reset
        self.assertIsNone(pace({"utilization": 0.2, "resetsAt": NOW + 4 * 86400}, "seven_day", NOW))
        self.assertIsNone(pace({"resetsAt": NOW + 3600}, "five_hour", NOW))
        self.assertIsNone(pace({"utilization": 0.5, "resetsAt": NOW + 3600}, "unknown_window", NOW))
        self.assertEqual(pace({"utilization": 1.0, "resetsAt": NOW + 3600}, "five_hour", NOW), NOW)
        shown = describe(merge_limits({}, NEW, NOW), NOW)
        self.assertEqual(shown["windows"]["five_hour"]["seconds"], 5 * 3600)
        self.assertIn("reached_at", shown["windows"]["seven_day"])
