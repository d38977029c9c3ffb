"""
The model list a picker shows, against the real CLI: after the CLI has
served the aliases, the first entry is still the default, each model is
listed once, and the figures are the models' own.
"""

from __future__ import annotations

from typing import Any

import openai
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.harness import scaled, start


class ModelListTests(TestCase):
    timeout = 180

    async def test_stable_once_and_real_figures(self) -> None:
        d = await start(self, default_model="claude-opus-4")
        client = openai.OpenAI(base_url=d.url + "/v1", api_key="unused", timeout=scaled(60))
        self.addCleanup(client.close)

        def listed() -> list[Any]:
            return [m.model_dump() for m in client.models.list()]

        before = await deferToThread(listed)
        for model in ("claude-opus-4", "sonnet", "claude-haiku-4"):

            def ask(model: str = model) -> Any:
                return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

            await deferToThread(ask)
        after = await deferToThread(listed)
        ids = [m["id"] for m in after]
        self.assertEqual(ids, [m["id"] for m in before])
        self.assertEqual(ids, ["claude-opus-4", "claude-sonnet-4", "claude-haiku-4"])
        resolved = [m["resolves_to"] for m in after]
        self.assertEqual(len(set(resolved)), 3, after)
        for m in after:
            # the CLI's names for the models (they differ between versions)
            self.assertEqual(m["resolves_to"].split("-")[1], m["id"].split("-")[1], m)
            self.assertIn(m["context_window"], (200_000, 1_000_000), m)
            self.assertIn(m["max_output_tokens"], (64_000, 128_000), m)
