"""
Unit tests for L{claudeproxy.anthropic_messages} (request parsing: every
refusal names the right field; renderers) and L{claudeproxy.anthropic_output}
(the stream and whole-message outputs on a dummy request).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from claudeproxy.engine.conversation import Conversation, Message, turn_blocks
from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.spec import TurnSettings
from claudeproxy.engine.stops import StopScanner
from claudeproxy.engine.tools import ToolCall, ToolUse
from claudeproxy.engine.turn import Finished, Usage
from claudeproxy.protocols.anthropic import parse as am
from claudeproxy.protocols.anthropic import shapes as am_shapes
from claudeproxy.protocols.anthropic.output import AnthropicOutput, AnthropicStreamOutput, write_anthropic_error
from claudeproxy.protocols.anthropic.parse import MessagesRequest, parse_messages, parse_request
from claudeproxy.protocols.chat.parse import parse_messages as chat_parse_messages

HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME = {"name": "get_time", "input_schema": {"type": "object"}}


def body(**fields: Any) -> bytes:
    fields.setdefault("model", "sonnet")
    fields.setdefault("max_tokens", 100)
    fields.setdefault("messages", HI)
    return json.dumps(fields).encode()


def finished(text: str = "", stop_reason: Optional[str] = "end_turn", **kw: Any) -> Finished:
    kw.setdefault("usage", Usage(10, 5, 100, 3))
    return Finished(text=text, reasoning="", model="claude-sonnet-5", stop_reason=stop_reason, **kw)


class Req(DummyRequest):
    producer: Any = None

    def __init__(self) -> None:
        super().__init__([b""])
        self.responseHeaders.setRawHeaders(b"x-request-id", [b"msg_1"])

    @property
    def data(self) -> bytes:
        return b"".join(self.written)

    def events(self) -> list[tuple[str, Any]]:
        out = []
        for frame in self.data.decode().split("\n\n"):
            if frame:
                event, data = frame.split("\n")
                out.append((event[len("event: ") :], json.loads(data[len("data: ") :])))
        return out


class ParseTests(SynchronousTestCase):
    def refused(self, raw: bytes, param: Optional[str], status: int = 400) -> ProxyError:
        e = self.assertRaises(ProxyError, parse_request, raw, ())
        self.assertEqual((e.status, e.param), (status, param), e)
        if param is not None:
            self.assertIn(param.split(".")[0].split("[")[0], e.message)
        return e

    def test_minimal(self) -> None:
        spec = parse_request(body(), ())
        self.assertIsInstance(spec, MessagesRequest)
        self.assertEqual((spec.model, spec.cli_model, spec.stream), ("sonnet", "sonnet", False))
        self.assertEqual(spec.conversation, Conversation(None, [Message("user", [{"type": "text", "text": "hi"}])]))
        self.assertEqual(spec.settings, TurnSettings(max_tokens=100))
        self.assertFalse(spec.include_thinking)

    def test_model_alias_and_unknown(self) -> None:
        self.assertEqual(parse_request(body(model="fast"), (("fast", "haiku"),)).cli_model, "haiku")
        self.assertEqual(parse_request(body(model="claude-sonnet-4"), ()).cli_model, "sonnet")
        self.refused(body(model="gpt-4o"), "model", 404)
        self.refused(body(model=None), "model")

    def test_max_tokens_required(self) -> None:
        raw = json.dumps({"model": "sonnet", "messages": HI}).encode()
        self.refused(raw, "max_tokens")
        self.refused(body(max_tokens=0), "max_tokens")
        self.refused(body(max_tokens="5"), "max_tokens")

    def test_bad_json(self) -> None:
        self.refused(b"{nope", None)
        self.refused(b"[]", None)
        self.refused(b"\xff\xfe", None)
        self.refused(b'{"model":' + b"[" * 100000 + b"]" * 100000 + b"}", None)
        # an escaped surrogate pair is text
        raw = b'{"model":"sonnet","max_tokens":10,"messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
        self.assertEqual(parse_request(raw, ()).conversation.messages[0].blocks[0]["text"], "\U0001f600")

    def test_ignored_and_unsupported_params(self) -> None:
        spec = parse_request(
            body(temperature=0.2, top_p=0.9, top_k=5, metadata={"user_id": "u"}, service_tier="auto"), ()
        )
        self.assertEqual(spec.settings.max_tokens, 100)
        self.assertEqual(am.IGNORED_PARAMS >= {"temperature", "top_p", "top_k", "metadata", "service_tier"}, True)
        self.refused(body(mcp_servers=[{"type": "url"}]), "mcp_servers")

    def test_stream_and_stop_sequences(self) -> None:
        spec = parse_request(body(stream=True, stop_sequences=["END", "", "\n\nHuman:"]), ())
        self.assertEqual((spec.stream, spec.settings.stop), (True, ("END", "\n\nHuman:")))
        self.refused(body(stream="yes"), "stream")
        self.refused(body(stop_sequences="END"), "stop_sequences")

    def test_system(self) -> None:
        self.assertEqual(parse_request(body(system="Be brief."), ()).conversation.system, "Be brief.")
        blocks = [
            {"type": "text", "text": "One."},
            {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}},
        ]
        self.assertEqual(parse_request(body(system=blocks), ()).conversation.system, "One.\n\nTwo.")
        self.assertIsNone(parse_request(body(system=""), ()).conversation.system)
        self.refused(body(system=[{"type": "image"}]), "system[0]")
        self.refused(body(system=5), "system")
        # the system prompt and model are command-line arguments of the CLI
        self.refused(body(system="a\x00b"), "system")
        self.refused(body(system=[{"type": "text", "text": "a\x00b"}]), "system")
        self.refused(body(model="claude-x\x00y"), "model")

    def test_content_blocks(self) -> None:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        url_image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
        doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}, "title": "T"}
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                    dict(image, cache_control={"type": "ephemeral"}),
                    url_image,
                    doc,
                ],
            }
        ]
        (msg,) = parse_messages(messages).messages
        self.assertEqual(msg.blocks, ({"type": "text", "text": "look"}, image, url_image, doc))

    def test_refused_content(self) -> None:
        def content(blocks: Any) -> bytes:
            return body(messages=[{"role": "user", "content": blocks}])

        self.refused(
            content([{"type": "image", "source": {"type": "base64", "data": "x"}}]),
            "messages[0].content[0].source.media_type",
        )
        self.refused(
            content([{"type": "image", "source": {"type": "url", "url": "ftp://x"}}]),
            "messages[0].content[0].source.url",
        )
        self.refused(
            content([{"type": "image", "source": {"type": "file", "file_id": "f"}}]),
            "messages[0].content[0].source.type",
        )
        self.refused(content([{"type": "text"}]), "messages[0].content[0].text")
        self.refused(
            content([{"type": "tool_use", "id": "t", "name": "n", "input": {}}]), "messages[0].content[0].type"
        )
        self.refused(content([{"type": "tool_result"}]), "messages[0].content[0].tool_use_id")
        self.refused(
            content([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}]), "messages[0].content[0].is_error"
        )
        self.refused(content([]), "messages[0].content")
        self.refused(content(""), "messages[0].content")
        self.refused(content(5), "messages[0].content")
        self.refused(content(["hi"]), "messages[0].content[0]")

    def test_roles(self) -> None:
        self.refused(body(messages=[]), "messages")
        self.refused(body(messages=[{"role": "developer", "content": "x"}, *HI]), "messages[0].role")
        self.refused(body(messages=[{"role": "tool", "content": "x"}]), "messages[0].role")
        prefill = [*HI, {"role": "assistant", "content": "Sure,"}]
        e = self.refused(body(messages=prefill), "messages")
        self.assertIn("prefill", e.message)
        self.refused(
            body(messages=[{"role": "assistant", "content": [{"type": "image"}]}, *HI]), "messages[0].content[0].type"
        )

    def test_assistant_turns(self) -> None:
        messages = [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "redacted_thinking", "data": "xx"},
                    {"type": "text", "text": "a", "citations": None},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "only", "signature": "s"}]},
            {"role": "user", "content": "next"},
        ]
        conv = parse_messages(messages)
        self.assertEqual(
            conv.messages,
            (
                Message("user", [{"type": "text", "text": "q"}]),
                Message(
                    "assistant",
                    [
                        {"type": "text", "text": "a"},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    ],
                ),
                Message("user", [{"type": "text", "text": "next"}]),
            ),
        )

    def test_tool_results_match_chat_completions(self) -> None:
        """
        A user turn of tool results parses to the same Conversation as the
        OpenAI tool messages it stands for: the shape the pool resumes on.
        """
        ours = parse_messages(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
                        {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "two"}],
                            "is_error": True,
                        },
                    ],
                },
            ]
        )
        theirs = chat_parse_messages(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                        {"id": "toolu_2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "two"},
            ]
        )
        strip = [{k: v for k, v in b.items() if k != "is_error"} for b in ours.last_turn[0].blocks]
        self.assertEqual(strip, list(theirs.last_turn[0].blocks))
        self.assertEqual(ours.history, theirs.history)
        self.assertEqual([b["is_error"] for b in ours.last_turn[0].blocks], [False, True])
        # served fresh: the results are the new turn, as real blocks
        self.assertEqual([b["tool_use_id"] for b in turn_blocks(ours.last_turn)], ["toolu_1", "toolu_2"])

    def test_tool_result_content(self) -> None:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
        (msg,) = parse_messages(
            [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [image]}]}]
        ).messages
        self.assertEqual(msg.blocks[0]["content"], [image])
        (msg,) = parse_messages([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]).messages
        self.assertEqual(msg.blocks[0], {"type": "tool_result", "tool_use_id": "t", "content": [], "is_error": False})
        self.refused(
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]}],
                    }
                ]
            ),
            "messages[0].content[0].content[0].type",
        )

    def test_tools(self) -> None:
        weather, time = parse_request(body(tools=[WEATHER, TIME]), ()).settings.tools.specs
        self.assertEqual((weather.name, time.name), ("get_weather", "get_time"))
        self.assertEqual(json.loads(weather.schema)["properties"], {"city": {"type": "string"}})
        self.assertEqual((weather.description, time.description), ("Weather", ""))
        self.refused(body(tools=[{"name": "bad name", "input_schema": {}}]), "tools[0].name")
        self.refused(body(tools=[{"name": "x"}]), "tools[0].input_schema")
        self.refused(body(tools=[WEATHER, WEATHER]), "tools[1].name")
        self.refused(body(tools=[{"type": 5, "name": "web_search"}]), "tools[0].type")
        self.refused(body(tools=[dict(WEATHER, description=3)]), "tools[0].description")
        self.refused(body(tools={}), "tools")

    def test_tool_choice(self) -> None:
        def choice(tc: Any) -> ToolUse:
            return parse_request(body(tools=[WEATHER, TIME], tool_choice=tc), ()).settings.tools

        tools = choice({"type": "auto", "disable_parallel_tool_use": True})
        self.assertEqual((len(tools.specs), tools.choice, tools.parallel), (2, "auto", False))
        tools = choice({"type": "any"})
        self.assertEqual((len(tools.specs), tools.choice, tools.required), (2, "required", True))
        tools = choice({"type": "tool", "name": "get_time"})
        self.assertEqual(([t.name for t in tools.specs], tools.choice), (["get_time"], "get_time"))
        tools = choice({"type": "none"})
        self.assertEqual((tools.specs, tools.choice), ((), "auto"))
        self.refused(body(tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name")
        self.refused(body(tools=[WEATHER], tool_choice={"type": "sometimes"}), "tool_choice.type")
        self.refused(body(tools=[WEATHER], tool_choice="auto"), "tool_choice")
        self.refused(body(tool_choice={"type": "any"}), "tool_choice")
        self.refused(
            body(tools=[WEATHER], tool_choice={"type": "auto", "disable_parallel_tool_use": 1}),
            "tool_choice.disable_parallel_tool_use",
        )

    def test_thinking_and_effort(self) -> None:
        def parse(**kw: Any) -> MessagesRequest:
            return parse_request(body(**kw), ())

        for budget, effort in ((1024, "low"), (4095, "low"), (4096, "medium"), (16383, "medium"), (16384, "high")):
            spec = parse(thinking={"type": "enabled", "budget_tokens": budget})
            self.assertEqual((spec.settings.effort, spec.include_thinking), (effort, True), budget)
        spec = parse(thinking={"type": "adaptive"})
        self.assertEqual((spec.settings.effort, spec.include_thinking), (None, True))
        spec = parse(thinking={"type": "disabled"})
        self.assertEqual((spec.settings.effort, spec.include_thinking), (None, False))
        spec = parse(thinking={"type": "enabled", "budget_tokens": 2000}, output_config={"effort": "max"})
        self.assertEqual(spec.settings.effort, "max")
        self.assertEqual(parse(output_config={"effort": "medium"}).settings.effort, "medium")
        self.refused(body(thinking={"type": "enabled"}), "thinking")
        self.refused(body(thinking={"type": "enabled", "budget_tokens": -1}), "thinking.budget_tokens")
        self.refused(body(thinking={"type": "on"}), "thinking.type")
        self.refused(body(thinking=True), "thinking")
        self.refused(body(output_config={"effort": "extreme"}), "output_config.effort")
        self.refused(body(output_config=[]), "output_config")

    def test_output_format(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        spec = parse_request(body(output_config={"format": {"type": "json_schema", "schema": schema}}), ())
        self.assertEqual(json.loads(spec.settings.json_schema or ""), schema)
        self.refused(body(output_config={"format": {"type": "json_schema"}}), "output_config.format")


class RenderTests(SynchronousTestCase):
    def test_error_types_follow_status(self) -> None:
        for status, kind in (
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (405, "invalid_request_error"),
            (501, "api_error"),
        ):
            e = ProxyError(status, "m", "server_error", "c")
            self.assertEqual(am_shapes.error_object(e), {"type": "error", "error": {"type": kind, "message": "m"}})

    def test_stop_reason(self) -> None:
        self.assertEqual(am_shapes.stop_reason(finished(stop_reason=None)), "end_turn")
        self.assertEqual(am_shapes.stop_reason(finished(stop_reason="max_tokens")), "max_tokens")
        self.assertEqual(am_shapes.stop_reason(finished(stop_reason="weird")), "end_turn")
        self.assertEqual(am_shapes.stop_reason(finished(tool_calls=(ToolCall("t", "f", "{}"),))), "tool_use")

    def test_matched_stop(self) -> None:
        # the daemon's stop scanner names the sequence that ended the text
        # (the one that completes first); the message reports it
        for stops in (("END", "STOP"), ("STOP three", "STOP")):
            scanner = StopScanner(stops)
            self.assertEqual(scanner.feed("one two STOP three"), "one two ")
            self.assertEqual(scanner.matched, "STOP")
        self.assertIsNone(StopScanner(("x",)).matched)

    def test_message(self) -> None:
        msg = am_shapes.message(
            "msg_1", "claude-x", [{"type": "text", "text": "hi"}], "end_turn", None, Usage(1, 2, 3, 4)
        )
        self.assertEqual(
            msg,
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-x",
                "content": [{"type": "text", "text": "hi"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 1,
                    "output_tokens": 2,
                    "cache_read_input_tokens": 3,
                    "cache_creation_input_tokens": 4,
                },
            },
        )

    def test_sse_escapes_lone_surrogates(self) -> None:
        frame = am_shapes.sse("x", {"text": "a\udfffb"})
        self.assertEqual(frame, b'event: x\ndata: {"text":"a\\udfffb"}\n\n')
        self.assertEqual(am_shapes.sse("x", {"text": "\u00e9"}), b'event: x\ndata: {"text":"\xc3\xa9"}\n\n')

    def test_sse(self) -> None:
        self.assertEqual(am_shapes.sse("ping", {"type": "ping"}), b'event: ping\ndata: {"type":"ping"}\n\n')
        self.assertEqual(am_shapes.MESSAGE_STOP, b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


class OutputTests(SynchronousTestCase):
    def test_whole_message(self) -> None:
        r = Req()
        out = AnthropicOutput(r, "msg_1", include_thinking=True)  # type: ignore[arg-type]
        out.reasoning("think ")
        out.reasoning("more")
        out.text("Let me ")
        out.text("check.")
        out.tool_call_start(0, "toolu_1", "get_weather")
        out.tool_call_delta(0, '{"city":')
        out.tool_call_delta(0, ' "Oslo"}')
        out.finished(
            finished("Let me check.", "tool_use", tool_calls=(ToolCall("toolu_1", "get_weather", '{"city": "Oslo"}'),))
        )
        self.assertEqual((r.responseCode, r.finished), (200, 1))
        self.assertEqual(r.responseHeaders.getRawHeaders(b"request-id"), [b"msg_1"])
        msg = json.loads(r.data)
        self.assertEqual(
            msg["content"],
            [
                {"type": "thinking", "thinking": "think more", "signature": ""},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            ],
        )
        self.assertEqual(
            (msg["stop_reason"], msg["model"], msg["usage"]["cache_read_input_tokens"]),
            ("tool_use", "claude-sonnet-5", 100),
        )

    def test_whole_message_without_thinking_and_stop(self) -> None:
        r = Req()
        out = AnthropicOutput(r, "msg_1")  # type: ignore[arg-type]
        out.reasoning("hidden")
        out.text("a b ")
        out.finished(finished("a b ", "stop_sequence", stop_sequence="STOP"))
        msg = json.loads(r.data)
        self.assertEqual(msg["content"], [{"type": "text", "text": "a b "}])
        self.assertEqual((msg["stop_reason"], msg["stop_sequence"]), ("stop_sequence", "STOP"))

    def test_whole_message_error(self) -> None:
        r = Req()
        out = AnthropicOutput(r, "msg_1")  # type: ignore[arg-type]
        out.failed(ProxyError(429, "slow down", "rate_limit_error", retry_after=7))
        self.assertEqual(r.responseCode, 429)
        self.assertEqual(r.responseHeaders.getRawHeaders(b"retry-after"), [b"7"])
        self.assertEqual(
            json.loads(r.data), {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        )
        self.assertEqual(out.status, 429)

    def stream(self, include_thinking: bool = True) -> tuple[Req, AnthropicStreamOutput]:
        r = Req()
        out = AnthropicStreamOutput(
            r,  # type: ignore[arg-type]
            "msg_1",
            lambda: Usage(11, 1, 50, 0),
            include_thinking,
        )
        out.named("claude-sonnet-5")
        return r, out

    def test_stream_block_indexes(self) -> None:
        r, out = self.stream()
        out.reasoning("hm")
        out.reasoning("m")
        out.text("Let me ")
        out.text("check.")
        out.tool_call_start(0, "toolu_1", "a")
        out.tool_call_delta(0, "{}")
        out.tool_call_start(1, "toolu_2", "b")
        out.tool_call_delta(1, '{"x":')
        out.tool_call_delta(1, "1}")
        out.finished(finished("Let me check.", "tool_use", tool_calls=(ToolCall("toolu_1", "a", "{}"),)))
        events = r.events()
        self.assertEqual(r.responseHeaders.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        self.assertEqual(
            [(e, d.get("index")) for e, d in events],
            [
                ("message_start", None),
                ("content_block_start", 0),
                ("content_block_delta", 0),
                ("content_block_delta", 0),
                ("content_block_stop", 0),
                ("content_block_start", 1),
                ("content_block_delta", 1),
                ("content_block_delta", 1),
                ("content_block_stop", 1),
                ("content_block_start", 2),
                ("content_block_delta", 2),
                ("content_block_stop", 2),
                ("content_block_start", 3),
                ("content_block_delta", 3),
                ("content_block_delta", 3),
                ("content_block_stop", 3),
                ("message_delta", None),
                ("message_stop", None),
            ],
        )
        start = events[0][1]["message"]
        self.assertEqual((start["id"], start["model"], start["content"]), ("msg_1", "claude-sonnet-5", []))
        self.assertEqual(start["usage"]["input_tokens"], 11)
        self.assertEqual(events[1][1]["content_block"], {"type": "thinking", "thinking": "", "signature": ""})
        self.assertEqual(events[2][1]["delta"], {"type": "thinking_delta", "thinking": "hm"})
        self.assertEqual(events[6][1]["delta"], {"type": "text_delta", "text": "Let me "})
        self.assertEqual(events[9][1]["content_block"], {"type": "tool_use", "id": "toolu_1", "name": "a", "input": {}})
        self.assertEqual(events[13][1]["delta"], {"type": "input_json_delta", "partial_json": '{"x":'})
        self.assertEqual(events[-2][1]["delta"], {"stop_reason": "tool_use", "stop_sequence": None})
        self.assertEqual(events[-2][1]["usage"]["output_tokens"], 5)
        self.assertEqual(r.finished, 1)

    def test_stream_stop_sequence_and_no_thinking(self) -> None:
        r, out = self.stream(include_thinking=False)
        out.reasoning("hidden")
        out.text("a b ")
        out.finished(finished("a b ", "stop_sequence", stop_sequence="STOP"))
        events = r.events()
        self.assertEqual([e for e, _ in events][:2], ["message_start", "content_block_start"])
        self.assertEqual(events[1][1]["content_block"], {"type": "text", "text": ""})
        self.assertEqual(events[-2][1]["delta"], {"stop_reason": "stop_sequence", "stop_sequence": "STOP"})

    def test_stream_empty_reply(self) -> None:
        r, out = self.stream()
        out.finished(finished(""))
        self.assertEqual([e for e, _ in r.events()], ["message_start", "message_delta", "message_stop"])

    def test_stream_error_before_content(self) -> None:
        r, out = self.stream()
        out.failed(ProxyError(503, "busy", "server_error"))
        self.assertEqual(r.responseCode, 503)
        self.assertEqual(
            json.loads(r.data), {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
        )
        self.assertEqual(r.finished, 1)

    def test_stream_error_after_content(self) -> None:
        r, out = self.stream()
        out.text("partial")
        out.failed(ProxyError(504, "too slow", "server_error"))
        events = r.events()
        self.assertEqual(
            events[-1], ("error", {"type": "error", "error": {"type": "timeout_error", "message": "too slow"}})
        )
        self.assertEqual(r.responseCode, 200)
        self.assertEqual((r.finished, out.status), (1, 504))

    def test_write_anthropic_error(self) -> None:
        r = Req()
        write_anthropic_error(r, ProxyError(401, "who are you", "invalid_request_error"))  # type: ignore[arg-type]
        self.assertEqual(r.responseCode, 401)
        self.assertEqual(json.loads(r.data)["error"]["type"], "authentication_error")
        self.assertEqual(r.responseHeaders.getRawHeaders(b"content-type"), [b"application/json"])
