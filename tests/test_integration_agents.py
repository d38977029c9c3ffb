"""
Agent frameworks on the fast path, replayed with the real CLI and the fake
upstream: tool-call ids in each protocol's own shape (agno rewrites any
other), no refused text in a stream with a required tool call, structured
output that streams, and tool results sent back as text (smolagents).
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, parse_sse, start, streamed_text, wait_for
from tests.test_integration_tools import WEATHER, calls

RESPONSES_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
MESSAGES_WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "bio": {"type": "string"}},
    "required": ["name", "age", "bio"],
}
ADA = {"name": "Ada", "age": 36, "bio": "wrote the first program, for the Analytical Engine"}
OPENAI_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")
#: agno's stand-in for an id it does not accept
AGNO_ZERO = "call_00000000000000000000000000000000000"
REFUSED = "I would rather just answer in words."


def agno_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The history as agno 3.1 sends it back: every tool-call id that does not
    start with C{call_}, or is longer than 40 characters, becomes
    L{AGNO_ZERO}.
    """

    def fix(tool_id: str) -> str:
        return tool_id if tool_id.startswith("call_") and len(tool_id) <= 40 else AGNO_ZERO

    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            m["tool_calls"] = [dict(c, id=fix(c["id"])) for c in m["tool_calls"]]
        if m.get("role") == "tool":
            m["tool_call_id"] = fix(m["tool_call_id"])
        out.append(m)
    return out


def served(resp: Any) -> Any:
    values = resp.headers.getRawHeaders("x-claudeproxy-served")
    return values[0] if values else None


def events(raw: bytes) -> list[dict[str, Any]]:
    return [e for e in parse_sse(raw) if isinstance(e, dict)]


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: ")]


