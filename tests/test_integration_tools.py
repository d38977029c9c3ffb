"""
Function calling through the CLI: the client's tools served to the CLI as
MCP tools by the daemon, the turn paused at the call and resumed with the
client's results.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, start, wait_for

WEATHER = {
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
    out = []
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
        self.assertEqual(result["tool_use_id"], call["id"])
        self.assertIn("22 C, sunny", json.dumps(result["content"]))
