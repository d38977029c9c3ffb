"""
Unit tests for the Responses API translation (L{claudeproxy.openai_responses}),
its outputs (L{claudeproxy.responses_output}) and the response store, with
every object and event checked against the C{openai} SDK's own types.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import pydantic
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.ids import call_alias
from claudeproxy.engine.pool import continues
from claudeproxy.engine.serve import continuation
from claudeproxy.engine.spec import TurnSettings
from claudeproxy.engine.streaming import Outcome
from claudeproxy.engine.tools import ToolCall, ToolUse
from claudeproxy.engine.turn import Finished, Usage
from claudeproxy.protocols.chat import parse as openai_chat
from claudeproxy.protocols.responses import events as orsp_events
from claudeproxy.protocols.responses import parse as orsp
from claudeproxy.protocols.responses import shapes as orsp_shapes
from claudeproxy.protocols.responses.output import ResponsesOutput, ResponsesStreamOutput
from claudeproxy.protocols.responses.store import ResponseStore, Stored
from claudeproxy.web.httpio import openai_error

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def parse(body: dict[str, Any], stored: Optional[dict[str, Conversation]] = None) -> orsp.ResponsesRequest:
    body = dict({"model": "sonnet"}, **body)
    return orsp.parse_request(json.dumps(body).encode(), (), (stored or {}).get)


def finished(text: str = "", reasoning: str = "", stop: str = "end_turn", calls: tuple[ToolCall, ...] = ()) -> Finished:
    return Finished(
        text=text,
        reasoning=reasoning,
        model="claude-sonnet-5",
        stop_reason=stop,
        usage=Usage(10, 4, 3, 2),
        tool_calls=calls,
    )


class ParseTests(SynchronousTestCase):
    def assertBad(self, body: dict[str, Any], param: Optional[str], status: int = 400) -> ProxyError:
        with self.assertRaises(ProxyError) as caught:
            parse(body)
        self.assertEqual((caught.exception.status, caught.exception.param), (status, param), caught.exception)
        return caught.exception

    def test_string_input(self) -> None:
        spec = parse({"input": "Hi", "stream": True})
        self.assertEqual(spec.conversation, Conversation(None, [Message("user", [text_block("Hi")])]))
        self.assertEqual((spec.cli_model, spec.stream, spec.settings), ("sonnet", True, TurnSettings()))

    def test_instructions_and_system_items(self) -> None:
        spec = parse(
            {
                "instructions": "Be brief.",
                "input": [
                    {"role": "system", "content": "Rule one."},
                    {"role": "developer", "content": [{"type": "input_text", "text": "Rule two."}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Q"}]},
                ],
            }
        )
        self.assertEqual(spec.conversation.system, "Be brief.\n\nRule one.\n\nRule two.")
        self.assertEqual(spec.item_system, "Rule one.\n\nRule two.")
        self.assertEqual(spec.echo["instructions"], "Be brief.")

    def test_items_match_chat_shapes(self) -> None:
        """
        Function calls and outputs become exactly what the chat protocol
        makes of the same exchange.
        """
        spec = parse(
            {
                "input": [
                    {"role": "user", "content": "Weather in A and B?"},
                    {"type": "reasoning", "id": "rs_1", "summary": []},
                    {
                        "type": "message",
                        "id": "msg_1",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                    },
                    {"type": "function_call", "call_id": "t1", "name": "get_weather", "arguments": '{"city":"A"}'},
                    {"type": "function_call", "call_id": "t2", "name": "get_weather", "arguments": '{"city":"B"}'},
                    {"type": "function_call_output", "call_id": "t1", "output": "sunny"},
                    {
                        "type": "function_call_output",
                        "call_id": "t2",
                        "output": [{"type": "input_text", "text": "rainy"}],
                    },
                ]
            }
        )
        chat = openai_chat.parse_messages(
            [
                {"role": "user", "content": "Weather in A and B?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"A"}'},
                        },
                        {
                            "id": "t2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"B"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "rainy"}]},
            ]
        )
        self.assertEqual(spec.conversation, chat)
        self.assertEqual(len(spec.conversation.last_turn), 1)

    def test_image(self) -> None:
        spec = parse(
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                            {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "low"},
                        ],
                    }
                ]
            }
        )
        self.assertEqual(
            list(spec.conversation.messages[0].blocks),
            [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ],
        )

    def test_previous_response_id(self) -> None:
        prior = Conversation(
            "Item rule.", [Message("user", [text_block("Q1")]), Message("assistant", [text_block("A1")])]
        )
        spec = parse({"instructions": "New rules.", "input": "Q2", "previous_response_id": "resp_1"}, {"resp_1": prior})
        self.assertEqual(
            spec.conversation,
            Conversation("New rules.\n\nItem rule.", [*prior.messages, Message("user", [text_block("Q2")])]),
        )
        self.assertEqual(spec.item_system, "Item rule.")
        self.assertEqual(spec.echo["previous_response_id"], "resp_1")

    def test_unknown_previous_response_id(self) -> None:
        error = self.assertBad({"input": "x", "previous_response_id": "resp_gone"}, "previous_response_id", 404)
        self.assertEqual(error.code, "previous_response_not_found")
        self.assertEqual(openai_error(error)["error"]["type"], "invalid_request_error")

    def test_tools_and_choice(self) -> None:
        other = dict(WEATHER, name="get_time")
        spec = parse({"input": "x", "tools": [WEATHER, other], "parallel_tool_calls": False})
        tools = spec.settings.tools
        self.assertEqual([t.name for t in tools.specs], ["get_weather", "get_time"])
        self.assertEqual((tools.choice, tools.parallel), ("auto", False))
        self.assertEqual(json.loads(tools.specs[0].schema), WEATHER["parameters"])

        def offered(body: dict[str, Any]) -> ToolUse:
            return parse(dict({"input": "x"}, **body)).settings.tools

        named = offered({"tools": [WEATHER, other], "tool_choice": {"type": "function", "name": "get_time"}})
        self.assertEqual(([t.name for t in named.specs], named.choice), (["get_time"], "get_time"))
        self.assertEqual(offered({"tools": [WEATHER], "tool_choice": "none"}).specs, ())
        self.assertEqual(offered({"tools": [WEATHER], "tool_choice": "required"}).choice, "required")
        self.assertTrue(offered({"tools": [{"type": "web_search"}]}).web_search)
        self.assertEqual(offered({"tools": [{"type": "file_search"}]}).skipped, ("file_search",))
        self.assertBad({"input": "x", "tools": [dict(WEATHER, name="bad name")]}, "tools[0].name")
        self.assertBad(
            {"input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "x"}}, "tool_choice"
        )
        self.assertBad({"input": "x", "tools": [WEATHER], "tool_choice": {"type": "file_search"}}, "tool_choice")
        self.assertBad({"input": "x", "tool_choice": "required"}, "tool_choice")

    def test_text_format(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        spec = parse(
            {"input": "x", "text": {"format": {"type": "json_schema", "name": "n", "schema": schema, "strict": True}}}
        )
        self.assertEqual(spec.settings.json_schema, json.dumps(schema, sort_keys=True, separators=(",", ":")))
        self.assertEqual(spec.echo["text"]["format"]["name"], "n")
        json_object = parse({"input": "x", "text": {"format": {"type": "json_object"}}})
        self.assertEqual(json_object.settings.json_schema, '{"type":"object"}')
        self.assertIsNone(parse({"input": "x", "text": {"format": {"type": "text"}}}).settings.json_schema)
        self.assertBad({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema")
        self.assertBad({"input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type")

    def test_reasoning_and_limits(self) -> None:
        def effort(reasoning: dict[str, Any]) -> Optional[str]:
            return parse({"input": "x", "reasoning": reasoning}).settings.effort

        self.assertEqual(effort({"effort": "minimal"}), "low")
        self.assertEqual(effort({"effort": "high", "summary": "auto"}), "high")
        self.assertIsNone(effort({"effort": "none"}))
        self.assertBad({"input": "x", "reasoning": {"effort": "huge"}}, "reasoning.effort")
        self.assertEqual(parse({"input": "x", "max_output_tokens": 64}).settings.max_tokens, 64)
        self.assertBad({"input": "x", "max_output_tokens": 0}, "max_output_tokens")

    def test_ignored_params(self) -> None:
        body: dict[str, Any] = {name: None for name in orsp.IGNORED_PARAMS}
        body.update(temperature=0.2, top_p=0.9, store=False, metadata={"a": "b"}, user="u", truncation="auto")
        spec = parse(dict(body, input="x"))
        self.assertEqual(spec.echo["temperature"], 0.2)
        self.assertEqual(spec.echo["metadata"], {"a": "b"})

    def test_bad_requests(self) -> None:
        self.assertBad({"input": []}, "input")
        self.assertBad({}, "input")
        self.assertBad({"input": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}, "input")
        self.assertBad({"input": [{"role": "tool", "content": "x"}]}, "input[0].role")
        self.assertBad({"input": [{"type": "compaction"}]}, "input[0].type")
        self.assertBad({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].id", 404)
        self.assertBad({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id")
        self.assertBad(
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        )
        self.assertBad(
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        )
        self.assertBad({"input": "x", "stream": "yes"}, "stream")
        self.assertBad({"input": "x", "conversation": "conv_1"}, "conversation")
        self.assertBad({"input": "x", "background": True}, "background")
        self.assertBad({"input": "x", "instructions": 3}, "instructions")
        with self.assertRaises(ProxyError) as caught:
            stored: dict[str, Conversation] = {}
            orsp.parse_request(b"{nope", (), stored.get)
        self.assertEqual(caught.exception.code, "invalid_json")


class ConversationAfterTests(SynchronousTestCase):
    def test_text_reply_is_the_kept_session(self) -> None:
        """
        The stored conversation after a text reply is exactly the one the
        process keeps, so a follow-up naming it finds the live process.
        """
        spec = parse({"instructions": "S", "input": "Q"})
        done = finished("A.")
        kept = continuation(spec.conversation, Outcome(200, None, done, clean=True))
        assert kept is not None
        self.assertTrue(continues(orsp.conversation_after(spec, done).messages, kept))
        follow = parse(
            {"instructions": "S", "input": "Q2", "previous_response_id": "r"},
            {"r": orsp.conversation_after(spec, done)},
        )
        self.assertTrue(continues(follow.conversation.history, kept))
        self.assertEqual(follow.conversation.system, spec.conversation.system)

    def test_tool_calls(self) -> None:
        spec = parse({"input": "Q", "tools": [WEATHER]})
        after = orsp.conversation_after(
            spec, finished("Let me see.", calls=(ToolCall("toolu_1", "get_weather", '{"city":"A"}'),))
        )
        self.assertEqual(
            after.messages[-1],
            Message(
                "assistant",
                [
                    text_block("Let me see."),
                    # the id the client saw (and sends back with the result)
                    {
                        "type": "tool_use",
                        "id": call_alias("toolu_1"),
                        "name": "get_weather",
                        "input": {"city": "A"},
                    },
                ],
            ),
        )
        self.assertIsNone(after.system)


class ObjectTests(SynchronousTestCase):
    def ids(self) -> Any:
        counter = iter(range(100))
        return lambda prefix: "%s%d" % (prefix, next(counter))

    def test_completed_response_validates(self) -> None:
        spec = parse({"input": "x", "tools": [WEATHER], "reasoning": {"effort": "low"}, "max_output_tokens": 9})
        done = finished("Hi.", "hmm", "tool_use", (ToolCall("toolu_1", "get_weather", '{"city":"A"}'),))
        obj = orsp_shapes.response_object(
            "resp_1",
            5,
            "claude-sonnet-5",
            "completed",
            orsp_shapes.output_items(done, "Hi.", self.ids()),
            spec.echo,
            done.usage,
        )
        response = Response.model_validate(obj)
        self.assertEqual(response.output_text, "Hi.")
        self.assertEqual([o.type for o in response.output], ["reasoning", "message", "function_call"])
        assert response.usage is not None
        self.assertEqual(
            (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens), (15, 4, 19)
        )
        self.assertEqual(response.usage.input_tokens_details.cached_tokens, 3)
        self.assertEqual(response.tools[0].type, "function")
        self.assertEqual(response.max_output_tokens, 9)

    def test_incomplete_and_failed_validate(self) -> None:
        spec = parse({"input": "x"})
        done = finished("cut", stop="max_tokens")
        status, details = orsp_shapes.end_status(done)
        self.assertEqual((status, details), ("incomplete", {"reason": "max_output_tokens"}))
        obj = orsp_shapes.response_object(
            "r",
            1,
            "m",
            status,
            orsp_shapes.output_items(done, "cut", self.ids()),
            spec.echo,
            done.usage,
            incomplete=details,
        )
        response = Response.model_validate(obj)
        assert response.incomplete_details is not None
        self.assertEqual(response.incomplete_details.reason, "max_output_tokens")
        failed = orsp_shapes.response_object(
            "r", 1, "m", "failed", [], spec.echo, error=ProxyError(504, "slow", "server_error", "timeout")
        )
        response = Response.model_validate(failed)
        assert response.error is not None
        self.assertEqual((response.error.code, response.error.message), ("server_error", "slow"))
        limited = orsp_shapes.response_error(ProxyError(429, "later", "rate_limit_error", "queue_full"))
        self.assertEqual(limited["code"], "rate_limit_exceeded")

    def test_sse_names_the_event(self) -> None:
        frame = orsp_events.sse(orsp_events.text_delta(3, "msg_1", 0, "hé"))
        head, data = frame.decode("utf-8").rstrip("\n").split("\n")
        self.assertEqual(head, "event: response.output_text.delta")
        self.assertEqual(json.loads(data[len("data: ") :])["delta"], "hé")
        self.assertTrue(frame.endswith(b"\n\n"))


def read_events(request: DummyRequest) -> list[dict[str, Any]]:
    events = []
    for frame in b"".join(request.written).decode("utf-8").split("\n\n"):
        if not frame:
            continue
        head, data = frame.split("\n")
        obj = json.loads(data[len("data: ") :])
        assert head == "event: " + obj["type"], frame
        events.append(obj)
    return events


class StreamOutputTests(SynchronousTestCase):
    def output(self, body: Optional[dict[str, Any]] = None) -> tuple[DummyRequest, ResponsesStreamOutput]:
        request = DummyRequest([b""])
        spec = parse(dict({"input": "x", "stream": True}, **(body or {})))
        counter = iter(range(100))
        out = ResponsesStreamOutput(
            request,  # type: ignore[arg-type]
            spec,
            "resp_1",
            100,
            lambda: 200.0,
            lambda prefix: "%s%d" % (prefix, next(counter)),
        )
        out.named("claude-sonnet-5")
        return request, out

    def check(self, events: list[dict[str, Any]]) -> Any:
        """
        Every event is an SDK event, numbered in order, and the SDK's
        stream helper accepts the sequence; the final response it built.
        """
        self.assertEqual([e["sequence_number"] for e in events], list(range(len(events))))
        state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
        for obj in events:
            state.handle_event(EVENTS.validate_python(obj))
        return state._completed_response

    def test_reasoning_text_and_calls(self) -> None:
        request, out = self.output({"tools": [WEATHER]})
        out.reasoning("Think")
        out.reasoning("ing.")
        out.text("Hel")
        out.text("lo.")
        out.tool_call_start(0, "toolu_1", "get_weather")
        out.tool_call_delta(0, '{"city":')
        out.tool_call_delta(0, '"A"}')
        out.tool_call_start(1, "toolu_2", "get_weather")
        calls = (ToolCall("toolu_1", "get_weather", '{"city":"A"}'), ToolCall("toolu_2", "get_weather", '{"city":"B"}'))
        out.finished(finished("Hello.", "Thinking.", "tool_use", calls))
        events = read_events(request)
        self.assertEqual(
            [e["type"] for e in events],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.function_call_arguments.done",
                "response.output_item.done",
                # the second call's arguments came only with the end of the turn
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ],
        )
        final = self.check(events)
        self.assertEqual([o.type for o in final.output], ["reasoning", "message", "function_call", "function_call"])
        self.assertEqual(final.output_text, "Hello.")
        self.assertEqual([o.arguments for o in final.output[2:]], ['{"city":"A"}', '{"city":"B"}'])
        # the OpenAI shape (call_ and 24 letters and digits), not the upstream id
        self.assertEqual([o.call_id for o in final.output[2:]], [call_alias("toolu_1"), call_alias("toolu_2")])
        self.assertRegex(final.output[2].call_id, r"^call_[A-Za-z0-9]{24}$")
        self.assertRegex(final.output[2].id, r"^fc_")
        self.assertEqual(final.completed_at, 200)
        self.assertEqual(out.response, events[-1]["response"])
        self.assertEqual(request.finished, 1)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])

    def test_empty_reply_still_has_a_message(self) -> None:
        request, out = self.output()
        out.finished(finished(""))
        final = self.check(read_events(request))
        self.assertEqual([o.type for o in final.output], ["message"])
        self.assertEqual(final.output_text, "")

    def test_incomplete(self) -> None:
        request, out = self.output()
        out.text("cut")
        out.finished(finished("cut", stop="max_tokens"))
        events = read_events(request)
        self.assertEqual(events[-1]["type"], "response.incomplete")
        self.assertEqual(events[-1]["response"]["output"][0]["status"], "incomplete")
        self.check(events)

    def test_error_before_output(self) -> None:
        request, out = self.output()
        out.failed(ProxyError(429, "slow down", "rate_limit_error", "rate_limit_exceeded", None, 3))
        self.assertEqual(request.responseCode, 429)
        body = json.loads(b"".join(request.written))
        self.assertEqual(body["error"]["code"], "rate_limit_exceeded")
        self.assertEqual(out.status, 429)

    def test_error_after_output(self) -> None:
        request, out = self.output({"tools": [WEATHER]})
        out.text("partial")
        out.tool_call_start(0, "toolu_1", "get_weather")
        out.failed(ProxyError(504, "too slow", "server_error", "timeout"))
        events = read_events(request)
        self.assertEqual([e["type"] for e in events[-2:]], ["response.failed", "error"])
        failed = events[-2]["response"]
        self.assertEqual((failed["status"], failed["error"]["message"]), ("failed", "too slow"))
        self.assertEqual([o["status"] for o in failed["output"]], ["completed", "incomplete"])
        self.assertEqual((events[-1]["code"], events[-1]["message"]), ("timeout", "too slow"))
        for obj in events:
            EVENTS.validate_python(obj)
        self.assertEqual(request.finished, 1)


class WholeOutputTests(SynchronousTestCase):
    def test_finished(self) -> None:
        request = DummyRequest([b""])
        out = ResponsesOutput(request, parse({"input": "x"}), "resp_9", 7, lambda: 8.0)  # type: ignore[arg-type]
        out.reasoning("ignored while streaming")
        out.text("Hi ")
        out.text("there.")
        out.finished(finished("Hi there.", "hmm"))
        body = json.loads(b"".join(request.written))
        response = Response.model_validate(body)
        self.assertEqual(
            (response.id, response.output_text, response.model), ("resp_9", "Hi there.", "claude-sonnet-5")
        )
        self.assertEqual([o.type for o in response.output], ["reasoning", "message"])
        self.assertEqual(out.response, body)

    def test_failed(self) -> None:
        request = DummyRequest([b""])
        out = ResponsesOutput(request, parse({"input": "x"}), "resp_9", 7, lambda: 8.0)  # type: ignore[arg-type]
        out.failed(ProxyError(502, "broken", "server_error", "cli_error"))
        self.assertEqual(request.responseCode, 502)
        self.assertIsNone(out.response)


class StoreTests(SynchronousTestCase):
    def test_least_recently_used_is_forgotten(self) -> None:
        store = ResponseStore(2)
        conv = Conversation(None, [Message("user", [text_block("x")])])
        store.put("a", Stored(conv, None))
        store.put("b", Stored(conv, None))
        self.assertIs(store.conversation("a"), conv)
        store.put("c", Stored(conv, None))
        self.assertIsNone(store.get("b"))
        self.assertEqual((len(store), store.conversation("a"), store.conversation("c")), (2, conv, conv))
        self.assertTrue(store.delete("a"))
        self.assertFalse(store.delete("a"))
