"""
The Anthropic Messages API (C{POST /v1/messages}) end to end: the official
C{anthropic} SDK as the client (in a thread), the real CLI against the fake
Anthropic API.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Any, Callable, TypeVar

import anthropic
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, start, text_turn, tiny_png, upstream_turns, wait_for

T = TypeVar("T")
FAKECLIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakeclis")
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def calls(*uses: tuple[str, dict[str, Any]], text: str = "") -> Reply:
    return Reply(text=text, stop_reason="tool_use", tool_uses=tuple(ToolUse("mcp__cp__" + n, i) for n, i in uses))


def tool_results(d: Running) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for req in d.fake.message_requests:
        for message in req.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                out.extend(b for b in content if b.get("type") == "tool_result")
    return out


def create(c: Any, stream: bool = False) -> Any:
    """
    A minimal request; a stream is read to its end.
    """
    result = c.messages.create(model="sonnet", max_tokens=10, messages=HI, stream=stream)
    return list(result) if stream else result


def upstream_system(d: Running) -> str:
    return "\n".join(b["text"] for b in d.fake.message_requests[-1].body["system"])


class AnthropicTestCase(TestCase):
    timeout = 60

    def client(self, d: Running, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("api_key", "x")
        kw.setdefault("max_retries", 0)
        client = anthropic.Anthropic(base_url=d.url, **kw)
        self.addCleanup(client.close)
        return client

    async def sdk(self, d: Running, call: Callable[[Any], T], **kw: Any) -> T:
        """
        Run C{call} with an SDK client in a thread.
        """
        client = self.client(d, **kw)
        result: T = await deferToThread(call, client)
        return result

    async def raw_stream(self, d: Running, body: dict[str, Any]) -> tuple[int, list[tuple[str, Any]]]:
        """
        POST a streaming request by hand: the status and the (event, data)
        pairs.
        """
        resp = await d.post("/v1/messages", dict(body, stream=True))
        raw = (await resp.content()).decode("utf-8")
        events = []
        for frame in raw.split("\n\n"):
            lines = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
            if "event" in lines:
                events.append((lines["event"], json.loads(lines["data"])))
        return resp.code, events


class MessagesTests(AnthropicTestCase):
    async def test_create_text_and_usage(self) -> None:
        d = await start(self)
        d.fake.default = Reply(
            text="Hello there, friend.", input_tokens=21, output_tokens=5, cache_read=100, cache_creation=3
        )
        msg = await self.sdk(
            d,
            lambda c: c.messages.create(model="claude-sonnet-4", max_tokens=1024, messages=HI),
        )
        self.assertTrue(msg.id.startswith("msg_"))
        self.assertEqual((msg.type, msg.role, msg.model), ("message", "assistant", "claude-sonnet-4"))
        self.assertEqual([(b.type, getattr(b, "text", None)) for b in msg.content], [("text", "Hello there, friend.")])
        self.assertEqual((msg.stop_reason, msg.stop_sequence), ("end_turn", None))
        self.assertEqual(
            (
                msg.usage.input_tokens,
                msg.usage.output_tokens,
                msg.usage.cache_read_input_tokens,
                msg.usage.cache_creation_input_tokens,
            ),
            (21, 5, 100, 3),
        )
        # the output limit reached the upstream call
        self.assertEqual(d.fake.message_requests[-1].body["max_tokens"], 1024)

    async def test_stream_text(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="Streaming works in small pieces.", chunk=4, output_tokens=9, cache_read=50)

        def run(c: Any) -> tuple[list[str], Any]:
            with c.messages.stream(model="sonnet", max_tokens=100, messages=HI) as s:
                pieces = list(s.text_stream)
                return pieces, s.get_final_message()

        pieces, final = await self.sdk(d, run)
        self.assertEqual("".join(pieces), "Streaming works in small pieces.")
        self.assertGreater(len(pieces), 5)
        self.assertEqual(final.content[0].text, "Streaming works in small pieces.")
        self.assertEqual((final.stop_reason, final.model), ("end_turn", "sonnet"))
        self.assertEqual((final.usage.output_tokens, final.usage.cache_read_input_tokens), (9, 50))
        # the events as they are on the wire
        code, events = await self.raw_stream(d, {"model": "sonnet", "max_tokens": 100, "messages": HI})
        self.assertEqual(code, 200)
        names = [e for e, _ in events]
        self.assertEqual(names[:2], ["message_start", "content_block_start"])
        self.assertEqual(names[-3:], ["content_block_stop", "message_delta", "message_stop"])
        self.assertEqual(set(names[2:-3]), {"content_block_delta"})
        self.assertTrue(all(data["type"] == name for name, data in events))
        start_msg = events[0][1]["message"]
        self.assertEqual((start_msg["content"], start_msg["stop_reason"]), ([], None))
        self.assertEqual(start_msg["usage"]["input_tokens"], 11)
        self.assertEqual(events[-2][1]["delta"], {"stop_reason": "end_turn", "stop_sequence": None})

    async def test_system_string_and_blocks(self) -> None:
        d = await start(self)
        await self.sdk(
            d,
            lambda c: c.messages.create(
                model="sonnet",
                max_tokens=100,
                system="You are a pirate.",
                messages=HI,
            ),
        )
        system = upstream_system(d)
        self.assertIn("You are a pirate.", system)
        self.assertNotIn("Claude Code", system.replace("cc_entrypoint", ""))
        self.assertLess(len(system), 1000)
        self.assertEqual(d.fake.message_requests[-1].body["tools"], [])
        await self.sdk(
            d,
            lambda c: c.messages.create(
                model="sonnet",
                max_tokens=100,
                system=[
                    {"type": "text", "text": "You are a parrot."},
                    {"type": "text", "text": "Repeat everything.", "cache_control": {"type": "ephemeral"}},
                ],
                messages=HI,
            ),
        )
        system = upstream_system(d)
        self.assertIn("You are a parrot.\n\nRepeat everything.", system)
        self.assertLess(len(system), 1000)

    async def test_multi_turn_and_image(self) -> None:
        d = await start(self)
        png = base64.b64encode(tiny_png()).decode()
        messages: Any = [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
            {"role": "assistant", "content": "second answer"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in this picture?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                ],
            },
        ]
        msg = await self.sdk(d, lambda c: c.messages.create(model="sonnet", max_tokens=100, messages=messages))
        self.assertEqual(msg.content[0].text, "Hello from the fake upstream.")
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [
                text_turn("user", "first question"),
                text_turn("assistant", "first answer"),
                text_turn("user", "second question"),
                text_turn("assistant", "second answer"),
                (
                    "user",
                    [
                        {"type": "text", "text": "what is in this picture?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    ],
                ),
            ],
        )

    async def test_follow_up_continues_the_live_session(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.push(Reply(text="Paris."), Reply(text="About two million."))
        messages: list[Any] = [{"role": "user", "content": "Capital of France?"}]
        msg = await self.sdk(d, lambda c: c.messages.create(model="sonnet", max_tokens=100, messages=messages))
        messages += [
            {"role": "assistant", "content": [b.to_dict() for b in msg.content]},
            {"role": "user", "content": "Population?"},
        ]
        msg = await self.sdk(d, lambda c: c.messages.create(model="sonnet", max_tokens=100, messages=messages))
        self.assertEqual(msg.content[0].text, "About two million.")
        self.assertEqual((d.manager.stats.spawned, d.manager.stats.session_hits), (1, 1))
        # the process kept the conversation: real turns upstream, no transcript
        sent = d.fake.message_requests[-1].turns
        self.assertEqual([m["role"] for m in sent], ["user", "assistant", "user"])
        self.assertNotIn("conversation_history", json.dumps(sent))

    async def test_thinking_blocks(self) -> None:
        d = await start(self)
        d.fake.default = Reply(thinking="Let me weigh this carefully.", text="Yes.")
        thinking = {"type": "enabled", "budget_tokens": 2048}
        msg = await self.sdk(
            d,
            lambda c: c.messages.create(model="opus", max_tokens=4096, messages=HI, thinking=thinking),
        )
        self.assertEqual(
            [b.to_dict() for b in msg.content],
            [
                {"type": "thinking", "thinking": "Let me weigh this carefully.", "signature": ""},
                {"type": "text", "text": "Yes."},
            ],
        )
        # budget_tokens 2048 is effort low
        self.assertEqual(d.fake.message_requests[-1].body["output_config"]["effort"], "low")

        def run(c: Any) -> Any:
            with c.messages.stream(model="opus", max_tokens=4096, messages=HI, thinking=thinking) as s:
                deltas = [e.delta.type for e in s if e.type == "content_block_delta"]
                return deltas, s.get_final_message()

        deltas, final = await self.sdk(d, run)
        self.assertIn("thinking_delta", deltas)
        self.assertEqual([b.type for b in final.content], ["thinking", "text"])
        self.assertEqual(final.content[0].thinking, "Let me weigh this carefully.")
        self.assertEqual(final.content[1].text, "Yes.")
        # without 'thinking' in the request, the reply has no thinking blocks
        msg = await self.sdk(d, lambda c: c.messages.create(model="opus", max_tokens=4096, messages=HI))
        self.assertEqual([b.type for b in msg.content], ["text"])

    async def test_max_tokens_cut(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="This reply goes on and on", stop_reason="max_tokens", output_tokens=16)
        msg = await self.sdk(d, lambda c: c.messages.create(model="sonnet", max_tokens=16, messages=HI))
        self.assertEqual(msg.stop_reason, "max_tokens")
        self.assertEqual(msg.content[0].text, "This reply goes on and on")
        self.assertEqual(msg.usage.output_tokens, 16)
        self.assertEqual(d.fake.message_requests[-1].body["max_tokens"], 16)

        def run(c: Any) -> Any:
            with c.messages.stream(model="sonnet", max_tokens=16, messages=HI) as s:
                return s.get_final_message()

        final = await self.sdk(d, run)
        self.assertEqual(final.stop_reason, "max_tokens")
        self.assertEqual(final.content[0].text, "This reply goes on and on")

    async def test_stop_sequences(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="one two STOP three four", chunk=3)
        msg = await self.sdk(
            d,
            lambda c: c.messages.create(model="sonnet", max_tokens=100, messages=HI, stop_sequences=["END", "STOP"]),
        )
        self.assertEqual((msg.stop_reason, msg.stop_sequence), ("stop_sequence", "STOP"))
        self.assertEqual(msg.content[0].text, "one two ")

        def run(c: Any) -> Any:
            with c.messages.stream(model="sonnet", max_tokens=100, messages=HI, stop_sequences=["STOP"]) as s:
                return "".join(s.text_stream), s.get_final_message()

        text, final = await self.sdk(d, run)
        self.assertEqual(text, "one two ")
        self.assertEqual((final.stop_reason, final.stop_sequence), ("stop_sequence", "STOP"))

    async def test_structured_output(self) -> None:
        d = await start(self)
        schema = {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", {"name": "Ada", "age": 36}),))
        )
        msg = await self.sdk(
            d,
            lambda c: c.messages.create(
                model="sonnet",
                max_tokens=100,
                messages=HI,
                output_config={"format": {"type": "json_schema", "schema": schema}},
            ),
        )
        self.assertEqual(json.loads(msg.content[0].text), {"name": "Ada", "age": 36})
        self.assertEqual(msg.stop_reason, "end_turn")
        self.assertEqual([t["name"] for t in d.fake.message_requests[0].body["tools"]], ["StructuredOutput"])

    async def test_api_key(self) -> None:
        d = await start(self, api_key="sekrit")
        msg = await self.sdk(
            d, lambda c: c.messages.create(model="sonnet", max_tokens=10, messages=HI), api_key="sekrit"
        )
        self.assertEqual(msg.stop_reason, "end_turn")
        with self.assertRaises(anthropic.AuthenticationError) as caught:
            await self.sdk(d, lambda c: c.messages.create(model="sonnet", max_tokens=10, messages=HI))
        self.assertEqual(caught.exception.body["error"]["type"], "authentication_error")


class ToolTests(AnthropicTestCase):
    async def test_tool_use_then_result_live_resume(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"}), text="Let me check."), Reply(text="Sunny in Paris."))
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        msg = await self.sdk(
            d, lambda c: c.messages.create(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER])
        )
        self.assertEqual(msg.stop_reason, "tool_use")
        self.assertEqual([b.type for b in msg.content], ["text", "tool_use"])
        use = msg.content[1]
        self.assertEqual((use.name, use.input), ("get_weather", {"city": "Paris"}))
        self.assertTrue(use.id.startswith("toolu_"))
        offered = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in offered], ["mcp__cp__get_weather"])
        self.assertEqual(offered[0]["input_schema"]["properties"], {"city": {"type": "string"}})
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        spawned = d.manager.stats.spawned
        messages += [
            {"role": "assistant", "content": [b.to_dict() for b in msg.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "22 C, sunny"}]}
                ],
            },
        ]
        msg = await self.sdk(
            d, lambda c: c.messages.create(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER])
        )
        self.assertEqual((msg.stop_reason, msg.content[0].text), ("end_turn", "Sunny in Paris."))
        self.assertEqual(d.manager.stats.spawned, spawned)
        self.assertEqual(d.manager.stats.tool_hits, 1)
        (result,) = tool_results(d)
        self.assertEqual(result["tool_use_id"], use.id)
        self.assertIn("22 C, sunny", json.dumps(result["content"]))
        self.assertNotIn("conversation_history", json.dumps(d.fake.message_requests[-1].body["messages"]))

    async def test_stream_tool_use(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Oslo"})), Reply(text="Cold."))
        messages: list[Any] = [{"role": "user", "content": "Oslo?"}]

        def run(c: Any) -> Any:
            with c.messages.stream(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER]) as s:
                events = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in s]
                return events, s.get_final_message()

        events, final = await self.sdk(d, run)
        self.assertIn(("content_block_delta", "input_json_delta"), events)
        self.assertEqual(final.stop_reason, "tool_use")
        (use,) = final.content
        self.assertEqual((use.type, use.name, use.input), ("tool_use", "get_weather", {"city": "Oslo"}))
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        messages += [
            {"role": "assistant", "content": [use.to_dict()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "-5 C"}]},
        ]

        def follow(c: Any) -> str:
            with c.messages.stream(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER]) as s:
                return "".join(s.text_stream)

        self.assertEqual(await self.sdk(d, follow), "Cold.")
        self.assertEqual(d.manager.stats.tool_hits, 1)
        self.assertIn("-5 C", json.dumps(tool_results(d)))

    async def test_expired_wait_is_served_fresh(self) -> None:
        d = await start(self, tool_wait=0.5)
        d.fake.push(calls(("get_weather", {"city": "Lima"})), Reply(text="Warm in Lima."))
        messages: list[Any] = [{"role": "user", "content": "Lima?"}]
        msg = await self.sdk(
            d, lambda c: c.messages.create(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER])
        )
        await wait_for(lambda: d.manager.describe()["tools"]["expired"] == 1, timeout=5)
        use = msg.content[0]
        messages += [
            {"role": "assistant", "content": [use.to_dict()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "25 C", "is_error": False}],
            },
        ]
        msg = await self.sdk(
            d, lambda c: c.messages.create(model="sonnet", max_tokens=500, messages=messages, tools=[WEATHER])
        )
        self.assertEqual(msg.content[0].text, "Warm in Lima.")
        self.assertEqual(d.manager.stats.tool_hits, 0)
        # served by a new process that loaded the history: real tool blocks
        # (CLI 2.1.197 may add its own "Continue from where you left off."
        # after loaded results; documented)
        turns = [
            (role, [b for b in blocks if b.get("text") != "Continue from where you left off."])
            for role, blocks in upstream_turns(d.fake.message_requests[-1].body)
        ]
        self.assertEqual(
            turns,
            [
                text_turn("user", "Lima?"),
                ("assistant", [{"type": "tool_use", "id": use.id, "name": "mcp__cp__get_weather", "input": use.input}]),
                (
                    "user",
                    [
                        {
                            "type": "tool_result",
                            "tool_use_id": use.id,
                            "content": [{"type": "text", "text": "25 C"}],
                            "is_error": False,
                        }
                    ],
                ),
                # the CLI starts a turn only for a user line: its own filler
                # reply, then the daemon's "Continue." (documented)
                text_turn("assistant", "No response requested."),
                text_turn("user", "Continue."),
            ],
        )

    async def test_tool_choice(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="No tools."))
        await self.sdk(
            d,
            lambda c: c.messages.create(
                model="sonnet", max_tokens=50, messages=HI, tools=[WEATHER], tool_choice={"type": "none"}
            ),
        )
        self.assertEqual(d.fake.message_requests[-1].body["tools"], [])
        d.fake.push(Reply(text="I would rather not."))
        with self.assertRaises(anthropic.APIStatusError) as caught:
            await self.sdk(
                d,
                lambda c: c.messages.create(
                    model="sonnet", max_tokens=50, messages=HI, tools=[WEATHER], tool_choice={"type": "any"}
                ),
            )
        self.assertEqual(caught.exception.status_code, 502)
        self.assertEqual(caught.exception.body["error"]["type"], "api_error")


class ErrorTests(AnthropicTestCase):
    async def test_upstream_401(self) -> None:
        d = await start(self)
        d.fake.default = Reply(status=401, error_type="authentication_error", error_message="OAuth token has expired")
        for stream in (False, True):
            with self.assertRaises(anthropic.AuthenticationError) as caught:
                await self.sdk(d, functools.partial(create, stream=stream))
            body: Any = caught.exception.body
            self.assertEqual(body["type"], "error")
            self.assertEqual(body["error"]["type"], "authentication_error")
            self.assertIn("OAuth token has expired", body["error"]["message"])

    async def test_upstream_429(self) -> None:
        d = await start(self)
        d.fake.default = Reply(status=429, error_type="rate_limit_error", error_message="slow down")
        for stream in (False, True):
            with self.assertRaises(anthropic.RateLimitError) as caught:
                await self.sdk(d, functools.partial(create, stream=stream))
            self.assertEqual(caught.exception.body["error"]["type"], "rate_limit_error")

    async def test_unknown_model_and_bad_input(self) -> None:
        d = await start(self)
        with self.assertRaises(anthropic.NotFoundError) as caught:
            await self.sdk(d, lambda c: c.messages.create(model="gpt-4o", max_tokens=10, messages=HI))
        self.assertEqual(caught.exception.body["error"]["type"], "not_found_error")
        self.assertIn("gpt-4o", caught.exception.body["error"]["message"])
        resp = await d.post("/v1/messages", {"model": "sonnet", "messages": HI})
        self.assertEqual(resp.code, 400)
        body = json.loads(await resp.text())
        self.assertEqual(
            body, {"type": "error", "error": {"type": "invalid_request_error", "message": body["error"]["message"]}}
        )
        self.assertIn("max_tokens", body["error"]["message"])
        with self.assertRaises(anthropic.BadRequestError) as bad:
            await self.sdk(
                d,
                lambda c: c.messages.create(
                    model="sonnet",
                    max_tokens=10,
                    messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}],
                ),
            )
        self.assertIn("messages[0].content[0].source.media_type", str(bad.exception))
        self.assertEqual(d.fake.message_requests, [])

    async def test_count_tokens_estimated(self) -> None:
        d = await start(self)
        counted = await self.sdk(d, lambda c: c.messages.count_tokens(model="sonnet", messages=HI), max_retries=2)
        self.assertGreater(counted.input_tokens, 0)
        self.assertEqual(d.fake.requests, [], "counted without a model call")

    async def test_error_after_stream_started(self) -> None:
        d = await start(self, claude=os.path.join(FAKECLIS, "crash_midstream.sh"))
        code, events = await self.raw_stream(d, {"model": "sonnet", "max_tokens": 10, "messages": HI})
        self.assertEqual(code, 200)
        names = [e for e, _ in events]
        self.assertEqual(names[0], "message_start")
        self.assertEqual(names[-1], "error")
        error = events[-1][1]
        self.assertEqual(error["type"], "error")
        self.assertEqual(error["error"]["type"], "api_error")
        self.assertIn("lost the plot halfway", error["error"]["message"])
        text = "".join(d["delta"]["text"] for e, d in events if e == "content_block_delta")
        self.assertEqual(text, "partial answer")
        with self.assertRaises(anthropic.APIStatusError):
            await self.sdk(
                d,
                lambda c: list(c.messages.create(model="sonnet", max_tokens=10, messages=HI, stream=True)),
            )
