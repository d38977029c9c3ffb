"""
The real model list: ids learned from the CLI's init line and limits from
its result's modelUsage, listed by /v1/models and kept across restarts.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.models import ModelCatalog, get_model, list_models
from tests.test_unit_routes import MODEL, RoutesTestCase, chat_body, reply_lines


def result_with_limits(text: str) -> bytes:
    lines = [json.loads(x) for x in reply_lines(text).splitlines()]
    lines[-1]["modelUsage"] = {MODEL: {"inputTokens": 1, "contextWindow": 200000, "maxOutputTokens": 64000}}
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


class CatalogTests(SynchronousTestCase):
    def test_learn_and_describe(self) -> None:
        seen: list[Any] = []
        catalog = ModelCatalog(lambda *a: seen.append(a))
        catalog.learn(
            "sonnet", "claude-sonnet-5", {"claude-sonnet-5": {"contextWindow": 1000000, "maxOutputTokens": 64000}}
        )
        catalog.learn(
            "sonnet", "claude-sonnet-5", {"claude-sonnet-5": {"contextWindow": 1000000, "maxOutputTokens": 64000}}
        )
        self.assertEqual(len(seen), 1)
        catalog.learn("sonnet", "<synthetic>", {})
        listed = {m["id"]: m for m in list_models([("gpt-4o", "sonnet")], catalog)["data"]}
        self.assertEqual(listed["claude-sonnet-5"]["context_window"], 1000000)
        self.assertEqual(listed["claude-sonnet-5"]["max_output_tokens"], 64000)
        for alias in ("sonnet", "claude-sonnet-4", "gpt-4o"):
            self.assertEqual(listed[alias]["resolves_to"], "claude-sonnet-5", alias)
            self.assertEqual(listed[alias]["context_window"], 1000000, alias)
        self.assertNotIn("context_window", listed["opus"])
        self.assertEqual(get_model("claude-sonnet-5", [], catalog)["max_output_tokens"], 64000)
        e = self.assertRaises(ProxyError, get_model, "gpt-5", [], catalog)
        self.assertEqual(e.status, 404)
        self.assertIn("claude-sonnet-5", e.message)
        self.assertIn("claude-sonnet-4", e.message)


class CatalogRouteTests(RoutesTestCase):
    def test_learned_from_traffic_and_kept(self) -> None:
        state = tempfile.mkdtemp(prefix="cp-state-")
        self.build(state_dir=state, watchdog=False)
        d = self.request("POST", "/v1/chat/completions", chat_body())
        self.spawner.procs[0].outReceived(result_with_limits("Hi."))
        self.assertEqual(self.json_answer(d)[0], 200)
        code, body, _ = self.json_answer(self.request("GET", "/v1/models"))
        listed = {m["id"]: m for m in body["data"]}
        self.assertEqual(listed[MODEL]["context_window"], 200000)
        self.assertEqual(listed["sonnet"]["resolves_to"], MODEL)
        # a restarted daemon lists it before any traffic
        self.daemon.proxy.state.stop()
        self.build(state_dir=state, watchdog=False)
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/sonnet"))
        self.assertEqual(code, 200)
        self.assertEqual((body["resolves_to"], body["max_output_tokens"]), (MODEL, 64000))
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/gpt-4o"))
        self.assertEqual(code, 404)
        self.assertIn(MODEL, body["error"]["message"])
