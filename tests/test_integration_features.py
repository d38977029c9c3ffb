"""
Structured output, reasoning effort, output limits, stop sequences and quota
visibility, through chat completions with the real CLI.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import live_pids, start, streamed_text, wait_for

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def structured(value: object) -> Reply:
    return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", value),))  # type: ignore[arg-type]


class StructuredOutputTests(TestCase):
    timeout = 60

    async def test_json_schema(self) -> None:
        d = await start(self)
        d.fake.push(structured({"name": "Ada", "age": 36}))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Who wrote the first program?"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
            }
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body["choices"][0]["message"]["content"]), {"name": "Ada", "age": 36})
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        tools = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in tools], ["StructuredOutput"])
        self.assertEqual(tools[0]["input_schema"]["required"], ["name", "age"])

    async def test_json_schema_stream(self) -> None:
        d = await start(self)
        d.fake.push(
            Reply(
                text="Sure, here it is:",
                stop_reason="tool_use",
                tool_uses=(ToolUse("StructuredOutput", {"name": "Bo", "age": 3}),),
            )
        )
        code, items, _ = await d.chat_stream(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
            }
        )
        self.assertEqual(code, 200)
        # only the JSON: the preamble text is not part of the content
        self.assertEqual(json.loads(streamed_text(items)), {"name": "Bo", "age": 3})

    async def test_json_object(self) -> None:
        d = await start(self)
        d.fake.push(structured({"ok": True}))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object"},
            }
        )
        self.assertEqual(json.loads(body["choices"][0]["message"]["content"]), {"ok": True})
        self.assertEqual(d.fake.message_requests[0].body["tools"][0]["input_schema"], {"type": "object"})

    async def test_model_that_ignores_the_schema_is_an_error(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="I refuse to answer in JSON.")
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
            }
        )
        self.assertEqual(code, 502, body)
        self.assertEqual(body["error"]["code"], "structured_output_missing")


class LimitsTests(TestCase):
    timeout = 60

    async def test_max_tokens_cuts_the_reply(self) -> None:
        d = await start(self, max_sessions=2)
        d.fake.push(Reply(text="This reply is cut", stop_reason="max_tokens", output_tokens=5))
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["finish_reason"], "length")
        self.assertEqual(body["choices"][0]["message"]["content"], "This reply is cut")
        self.assertEqual(body["usage"]["completion_tokens"], 5)
        # the upstream was asked for exactly that limit, once (the CLI did not
        # go on to resume), and the process was ended, not kept
        self.assertEqual([r.body["max_tokens"] for r in d.fake.message_requests], [5])
        self.assertEqual(d.manager.session_count, 0)
        await wait_for(lambda: not live_pids(d.spawned), timeout=3)

    async def test_max_completion_tokens_stream(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="cut short", stop_reason="max_tokens"))
        code, items, _ = await d.chat_stream(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 3}
        )
        finals = [
            i["choices"][0]["finish_reason"]
            for i in items
            if isinstance(i, dict) and i.get("choices") and i["choices"][0]["finish_reason"]
        ]
        self.assertEqual(finals, ["length"])
        self.assertEqual(streamed_text(items), "cut short")
        self.assertEqual(d.fake.message_requests[0].body["max_tokens"], 3)

    async def test_stop_sequence_cuts_stream_and_ends_cli(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="alpha beta STOP gamma delta", chunk=3))
        code, items, _ = await d.chat_stream(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "stop": "STOP"}
        )
        self.assertEqual(streamed_text(items), "alpha beta ")
        finals = [
            i["choices"][0]["finish_reason"]
            for i in items
            if isinstance(i, dict) and i.get("choices") and i["choices"][0]["finish_reason"]
        ]
        self.assertEqual(finals, ["stop"])
        self.assertEqual(items[-1], "[DONE]")

    async def test_reasoning_effort_reaches_upstream(self) -> None:
        d = await start(self)
        d.fake.push(Reply(thinking="hmm", text="ok"))
        code, body = await d.chat(
            {"model": "opus", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "low"}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(d.fake.message_requests[0].body["output_config"], {"effort": "low"})
        self.assertEqual(body["choices"][0]["message"]["reasoning_content"], "hmm")


class QuotaTests(TestCase):
    timeout = 60

    async def test_rate_limit_state_in_headers_and_health(self) -> None:
        d = await start(self)
        d.fake.default = Reply(
            text="ok",
            headers={
                "anthropic-ratelimit-unified-status": "allowed_warning",
                "anthropic-ratelimit-unified-reset": "1900000000",
            },
        )
        code, _ = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(code, 200)
        resp = await d.get("/health")
        health = await resp.json()
        self.assertIsNotNone(health["quota"])
        self.assertIn("status", health["quota"])
        resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]})
        await resp.content()
        self.assertEqual(resp.headers.getRawHeaders("x-claudeproxy-ratelimit-status"), [str(health["quota"]["status"])])