class ToolIdTests(TestCase):
    timeout = 90

    async def test_agno_loop_resumes_the_parked_process(self) -> None:
        """
        agno keeps only OpenAI-shaped ids: with them, its tool loop is
        served by the process waiting on the call (C{served=tools}), and
        the upstream sees its own id with the result.
        """
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), Reply(text="Sunny in Paris."))
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        body = json.loads(await resp.text())
        (call,) = body["choices"][0]["message"]["tool_calls"]
        self.assertRegex(call["id"], OPENAI_ID)
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        messages += [body["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "22 C"}]
        resp = await d.post(
            "/v1/chat/completions", {"model": "sonnet", "messages": agno_ids(messages), "tools": [WEATHER]}
        )
        body = json.loads(await resp.text())
        self.assertEqual((resp.code, served(resp)), (200, "tools"), body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Sunny in Paris.")
        self.assertEqual(d.manager.stats.spawned, 1)
        upstream = d.fake.message_requests[-1].body["messages"]
        use = [b for m in upstream for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
        result = [b for m in upstream for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        self.assertTrue(use[0]["id"].startswith("toolu_"))
        self.assertEqual(result[0]["tool_use_id"], use[0]["id"])

    async def test_streamed_chat_and_responses_ids(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Oslo"})))
        code, items, _ = await d.chat_stream(
            {"model": "sonnet", "messages": [{"role": "user", "content": "Oslo?"}], "tools": [WEATHER]}
        )
        ids = [
            c["id"]
            for i in items
            if isinstance(i, dict) and i.get("choices")
            for c in i["choices"][0]["delta"].get("tool_calls") or []
            if "id" in c
        ]
        self.assertEqual(code, 200)
        self.assertEqual(len(ids), 1)
        self.assertRegex(ids[0], OPENAI_ID)
        d.fake.push(calls(("get_weather", {"city": "Oslo"})))
        resp = await d.post("/v1/responses", {"model": "sonnet", "input": "Oslo?", "tools": [RESPONSES_WEATHER]})
        out = json.loads(await resp.text())["output"]
        (item,) = [o for o in out if o["type"] == "function_call"]
        self.assertRegex(item["call_id"], OPENAI_ID)
        self.assertTrue(item["id"].startswith("fc_"))
        d.fake.push(calls(("get_weather", {"city": "Oslo"})))
        resp = await d.post(
            "/v1/messages",
            {
                "model": "sonnet",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "Oslo?"}],
                "tools": [MESSAGES_WEATHER],
            },
        )
        content = json.loads(await resp.text())["content"]
        self.assertTrue([b for b in content if b["type"] == "tool_use"][0]["id"].startswith("toolu_"))


class RequiredToolTests(TestCase):
    """
    C{tool_choice} required, and the model answers in words first: the
    stream carries only the call of the re-ask, or only the error.
    """

    timeout = 120

    def refused_then(self, d: Running, *then: Reply) -> None:
        d.fake.push(Reply(text=REFUSED, chunk=4), *then)

    async def test_chat_stream_only_the_call(self) -> None:
        d = await start(self)
        self.refused_then(d, calls(("get_weather", {"city": "Bern"})))
        resp = await d.post(
            "/v1/chat/completions",
            {
                "model": "sonnet",
                "stream": True,
                "messages": [{"role": "user", "content": "Weather in Bern?"}],
                "tools": [WEATHER],
                "tool_choice": "required",
            },
        )
        raw = await resp.content()
        self.assertEqual(resp.code, 200)
        self.assertNotIn(b"rather", raw)
        items = [i for i in parse_sse(raw) if isinstance(i, dict) and i.get("choices")]
        self.assertEqual(streamed_text(items), "")
        self.assertEqual([i["choices"][0]["finish_reason"] for i in items][-1], "tool_calls")
        self.assertEqual(len(d.fake.message_requests), 2)

    async def test_chat_stream_text_of_the_calling_answer_kept(self) -> None:
        d = await start(self)
        self.refused_then(d, calls(("get_weather", {"city": "Bern"}), text="Checking Bern."))
        code, items, _ = await d.chat_stream(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Weather in Bern?"}],
                "tools": [WEATHER],
                "tool_choice": "required",
            }
        )
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text([i for i in items if isinstance(i, dict)]), "Checking Bern.")

    async def test_chat_stream_refused_twice_only_the_error(self) -> None:
        d = await start(self)
        self.refused_then(d, Reply(text="Still only words here.", chunk=4))
        resp = await d.post(
            "/v1/chat/completions",
            {
                "model": "sonnet",
                "stream": True,
                "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [WEATHER],
                "tool_choice": "required",
            },
        )
        raw = await resp.content()
        self.assertEqual(resp.code, 502)
        self.assertNotIn(b"rather", raw)
        self.assertNotIn(b"words", raw)
        self.assertEqual(json.loads(raw)["error"]["code"], "tool_choice_not_followed")

    async def test_responses_stream(self) -> None:
        d = await start(self)
        self.refused_then(d, calls(("get_weather", {"city": "Bern"})))
        resp = await d.post(
            "/v1/responses",
            {
                "model": "sonnet",
                "stream": True,
                "input": "Weather in Bern?",
                "tools": [RESPONSES_WEATHER],
                "tool_choice": "required",
            },
        )
        raw = await resp.content()
        self.assertNotIn(b"rather", raw)
        evs = events(raw)
        self.assertNotIn("response.output_text.delta", [e["type"] for e in evs])
        self.assertEqual(evs[-1]["type"], "response.completed")
        self.assertEqual([o["type"] for o in evs[-1]["response"]["output"]], ["function_call"])

    async def test_responses_stream_refused_twice(self) -> None:
        d = await start(self)
        self.refused_then(d, Reply(text="Still only words here.", chunk=4))
        resp = await d.post(
            "/v1/responses",
            {
                "model": "sonnet",
                "stream": True,
                "input": "Weather?",
                "tools": [RESPONSES_WEATHER],
                "tool_choice": "required",
            },
        )
        raw = await resp.content()
        self.assertNotIn(b"rather", raw)
        self.assertNotIn(b"words", raw)
        self.assertEqual(resp.code, 502)
        self.assertEqual(json.loads(raw)["error"]["code"], "tool_choice_not_followed")

    async def test_messages_stream(self) -> None:
        d = await start(self)
        self.refused_then(d, calls(("get_weather", {"city": "Bern"})))
        resp = await d.post(
            "/v1/messages",
            {
                "model": "sonnet",
                "max_tokens": 200,
                "stream": True,
                "messages": [{"role": "user", "content": "Weather in Bern?"}],
                "tools": [MESSAGES_WEATHER],
                "tool_choice": {"type": "any"},
            },
        )
        raw = await resp.content()
        self.assertNotIn(b"rather", raw)
        evs = anthropic_events(raw)
        starts = [e["content_block"]["type"] for e in evs if e["type"] == "content_block_start"]
        self.assertEqual(starts, ["tool_use"])
        self.assertEqual([e for e in evs if e["type"] == "message_delta"][0]["delta"]["stop_reason"], "tool_use")

    async def test_messages_stream_refused_twice(self) -> None:
        d = await start(self)
        self.refused_then(d, Reply(text="Still only words here.", chunk=4))
        resp = await d.post(
            "/v1/messages",
            {
                "model": "sonnet",
                "max_tokens": 200,
                "stream": True,
                "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [MESSAGES_WEATHER],
                "tool_choice": {"type": "any"},
            },
        )
        raw = await resp.content()
        self.assertNotIn(b"rather", raw)
        self.assertNotIn(b"words", raw)
        self.assertEqual(resp.code, 502)
        self.assertEqual(json.loads(raw)["type"], "error")


class StructuredStreamTests(TestCase):
    """
    Streamed structured output arrives as the model writes it, in pieces
    whose concatenation is exactly the final JSON.
    """

    timeout = 90

    def push(self, d: Running) -> None:
        d.fake.push(Reply(text="", stop_reason="tool_use", chunk=6, tool_uses=(ToolUse("StructuredOutput", ADA),)))

    async def test_chat(self) -> None:
        d = await start(self)
        self.push(d)
        code, items, _ = await d.chat_stream(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Who?"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
            }
        )
        self.assertEqual(code, 200)
        pieces = [
            i["choices"][0]["delta"]["content"]
            for i in items
            if isinstance(i, dict) and i.get("choices") and i["choices"][0]["delta"].get("content")
        ]
        self.assertGreater(len(pieces), 3)
        self.assertEqual(json.loads("".join(pieces)), ADA)

    async def test_chat_whole_reply_unchanged(self) -> None:
        d = await start(self)
        self.push(d)
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Who?"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
            }
        )
        self.assertEqual(json.loads(body["choices"][0]["message"]["content"]), ADA)

    async def test_responses(self) -> None:
        d = await start(self)
        self.push(d)
        resp = await d.post(
            "/v1/responses",
            {
                "model": "sonnet",
                "stream": True,
                "input": "Who?",
                "text": {"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
            },
        )
        evs = events(await resp.content())
        pieces = [e["delta"] for e in evs if e["type"] == "response.output_text.delta"]
        self.assertGreater(len(pieces), 3)
        final = evs[-1]["response"]["output"][-1]["content"][0]["text"]
        self.assertEqual("".join(pieces), final)
        self.assertEqual(json.loads(final), ADA)
        done = [e["text"] for e in evs if e["type"] == "response.output_text.done"]
        self.assertEqual(done, [final])

    async def test_messages(self) -> None:
        d = await start(self)
        self.push(d)
        resp = await d.post(
            "/v1/messages",
            {
                "model": "sonnet",
                "max_tokens": 300,
                "stream": True,
                "messages": [{"role": "user", "content": "Who?"}],
                "output_config": {"format": {"type": "json_schema", "schema": PERSON}},
            },
        )
        evs = anthropic_events(await resp.content())
        pieces = [
            e["delta"]["text"] for e in evs if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
        ]
        self.assertGreater(len(pieces), 3)
        self.assertEqual(json.loads("".join(pieces)), ADA)


class TextToolResultTests(TestCase):
    timeout = 90

    async def test_results_sent_as_text_end_the_parked_process(self) -> None:
        """
        smolagents sends the call and its result back as text (C{Calling
        tools:} / C{Observation:}): the process parked on the call is ended
        at once, not kept until --tool-wait.
        """
        d = await start(self, tool_wait=300.0)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), Reply(text="Paris: 22 C."))
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        (call,) = body["choices"][0]["message"]["tool_calls"]
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        messages += [
            {
                "role": "assistant",
                "content": "Calling tools:\n[{'id': '%s', 'type': 'function', 'function': {'name': 'get_weather', "
                "'arguments': {'city': 'Paris'}}}]" % (call["id"],),
            },
            {"role": "user", "content": "Observation:\n22 C"},
        ]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Paris: 22 C.")
        self.assertEqual(d.manager.stats.tool_waits_abandoned, 1)
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 0)
        self.assertEqual(d.manager.exits.get("tool_wait_abandoned"), 1)
