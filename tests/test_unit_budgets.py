"""
Unit tests for the per-client budgets (store/budgets.py), their syntax in
the API key file (web/auth.py) and the 429 a request over budget gets in
each protocol's shape.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Optional

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.errors import ProxyError
from claudeproxy.store.budgets import Budget, Budgets, parse_budget, period_bounds
from claudeproxy.store.db import open_state
from claudeproxy.store.schema import MIGRATIONS
from claudeproxy.store.usage import UsageLog
from claudeproxy.web.auth import parse_budgets, parse_key_file
from tests.test_unit_routes import RoutesTestCase, chat_body, reply_lines
from tests.test_unit_usage import row

#: Thursday 2027-01-14 08:00:00 UTC
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 86400 + 8 * 3600


class SyntaxTests(SynchronousTestCase):
    def test_items(self) -> None:
        self.assertEqual(parse_budget("a", "daily:200req"), Budget("a", "daily", "requests", 200))
        self.assertEqual(parse_budget("a", "weekly:$2.50"), Budget("a", "weekly", "usd", 2.5))
        self.assertEqual(parse_budget("a", "monthly:5000000tok"), Budget("a", "monthly", "tokens", 5_000_000))
        for bad in ("daily:lots", "hourly:5req", "daily:$x", "daily:5"):
            self.assertRaises(ValueError, parse_budget, "a", bad)

    def test_key_file(self) -> None:
        text = "# keys\nagent=a1 daily:100req weekly:$5\n\neditor = e1\nsk-plain monthly:1000tok\n"
        self.assertEqual(parse_key_file(text), [("agent", "a1"), ("editor", "e1"), ("default", "sk-plain")])
        self.assertEqual(
            parse_budgets(text),
            [
                Budget("agent", "daily", "requests", 100),
                Budget("agent", "weekly", "usd", 5),
                Budget("default", "monthly", "tokens", 1000),
            ],
        )
        self.assertRaises(ValueError, parse_budgets, "agent=a1 daily:many\n")

    def test_periods(self) -> None:
        start, end = period_bounds("daily", T0)
        self.assertEqual((start, end), (T0 - 8 * 3600, T0 + 16 * 3600))
        start, end = period_bounds("weekly", T0)
        self.assertEqual(end - start, 7 * 86400)
        self.assertLessEqual(start, T0)
        self.assertEqual(time.gmtime(start).tm_wday, 0)
        start, end = period_bounds("monthly", T0)
        self.assertEqual(time.gmtime(start).tm_mday, 1)
        self.assertEqual(time.gmtime(end).tm_mday, 1)


class BudgetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.dir = tempfile.mkdtemp(prefix="cp-budget-")

    def budgets(self, *items: str) -> Budgets:
        return Budgets([parse_budget("agent", i) for i in items], self.clock.seconds)

    def use(self, b: Budgets, client: str = "agent", tokens: int = 10, cost: Optional[float] = 0.01) -> None:
        b.check(client)
        b.begin(client)
        b.stored(client, self.clock.seconds(), tokens, cost, None)

    def test_requests_429_then_reset(self) -> None:
        b = self.budgets("daily:2req")
        self.use(b)
        self.use(b)
        e = self.assertRaises(ProxyError, b.check, "agent")
        self.assertEqual((e.status, e.code, e.type), (429, "budget_exceeded", "rate_limit_error"))
        self.assertIn("daily budget of 2 requests", e.message)
        self.assertIn("resets at", e.message)
        self.assertEqual(e.headers()["Retry-After"], str(16 * 3600))
        self.assertEqual(e.headers()["x-should-retry"], "false")
        # other clients are not limited
        b.check("editor")
        self.clock.advance(16 * 3600 - 1)
        self.assertEqual(self.assertRaises(ProxyError, b.check, "agent").retry_after, 1)
        self.clock.advance(1)
        b.check("agent")

    def test_running_requests_count(self) -> None:
        b = self.budgets("daily:2req")
        b.check("agent")
        b.begin("agent")
        b.check("agent")
        b.begin("agent")
        self.assertRaises(ProxyError, b.check, "agent")
        b.stored("agent", self.clock.seconds(), 0, 0.0, None)
        self.assertRaises(ProxyError, b.check, "agent")

    def test_tokens_and_dollars(self) -> None:
        b = self.budgets("weekly:100tok")
        self.use(b, tokens=99)
        self.use(b, tokens=1)
        self.assertIn(
            "weekly budget of 100 tokens (100 tokens used)", self.assertRaises(ProxyError, b.check, "agent").message
        )
        b = self.budgets("monthly:$1")
        self.use(b, cost=0.6)
        self.use(b, cost=None)
        self.use(b, cost=0.5)
        self.assertIn("monthly budget of $1.00 ($1.10 used)", self.assertRaises(ProxyError, b.check, "agent").message)

    def test_refused_requests_do_not_count(self) -> None:
        b = self.budgets("daily:1req")
        self.use(b)
        self.assertRaises(ProxyError, b.check, "agent")
        b.stored("agent", self.clock.seconds(), 0, 0.0, "budget_exceeded")
        self.assertEqual(b.describe()["agent"][0]["used"], 1)

    def test_survives_restart(self) -> None:
        db = open_state(self.clock, self.dir, MIGRATIONS)
        assert db is not None
        log = UsageLog(self.clock, db, self.clock.seconds)
        log.record(row(T0 - 60, client="agent", model_served="claude-haiku-4-5", input_tokens=10, output_tokens=0))
        log.record(row(T0 - 30, client="agent", status=429, error_code="budget_exceeded", input_tokens=0))
        log.record(row(T0 - 86400, client="agent"))
        log.record(row(T0 - 20, client="editor"))
        self.successResultOf(log.count())
        b = self.budgets("daily:1req", "weekly:3req")
        db.read_now(b.load)
        db.stop()
        used = {d["period"]: d["used"] for d in b.describe()["agent"]}
        self.assertEqual(used, {"daily": 1, "weekly": 2})
        self.assertRaises(ProxyError, b.check, "agent")


class OverBudgetAnswerTests(RoutesTestCase):
    """
    The 429 in each protocol's own shape, naming the budget, with Retry-After.
    """

    def setUp(self) -> None:
        self.build(
            state_dir=tempfile.mkdtemp(prefix="cp-state-"),
            api_keys=(("agent", "k-agent"), ("editor", "k-editor")),
            budgets=(("agent", "daily", "requests", 1.0),),
            watchdog=False,
        )
        self.flush_writes()

    def flush_writes(self) -> None:
        usage = self.daemon.proxy.usage
        assert usage is not None
        self.successResultOf(usage.count())

    def test_second_request_refused(self) -> None:
        auth = {"Authorization": "Bearer k-agent"}
        d = self.request("POST", "/v1/chat/completions", chat_body(), headers=auth)
        self.spawner.procs[0].outReceived(reply_lines("Hello."))
        self.assertEqual(self.json_answer(d)[0], 200)
        self.flush_writes()
        code, body, response = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body(), headers=auth))
        self.assertEqual(code, 429)
        self.assertOpenAIError(body, "budget_exceeded")
        self.assertIn("'agent' is over its daily budget of 1 requests", body["error"]["message"])
        [retry] = response.headers.getRawHeaders("retry-after")
        self.assertGreater(int(retry), 0)
        self.assertLessEqual(int(retry), 86400)
        code, body, _ = self.json_answer(
            self.request("POST", "/v1/responses", json.dumps({"model": "sonnet", "input": "hi"}).encode(), headers=auth)
        )
        self.assertEqual(code, 429)
        self.assertEqual(body["error"]["code"], "budget_exceeded")
        messages = json.dumps({"model": "sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        code, body, response = self.json_answer(
            self.request("POST", "/v1/messages", messages.encode(), headers={"x-api-key": "k-agent"})
        )
        self.assertEqual(code, 429)
        self.assertEqual(body["type"], "error")
        self.assertEqual(body["error"]["type"], "rate_limit_error")
        self.assertIn("daily budget", body["error"]["message"])
        self.assertTrue(response.headers.getRawHeaders("retry-after"))
        # the refusals do not count, and the other client is not limited
        self.flush_writes()
        self.assertEqual(self.daemon.proxy.budgets.describe()["agent"][0]["used"], 1)
        d = self.request("POST", "/v1/chat/completions", chat_body(), headers={"Authorization": "Bearer k-editor"})
        self.spawner.procs[-1].outReceived(reply_lines("Hi."))
        self.assertEqual(self.json_answer(d)[0], 200)


class OptionsTests(SynchronousTestCase):
    def test_key_file_budgets_reach_the_config(self) -> None:
        from twisted.python import usage

        from claudeproxy._tap import Options, config_from_options

        path = os.path.join(tempfile.mkdtemp(prefix="cp-keys-"), "keys")
        with open(path, "w") as f:
            f.write("agent=k-a daily:5req weekly:$2\neditor=k-e\n")
        options = Options()
        options.parseOptions(["--api-key-file", path, "--claude", "/bin/true"])
        config = config_from_options(options, {"HOME": "/tmp"}, "/tmp")
        self.assertEqual(config.api_keys, (("agent", "k-a"), ("editor", "k-e")))
        self.assertEqual(config.budgets, (("agent", "daily", "requests", 5.0), ("agent", "weekly", "usd", 2.0)))
        with open(path, "w") as f:
            f.write("agent=k-a daily:lots\n")
        e = self.assertRaises(usage.UsageError, Options().parseOptions, ["--api-key-file", path])
        self.assertIn("not a budget: 'daily:lots'", str(e))
