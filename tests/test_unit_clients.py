"""
What real clients send, translated (pure functions): Codex's namespace,
custom and hosted tools, item references, repeated system text, Claude
Code's context management and mid-conversation system messages, token
counts, and which errors forbid a retry.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine import tokens
from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.errors import UPSTREAM_RETRY_AFTER, ProxyError, bad_request, error_from_result
from claudeproxy.engine.process import SpawnKey, build_argv
from claudeproxy.engine.tools import ToolCall
from claudeproxy.engine.turn import Finished, TurnState, Usage, WebSearch
from claudeproxy.engine.versions import cli_retries
from claudeproxy.protocols.anthropic import parse as am
from claudeproxy.protocols.anthropic import shapes as am_shapes
from claudeproxy.protocols.anthropic.context import CLEARED
from claudeproxy.protocols.chat import parse as oc
from claudeproxy.protocols.chat import shapes as oc_shapes
from claudeproxy.protocols.responses import parse as orsp
from claudeproxy.protocols.responses import shapes as orsp_shapes

NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for spawning and managing sub-agents.",
    "tools": [
        {
            "type": "function",
            "name": "close_agent",
            "description": "Close an agent",
            "strict": False,
            "parameters": {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]},
        },
        {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}},
    ],
}
EXEC = {"type": "function", "name": "exec_command", "parameters": {"type": "object", "properties": {}}}
PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"},
}


def responses(
    body: dict[str, Any], items: Optional[dict[str, dict[str, Any]]] = None, stored: Any = None
) -> orsp.ResponsesRequest:
    raw = json.dumps(dict({"model": "sonnet"}, **body)).encode()
    lookup = (stored or {}).get
    return orsp.parse_request(raw, (), lookup, (items or {}).get)


def messages(**fields: Any) -> am.MessagesRequest:
    body = dict({"model": "sonnet", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}, **fields)
    return am.parse_request(json.dumps(body).encode(), ())


def finished(**kw: Any) -> Finished:
    kw.setdefault("stop_reason", "tool_use")
    return Finished(text="", reasoning="", model="claude-sonnet-5", usage=Usage(), **kw)


class CodexToolsTests(SynchronousTestCase):
    def test_namespace_functions_served(self) -> None:
        spec = responses(
            {"input": "x", "tools": [EXEC, NAMESPACE, {"type": "web_search", "external_web_access": True}]}
        )
        tools = spec.settings.tools
        self.assertEqual([t.name for t in tools.specs], ["exec_command", "close_agent", "spawn_agent"])
        self.assertTrue(tools.web_search)
        self.assertEqual(tools.skipped, ())
        self.assertEqual(spec.client_tools["close_agent"], orsp.ClientTool("close_agent", "multi_agent_v1"))

    def test_namespaced_call_comes_back_with_its_namespace(self) -> None:
        spec = responses({"input": "x", "tools": [EXEC, NAMESPACE]})
        item = orsp_shapes.call_item("fc_1", ToolCall("call_1", "close_agent", '{"target":"a"}'), spec.client_tools)
        self.assertEqual(
            (item["type"], item["name"], item["namespace"], item["call_id"]),
            ("function_call", "close_agent", "multi_agent_v1", "call_1"),
        )
        plain = orsp_shapes.call_item("fc_2", ToolCall("call_2", "exec_command", "{}"), spec.client_tools)
        self.assertNotIn("namespace", plain)

    def test_clashing_names_get_the_namespace(self) -> None:
        other = dict(NAMESPACE, name="other_ns")
        spec = responses({"input": "x", "tools": [NAMESPACE, other]})
        names = [t.name for t in spec.settings.tools.specs]
        self.assertIn("other_ns__close_agent", names)
        self.assertIn("multi_agent_v1__close_agent", names)
        item = orsp_shapes.call_item("fc", ToolCall("c", "other_ns__close_agent", "{}"), spec.client_tools)
        self.assertEqual((item["name"], item["namespace"]), ("close_agent", "other_ns"))

    def test_replayed_namespaced_call(self) -> None:
        spec = responses(
            {
                "tools": [NAMESPACE],
                "input": [
                    {"type": "message", "role": "user", "content": "x"},
                    {
                        "type": "function_call",
                        "id": "fc_1",
                        "status": "completed",
                        "name": "close_agent",
                        "namespace": "multi_agent_v1",
                        "call_id": "call_1",
                        "arguments": "{}",
                    },
                    {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "done"},
                ],
            }
        )
        self.assertEqual(spec.conversation.messages[1].blocks[0]["name"], "close_agent")

    def test_custom_tool(self) -> None:
        spec = responses({"input": "x", "tools": [PATCH]})
        (patch,) = spec.settings.tools.specs
        self.assertEqual(json.loads(patch.schema)["required"], ["input"])
        self.assertIn("start: begin_patch", patch.description)
        item = orsp_shapes.call_item(
            "fc", ToolCall("c", "apply_patch", '{"input": "*** Begin Patch"}'), spec.client_tools
        )
        self.assertEqual(item, dict(item, type="custom_tool_call", input="*** Begin Patch", name="apply_patch"))
        again = responses(
            {
                "tools": [PATCH],
                "input": [
                    {"role": "user", "content": "x"},
                    {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "P"},
                    {"type": "custom_tool_call_output", "call_id": "c", "output": "ok"},
                ],
            }
        )
        self.assertEqual(again.conversation.messages[1].blocks[0]["input"], {"input": "P"})

    def test_unservable_hosted_tools_skipped(self) -> None:
        spec = responses(
            {
                "input": "x",
                "tools": [EXEC, {"type": "tool_search", "execution": "client"}, {"type": "code_interpreter"}],
            }
        )
        self.assertEqual(spec.settings.tools.skipped, ("tool_search", "code_interpreter"))
        self.assertEqual([t.name for t in spec.settings.tools.specs], ["exec_command"])

    def test_codex_fields_accepted(self) -> None:
        spec = responses(
            {
                "input": "x",
                "include": ["reasoning.encrypted_content"],
                "reasoning": {"summary": "auto"},
                "store": False,
                "prompt_cache_key": "k",
                "client_metadata": {"a": "b"},
                "text": {"verbosity": "low"},
            }
        )
        self.assertEqual(spec.conversation.messages, (Message("user", [text_block("x")]),))

    def test_web_search_item(self) -> None:
        search = WebSearch("toolu_1", "bern", (("https://e.com", "E"),))
        items = orsp_shapes.output_items(finished(searches=(search,), stop_reason="end_turn"), "hi", lambda p: p + "1")
        self.assertEqual([i["type"] for i in items], ["web_search_call", "message"])
        self.assertEqual(
            items[0]["action"],
            {"type": "search", "query": "bern", "sources": [{"type": "url", "url": "https://e.com"}]},
        )
        # replayed by a client that keeps no state: accepted, not sent on
        spec = responses({"input": [{"role": "user", "content": "x"}, items[0], {"role": "user", "content": "y"}]})
        self.assertEqual(len(spec.conversation.messages), 2)

    def test_web_search_argv(self) -> None:
        argv = build_argv("claude", SpawnKey("sonnet", web_search=True), mcp_config="{}")
        self.assertEqual(argv[argv.index("--tools") + 1], "WebSearch")
        self.assertEqual(argv[argv.index("--allowedTools") + 1], "WebSearch,mcp__cp")
        plain = build_argv("claude", SpawnKey("sonnet"))
        self.assertEqual(plain[plain.index("--tools") + 1], "")
        self.assertNotIn("--allowedTools", plain)


class ItemReferenceTests(SynchronousTestCase):
    def test_resolved(self) -> None:
        items: dict[str, dict[str, Any]] = {
            "msg_a": {
                "type": "message",
                "id": "msg_a",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "A"}],
            },
            "fc_b": {"type": "function_call", "id": "fc_b", "call_id": "call_b", "name": "f", "arguments": "{}"},
        }
        spec = responses(
            {
                "input": [
                    {"role": "user", "content": "q"},
                    {"type": "item_reference", "id": "msg_a"},
                    {"type": "item_reference", "id": "fc_b"},
                    {"type": "function_call_output", "call_id": "call_b", "output": "r"},
                ]
            },
            items,
        )
        roles = [(m.role, [b["type"] for b in m.blocks]) for m in spec.conversation.messages]
        self.assertEqual(roles, [("user", ["text"]), ("assistant", ["text", "tool_use"]), ("user", ["tool_result"])])

    def test_unknown_is_404_item_not_found(self) -> None:
        with self.assertRaises(ProxyError) as caught:
            responses({"input": [{"type": "item_reference", "id": "msg_nope"}]})
        e = caught.exception
        self.assertEqual(
            (e.status, e.code, e.type, e.param), (404, "item_not_found", "invalid_request_error", "input[0].id")
        )
        self.assertEqual(e.headers()["x-should-retry"], "false")


class RepeatedSystemTests(SynchronousTestCase):
    def test_previous_response_with_repeated_system_items(self) -> None:
        stored = {
            "resp_1": Conversation(
                "Be brief.", [Message("user", [text_block("q")]), Message("assistant", [text_block("a")])]
            )
        }
        spec = responses(
            {
                "previous_response_id": "resp_1",
                "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "more"}],
            },
            stored=stored,
        )
        self.assertEqual(spec.conversation.system, "Be brief.")

    def test_repeated_instructions(self) -> None:
        stored = {
            "resp_1": Conversation(
                "Be brief.", [Message("user", [text_block("q")]), Message("assistant", [text_block("a")])]
            )
        }
        spec = responses(
            {"previous_response_id": "resp_1", "instructions": "Be brief.", "input": "more"}, stored=stored
        )
        self.assertEqual(spec.conversation.system, "Be brief.")
        two = responses(
            {"instructions": "A", "input": [{"role": "developer", "content": "B"}, {"role": "user", "content": "x"}]}
        )
        self.assertEqual(two.conversation.system, "A\n\nB")


class MessagesTests(SynchronousTestCase):
    def test_mid_conversation_system_messages(self) -> None:
        spec = messages(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": [{"type": "text", "text": "Now be terse."}]},
                {"role": "user", "content": "again"},
                {"role": "system", "content": "Last words."},
            ]
        )
        last = spec.conversation.messages[-1]
        self.assertEqual(
            [b["text"] for b in last.blocks],
            [
                "<system-reminder>\nNow be terse.\n</system-reminder>",
                "again",
                "<system-reminder>\nLast words.\n</system-reminder>",
            ],
        )

    def test_system_message_after_tool_results(self) -> None:
        spec = messages(
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "system", "content": "note"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]},
            ],
        )
        self.assertEqual([b["type"] for b in spec.conversation.messages[-1].blocks], ["tool_result", "text"])

    def test_server_tools(self) -> None:
        spec = messages(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
        self.assertTrue(spec.settings.tools.web_search)
        spec = messages(tools=[{"type": "code_execution_20250825", "name": "code_execution"}])
        self.assertEqual(
            (spec.settings.tools.web_search, spec.settings.tools.skipped), (False, ("code_execution_20250825",))
        )

    def test_search_blocks(self) -> None:
        use, result = am_shapes.search_blocks(WebSearch("toolu_01Ab", "q", (("https://e.com", "E"),)))
        self.assertEqual(
            use, {"type": "server_tool_use", "id": "srvtoolu_01Ab", "name": "web_search", "input": {"query": "q"}}
        )
        self.assertEqual(result["tool_use_id"], "srvtoolu_01Ab")
        self.assertEqual(result["content"][0]["url"], "https://e.com")
        # and a client sending them back in its history is accepted
        spec = messages(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [use, result, {"type": "text", "text": "Sunny", "citations": []}]},
                {"role": "user", "content": "thanks"},
            ]
        )
        self.assertEqual(spec.conversation.messages[1].blocks, ({"type": "text", "text": "Sunny"},))

    def test_context_management_no_op_and_refused(self) -> None:
        spec = messages(context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]})
        self.assertEqual(len(spec.conversation.messages), 1)
        with self.assertRaises(ProxyError) as caught:
            messages(context_management={"edits": [{"type": "compact_20260112"}]})
        self.assertEqual((caught.exception.status, caught.exception.param), (400, "context_management.edits[0].type"))

    def test_clear_tool_uses(self) -> None:
        history: list[dict[str, Any]] = [{"role": "user", "content": "start"}]
        for i in range(4):
            history.append(
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t%d" % i, "name": "f", "input": {"i": i}}],
                }
            )
            history.append(
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t%d" % i, "content": "x" * 400}]}
            )
        history[-1]["content"].append({"type": "text", "text": "go on"})
        edit = {
            "type": "clear_tool_uses_20250919",
            "trigger": {"type": "input_tokens", "value": 100},
            "keep": {"type": "tool_uses", "value": 1},
        }
        spec = messages(
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            messages=history,
            context_management={"edits": [edit]},
        )
        results = [b for m in spec.conversation.messages for b in m.blocks if b["type"] == "tool_result"]
        self.assertEqual([r["content"] for r in results[:3]], [[text_block(CLEARED)]] * 3)
        self.assertEqual(results[3]["content"], [text_block("x" * 400)])
        high = dict(edit, trigger={"type": "input_tokens", "value": 100000})
        spec = messages(
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            messages=history,
            context_management={"edits": [high]},
        )
        self.assertNotIn(
            [text_block(CLEARED)], [b.get("content") for m in spec.conversation.messages for b in m.blocks]
        )


class ChatSearchTests(SynchronousTestCase):
    def test_web_search_options(self) -> None:
        raw = json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "web_search_options": {}})
        self.assertTrue(oc.parse_request(raw.encode(), ()).settings.tools.web_search)

    def test_citations(self) -> None:
        search = WebSearch("t", "q", (("https://e.com", "E"), ("https://f.org", "F")))
        notes = oc_shapes.url_citations("See https://e.com today", [search])
        self.assertEqual(
            notes[0]["url_citation"], {"url": "https://e.com", "title": "E", "start_index": 4, "end_index": 17}
        )
        self.assertEqual(notes[1]["url_citation"]["start_index"], 23)


class TurnSearchTests(SynchronousTestCase):
    def test_cli_web_search_becomes_a_search(self) -> None:
        state = TurnState(model="sonnet")
        state.feed(
            {
                "type": "stream_event",
                "event": {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "tool_use", "id": "toolu_9", "name": "WebSearch", "input": {}},
                },
            }
        )
        out = state.feed(
            {
                "type": "user",
                "message": {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "..."}],
                },
                "tool_use_result": {
                    "query": "bern",
                    "results": [{"tool_use_id": "srv", "content": [{"title": "T", "url": "https://u"}]}, "text"],
                },
            }
        )
        self.assertEqual(out, [WebSearch("toolu_9", "bern", (("https://u", "T"),))])
        self.assertEqual(state.finished_so_far(stop_reason="end_turn", usage=Usage()).searches, tuple(out))


class RetryTests(SynchronousTestCase):
    def test_should_retry_false_on_what_a_retry_cannot_fix(self) -> None:
        for status in (400, 404, 413):
            self.assertEqual(ProxyError(status, "x").headers().get("x-should-retry"), "false")
        self.assertEqual(bad_request("x").headers()["x-should-retry"], "false")
        self.assertEqual(
            ProxyError(502, "x", "server_error", "tool_choice_not_followed").headers()["x-should-retry"], "false"
        )
        for status in (429, 500, 502, 503, 504):
            self.assertNotIn("x-should-retry", ProxyError(status, "x", "server_error", "cli_error").headers())

    def test_upstream_5xx_not_retried_by_the_client(self) -> None:
        """
        Upstream's 529 and 5xx were retried by the CLI as far as the
        policy allows (or upstream forbade it): the client is told not to
        multiply the calls, and when to come back.
        """
        for status, code in ((529, "upstream_overloaded"), (500, "upstream_error"), (503, "upstream_error")):
            e = error_from_result({"is_error": True, "api_error_status": status, "result": "API Error: %d x" % status})
            self.assertEqual(e.code, code)
            self.assertEqual(e.headers(), {"x-should-retry": "false", "Retry-After": str(UPSTREAM_RETRY_AFTER)})

    def test_rate_limit_resetting_later_than_sdks_wait(self) -> None:
        """
        A 429 whose window resets in more than a minute: the SDKs would
        retry within seconds (they ignore a longer Retry-After), in vain.
        """
        later = ProxyError(429, "x", "rate_limit_error", "rate_limit_exceeded", retry_after=3600)
        self.assertEqual(later.headers(), {"Retry-After": "3600", "x-should-retry": "false"})
        soon = ProxyError(429, "x", "rate_limit_error", "rate_limit_exceeded", retry_after=30)
        self.assertEqual(soon.headers(), {"Retry-After": "30"})


class CliRetriesTests(SynchronousTestCase):
    def test_only_where_the_cli_honours_x_should_retry(self) -> None:
        self.assertEqual(cli_retries(2, "2.1.332 (Claude Code)"), 2)
        self.assertEqual(cli_retries(5, "2.2.0 (Claude Code)"), 5)
        self.assertEqual(cli_retries(2, "2.1.197 (Claude Code)"), 0)
        self.assertEqual(cli_retries(2, "2.1.331"), 0)
        self.assertEqual(cli_retries(2, None), 0)
        self.assertEqual(cli_retries(2, "garbage"), 0)


class TokensTests(SynchronousTestCase):
    def test_count(self) -> None:
        self.assertEqual(tokens.text_tokens(""), 0)
        self.assertEqual(tokens.text_tokens("abcd"), 2)
        self.assertEqual(tokens.text_tokens("é"), 1)
        n = tokens.count(
            [{"role": "user", "content": "Hello, world"}], "Be brief.", [{"name": "f", "input_schema": {}}]
        )
        self.assertEqual(n, 4 + 4 + 4 + 3 + tokens.TOOL_TOKENS + tokens.text_tokens('{"name":"f","input_schema":{}}'))
