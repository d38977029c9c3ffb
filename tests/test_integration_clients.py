"""
Real clients' requests (fixtures trimmed from captured traffic, see
tests/fixtures/clients/) replayed against the real CLI and the fake
upstream: Codex's first request with namespace and web search tools,
hosted web search in all three protocols, item references, Claude Code's
context management, mid-conversation system messages and count_tokens,
and OpenClaw's three flavours turn by turn.  Each asserts what the client
needs: status, event order, ids, usage, finish reasons, the model id it
asked for.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, parse_sse, start

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "clients")
#: the model id the captured clients asked for, served as sonnet
ALIAS = (("mock-model", "sonnet"),)


def fixture(name: str) -> list[dict[str, Any]]:
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return list(json.load(f))


def events(raw: bytes) -> list[dict[str, Any]]:
    return [e for e in parse_sse(raw) if isinstance(e, dict)]


def header(resp: Any, name: str) -> Any:
    values = resp.headers.getRawHeaders(name)
    return values[0] if values else None


async def post(d: Running, request: dict[str, Any], **changes: Any) -> tuple[Any, bytes]:
    body = dict(request["body"], **changes)
    headers = {k: v for k, v in request["headers"].items() if k not in ("accept-encoding",)}
    resp = await d.post(request["path"], body, headers)
    return resp, await resp.content()


def upstream_tools(d: Running, n: int = 0) -> list[str]:
    return [t.get("name", "") for t in d.fake.message_requests[n].body.get("tools") or []]


def upstream_text(d: Running, n: int = -1) -> str:
    return json.dumps(d.fake.message_requests[n].body.get("messages"))


def search_turn(*texts: str) -> list[Reply]:
    """
    The model searches the web (the CLI's WebSearch tool; the fake answers
    the search request itself, as the API runs its server tool), then
    writes its answer.
    """
    return [
        Reply(
            text=texts[0] if texts else "",
            stop_reason="tool_use",
            tool_uses=(ToolUse("WebSearch", {"query": "weather bern"}),),
        ),
        Reply(text="Sunny, says [Bern weather today](https://example.com/bern-weather)."),
    ]


class CodexTests(TestCase):
    timeout = 90

    async def test_first_request_served(self) -> None:
        """
        Codex 0.171's first request (namespace tool, web_search,
        include/reasoning.summary/store:false/prompt_cache_key/
        client_metadata, developer messages) streams a whole response.
        """
        d = await start(self, model_aliases=ALIAS)
        d.fake.push(Reply(text="Hello from Claude.", input_tokens=30, output_tokens=6))
        resp, raw = await post(d, fixture("codex-responses")[0])
        self.assertEqual(resp.code, 200, raw[:500])
        kinds = [e["type"] for e in events(raw)]
        self.assertEqual(kinds[:2], ["response.created", "response.in_progress"])
        self.assertEqual(kinds[-1], "response.completed")
        self.assertIn("response.output_text.delta", kinds)
        done = events(raw)[-1]["response"]
        self.assertEqual(done["model"], "mock-model")
        self.assertEqual(done["usage"]["output_tokens"], 6)
        self.assertEqual(done["output"][-1]["content"][0]["text"], "Hello from Claude.")
        self.assertEqual(header(resp, "x-claudeproxy-model"), d.fake.message_requests[-1].body["model"])
        self.assertIsNone(header(resp, "x-claudeproxy-skipped-tools"))
        tools = upstream_tools(d)
        self.assertIn("mcp__cp__close_agent", tools)
        self.assertIn("mcp__cp__exec_command", tools)
        self.assertIn("WebSearch", tools)

    async def test_namespaced_call_has_its_namespace(self) -> None:
        d = await start(self, model_aliases=ALIAS)
        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("mcp__cp__close_agent", {"target": "a1"}),))
        )
        resp, raw = await post(d, fixture("codex-responses")[0])
        self.assertEqual(resp.code, 200, raw[:500])
        done = events(raw)[-1]["response"]
        call = [i for i in done["output"] if i["type"] == "function_call"][0]
        self.assertEqual((call["name"], call["namespace"]), ("close_agent", "multi_agent_v1"))
        self.assertEqual(json.loads(call["arguments"]), {"target": "a1"})
        added = [e["item"] for e in events(raw) if e["type"] == "response.output_item.added"]
        self.assertEqual(added[-1].get("namespace"), "multi_agent_v1")

    async def test_web_search_call_items(self) -> None:
        d = await start(self, model_aliases=ALIAS)
        d.fake.push(*search_turn())
        resp, raw = await post(d, fixture("codex-responses")[0])
        self.assertEqual(resp.code, 200, raw[:500])
        evs = events(raw)
        done = evs[-1]["response"]
        self.assertEqual([i["type"] for i in done["output"]], ["web_search_call", "message"])
        search = done["output"][0]
        self.assertEqual(search["action"]["query"], "weather bern")
        self.assertEqual(search["action"]["sources"][0]["url"], "https://example.com/bern-weather")
        kinds = [e["type"] for e in evs]
        self.assertLess(
            kinds.index("response.web_search_call.searching"), kinds.index("response.web_search_call.completed")
        )
        # the CLI ran the API's web search server tool
        self.assertEqual(d.fake.message_requests[1].body["tools"][0]["type"], "web_search_20250305")

    async def test_gpt55_request_skips_tool_search_with_header(self) -> None:
        d = await start(self, model_aliases=ALIAS)
        d.fake.push(Reply(text="ok"))
        resp, raw = await post(d, fixture("codex-responses-gpt55")[0], model="mock-model")
        self.assertEqual(resp.code, 200, raw[:500])
        self.assertEqual(header(resp, "x-claudeproxy-skipped-tools"), "tool_search")
        self.assertIn("mcp__cp__apply_patch", upstream_tools(d))


class HostedSearchTests(TestCase):
    timeout = 90

    async def test_messages_server_tool(self) -> None:
        d = await start(self)
        d.fake.push(*search_turn())
        body = {
            "model": "sonnet",
            "max_tokens": 1000,
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
            "messages": [{"role": "user", "content": "Weather in Bern?"}],
        }
        code, msg = await d.post_json("/v1/messages", body)
        self.assertEqual(code, 200, msg)
        self.assertEqual([b["type"] for b in msg["content"]], ["server_tool_use", "web_search_tool_result", "text"])
        self.assertEqual(msg["content"][1]["tool_use_id"], msg["content"][0]["id"])
        self.assertEqual(msg["stop_reason"], "end_turn")
        d.fake.push(*search_turn())
        resp = await d.post("/v1/messages", dict(body, stream=True))
        raw = (await resp.content()).decode()
        starts = [
            json.loads(line[6:])["content_block"]["type"] for line in raw.split("\n") if '"content_block_start"' in line
        ]
        self.assertEqual(starts[:2], ["server_tool_use", "web_search_tool_result"])

    async def test_chat_citations(self) -> None:
        d = await start(self)
        d.fake.push(*search_turn())
        code, body = await d.chat(
            {"model": "sonnet", "messages": [{"role": "user", "content": "Weather in Bern?"}], "web_search_options": {}}
        )
        self.assertEqual(code, 200, body)
        message = body["choices"][0]["message"]
        self.assertIn("https://example.com/bern-weather", message["content"])
        cite = message["annotations"][0]["url_citation"]
        self.assertEqual(message["content"][cite["start_index"] : cite["end_index"]], cite["url"])

    async def test_unservable_tool_skipped_not_refused(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="hi"))
        resp = await d.post(
            "/v1/chat/completions",
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "code_interpreter"}],
            },
        )
        self.assertEqual(resp.code, 200, await resp.text())
        self.assertEqual(header(resp, "x-claudeproxy-skipped-tools"), "code_interpreter")


class ItemReferenceTests(TestCase):
    timeout = 90

    async def test_resolved_and_unknown(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Paris."), Reply(text="About 2 million."))
        code, first = await d.post_json("/v1/responses", {"model": "sonnet", "input": "Capital of France?"})
        self.assertEqual(code, 200, first)
        ref = first["output"][-1]["id"]
        code, second = await d.post_json(
            "/v1/responses",
            {
                "model": "sonnet",
                "input": [
                    {"role": "user", "content": "Capital of France?"},
                    {"type": "item_reference", "id": ref},
                    {"role": "user", "content": "Population?"},
                ],
            },
        )
        self.assertEqual(code, 200, second)
        self.assertIn("Paris.", upstream_text(d))
        resp = await d.post(
            "/v1/responses", {"model": "sonnet", "input": [{"type": "item_reference", "id": "msg_nope"}]}
        )
        error = json.loads(await resp.text())["error"]
        self.assertEqual((resp.code, error["code"], error["param"]), (404, "item_not_found", "input[0].id"))
        self.assertEqual(header(resp, "x-should-retry"), "false")


class ClaudeCodeClientTests(TestCase):
    timeout = 90

    async def test_context_management_and_system_messages(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Done."))
        body = {
            "model": "sonnet",
            "max_tokens": 1000,
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": "The user prefers French."},
                {"role": "user", "content": "again"},
            ],
        }
        code, msg = await d.post_json("/v1/messages", body)
        self.assertEqual(code, 200, msg)
        self.assertIn("<system-reminder>\\nThe user prefers French.\\n</system-reminder>", upstream_text(d))
        # not as a system message of the client's (the CLI adds its own on newer versions)
        sent = d.fake.message_requests[-1].body["messages"]
        self.assertFalse([m for m in sent if m.get("role") == "system" and "French" in json.dumps(m)])
        resp = await d.post("/v1/messages", dict(body, context_management={"edits": [{"type": "magic_2030"}]}))
        error = json.loads(await resp.text())
        self.assertEqual((resp.code, error["type"]), (400, "error"))
        self.assertIn("context_management.edits[0].type", error["error"]["message"])
        self.assertEqual(header(resp, "x-should-retry"), "false")

    async def test_count_tokens(self) -> None:
        d = await start(self)
        resp = await d.post(
            "/v1/messages/count_tokens",
            {"model": "sonnet", "system": "Be brief.", "messages": [{"role": "user", "content": "Hello, world"}]},
        )
        self.assertEqual(resp.code, 200)
        self.assertEqual(json.loads(await resp.text()), {"input_tokens": 15})
        self.assertEqual(header(resp, "x-claudeproxy-token-count"), "estimate-chars/3.8")
        self.assertEqual(d.fake.message_requests, [], "no model call")


class OpenClawTests(TestCase):
    """
    OpenClaw 2026.9's captured turns, in order, each answered.
    """

    timeout = 180

    async def replay(self, name: str) -> list[tuple[Any, bytes]]:
        d = await start(self, model_aliases=ALIAS)
        out = []
        for i, request in enumerate(fixture(name)):
            d.fake.push(Reply(text="Reply %d." % (i,), input_tokens=40, output_tokens=3))
            resp, raw = await post(d, request)
            self.assertEqual(resp.code, 200, (i, raw[:400]))
            self.assertEqual(header(resp, "x-claudeproxy-model"), d.fake.message_requests[-1].body["model"])
            out.append((resp, raw))
        return out

    async def test_completions(self) -> None:
        for _, raw in await self.replay("openclaw-openai-completions"):
            items = [e for e in events(raw) if e.get("choices") is not None]
            self.assertTrue(all(i["model"] == "mock-model" for i in items))
            finals = [
                i["choices"][0]["finish_reason"] for i in items if i["choices"] and i["choices"][0]["finish_reason"]
            ]
            self.assertEqual(finals, ["stop"])
            self.assertEqual(items[-1]["usage"]["completion_tokens"], 3)
            self.assertEqual(parse_sse(raw)[-1], "[DONE]")

    async def test_responses(self) -> None:
        for _, raw in await self.replay("openclaw-openai-responses"):
            evs = events(raw)
            self.assertEqual(evs[-1]["type"], "response.completed")
            self.assertEqual(evs[-1]["response"]["model"], "mock-model")
            self.assertEqual([e["sequence_number"] for e in evs], list(range(len(evs))))

    async def test_messages(self) -> None:
        for _, raw in await self.replay("openclaw-anthropic-messages"):
            names = [line[7:] for line in raw.decode().split("\n") if line.startswith("event: ")]
            self.assertEqual(names[0], "message_start")
            self.assertEqual(names[-2:], ["message_delta", "message_stop"])
            start_event = [
                line for line in raw.decode().split("\n") if '"message_start"' in line and line.startswith("data")
            ][0]
            self.assertEqual(json.loads(start_event[6:])["message"]["model"], "mock-model")


class ToolChoiceTests(TestCase):
    timeout = 90

    async def test_required_enforced_with_one_more_turn(self) -> None:
        d = await start(self)
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        d.fake.push(
            Reply(text="Let me think."),
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("mcp__cp__get_weather", {"city": "Bern"}),)),
        )
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [tool],
                "tool_choice": "required",
            }
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["finish_reason"], "tool_calls")
        self.assertEqual(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather")
        self.assertIn("requires a tool call", upstream_text(d))
        self.assertEqual(len(d.fake.message_requests), 2)

    async def test_not_followed_is_not_retried(self) -> None:
        d = await start(self)
        tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        d.fake.push(Reply(text="No."), Reply(text="Still no."))
        resp = await d.post(
            "/v1/chat/completions",
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "Weather?"}],
                "tools": [tool],
                "tool_choice": "required",
            },
        )
        body = json.loads(await resp.text())
        self.assertEqual((resp.code, body["error"]["code"]), (502, "tool_choice_not_followed"))
        self.assertEqual(header(resp, "x-should-retry"), "false")
        self.assertEqual(len(d.fake.message_requests), 2)


def swap(request: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """
    The request as the client sends it when our id is C{new}: the capture
    has the id the recording daemon gave (C{old}).
    """
    return dict(request, body=json.loads(json.dumps(request["body"]).replace(old, new)))


class AiSdkResponsesReplayTests(TestCase):
    """
    AI SDK 7's Responses provider (store left true), recorded by
    tests/clients.sh: a turn, a turn replaying the answer as an
    item_reference, a tool loop resending the call without its item id.
    """

    timeout = 120

    async def test_sequence(self) -> None:
        d = await start(self)
        seq = fixture("ai-sdk-responses")
        d.fake.push(Reply(text="Hi there."), Reply(text="Again, hi."))
        resp, raw = await post(d, seq[0])
        self.assertEqual(resp.code, 200, raw[:400])
        first = json.loads(raw)
        self.assertEqual((first["model"], first["status"]), ("claude-sonnet-4", "completed"))
        ref = [i["id"] for i in seq[1]["body"]["input"] if i.get("type") == "item_reference"][0]
        resp, raw = await post(d, swap(seq[1], ref, first["output"][-1]["id"]))
        self.assertEqual(resp.code, 200, raw[:400])
        self.assertEqual(json.loads(raw)["output"][-1]["content"][0]["text"], "Again, hi.")
        self.assertIn("Hi there.", upstream_text(d))
        self.assertEqual(json.dumps(d.fake.message_requests[-1].body.get("system")).count("Be brief."), 1)

        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("mcp__cp__get_weather", {"city": "Bern"}),)),
            Reply(text="Sunny in Bern."),
        )
        resp, raw = await post(d, seq[2])
        self.assertEqual(resp.code, 200, raw[:400])
        call = [i for i in json.loads(raw)["output"] if i["type"] == "function_call"][0]
        self.assertEqual((call["name"], json.loads(call["arguments"])), ("get_weather", {"city": "Bern"}))
        recorded = [i["call_id"] for i in seq[3]["body"]["input"] if i.get("type") == "function_call"][0]
        resp, raw = await post(d, swap(seq[3], recorded, call["call_id"]))
        self.assertEqual(resp.code, 200, raw[:400])
        done = json.loads(raw)
        self.assertEqual(done["output"][-1]["content"][0]["text"], "Sunny in Bern.")
        self.assertEqual(done["status"], "completed")


class ClaudeCodeReplayTests(TestCase):
    """
    Claude Code 2.1.332 as a client (ANTHROPIC_BASE_URL at the daemon),
    recorded by tests/clients.sh: a first turn (its environment as a
    mid-conversation system message, context_management, adaptive
    thinking, output_config), a resumed turn that calls Read, the
    tool result.
    """

    timeout = 120

    async def test_sequence(self) -> None:
        d = await start(self)
        seq = fixture("claude-code-messages")
        self.assertEqual(seq[0]["body"]["messages"][1]["role"], "system")
        d.fake.push(Reply(text="Hi there."))
        resp, raw = await post(d, seq[0])
        self.assertEqual(resp.code, 200, raw[:400])
        names = [line[7:] for line in raw.decode().split("\n") if line.startswith("event: ")]
        self.assertEqual((names[0], names[-1]), ("message_start", "message_stop"))
        # the client's system message reaches the model in a user turn, not as
        # a system message (CLI 2.1.332 adds system messages of its own)
        client_dir = re.search(r"Primary working directory: (\S+)", json.dumps(seq[0]["body"]["messages"][1]))
        assert client_dir is not None
        sent = d.fake.message_requests[-1].body["messages"]
        self.assertFalse([m for m in sent if m["role"] == "system" and client_dir.group(1) in json.dumps(m)])
        self.assertIn(client_dir.group(1), json.dumps([m for m in sent if m["role"] == "user"]))

        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("mcp__cp__Read", {"file_path": "Bern"}),))
        )
        resp, raw = await post(d, seq[1])
        self.assertEqual(resp.code, 200, raw[:400])
        data = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: ")]
        use = [e["content_block"] for e in data if e["type"] == "content_block_start"][-1]
        self.assertEqual((use["type"], use["name"]), ("tool_use", "Read"))
        stop = [e["delta"]["stop_reason"] for e in data if e["type"] == "message_delta"]
        self.assertEqual(stop, ["tool_use"])

        d.fake.push(Reply(text="No such file."))
        recorded = seq[2]["body"]["messages"][-1]["content"][0]["tool_use_id"]
        resp, raw = await post(d, swap(seq[2], recorded, use["id"]))
        self.assertEqual(resp.code, 200, raw[:400])
        data = [json.loads(line[6:]) for line in raw.decode().split("\n") if line.startswith("data: ")]
        self.assertEqual([e["delta"]["stop_reason"] for e in data if e["type"] == "message_delta"], ["end_turn"])
        text = "".join(e["delta"].get("text", "") for e in data if e["type"] == "content_block_delta")
        self.assertEqual(text, "No such file.")
