"""
The subscription's limits before the first request: the daemon's usage
check (the CLI's get_usage control request) at start, shown by /v1/usage,
`claudeproxy status` and the dashboard, and used by the reserve.  The CLI
here is tests/fakeclis/usage.py answering in 2.1.197's and 2.1.332's exact
shapes (the real CLIs give rate limits only with a stored login, see
test_integration_login.py).
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.harness import FAKECLIS, start, wait_for
from tests.test_integration_limits import get_json
from tests.test_unit_usageprobe import LIMITS

USAGE_CLI = os.path.join(FAKECLIS, "usage.py")


def limits_in_browser(url: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    from tests.test_integration_dashboard import browser, severe, wait

    driver = browser()
    try:
        driver.get(url + "/")
        rows = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#limits .limit[data-window]"), driver=driver)
        return {
            "windows": {r.get_attribute("data-window"): r.text for r in rows},
            "extra": driver.find_element(By.ID, "extra-usage").text,
            "guard": driver.find_element(By.ID, "plan-guard").text,
            "token": driver.find_element(By.ID, "cli-token").text,
            "errors": severe(driver),
        }
    finally:
        driver.quit()


class UsageBeforeFirstRequestTests(TestCase):
    timeout = 180

    async def check_version(self, version: str) -> None:
        log = tempfile.mktemp(prefix="cp-fakecli-")
        d = await start(
            self,
            claude=USAGE_CLI,
            usage_check=300.0,
            extra_env={
                "CLAUDEPROXY_FAKE_CLI_VERSION": version,
                "CLAUDEPROXY_FAKE_USAGE": json.dumps(LIMITS),
                "CLAUDEPROXY_FAKE_CLI_LOG": log,
            },
        )
        await wait_for(lambda: d.proxy.usage_report is not None, timeout=20)
        figures = await deferToThread(get_json, d.url + "/v1/usage")
        windows = figures["limits"]["windows"]
        self.assertEqual(set(windows), {"five_hour", "seven_day", "seven_day_sonnet"})
        self.assertEqual(windows["seven_day"]["utilization"], 0.64)
        self.assertEqual(figures["limits"]["overage"]["extra_usage"]["used_credits"], 1234)
        self.assertEqual(figures["usage_check"]["subscription_type"], "max")
        from claudeproxy.ops.status import summary

        text = summary(figures)
        self.assertIn("limit seven_day: asked, 64% used, resets ", text)
        self.assertIn("extra usage this month: on, 12.34 USD used of 50.00 USD", text)
        seen = await deferToThread(limits_in_browser, d.url)
        self.assertEqual(seen["errors"], [])
        self.assertIn("weekly: asked · 64% used · resets ", seen["windows"]["seven_day"])
        self.assertIn("12% used", seen["windows"]["five_hour"])
        self.assertEqual(seen["extra"], "extra usage this month: on, 12.34 USD used of 50.00 USD")
        self.assertIn("API requests: serving", seen["guard"])
        # the probe wrote only its control request, and its process is gone
        with open(log) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual([line["request"]["subtype"] for line in lines], ["get_usage"])
        checker = d.daemon.usage_checker
        assert checker is not None
        self.assertEqual(checker.checks, 1)
        await wait_for(lambda: checker.running is None, timeout=10)
        # its process is no longer in the daemon's record of the CLI groups it started
        guard = d.daemon.guard
        assert guard is not None
        self.assertEqual(guard.groups, set())
        # nothing went upstream
        self.assertEqual(d.fake.requests, [])

    async def test_2_1_197_shape(self) -> None:
        await self.check_version("2.1.197")

    async def test_2_1_332_shape(self) -> None:
        await self.check_version("2.1.332")

    async def test_reserve_before_first_request(self) -> None:
        """
        The weekly window at 64 % from the check at start and a reserve of
        40 %: the first request is refused, and nothing reaches upstream.
        """
        d = await start(
            self,
            claude=USAGE_CLI,
            usage_check=300.0,
            reserve=40.0,
            extra_env={"CLAUDEPROXY_FAKE_CLI_VERSION": "2.1.332", "CLAUDEPROXY_FAKE_USAGE": json.dumps(LIMITS)},
        )
        await wait_for(lambda: d.proxy.usage_report is not None, timeout=20)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 429, body)
        self.assertEqual(body["error"]["code"], "reserve_reached")
        self.assertIn("weekly limit is at 64%", body["error"]["message"])
        self.assertEqual(d.fake.requests, [])
