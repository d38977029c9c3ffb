"""
Long conversations stay the client's: the CLI never compacts them, never
refuses a turn by its own count, a CLI that compacts anyway is not served
from, and an over-long prompt gets each protocol's own error.  The real
CLI (pinned, and in CI the newest) against the fake upstream, and a fake
CLI that compacts as 2.1.332 does where compaction is forced.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import anthropic
import openai
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, prompt_too_long
from tests.harness import FAKECLIS, Running, fast_script, scaled, start, text_turn, upstream_turns, wait_for

FAULTY = os.path.join(FAKECLIS, "faulty.py")

#: what a turn of a long agent conversation reports (over 2.1.197's own
#: 200k window, and near 2.1.332's 1M one)
LONG = 995_000
COMPACTION_PROMPT = "CRITICAL: Respond with TEXT ONLY"
CONTINUED = "This session is being continued"


def compaction_requests(d: Running) -> list[int]:
    return [
        i
        for i, r in enumerate(d.fake.message_requests)
        if COMPACTION_PROMPT in json.dumps(r.body) or CONTINUED in json.dumps(r.body)
    ]


async def chat(d: Running, messages: list[dict[str, Any]]) -> tuple[int, Any, Optional[str]]:
    resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": messages})
    body = json.loads(await resp.text())
    served = resp.headers.getRawHeaders("x-claudeproxy-served")
    return resp.code, body, served[0] if served else None


class LongConversationTests(TestCase):
    timeout = 120

    async def test_live_conversation_is_not_compacted(self) -> None:
        """
        Turns that report a near-full window: the live process sends the
        whole conversation upstream on every turn, with no compaction
        request and no local "Prompt is too long".
        """
        d = await start(self, max_sessions=1)
        d.fake.default = Reply(text="Noted.", input_tokens=LONG)
        messages: list[dict[str, Any]] = [{"role": "user", "content": "turn one"}]
        for n in ("two", "three"):
            code, body, _ = await chat(d, messages)
            self.assertEqual(code, 200, body)
            messages += [body["choices"][0]["message"], {"role": "user", "content": "turn " + n}]
        code, body, served = await chat(d, messages)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Noted.")
        self.assertEqual(served, "session", "the live process served every turn")
        self.assertEqual(compaction_requests(d), [])
        last = d.fake.message_requests[-1]
        self.assertEqual(
            upstream_turns(last.body),
            [
                text_turn("user", "turn one"),
                text_turn("assistant", "Noted."),
                text_turn("user", "turn two"),
                text_turn("assistant", "Noted."),
                text_turn("user", "turn three"),
            ],
        )
        self.assertEqual(len(d.fake.message_requests), 3, "one upstream request a turn")


class OverLongPromptTests(TestCase):
    timeout = 120

    def _openai(self, d: Running) -> openai.OpenAI:
        # the SDK's own retries stay on: x-should-retry: false must stop them
        return openai.OpenAI(base_url=d.url + "/v1", api_key="unused", timeout=scaled(60))

    async def test_chat_completions(self) -> None:
        d = await start(self)
        d.fake.default = prompt_too_long(210417)
        client = self._openai(d)
        self.addCleanup(client.close)

        def call() -> Any:
            return client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "long"}])

        error = await self.assertFailure(deferToThread(call), openai.BadRequestError)
        self.assertEqual(error.status_code, 400)
        self.assertEqual(error.code, "context_length_exceeded")
        self.assertEqual(error.type, "invalid_request_error")
        # the CLI passes on "Prompt is too long" without the API's figures
        self.assertIn("maximum context length", error.message)
        self.assertEqual(error.response.headers.get("x-should-retry"), "false")
        self.assertEqual(d.proxy.requests_served, 1, "the SDK did not retry")

    async def test_chat_completions_stream(self) -> None:
        d = await start(self)
        d.fake.default = prompt_too_long(300000)
        client = self._openai(d)
        self.addCleanup(client.close)

        def call() -> Any:
            return list(
                client.chat.completions.create(
                    model="sonnet", messages=[{"role": "user", "content": "long"}], stream=True
                )
            )

        error = await self.assertFailure(deferToThread(call), openai.BadRequestError)
        self.assertEqual(error.code, "context_length_exceeded")
        self.assertIn("maximum context length", error.message)

    async def test_responses(self) -> None:
        d = await start(self)
        d.fake.default = prompt_too_long(210417)
        client = self._openai(d)
        self.addCleanup(client.close)

        def call() -> Any:
            return client.responses.create(model="sonnet", input="long")

        error = await self.assertFailure(deferToThread(call), openai.BadRequestError)
        self.assertEqual(error.code, "context_length_exceeded")
        self.assertIn("maximum context length", error.message)
        self.assertEqual(error.response.headers.get("x-should-retry"), "false")

    async def test_messages(self) -> None:
        d = await start(self)
        d.fake.default = prompt_too_long(210417)
        client = anthropic.Anthropic(base_url=d.url, api_key="unused", timeout=scaled(60))
        self.addCleanup(client.close)

        def call() -> Any:
            return client.messages.create(
                model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "long"}]
            )

        error = await self.assertFailure(deferToThread(call), anthropic.BadRequestError)
        self.assertEqual(error.status_code, 400)
        body: Any = error.body
        self.assertEqual(body["error"]["type"], "invalid_request_error")
        # Anthropic's own words (the figures, when the CLI passes them on)
        self.assertTrue(body["error"]["message"].startswith("prompt is too long"), body)
        self.assertEqual(error.response.headers.get("x-should-retry"), "false")

    async def test_live_process_is_ended(self) -> None:
        """
        A live conversation whose next turn is refused as too long: its
        process is ended, not kept; the next request starts afresh.
        """
        d = await start(self, max_sessions=1)
        d.fake.default = Reply(text="Noted.")
        messages: list[dict[str, Any]] = [{"role": "user", "content": "turn one"}]
        code, body, _ = await chat(d, messages)
        self.assertEqual(code, 200, body)
        self.assertEqual(d.manager.describe()["sessions"]["live"], 1)
        d.fake.default = prompt_too_long(250000)
        messages += [body["choices"][0]["message"], {"role": "user", "content": "turn two"}]
        code, body, served = await chat(d, messages)
        self.assertEqual((code, body["error"]["code"]), (400, "context_length_exceeded"))
        self.assertEqual(served, "session")
        self.assertEqual(d.manager.describe()["sessions"]["live"], 0)
        await wait_for(lambda: not d.manager.live, timeout=scaled(5))


class CompactingCLITests(TestCase):
    """
    A CLI that compacts although it was told not to (the fake CLI does it
    as 2.1.332 did before compaction was switched off).
    """

    timeout = 60

    async def test_served_on_a_fresh_process_with_the_real_history(self) -> None:
        d = await start(self, claude=fast_script(FAULTY, self.mktemp()), max_sessions=1)
        messages: list[dict[str, Any]] = [{"role": "user", "content": "ok hello"}]
        code, body, served = await chat(d, messages)
        self.assertEqual(code, 200, body)
        messages += [body["choices"][0]["message"], {"role": "user", "content": "compact and more"}]
        code, body, served = await chat(d, messages)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "ok reply", "not the summary's answer")
        self.assertEqual(served, "cold", "a fresh process, with the history loaded")
        await wait_for(lambda: d.manager.exits.get("compacted") == 1, timeout=scaled(5))

    async def test_compacting_again_is_context_length_exceeded(self) -> None:
        d = await start(self, claude=fast_script(FAULTY, self.mktemp()))
        code, body, _ = await chat(d, [{"role": "user", "content": "compactalways now"}])
        self.assertEqual(code, 400, body)
        self.assertEqual(body["error"]["code"], "context_length_exceeded")
        # both processes (the first, and the fresh one) were ended
        await wait_for(lambda: d.manager.exits.get("compacted") == 2, timeout=scaled(5))
