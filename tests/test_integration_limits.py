"""
The subscription's limit windows and the API-equivalent cost in
C{/v1/usage}, through the real CLI and the fake upstream (which sends the
real API's unified rate-limit headers, from which the CLI makes its
rate_limit_event lines).
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakes import LogLines
from tests.harness import scaled, sleep, start


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


class LimitsTests(TestCase):
    timeout = 180

    async def test_limits_and_cost_in_usage(self) -> None:
        d = await start(self, state_dir=tempfile.mkdtemp(prefix="cp-state-"))
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        # past the weekly window's warning threshold, the CLI reports its utilization
        d.fake.surpassed["7d"] = 0.75
        d.fake.utilization = (0.3, 0.8)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi again"}]})
        self.assertEqual(code, 200, body)
        figures = await deferToThread(get_json, d.url + "/v1/usage")
        windows = figures["limits"]["windows"]
        week = windows["seven_day"]
        self.assertEqual((week["status"], week["utilization"]), ("allowed_warning", 0.8))
        self.assertGreater(week["resetsAt"], figures["now"] + 3 * 86400)
        # 80% used three days into seven: reached before the reset
        self.assertIsNotNone(week["reached_at"])
        self.assertLess(week["reached_at"], week["resetsAt"])
        self.assertEqual(windows["five_hour"]["status"], "allowed")
        overage = figures["limits"]["overage"]
        self.assertEqual((overage["overageStatus"], overage["isUsingOverage"]), ("rejected", False))
        # the cost of the two requests just made: the fake upstream's model at its API price
        total = figures["history"]["windows"]["day"]["total"]
        self.assertEqual((total["requests"], total["unpriced"]), (2, 0))
        [served] = figures["history"]["windows"]["day"]["models"]
        # what "sonnet" is on this CLI: Sonnet 5 (2.1.197) or 5.5 (2.1.332)
        self.assertIn(served, {"claude-sonnet-5", "claude-sonnet-5-5"})
        tokens_in, tokens_out = total["input_tokens"], total["output_tokens"]
        # both at $2 input and $10 output per million
        self.assertAlmostEqual(total["cost"], (tokens_in * 2 + tokens_out * 10) / 1e6)
        self.assertGreater(total["cost"], 0)


class BudgetTests(TestCase):
    timeout = 180

    async def test_budgeted_key_refused_in_each_sdk(self) -> None:
        """
        The official SDKs, with their default retries, get the 429 naming the
        budget at once (x-should-retry: false), after the budget's requests
        went through the real CLI; and the budget is in /v1/usage.
        """
        import anthropic
        import openai

        d = await start(
            self,
            state_dir=tempfile.mkdtemp(prefix="cp-state-"),
            api_keys=(("agent", "k-agent"),),
            budgets=(("agent", "daily", "requests", 1.0),),
        )
        oai = openai.OpenAI(base_url=d.url + "/v1", api_key="k-agent", timeout=scaled(60))
        ant = anthropic.Anthropic(base_url=d.url, api_key="k-agent", timeout=scaled(60))

        def first() -> str:
            r = oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
            return r.choices[0].message.content or ""

        self.assertTrue(await deferToThread(first))
        # the row is stored on the database's thread: wait for it
        usage = d.proxy.usage
        assert usage is not None
        self.assertEqual(await usage.count(), 1)
        upstream = len(d.fake.requests)

        def refused() -> tuple[Any, Any]:
            try:
                oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "again"}])
            except openai.RateLimitError as e:
                chat = e
            try:
                ant.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "again"}])
            except anthropic.RateLimitError as e:
                messages = e
            return chat, messages

        chat, messages = await deferToThread(refused)
        self.assertEqual(chat.code, "budget_exceeded")
        self.assertIn("over its daily budget of 1 requests", chat.message)
        self.assertIn("over its daily budget of 1 requests", messages.message)
        self.assertGreater(int(messages.response.headers["retry-after"]), 0)
        # neither the refusals nor any SDK retry reached the upstream
        self.assertEqual(len(d.fake.requests), upstream)
        figures = await deferToThread(get_json_key, d.url + "/v1/usage", "k-agent")
        [budget] = figures["budgets"]["agent"]
        seen = await deferToThread(budget_in_browser, d.url, "k-agent")
        self.assertEqual(seen["errors"], [])
        self.assertIn("budget of agent, daily: 1 requests of 1 requests · resets ", seen["text"])
        self.assertEqual(seen["fill"], seen["width"])
        self.assertEqual(
            (budget["period"], budget["kind"], budget["limit"], budget["used"]), ("daily", "requests", 1, 1)
        )


def budget_in_browser(url: str, key: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By

    from tests.test_integration_dashboard import browser, severe, wait

    driver = browser()
    try:
        driver.get(url + "/")
        driver.find_element(By.NAME, "key").send_keys(key)
        driver.find_element(By.CSS_SELECTOR, "form button").click()
        row = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#limits .budget"), driver=driver)[0]
        return {
            "text": row.text,
            "fill": row.find_element(By.CSS_SELECTOR, ".fill").value_of_css_property("width"),
            "width": row.find_element(By.CSS_SELECTOR, ".bar").value_of_css_property("width"),
            "errors": severe(driver),
        }
    finally:
        driver.quit()


def get_json_key(url: str, key: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


class PlanGuardTests(TestCase):
    """
    The plan's own limit and the reserve, through the real CLI: the fake
    upstream's unified rate-limit headers say the weekly window is used up
    (extra usage paying) or at 85 %; the official SDKs get the 429s.
    """

    timeout = 240

    def refusals(self, d: Any, code: str) -> tuple[Any, Any, Any]:
        """
        A chat completion, a Responses call and a Messages call, each
        refused with C{code} (the SDKs' default retries included).
        """
        import anthropic
        import openai

        oai = openai.OpenAI(base_url=d.url + "/v1", api_key="k", timeout=scaled(60))
        ant = anthropic.Anthropic(base_url=d.url, api_key="k", timeout=scaled(60))
        with self.assertRaises(openai.RateLimitError) as chat:
            oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "again"}])
        with self.assertRaises(openai.RateLimitError) as responses:
            oai.responses.create(model="sonnet", input="again")
        with self.assertRaises(anthropic.RateLimitError) as messages:
            ant.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "again"}])
        for e in (chat.exception, responses.exception):
            self.assertEqual(e.code, code)
            self.assertEqual(e.type, "rate_limit_error")
        body = messages.exception.body
        self.assertEqual(body["type"], "error")
        self.assertEqual(body["error"]["type"], "rate_limit_error")
        self.assertTrue(body["error"]["message"].startswith(code + ": "), body)
        for e in (chat.exception, responses.exception, messages.exception):
            headers = e.response.headers
            self.assertEqual(headers["x-should-retry"], "false")
            self.assertGreater(int(headers["retry-after"]), 0)
        return chat.exception, responses.exception, messages.exception

    async def test_plan_limit_reached_then_reset(self) -> None:
        from tests.harness import LoggedErrors

        log = LogLines()
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(log)
        self.addCleanup(globalLogPublisher.removeObserver, log)
        LoggedErrors().install(self)
        d = await start(self)
        d.fake.plan_rejected = "7d"
        d.fake.overage_allowed = True
        # the weekly window resets soon after the first answer
        reset_in = 4 + scaled(4)
        d.fake.plan_reset_in = reset_in
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        # the request that crossed into extra usage was served (the CLI tells only after the answer)
        self.assertEqual(code, 200, body)
        rid = body["id"]
        warnings = [line for line in log.lines if "crossed into extra usage" in line]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("weekly limit", warnings[0])
        # the log names the request
        self.assertIn(rid, warnings[0])
        upstream = len(d.fake.requests)
        chat, _, _ = await deferToThread(self.refusals, d, "plan_limit_reached")
        self.assertIn("weekly limit is reached; it resets ", chat.message)
        self.assertIn("--extra-usage allow", chat.message)
        # nothing reached upstream
        self.assertEqual(len(d.fake.requests), upstream)
        health = await deferToThread(get_json, d.url + "/health")
        self.assertEqual(health["status"], "paused")
        self.assertTrue(health["plan_guard"]["summary"].startswith("paused: weekly limit reached, resets "))
        figures = await deferToThread(get_json, d.url + "/v1/usage")
        self.assertEqual(figures["plan_guard"]["paused"]["code"], "plan_limit_reached")
        from claudeproxy.ops.status import summary

        self.assertIn("API requests: paused: weekly limit reached, resets ", summary(figures))
        # after the reset the plan allows again: served
        d.fake.plan_rejected = None
        d.fake.overage_allowed = False
        resets = health["plan_guard"]["paused"]["resets_at"]
        import time

        await sleep(max(0.0, resets - time.time() + 0.5))
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "after"}]})
        self.assertEqual(code, 200, body)
        self.assertEqual(len(d.fake.requests), upstream + 1)
        health = await deferToThread(get_json, d.url + "/health")
        self.assertEqual((health["status"], health["plan_guard"]["summary"]), ("ok", "serving"))

    async def test_extra_usage_allowed(self) -> None:
        d = await start(self, extra_usage="allow")
        d.fake.plan_rejected = "7d"
        d.fake.overage_allowed = True
        for text in ("hi", "again"):
            code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": text}]})
            self.assertEqual(code, 200, body)
        self.assertEqual(len(d.fake.message_requests), 2)
        health = await deferToThread(get_json, d.url + "/health")
        self.assertEqual(health["plan_guard"]["in_extra_usage"], True)

    async def test_reserve_reached(self) -> None:
        d = await start(self, reserve=20.0)
        # past the warning threshold the CLI reports the weekly utilization (2.1.197 only then)
        d.fake.surpassed["7d"] = 0.75
        d.fake.utilization = (0.3, 0.85)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        upstream = len(d.fake.requests)
        chat, _, _ = await deferToThread(self.refusals, d, "reserve_reached")
        self.assertIn("weekly limit is at 85%", chat.message)
        self.assertEqual(len(d.fake.requests), upstream)
