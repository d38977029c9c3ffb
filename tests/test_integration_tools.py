"""
Function calling through the CLI: the client's tools served to the CLI as
MCP tools by the daemon, the turn paused at the call and resumed with the
client's results.
"""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageFunctionToolCall
from twisted.trial.unittest import TestCase

from claudeproxy.engine.ids import call_alias
from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, start, text_turn, upstream_turns, wait_for

WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def calls(*uses: tuple[str, dict[str, Any]], text: str = "") -> Reply:
    return Reply(text=text, stop_reason="tool_use", tool_uses=tuple(ToolUse("mcp__cp__" + n, i) for n, i in uses))


def tool_results(d: Running) -> list[dict[str, Any]]:
    """
    The tool_result blocks the upstream received, in order.
    """
    out: list[dict[str, Any]] = []
    for req in d.fake.message_requests:
        for message in req.body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                out.extend(b for b in content if b.get("type") == "tool_result")
    return out


class ToolCallTests(TestCase):
    timeout = 60

    async def test_single_call_live_resume(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), Reply(text="It is sunny in Paris."))
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        choice = body["choices"][0]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        (call,) = choice["message"]["tool_calls"]
        self.assertEqual(call["function"]["name"], "get_weather")
        self.assertEqual(json.loads(call["function"]["arguments"]), {"city": "Paris"})
        self.assertIsNone(choice["message"]["content"])
        # what the model was offered upstream: exactly the client's tool
        offered = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in offered], ["mcp__cp__get_weather"])
        self.assertEqual(offered[0]["input_schema"]["properties"], {"city": {"type": "string"}})
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        spawned = d.manager.stats.spawned
        messages += [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "22 C, sunny"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "It is sunny in Paris.")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(d.manager.stats.spawned, spawned)
        self.assertEqual(d.manager.stats.tool_hits, 1)
        (result,) = tool_results(d)
        self.assertEqual(call_alias(result["tool_use_id"]), call["id"])
        self.assertIn("22 C, sunny", json.dumps(result["content"]))

    async def test_parallel_calls_and_multi_step_loop(self) -> None:
        d = await start(self)
        d.fake.push(
            calls(("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"}), text="Let me check."),
            calls(("get_weather", {"city": "Rome"})),
            Reply(text="Paris is sunny at noon; Rome is rainy."),
        )
        tools = [WEATHER, TIME]
        messages: list[Any] = [{"role": "user", "content": "Paris weather and time, then Rome weather"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": tools})
        message = body["choices"][0]["message"]
        self.assertEqual(message["content"], "Let me check.")
        self.assertEqual([c["function"]["name"] for c in message["tool_calls"]], ["get_weather", "get_time"])
        messages.append(message)
        messages += [
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "sunny"},
            {
                "role": "tool",
                "tool_call_id": message["tool_calls"][1]["id"],
                "content": [{"type": "text", "text": "12:00"}],
            },
        ]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": tools})
        self.assertEqual(code, 200, body)
        message = body["choices"][0]["message"]
        self.assertEqual(body["choices"][0]["finish_reason"], "tool_calls")
        self.assertEqual(json.loads(message["tool_calls"][0]["function"]["arguments"]), {"city": "Rome"})
        messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "rainy"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": tools})
        self.assertEqual(body["choices"][0]["message"]["content"], "Paris is sunny at noon; Rome is rainy.")
        self.assertEqual(d.manager.stats.tool_hits, 2)
        self.assertEqual(d.manager.stats.spawned, 1)
        self.assertEqual(
            [
                json.dumps(r["content"]).count(x)
                for r, x in zip(tool_results(d)[-3:], ["sunny", "12:00", "rainy"], strict=True)
            ],
            [1, 1, 1],
        )

    async def test_stream_tool_call_deltas(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Oslo"})), Reply(text="Cold."))
        messages: list[Any] = [{"role": "user", "content": "Oslo?"}]
        code, items, _ = await d.chat_stream({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200)
        deltas = [i["choices"][0]["delta"] for i in items if isinstance(i, dict) and i.get("choices")]
        starts = [t for dl in deltas for t in dl.get("tool_calls", []) if "id" in t]
        self.assertEqual(len(starts), 1)
        self.assertEqual(starts[0]["function"]["name"], "get_weather")
        args = "".join(t["function"].get("arguments", "") for dl in deltas for t in dl.get("tool_calls", []))
        self.assertEqual(json.loads(args), {"city": "Oslo"})
        self.assertEqual(
            [
                i["choices"][0]["finish_reason"]
                for i in items
                if isinstance(i, dict) and i["choices"] and i["choices"][0]["finish_reason"]
            ],
            ["tool_calls"],
        )
        self.assertEqual(items[-1], "[DONE]")
        call_id = starts[0]["id"]
        messages += [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": args}}
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "-5 C"},
        ]
        code, items, _ = await d.chat_stream({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(
            "".join(
                i["choices"][0]["delta"].get("content") or "" for i in items if isinstance(i, dict) and i.get("choices")
            ),
            "Cold.",
        )
        self.assertEqual(d.manager.stats.tool_hits, 1)

    async def test_follow_up_after_expiry_is_served_fresh(self) -> None:
        d = await start(self, tool_wait=0.5)
        d.fake.push(calls(("get_weather", {"city": "Lima"})), Reply(text="Warm in Lima."))
        messages: list[Any] = [{"role": "user", "content": "Lima?"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        message = body["choices"][0]["message"]
        await wait_for(lambda: d.manager.describe()["tools"]["expired"] == 1, timeout=5)
        resp = await d.get("/health")
        health = await resp.json()
        self.assertEqual(health["pool"]["tools"]["expired"], 1)
        self.assertEqual(health["pool"]["tools"]["waiting"], 0)
        messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "25 C"}]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Warm in Lima.")
        self.assertEqual(d.manager.stats.tool_hits, 0)
        # a new process loaded the history: the call and result as real blocks
        call = message["tool_calls"][0]
        # (CLI 2.1.197 may add its own "Continue from where you left off."
        # after loaded results; documented)
        turns = [
            (role, [b for b in blocks if b.get("text") != "Continue from where you left off."])
            for role, blocks in upstream_turns(d.fake.message_requests[-1].body)
        ]
        # the upstream's own id again (the client had its OpenAI-shaped alias)
        ours = turns[1][1][0]["id"]
        self.assertTrue(ours.startswith("toolu_"))
        self.assertEqual(call_alias(ours), call["id"])
        self.assertEqual(
            turns,
            [
                text_turn("user", "Lima?"),
                (
                    "assistant",
                    [{"type": "tool_use", "id": ours, "name": "mcp__cp__get_weather", "input": {"city": "Lima"}}],
                ),
                (
                    "user",
                    [{"type": "tool_result", "tool_use_id": ours, "content": [{"type": "text", "text": "25 C"}]}],
                ),
                # the CLI starts a turn only for a user line: its own filler
                # reply, then the daemon's "Continue." (documented)
                text_turn("assistant", "No response requested."),
                text_turn("user", "Continue."),
            ],
        )
        # and the fresh process still offers the tool
        self.assertEqual([t["name"] for t in d.fake.message_requests[-1].body["tools"]], ["mcp__cp__get_weather"])

    async def test_unknown_ids_are_served_fresh(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="Done.")
        messages = [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_from_elsewhere",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_from_elsewhere", "content": "ok"},
        ]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Done.")

    async def test_tool_choice(self) -> None:
        d = await start(self)
        # none: no tools offered at all
        d.fake.push(Reply(text="No tools."))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [WEATHER],
                "tool_choice": "none",
            }
        )
        self.assertEqual(body["choices"][0]["message"]["content"], "No tools.")
        self.assertEqual(d.fake.message_requests[-1].body["tools"], [])
        # a named function: only that one is offered
        d.fake.push(calls(("get_time", {"city": "Oslo"})))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "time"}],
                "tools": [WEATHER, TIME],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            }
        )
        self.assertEqual(body["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_time")
        self.assertEqual([t["name"] for t in d.fake.message_requests[-1].body["tools"]], ["mcp__cp__get_time"])
        # required, but the model answers in text: a clear error, never a pretend call
        d.fake.push(Reply(text="I would rather not."))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER],
                "tool_choice": "required",
            }
        )
        self.assertEqual(code, 502)
        self.assertEqual(body["error"]["code"], "tool_choice_not_followed")
        # auto with a text answer is fine
        d.fake.push(Reply(text="Just text."))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER],
                "tool_choice": "auto",
            }
        )
        self.assertEqual((code, body["choices"][0]["message"]["content"]), (200, "Just text."))
        # a named function that was not declared
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            }
        )
        self.assertEqual((code, body["error"]["param"]), (400, "tool_choice"))

    async def test_parallel_tool_calls_false_hands_out_one_at_a_time(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "A"}), ("get_weather", {"city": "B"})), Reply(text="A and B done."))
        base = {"model": "sonnet", "tools": [WEATHER], "parallel_tool_calls": False}
        messages: list[Any] = [{"role": "user", "content": "A and B"}]
        code, body = await d.chat(dict(base, messages=messages))
        message = body["choices"][0]["message"]
        self.assertEqual([json.loads(c["function"]["arguments"]) for c in message["tool_calls"]], [{"city": "A"}])
        messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "a-result"}]
        code, body = await d.chat(dict(base, messages=messages))
        self.assertEqual(code, 200, body)
        message = body["choices"][0]["message"]
        self.assertEqual(body["choices"][0]["finish_reason"], "tool_calls")
        self.assertEqual([json.loads(c["function"]["arguments"]) for c in message["tool_calls"]], [{"city": "B"}])
        messages += [message, {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "b-result"}]
        code, body = await d.chat(dict(base, messages=messages))
        self.assertEqual(body["choices"][0]["message"]["content"], "A and B done.")
        results = tool_results(d)
        self.assertEqual(
            [json.dumps(r["content"]).count(x) for r, x in zip(results[-2:], ["a-result", "b-result"], strict=True)],
            [1, 1],
        )

    async def test_client_that_never_returns(self) -> None:
        d = await start(self, tool_wait=0.5)
        d.fake.push(calls(("get_weather", {"city": "X"})))
        code, body = await d.chat(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]}
        )
        self.assertEqual(body["choices"][0]["finish_reason"], "tool_calls")
        pid = d.spawned[-1]
        await wait_for(lambda: d.manager.describe()["tools"]["expired"] == 1, timeout=5)
        from tests.harness import live_pids

        await wait_for(lambda: not live_pids([pid]), timeout=3)

    async def test_openai_sdk_agent_loop(self) -> None:
        from twisted.internet.threads import deferToThread

        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Bern"})), Reply(text="Bern: 3 C."))

        def agent() -> str:
            import openai

            client = openai.OpenAI(base_url=d.url + "/v1", api_key="unused")
            messages: list[Any] = [{"role": "user", "content": "Weather in Bern?"}]
            for _ in range(4):
                reply = client.chat.completions.create(model="claude-sonnet-4", messages=messages, tools=[WEATHER])
                msg = reply.choices[0].message
                if not msg.tool_calls:
                    return msg.content or ""
                messages.append(msg.model_dump(exclude_none=True))
                for call in msg.tool_calls:
                    assert isinstance(call, ChatCompletionMessageFunctionToolCall), call
                    args = json.loads(call.function.arguments)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": "3 C in " + args["city"]})
            raise AssertionError("the loop did not end")

        answer = await deferToThread(agent)
        self.assertEqual(answer, "Bern: 3 C.")
        self.assertEqual(d.manager.stats.tool_hits, 1)
        self.assertIn("3 C in Bern", json.dumps(tool_results(d)))
