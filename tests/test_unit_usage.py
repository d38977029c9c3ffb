"""
Unit tests for the usage history (store/usage.py), named API keys
(web/auth.py) and the row a request leaves.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.services import usage_pruner
from claudeproxy.store.db import open_state
from claudeproxy.store.pricing import api_cost, plan_for, saved
from claudeproxy.store.schema import MIGRATIONS
from claudeproxy.store.usage import DAY, HOUR, UsageLog, UsageRow
from claudeproxy.web.auth import ClientKeys, Sessions, check_keys, parse_key, parse_key_file
from tests.test_unit_routes import RoutesTestCase, chat_body, reply_lines

T0 = 1_800_000_000.0


def row(t: float, client: str = "agent", status: int = 200, **kw: Any) -> UsageRow:
    values: dict[str, Any] = dict(
        time=t,
        request_id="chatcmpl-%d" % (int(t * 1000),),
        client=client,
        endpoint="chat.completions",
        model_asked="sonnet",
        model_served="claude-sonnet-5",
        served="cold",
        stream=False,
        status=status,
        error_code=None if status < 400 else "timeout",
        first_token_ms=12.5,
        total_ms=40.0,
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=100,
        cache_write_tokens=7,
        rate_limit={"status": "allowed", "resetsAt": 1800003600},
    )
    values.update(kw)
    return UsageRow(**values)


class UsageLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-usage-")
        self.clock = Clock()
        self.clock.advance(T0)
        self.log = self.open()

    def open(self) -> UsageLog:
        db = open_state(self.clock, self.dir, MIGRATIONS)
        assert db is not None
        self.addCleanup(db.stop)
        return UsageLog(self.clock, db, self.clock.seconds, retention=90 * DAY)

    def test_round_trip(self) -> None:
        r = row(T0 - 5)
        self.log.record(r)
        [back] = self.successResultOf(self.log.rows())
        # stored with its API-equivalent cost (Sonnet 5: $2 input, $10 output per million)
        self.assertIsNone(r.cost)
        self.assertEqual(back, attrs.evolve(r, cost=back.cost))
        self.assertAlmostEqual(back.cost or 0, r.priced().cost or 1)

    def test_survives_reopen(self) -> None:
        for i in range(5):
            self.log.record(row(T0 - i))
        again = self.open()
        self.assertEqual(self.successResultOf(again.count()), 5)
        self.assertEqual(len(self.successResultOf(again.rows())), 5)

    def test_retention_pruning(self) -> None:
        self.log.record(row(T0 - 91 * DAY, client="old"))
        self.log.record(row(T0 - 89 * DAY, client="kept"))
        self.log.record(row(T0 - 1, client="new"))
        self.assertEqual(self.successResultOf(self.log.prune()), 1)
        self.assertEqual({r.client for r in self.successResultOf(self.log.rows())}, {"kept", "new"})

    def test_pruned_periodically(self) -> None:
        self.log.retention = 2 * HOUR
        self.log.record(row(T0 - 3 * HOUR))
        self.log.record(row(T0 - 1.5 * HOUR))
        pruner = usage_pruner(self.log, self.clock, interval=HOUR)
        pruner.startService()
        self.addCleanup(pruner.stopService)
        # at start
        self.assertEqual(self.successResultOf(self.log.count()), 1)
        self.clock.advance(HOUR)
        # an hour later the second is older than two hours too
        self.assertEqual(self.successResultOf(self.log.count()), 0)

    def test_summary(self) -> None:
        self.log.record(row(T0 - 10, client="agent"))
        self.log.record(row(T0 - 20, client="agent", status=504))
        self.log.record(row(T0 - 30, client="editor", input_tokens=1))
        self.log.record(row(T0 - 3 * DAY, client="editor"))
        self.log.record(row(T0 - 20 * DAY, client="script"))
        self.log.record(row(T0 - 40 * DAY, client="ancient"))
        s = self.successResultOf(self.log.summary())
        self.assertEqual(s["rows"], 6)
        day, week, month = s["windows"]["day"], s["windows"]["week"], s["windows"]["month"]
        self.assertEqual(set(day["clients"]), {"agent", "editor"})
        self.assertEqual(day["clients"]["agent"]["requests"], 2)
        self.assertEqual(day["clients"]["agent"]["errors"], 1)
        self.assertEqual(day["clients"]["agent"]["input_tokens"], 20)
        self.assertEqual(day["clients"]["editor"]["input_tokens"], 1)
        self.assertEqual(week["clients"]["editor"]["requests"], 2)
        self.assertEqual(set(month["clients"]), {"agent", "editor", "script"})
        for h in month["hours"]:
            self.assertEqual(h["hour"] % HOUR, 0)
        [err] = s["errors"]
        self.assertEqual((err["client"], err["status"], err["error_code"]), ("agent", 504, "timeout"))
        self.assertEqual([r["client"] for r in s["recent"]][:3], ["agent", "agent", "editor"])
        self.assertNotIn("rate_limit", err)

    def test_many_threads_no_row_lost(self) -> None:
        """
        Records queued while the writer thread drains lose nothing.
        """
        db = self.log.db
        lock = threading.Lock()
        called: list[Any] = []

        class ThreadReactor:
            def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
                with lock:
                    called.append(f)

        db.reactor = ThreadReactor()
        db.start()
        n = 2000
        for i in range(n):
            self.log.record(row(T0 - i * 0.001))
        # finishes the queued writes
        db.stop()
        again = self.open()
        self.assertEqual(self.successResultOf(again.count()), n)


class KeyTests(SynchronousTestCase):
    def test_parse_key(self) -> None:
        self.assertEqual(parse_key("agent=sk-1"), ("agent", "sk-1"))
        self.assertEqual(parse_key("  sk-plain "), ("default", "sk-plain"))
        # base64 padding is not a name
        self.assertEqual(parse_key("abc=="), ("default", "abc=="))
        self.assertRaises(ValueError, parse_key, "  ")

    def test_key_file(self) -> None:
        text = "# keys\nagent=a1\n\neditor = e1\n"
        self.assertEqual(parse_key_file(text), [("agent", "a1"), ("editor", "e1")])

    def test_duplicates_refused(self) -> None:
        self.assertRaises(ValueError, check_keys, [("a", "1"), ("a", "2")])
        self.assertRaises(ValueError, check_keys, [("a", "1"), ("b", "1")])

    def test_match_names_the_client(self) -> None:
        keys = ClientKeys([("agent", "k-agent"), ("editor", "k-editor")])
        self.assertTrue(keys.required)
        self.assertEqual(keys.match(b"k-agent"), "agent")
        self.assertEqual(keys.match(b"k-editor"), "editor")
        self.assertIsNone(keys.match(b"k-agen"))
        self.assertIsNone(keys.match(b""))
        self.assertFalse(ClientKeys([]).required)

    def test_sessions(self) -> None:
        clock = Clock()
        sessions = Sessions(clock.seconds, lifetime=10.0, keep=2)
        t = sessions.issue("agent")
        self.assertEqual(sessions.lookup(t), "agent")
        self.assertIsNone(sessions.lookup(t + "x"))
        clock.advance(11)
        self.assertIsNone(sessions.lookup(t))
        a, b, c = sessions.issue("a"), sessions.issue("b"), sessions.issue("c")
        self.assertIsNone(sessions.lookup(a))
        self.assertEqual((sessions.lookup(b), sessions.lookup(c)), ("b", "c"))
        sessions.end(c)
        self.assertIsNone(sessions.lookup(c))


class RecordedRequestTests(RoutesTestCase):
    def setUp(self) -> None:
        self.state = tempfile.mkdtemp(prefix="cp-state-")
        self.build(state_dir=self.state, api_keys=(("agent", "k-agent"), ("editor", "k-editor")), watchdog=False)

    def test_row_names_the_client(self) -> None:
        d = self.request("POST", "/v1/chat/completions", chat_body(), headers={"Authorization": "Bearer k-editor"})
        self.spawner.procs[0].outReceived(reply_lines("Hello."))
        code, _, _ = self.json_answer(d)
        self.assertEqual(code, 200)
        usage = self.daemon.proxy.usage
        assert usage is not None
        [r] = self.successResultOf(usage.rows())
        self.assertEqual((r.client, r.endpoint, r.status, r.error_code), ("editor", "/v1/chat/completions", 200, None))
        self.assertEqual((r.model_asked, r.model_served, r.served), ("sonnet", "claude-sonnet-5", "cold"))
        self.assertEqual((r.input_tokens, r.output_tokens, r.cache_read_tokens), (11, 6, 50))
        self.assertFalse(r.stream)

    def test_refused_key_recorded_without_the_key(self) -> None:
        code, body, _ = self.json_answer(
            self.request("POST", "/v1/chat/completions", chat_body(), headers={"Authorization": "Bearer k-wrong"})
        )
        self.assertEqual(code, 401)
        usage = self.daemon.proxy.usage
        assert usage is not None
        [r] = self.successResultOf(usage.rows())
        self.assertEqual((r.client, r.status, r.error_code), ("-", 401, "invalid_api_key"))
        self.assertNotIn("k-wrong", json.dumps(r.to_json()))
        with open(os.path.join(self.state, "claudeproxy.sqlite3"), "rb") as f:
            self.assertNotIn(b"k-wrong", f.read())


class CostTests(SynchronousTestCase):
    """
    The API-equivalent cost of each row, from genai-prices, at the row's time.
    """

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-cost-")
        self.clock = Clock()
        self.clock.advance(T0)
        db = open_state(self.clock, self.dir, MIGRATIONS)
        assert db is not None
        self.addCleanup(db.stop)
        self.log = UsageLog(self.clock, db, self.clock.seconds)

    def test_priced_per_token_kind(self) -> None:
        # Sonnet 4.5: $3 input, $15 output, $0.30 cache read, $3.75 cache write per million
        cost = api_cost("claude-sonnet-4-5-20250929", 1_000_000 // 10, 1_000_000 // 10, 1_000_000 // 10, 0, T0)
        self.assertAlmostEqual(cost or 0, 0.3 + 1.5 + 0.03)
        cost = api_cost("claude-sonnet-4-5-20250929", 0, 0, 0, 100_000, T0)
        self.assertAlmostEqual(cost or 0, 0.375)

    def test_unknown_model_unpriced(self) -> None:
        self.assertIsNone(api_cost("claude-nonesuch-9", 10, 5, 0, 0, T0))
        self.assertIsNone(api_cost("", 10, 5, 0, 0, T0))
        self.assertEqual(api_cost("claude-nonesuch-9", 0, 0, 0, 0, T0), 0.0)

    def test_summary_cost_per_client_model_window(self) -> None:
        known: dict[str, Any] = dict(
            model_served="claude-haiku-4-5-20251001", cache_read_tokens=0, cache_write_tokens=0
        )
        # Haiku 4.5: $1 input, $5 output per million
        self.log.record(row(T0 - 10, client="agent", input_tokens=1000, output_tokens=1000, **known))
        self.log.record(row(T0 - 20, client="editor", input_tokens=2000, output_tokens=0, **known))
        self.log.record(row(T0 - 30, client="editor", model_served="claude-nonesuch-9"))
        self.log.record(row(T0 - 3 * DAY, client="agent", input_tokens=1000, output_tokens=0, **known))
        [r] = [r for r in self.successResultOf(self.log.rows()) if r.time == T0 - 10]
        self.assertAlmostEqual(r.cost or 0, 0.006)
        s = self.successResultOf(self.log.summary())
        day, week = s["windows"]["day"], s["windows"]["week"]
        self.assertAlmostEqual(day["clients"]["agent"]["cost"], 0.006)
        self.assertAlmostEqual(day["clients"]["editor"]["cost"], 0.002)
        self.assertEqual(day["clients"]["editor"]["unpriced"], 1)
        self.assertEqual(day["clients"]["agent"]["unpriced"], 0)
        self.assertEqual(
            day["models"]["claude-nonesuch-9"], dict(day["models"]["claude-nonesuch-9"], cost=0.0, unpriced=1)
        )
        self.assertAlmostEqual(day["models"]["claude-haiku-4-5-20251001"]["cost"], 0.008)
        self.assertAlmostEqual(day["total"]["cost"], 0.008)
        self.assertEqual(day["total"]["unpriced"], 1)
        self.assertAlmostEqual(week["total"]["cost"], 0.009)
        self.assertAlmostEqual(sum(h["cost"] for h in day["hours"]), 0.008)

    def test_saved_against_plan(self) -> None:
        self.assertEqual(plan_for(None, "pro"), ("pro", "login"))
        self.assertEqual(plan_for("max20", "max"), ("max20", "option"))
        self.assertEqual(plan_for(None, "max"), (None, "unknown"))
        # CLI 2.1.332's auth status names the tier
        self.assertEqual(plan_for("pro", "max", "max_20x"), ("max20", "login"))
        self.assertEqual(plan_for(None, "max", "max_5x"), ("max5", "login"))
        self.assertEqual(plan_for(None, "max", "max_other"), (None, "unknown"))
        self.assertAlmostEqual(saved(250.0, "max20", 30.0) or 0, 50.0)
        self.assertAlmostEqual(saved(1.0, "pro", 1.0) or 0, 1.0 - 20.0 / 30.0)
        self.assertIsNone(saved(1.0, None, 1.0))
