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
        self.assertEqual(listed["claude-sonnet-4"]["context_window"], 1000000)
        self.assertEqual(listed["claude-sonnet-4"]["max_output_tokens"], 128000)
        for alias in ("claude-sonnet-4", "gpt-4o"):
            self.assertEqual(listed[alias]["resolves_to"], "claude-sonnet-5", alias)
            self.assertEqual(listed[alias]["context_window"], 1000000, alias)
        self.assertNotIn("context_window", listed["claude-opus-4"])
        self.assertEqual(get_model("claude-sonnet-5", [], catalog)["max_output_tokens"], 128000)
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
        # the model table's figure, not what the CLI said (200000 here)
        self.assertEqual(listed["claude-sonnet-4"]["context_window"], 1_000_000)
        self.assertEqual(listed["claude-sonnet-4"]["resolves_to"], MODEL)
        self.assertNotIn(MODEL, listed)
        # a restarted daemon lists it before any traffic
        db = self.daemon.proxy.state
        assert db is not None
        db.stop()
        self.build(state_dir=state, watchdog=False)
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/sonnet"))
        self.assertEqual(code, 200)
        self.assertEqual((body["resolves_to"], body["max_output_tokens"]), (MODEL, 128_000))
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/gpt-4o"))
        self.assertEqual(code, 404)
        self.assertIn(MODEL, body["error"]["message"])


def learn_all(catalog: ModelCatalog, window: int = 1_000_000_000) -> None:
    """
    What the CLI reports with the daemon's settings: every alias resolved,
    and its own idea of the window (the daemon's CLAUDE_CODE_MAX_CONTEXT_TOKENS).
    """
    for alias, real in (
        ("opus", "claude-opus-4-8"),
        ("sonnet", "claude-sonnet-5"),
        ("haiku", "claude-haiku-4-5-20251001"),
    ):
        catalog.learn(alias, real, {real: {"contextWindow": window, "maxOutputTokens": 64000}})


class StableListTests(SynchronousTestCase):
    """
    The list a model picker shows: stable, each model once, real figures.
    """

    def test_learned_ids_do_not_move_the_first_entry(self) -> None:
        catalog = ModelCatalog()
        before = [m["id"] for m in list_models((), catalog)["data"]]
        learn_all(catalog)
        after = [m["id"] for m in list_models((), catalog)["data"]]
        self.assertEqual(before, ["claude-sonnet-4", "claude-opus-4", "claude-haiku-4"])
        self.assertEqual(after, before)

    def test_learning_never_changes_the_listed_entries(self) -> None:
        """
        Whatever the default, the entries before the learned ids are fixed
        at start: a picker's choice never disappears.
        """
        for default in ("claude-sonnet-4", "opus", "claude-opus-4-8", "claude-sonnet-5"):
            catalog = ModelCatalog()
            before = [m["id"] for m in list_models((), catalog, default)["data"]]
            learn_all(catalog)
            after = [m["id"] for m in list_models((), catalog, default)["data"]]
            self.assertEqual(after[: len(before)], before, default)
            self.assertEqual(after[0], default)

    def test_each_model_once(self) -> None:
        catalog = ModelCatalog()
        learn_all(catalog)
        catalog.learn("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929", {})
        listed = list_models((), catalog, "sonnet")["data"]
        ids = [m["id"] for m in listed]
        self.assertEqual(ids, ["sonnet", "claude-opus-4", "claude-haiku-4", "claude-sonnet-4-5-20250929"])
        self.assertEqual(len({m.get("resolves_to", m["id"]) for m in listed}), len(listed))

    def test_real_figures_not_the_daemons_window(self) -> None:
        catalog = ModelCatalog()
        learn_all(catalog)
        listed = {m["id"]: m for m in list_models((), catalog)["data"]}
        self.assertEqual(
            {k: (m["resolves_to"], m["context_window"], m["max_output_tokens"]) for k, m in listed.items()},
            {
                "claude-sonnet-4": ("claude-sonnet-5", 1_000_000, 128_000),
                "claude-opus-4": ("claude-opus-4-8", 1_000_000, 128_000),
                "claude-haiku-4": ("claude-haiku-4-5-20251001", 200_000, 64_000),
            },
        )

    def test_unknown_model_keeps_what_the_cli_said_but_never_the_daemons_window(self) -> None:
        catalog = ModelCatalog()
        catalog.learn(
            "claude-new-9", "claude-new-9", {"claude-new-9": {"contextWindow": 1_000_000_000, "maxOutputTokens": 5}}
        )
        self.assertEqual(get_model("claude-new-9", [], catalog).get("context_window"), None)
        self.assertEqual(get_model("claude-new-9", [], catalog)["max_output_tokens"], 5)
        catalog.learn("claude-new-9", "claude-new-9", {"claude-new-9": {"contextWindow": 300_000}})
        self.assertEqual(get_model("claude-new-9", [], catalog)["context_window"], 300_000)

    def test_stored_daemon_window_is_dropped(self) -> None:
        catalog = ModelCatalog()
        catalog.load([("claude-new-9", None, 1_000_000_000, 64000)])
        self.assertNotIn("context_window", get_model("claude-new-9", [], catalog))
