"""
Unit tests for L{claudeproxy.openai_chat}: request parsing (every refusal
names the right field) and the response renderers.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.conversation import Conversation, Message
from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.turn import Finished, Usage
from claudeproxy.protocols.chat.parse import ChatRequest, parse_messages, parse_request
from claudeproxy.protocols.chat.shapes import DONE, chunk, completion, sse, usage_chunk, usage_object
from claudeproxy.protocols.openai import finish_reason

USER_HI = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> bytes:
    fields.setdefault("model", "sonnet")
    fields.setdefault("messages", USER_HI)
    return json.dumps(fields).encode()


class ParseHelpers(SynchronousTestCase):
    def parse(self, raw: bytes, aliases: tuple[tuple[str, str], ...] = ()) -> ChatRequest:
        return parse_request(raw, aliases)

    def refused(
        self,
        raw: bytes,
        param: Optional[str],
        status: int = 400,
        code: Optional[str] = None,
        aliases: tuple[tuple[str, str], ...] = (),
    ) -> ProxyError:
        e = self.assertRaises(ProxyError, parse_request, raw, aliases)
        self.assertEqual(e.status, status, e)
        self.assertEqual(e.param, param, e)
        self.assertEqual(e.type, "invalid_request_error")
        if code is not None:
            self.assertEqual(e.code, code, e)
        return e

    def refused_messages(self, messages: Any, param: Optional[str], code: Optional[str] = None) -> ProxyError:
        return self.refused(body(messages=messages), param, code=code)


class BodyTests(ParseHelpers):
    def test_invalid_json(self) -> None:
        e = self.refused(b"{not json", None, code="invalid_json")
        self.assertIn("not valid JSON", e.message)

    def test_invalid_utf8(self) -> None:
        self.refused(b'{"model": "\xff\xfe"}', None, code="invalid_json")

    def test_empty_body(self) -> None:
        self.refused(b"", None, code="invalid_json")

    def test_non_object_body(self) -> None:
        for raw in (b"[]", b'"text"', b"3", b"null"):
            e = self.refused(raw, None, code="invalid_json")
            self.assertIn("JSON object", e.message)

    def test_minimal(self) -> None:
        req = self.parse(body())
        self.assertEqual(req.model, "sonnet")
        self.assertEqual(req.cli_model, "sonnet")
        self.assertFalse(req.stream)
        self.assertFalse(req.include_usage)
        self.assertEqual(req.settings.stop, ())
        self.assertIsNone(req.settings.effort)
        self.assertEqual(req.conversation, Conversation(None, [Message("user", [{"type": "text", "text": "hi"}])]))

    def test_ignored_params_accepted(self) -> None:
        req = self.parse(
            body(
                temperature=0.2,
                top_p=0.9,
                seed=1,
                user="u",
                max_tokens=10,
                max_completion_tokens=10,
                presence_penalty=0,
                frequency_penalty=0,
                logit_bias={},
                metadata={"a": "b"},
                store=False,
                parallel_tool_calls=True,
            )
        )
        self.assertEqual(req.cli_model, "sonnet")


class ModelTests(ParseHelpers):
    def test_missing_model(self) -> None:
        raw = json.dumps({"messages": USER_HI}).encode()
        e = self.refused(raw, "model", code="invalid_model")
        self.assertIn("'model'", e.message)

    def test_non_string_model(self) -> None:
        self.refused(body(model=4), "model", code="invalid_model")
        self.refused(body(model=""), "model", code="invalid_model")

    def test_family_ids(self) -> None:
        self.assertEqual(self.parse(body(model="claude-opus-4")).cli_model, "opus")
        self.assertEqual(self.parse(body(model="claude-sonnet-4")).cli_model, "sonnet")
        self.assertEqual(self.parse(body(model="claude-haiku-4")).cli_model, "haiku")

    def test_cli_aliases_and_full_ids(self) -> None:
        for name in ("opus", "sonnet", "haiku", "claude-sonnet-4-5-20250929"):
            req = self.parse(body(model=name))
            self.assertEqual(req.cli_model, name)
            self.assertEqual(req.model, name)

    def test_configured_alias(self) -> None:
        req = self.parse(body(model="gpt-4o"), (("gpt-4o", "claude-opus-4"),))
        self.assertEqual(req.model, "gpt-4o")
        self.assertEqual(req.cli_model, "opus")

    def test_unknown_model_404_lists_ids(self) -> None:
        e = self.refused(
            body(model="gpt-4o"), "model", status=404, code="model_not_found", aliases=(("mine", "haiku"),)
        )
        self.assertIn("'gpt-4o'", e.message)
        for valid in ("claude-opus-4", "claude-sonnet-4", "claude-haiku-4", "opus", "sonnet", "haiku", "mine"):
            self.assertIn(valid, e.message)

    def test_bare_claude_prefix_is_unknown(self) -> None:
        self.refused(body(model="claude-"), "model", status=404, code="model_not_found")


class ParamTests(ParseHelpers):
    def test_stream(self) -> None:
        self.assertTrue(self.parse(body(stream=True)).stream)
        self.assertFalse(self.parse(body(stream=False)).stream)
        self.assertFalse(self.parse(body(stream=None)).stream)

    def test_stream_non_bool(self) -> None:
        values: tuple[Any, ...] = ("true", 1, 0, [], {})
        for value in values:
            self.refused(body(stream=value), "stream")

    def test_stream_options(self) -> None:
        self.assertTrue(self.parse(body(stream=True, stream_options={"include_usage": True})).include_usage)
        self.assertFalse(self.parse(body(stream=True, stream_options={})).include_usage)
        self.refused(body(stream_options="yes"), "stream_options")

    def test_n(self) -> None:
        self.parse(body(n=1))
        self.parse(body(n=None))
        self.refused(body(n=2), "n", code="unsupported_parameter")
        for bad in (0, -1, "1", 1.5, True):
            self.refused(body(n=bad), "n")

    def test_stop_string(self) -> None:
        self.assertEqual(self.parse(body(stop="END")).settings.stop, ("END",))
        self.assertEqual(self.parse(body(stop="")).settings.stop, ())
        self.assertEqual(self.parse(body(stop=None)).settings.stop, ())

    def test_stop_list(self) -> None:
        self.assertEqual(self.parse(body(stop=["a", "", "b"])).settings.stop, ("a", "b"))
        self.assertEqual(self.parse(body(stop=["1", "2", "3", "4"])).settings.stop, ("1", "2", "3", "4"))

    def test_stop_invalid(self) -> None:
        for bad in (3, {"a": 1}, ["a", 2], True):
            self.refused(body(stop=bad), "stop")

    def test_stop_too_many(self) -> None:
        e = self.refused(body(stop=["1", "2", "3", "4", "5"]), "stop")
        self.assertIn("at most 4", e.message)

    def test_tools_with_choice_none_exposes_nothing(self) -> None:
        tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        req = self.parse(body(tools=tools, tool_choice="none"))
        self.assertEqual(req.settings.tools.specs, ())
        req = self.parse(body(functions=[{"name": "f"}], function_call="none"))
        self.assertEqual(req.settings.tools.specs, ())
        self.assertEqual(self.parse(body(tools=[])).settings.tools.specs, ())

    def test_tools_declared(self) -> None:
        tools = [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {}}}]
        req = self.parse(body(tools=tools))
        self.assertEqual([t.name for t in req.settings.tools.specs], ["get_weather"])
        self.assertEqual(req.settings.tools.choice, "auto")

    def test_tools_invalid_name_the_field(self) -> None:
        self.refused(body(tools={"type": "function"}), "tools")
        self.refused(body(tools=["f"]), "tools[0]")
        self.refused(body(tools=[{"type": 5}]), "tools[0].type")
        self.refused(body(tools=[{"type": "function"}]), "tools[0].function")
        self.refused(body(tools=[{"type": "function", "function": {"name": "bad name!"}}]), "tools[0].function.name")
        self.refused(
            body(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
            "tools[0].function.parameters",
        )
        twice = [{"type": "function", "function": {"name": "f"}}] * 2
        self.refused(body(tools=twice), "tools[1].function.name")

    def test_tool_choice_invalid(self) -> None:
        tools = [{"type": "function", "function": {"name": "f"}}]
        self.refused(body(tools=tools, tool_choice="sometimes"), "tool_choice")
        self.refused(body(tools=tools, tool_choice={"type": "function", "function": {"name": "g"}}), "tool_choice")
        self.refused(body(tool_choice="required"), "tool_choice")

    def test_parallel_tool_calls_non_bool(self) -> None:
        self.refused(body(parallel_tool_calls="yes"), "parallel_tool_calls")

    def test_response_format_text(self) -> None:
        self.assertIsNone(self.parse(body(response_format={"type": "text"})).settings.json_schema)
        self.assertIsNone(self.parse(body()).settings.json_schema)

    def test_response_format_json(self) -> None:
        req = self.parse(body(response_format={"type": "json_object"}))
        self.assertIsNotNone(req.settings.json_schema)
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
        req = self.parse(body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
        assert req.settings.json_schema is not None
        self.assertEqual(json.loads(req.settings.json_schema), schema)

    def test_response_format_invalid(self) -> None:
        self.refused(body(response_format={"type": "yaml"}), "response_format")
        self.refused(body(response_format="json"), "response_format")
        self.refused(body(response_format={}), "response_format")
        self.refused(
            body(response_format={"type": "json_schema", "json_schema": {"name": "x"}}),
            "response_format.json_schema.schema",
        )
        self.refused(
            body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": "object"}}),
            "response_format.json_schema.schema",
        )

    def test_max_tokens(self) -> None:
        self.assertEqual(self.parse(body(max_tokens=100)).settings.max_tokens, 100)
        self.assertEqual(self.parse(body(max_tokens=100, max_completion_tokens=50)).settings.max_tokens, 50)
        self.assertIsNone(self.parse(body()).settings.max_tokens)
        for bad in (0, -5, "100", 1.5, True):
            self.refused(body(max_tokens=bad), "max_tokens")
            self.refused(body(max_completion_tokens=bad), "max_completion_tokens")

    def test_logprobs(self) -> None:
        self.parse(body(logprobs=False))
        self.parse(body(logprobs=None))
        self.refused(body(logprobs=True), "logprobs", code="unsupported_parameter")

    def test_modalities_and_audio(self) -> None:
        self.parse(body(modalities=["text"]))
        self.refused(body(modalities=["text", "audio"]), "modalities", code="unsupported_parameter")
        self.refused(body(audio={"voice": "alloy", "format": "wav"}), "audio", code="unsupported_parameter")

    def test_reasoning_effort(self) -> None:
        expected = {
            "minimal": "low",
            "low": "low",
            "medium": "medium",
            "high": "high",
            "xhigh": "xhigh",
            "max": "max",
        }
        for given, cli in expected.items():
            self.assertEqual(self.parse(body(reasoning_effort=given)).settings.effort, cli)
        self.assertIsNone(self.parse(body(reasoning_effort=None)).settings.effort)

    def test_reasoning_effort_invalid(self) -> None:
        for bad in ("extreme", 3, "", True):
            self.refused(body(reasoning_effort=bad), "reasoning_effort")

    def test_reasoning_effort_unhashable(self) -> None:
        for bad in (["low"], {"level": "low"}):
            self.refused(body(reasoning_effort=bad), "reasoning_effort")


class MessagesTests(ParseHelpers):
    def test_missing_or_empty(self) -> None:
        self.refused(json.dumps({"model": "sonnet"}).encode(), "messages")
        self.refused_messages([], "messages")
        self.refused_messages({"role": "user"}, "messages")
        self.refused_messages("hi", "messages")

    def test_message_not_object(self) -> None:
        self.refused_messages(["hi"], "messages[0]")
        self.refused_messages([{"role": "user", "content": "a"}, 3], "messages[1]")

    def test_bad_role(self) -> None:
        e = self.refused_messages([{"role": "robot", "content": "x"}], "messages[0].role")
        self.assertIn("robot", e.message)
        self.refused_messages([{"content": "x"}], "messages[0].role")
        self.refused_messages([{"role": "user", "content": "x"}, {"role": 5, "content": "x"}], "messages[1].role")

    def test_only_system(self) -> None:
        self.refused_messages([{"role": "system", "content": "be nice"}], "messages")

    def test_not_ending_in_user(self) -> None:
        e = self.refused_messages(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "messages"
        )
        self.assertIn("end with a user", e.message)

    def test_user_content_string_or_parts(self) -> None:
        conv = parse_messages([{"role": "user", "content": "plain"}])
        self.assertEqual(conv.messages[0].blocks, ({"type": "text", "text": "plain"},))
        conv = parse_messages(
            [{"role": "user", "content": [{"type": "text", "text": "a"}, "b", {"type": "input_text", "text": "c"}]}]
        )
        self.assertEqual(
            list(conv.messages[0].blocks),
            [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "text", "text": "c"}],
        )

    def test_empty_user_content(self) -> None:
        self.refused_messages([{"role": "user", "content": ""}], "messages[0].content")
        self.refused_messages([{"role": "user", "content": []}], "messages[0].content")
        self.refused_messages([{"role": "user", "content": [{"type": "text", "text": ""}]}], "messages[0].content")

    def test_content_wrong_type(self) -> None:
        self.refused_messages([{"role": "user", "content": 5}], "messages[0].content")
        self.refused_messages([{"role": "user", "content": {"text": "x"}}], "messages[0].content")
        self.refused_messages([{"role": "user"}], "messages[0].content")

    def test_part_not_object(self) -> None:
        self.refused_messages([{"role": "user", "content": ["ok", 7]}], "messages[0].content[1]")

    def test_text_part_without_string(self) -> None:
        self.refused_messages(
            [{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0].text"
        )

    def test_unknown_part_type(self) -> None:
        e = self.refused_messages(
            [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
            "messages[0].content[0].type",
            code="unsupported_content",
        )
        self.assertIn("video", e.message)

    def test_audio_parts(self) -> None:
        for kind in ("input_audio", "audio"):
            e = self.refused_messages(
                [{"role": "user", "content": ["hi", {"type": kind, "input_audio": {"data": "", "format": "wav"}}]}],
                "messages[0].content[1]",
                code="unsupported_content",
            )
            self.assertIn("audio", e.message)

    def test_file_parts(self) -> None:
        e = self.refused_messages(
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}],
            "messages[0].content[0]",
            code="unsupported_content",
        )
        self.assertIn("file", e.message)

    def test_image_data_url(self) -> None:
        conv = parse_messages(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:image/PNG;base64,iVBORw0KGgo="}},
                    ],
                }
            ]
        )
        self.assertEqual(
            conv.messages[0].blocks[1],
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        )

    def test_image_data_url_with_params(self) -> None:
        conv = parse_messages(
            [{"role": "user", "content": [{"type": "image_url", "image_url": "data:image/webp;name=x;base64,AAAA"}]}]
        )
        self.assertEqual(conv.messages[0].blocks[0]["source"]["media_type"], "image/webp")
        self.assertEqual(conv.messages[0].blocks[0]["source"]["data"], "AAAA")

    def test_image_http_url(self) -> None:
        for url in ("http://example.com/a.png", "https://example.com/b.jpg"):
            conv = parse_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
            self.assertEqual(conv.messages[0].blocks[0], {"type": "image", "source": {"type": "url", "url": url}})

    def test_image_bad_data_url(self) -> None:
        where = "messages[0].content[0].image_url"
        for url in ("data:image/png,AAAA", "data:image/png;base64", "data:;base64,AAAA"):
            self.refused_messages(
                [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}], where
            )

    def test_image_unsupported_media_type(self) -> None:
        e = self.refused_messages(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}],
            "messages[0].content[0].image_url",
        )
        self.assertIn("image/tiff", e.message)
        self.assertIn("image/png", e.message)

    def test_image_bad_url(self) -> None:
        where = "messages[0].content[0].image_url"
        for image in ({"url": "ftp://x/y.png"}, {"url": ""}, {}, None, 5, {"url": 3}):
            self.refused_messages([{"role": "user", "content": [{"type": "image_url", "image_url": image}]}], where)

    def test_images_not_allowed_in_system(self) -> None:
        self.refused_messages(
            [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                {"role": "user", "content": "hi"},
            ],
            "messages[0].content[0].type",
            code="unsupported_content",
        )

    def test_system_and_developer_joined(self) -> None:
        conv = parse_messages(
            [
                {"role": "system", "content": "You are a pirate."},
                {"role": "developer", "content": [{"type": "text", "text": "One "}, {"type": "text", "text": "line."}]},
                {"role": "system", "content": ""},
                {"role": "user", "content": "hi"},
            ]
        )
        self.assertEqual(conv.system, "You are a pirate.\n\nOne line.")
        self.assertEqual(len(conv.messages), 1)

    def test_no_system(self) -> None:
        self.assertIsNone(parse_messages(USER_HI).system)

    def test_system_later_in_conversation(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "system", "content": "late"},
                {"role": "user", "content": "c"},
            ]
        )
        self.assertEqual(conv.system, "late")
        self.assertEqual([m.role for m in conv.messages], ["user", "assistant", "user"])

    def test_multi_turn(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": [{"type": "text", "text": "b"}, {"type": "refusal", "refusal": "r"}]},
                {"role": "user", "content": "c"},
            ]
        )
        self.assertEqual(
            conv.messages,
            (
                Message("user", [{"type": "text", "text": "a"}]),
                Message("assistant", [{"type": "text", "text": "b"}, {"type": "text", "text": "r"}]),
                Message("user", [{"type": "text", "text": "c"}]),
            ),
        )

    def test_assistant_empty(self) -> None:
        self.refused_messages(
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "b"},
            ],
            "messages[1].content",
        )

    def test_assistant_tool_calls_and_tool_messages(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        },
                        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}},
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            ]
        )
        self.assertEqual(len(conv.messages), 3)
        self.assertEqual(
            conv.messages[1],
            Message(
                "assistant",
                [
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_2", "name": "time", "input": {}},
                ],
            ),
        )
        self.assertEqual(
            conv.messages[2],
            Message(
                "user",
                [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "rain"}]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                ],
            ),
        )
        self.assertEqual(conv.last_turn, (conv.messages[2],))

    def test_assistant_text_and_tool_calls(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "a"},
                {
                    "role": "assistant",
                    "content": "let me look",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "not json"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "done"},
            ]
        )
        self.assertEqual(
            list(conv.messages[1].blocks),
            [
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "c", "name": "f", "input": "not json"},
            ],
        )

    def test_legacy_function_call_and_function_message(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"x": 1}'}},
                {"role": "function", "name": "f", "content": "42"},
            ]
        )
        self.assertEqual(conv.messages[1].blocks, ({"type": "tool_use", "id": "", "name": "f", "input": {"x": 1}},))
        self.assertEqual(
            conv.messages[2].blocks,
            ({"type": "tool_result", "tool_use_id": "f", "content": [{"type": "text", "text": "42"}]},),
        )

    def test_tool_calls_invalid(self) -> None:
        base = [{"role": "user", "content": "a"}]
        self.refused_messages(
            base + [{"role": "assistant", "tool_calls": {"id": "x"}}, {"role": "user", "content": "b"}],
            "messages[1].tool_calls",
        )
        self.refused_messages(
            base + [{"role": "assistant", "tool_calls": [{"id": "x"}]}, {"role": "user", "content": "b"}],
            "messages[1].tool_calls[0].function",
        )
        self.refused_messages(
            base + [{"role": "assistant", "tool_calls": ["x"]}, {"role": "user", "content": "b"}],
            "messages[1].tool_calls[0].function",
        )

    def test_tool_message_bad_id(self) -> None:
        self.refused_messages(
            [{"role": "user", "content": "a"}, {"role": "tool", "tool_call_id": 5, "content": "x"}],
            "messages[1].tool_call_id",
        )

    def test_tool_result_after_user_text_starts_new_turn(self) -> None:
        conv = parse_messages(
            [
                {"role": "user", "content": "a"},
                {"role": "tool", "tool_call_id": "c", "content": "x"},
            ]
        )
        self.assertEqual([m.role for m in conv.messages], ["user", "user"])
        self.assertEqual(len(conv.last_turn), 2)


class RendererTests(SynchronousTestCase):
    usage = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=100, cache_creation_tokens=7)

    def test_usage_object(self) -> None:
        self.assertEqual(
            usage_object(self.usage),
            {
                "prompt_tokens": 117,
                "completion_tokens": 5,
                "total_tokens": 122,
                "prompt_tokens_details": {"cached_tokens": 100},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        )

    def test_chunk(self) -> None:
        delta = {"content": "hi"}
        c = chunk("chatcmpl-1", 123, "claude-sonnet-5", delta)
        self.assertEqual(
            c,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 123,
                "model": "claude-sonnet-5",
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}],
            },
        )
        c["choices"][0]["delta"]["content"] = "changed"
        self.assertEqual(delta, {"content": "hi"})

    def test_chunk_finish(self) -> None:
        c = chunk("id", 1, "m", {}, "length")
        self.assertEqual(c["choices"][0]["finish_reason"], "length")
        self.assertEqual(c["choices"][0]["delta"], {})

    def test_usage_chunk(self) -> None:
        self.assertEqual(
            usage_chunk("id", 5, "m", self.usage),
            {
                "id": "id",
                "object": "chat.completion.chunk",
                "created": 5,
                "model": "m",
                "system_fingerprint": None,
                "choices": [],
                "usage": usage_object(self.usage),
            },
        )

    def test_completion(self) -> None:
        finished = Finished("full", "", "claude-sonnet-5", "end_turn", self.usage)
        self.assertEqual(
            completion("chatcmpl-9", 77, finished, "text shown", "stop"),
            {
                "id": "chatcmpl-9",
                "object": "chat.completion",
                "created": 77,
                "model": "claude-sonnet-5",
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "text shown", "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage_object(self.usage),
            },
        )

    def test_completion_reasoning(self) -> None:
        finished = Finished("t", "because", "m", "max_tokens", Usage())
        out = completion("id", 1, finished, "t", finish_reason(finished))
        self.assertEqual(out["choices"][0]["message"]["reasoning_content"], "because")
        self.assertEqual(out["choices"][0]["finish_reason"], "length")

    def test_sse(self) -> None:
        data = sse({"a": "é", "b": [1, 2]})
        self.assertTrue(data.startswith(b"data: "))
        self.assertTrue(data.endswith(b"\n\n"))
        self.assertEqual(data.count(b"\n"), 2)
        self.assertEqual(json.loads(data[len(b"data: ") :].decode("utf-8")), {"a": "é", "b": [1, 2]})
        self.assertIn("é".encode(), data)
        self.assertNotIn(b", ", data)

    def test_sse_newlines_escaped(self) -> None:
        data = sse({"content": "line1\nline2\n\n"})
        self.assertEqual(data.count(b"\n"), 2)

    def test_done(self) -> None:
        self.assertEqual(DONE, b"data: [DONE]\n\n")
