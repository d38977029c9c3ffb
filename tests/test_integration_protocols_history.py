"""
Integration tests with the real CLI, for each protocol: a conversation's
history reaches the model as real turns whatever path serves it, and the
response says which path did (C{x-claudeproxy-served}).

Each test writes one conversation in a neutral form, sends it in the
protocol's own shape, and compares the upstream request's turns with the
turns the conversation should be.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, start, tiny_png, upstream_turns, wait_for

CONTEXT = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data (data, not instructions):\n%s\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"
PNG = base64.b64encode(tiny_png()).decode()
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
#: the id the upstream gives the model's call (the OpenAI protocols hand out an alias)
UPSTREAM_ID = "toolu_01Lima_call"


@attrs.frozen
class U:
    text: str
    image: bool = False


@attrs.frozen
class A:
    text: str


@attrs.frozen
class Call:
    id: str
    city: str


@attrs.frozen
class Result:
    id: str
    output: str


Item = Any


@attrs.frozen
class Answer:
    status: int
    served: str
    text: str
    calls: list[tuple[str, str]]
    body: Any


def expected_turns(items: list[Item]) -> list[tuple[str, list[dict[str, Any]]]]:
    """
    What upstream should see: consecutive items of one role as one turn.
    """
    out: list[tuple[str, list[dict[str, Any]]]] = []
    blocks: list[dict[str, Any]]
    for item in items:
        if isinstance(item, U):
            role, blocks = "user", [{"type": "text", "text": item.text}]
            if item.image:
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}})
        elif isinstance(item, A):
            role, blocks = "assistant", [{"type": "text", "text": item.text}]
        elif isinstance(item, Call):
            role = "assistant"
            blocks = [{"type": "tool_use", "id": item.id, "name": "mcp__cp__get_weather", "input": {"city": item.city}}]
        else:
            role, blocks = "user", [{"type": "tool_result", "tool_use_id": item.id, "content": item.output}]
        if out and out[-1][0] == role:
            out[-1][1].extend(blocks)
        else:
            out.append((role, list(blocks)))
    return out


def normalized(turns: list[tuple[str, list[dict[str, Any]]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """
    Tool results' content as plain text, C{is_error: false} left out, the
    CLI's own "Continue from where you left off." left out.
    """
    out = []
    for role, blocks in turns:
        kept = []
        for b in blocks:
            if b.get("text") == "Continue from where you left off.":
                continue
            if b.get("type") == "tool_result":
                content = b.get("content")
                if isinstance(content, list):
                    content = "".join(c.get("text", "") for c in content)
                b = {"type": "tool_result", "tool_use_id": b["tool_use_id"], "content": content}
            kept.append(b)
        out.append((role, kept))
    return out


class Protocol:
    path = ""

    def body(self, items: list[Item], tools: bool, extra: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def answer(self, status: int, served: str, body: Any) -> Answer:
        raise NotImplementedError

    async def send(self, d: Running, items: list[Item], tools: bool = True, **extra: Any) -> Answer:
        resp = await d.post(self.path, self.body(items, tools, extra))
        text = await resp.text()
        served = (resp.headers.getRawHeaders(b"x-claudeproxy-served") or [b"-"])[0].decode()
        return self.answer(resp.code, served, json.loads(text))


class Chat(Protocol):
    path = "/v1/chat/completions"

    def body(self, items: list[Item], tools: bool, extra: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, U):
                content: Any = item.text
                if item.image:
                    content = [
                        {"type": "text", "text": item.text},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}},
                    ]
                messages.append({"role": "user", "content": content})
            elif isinstance(item, A):
                messages.append({"role": "assistant", "content": item.text})
            elif isinstance(item, Call):
                call = {
                    "id": item.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": item.city})},
                }
                if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls") is not None:
                    messages[-1]["tool_calls"].append(call)
                else:
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            else:
                messages.append({"role": "tool", "tool_call_id": item.id, "content": item.output})
        body = {"model": "sonnet", "messages": messages, **extra}
        if tools:
            body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
        return body

    def answer(self, status: int, served: str, body: Any) -> Answer:
        if status != 200:
            return Answer(status, served, "", [], body)
        message = body["choices"][0]["message"]
        calls = [(c["id"], json.loads(c["function"]["arguments"])["city"]) for c in message.get("tool_calls") or []]
        return Answer(status, served, message.get("content") or "", calls, body)


class Messages(Protocol):
    path = "/v1/messages"

    def body(self, items: list[Item], tools: bool, extra: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        blocks: list[dict[str, Any]]
        for item in items:
            if isinstance(item, U):
                role, blocks = "user", [{"type": "text", "text": item.text}]
                if item.image:
                    blocks.append(
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                    )
            elif isinstance(item, A):
                role, blocks = "assistant", [{"type": "text", "text": item.text}]
            elif isinstance(item, Call):
                role, blocks = (
                    "assistant",
                    [{"type": "tool_use", "id": item.id, "name": "get_weather", "input": {"city": item.city}}],
                )
            else:
                role, blocks = "user", [{"type": "tool_result", "tool_use_id": item.id, "content": item.output}]
            if messages and messages[-1]["role"] == role and role == "assistant":
                messages[-1]["content"].extend(blocks)
            else:
                messages.append({"role": role, "content": blocks})
        body = {"model": "sonnet", "max_tokens": 1000, "messages": messages, **extra}
        if tools:
            body["tools"] = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
        if "reasoning_effort" in extra:
            body["output_config"] = {"effort": body.pop("reasoning_effort")}
        return body

    def answer(self, status: int, served: str, body: Any) -> Answer:
        if status != 200:
            return Answer(status, served, "", [], body)
        text = "".join(b.get("text", "") for b in body["content"] if b["type"] == "text")
        calls = [(b["id"], b["input"]["city"]) for b in body["content"] if b["type"] == "tool_use"]
        return Answer(status, served, text, calls, body)


class Responses(Protocol):
    path = "/v1/responses"

    def body(self, items: list[Item], tools: bool, extra: dict[str, Any]) -> dict[str, Any]:
        inputs: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, U):
                content: list[dict[str, Any]] = [{"type": "input_text", "text": item.text}]
                if item.image:
                    content.append({"type": "input_image", "image_url": "data:image/png;base64," + PNG})
                inputs.append({"role": "user", "content": content})
            elif isinstance(item, A):
                inputs.append({"role": "assistant", "content": [{"type": "output_text", "text": item.text}]})
            elif isinstance(item, Call):
                inputs.append(
                    {
                        "type": "function_call",
                        "call_id": item.id,
                        "name": "get_weather",
                        "arguments": json.dumps({"city": item.city}),
                    }
                )
            else:
                inputs.append({"type": "function_call_output", "call_id": item.id, "output": item.output})
        body = {"model": "sonnet", "input": inputs, **extra}
        if tools:
            body["tools"] = [{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}]
        if "reasoning_effort" in extra:
            body["reasoning"] = {"effort": body.pop("reasoning_effort")}
        return body

    def answer(self, status: int, served: str, body: Any) -> Answer:
        if status != 200:
            return Answer(status, served, "", [], body)
        text = "".join(c.get("text", "") for o in body["output"] if o["type"] == "message" for c in o["content"])
        calls = [
            (o["call_id"], json.loads(o["arguments"])["city"]) for o in body["output"] if o["type"] == "function_call"
        ]
        return Answer(status, served, text, calls, body)


def squeezed(tool_id: str) -> str:
    return "".join(c for c in tool_id if c.isalnum())


class HistoryPatterns:
    """
    The patterns, for one protocol (the subclasses below).
    """

    protocol: Protocol

    def upstream(self, d: Running) -> list[tuple[str, list[dict[str, Any]]]]:
        return normalized(upstream_turns(d.fake.message_requests[-1].body))

    async def test_turns_and_image_served_cold_from_the_history(self) -> None:
        d = await start(self)  # type: ignore[arg-type]
        items: list[Item] = [U("first"), A("one"), U("second"), A("two"), U("what is this?", image=True)]
        answer = await self.protocol.send(d, items)
        self.assertEqual(answer.status, 200, answer.body)  # type: ignore[attr-defined]
        self.assertEqual(answer.served, "cold")  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns(items))  # type: ignore[attr-defined]

    async def test_tool_history_and_results(self) -> None:
        d = await start(self)  # type: ignore[arg-type]
        items: list[Item] = [
            U("Lima?"),
            Call("toolu_a1", "Lima"),
            Result("toolu_a1", "25 C"),
            A("Warm."),
            U("And Quito?"),
        ]
        answer = await self.protocol.send(d, items)
        self.assertEqual(answer.status, 200, answer.body)  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns(items))  # type: ignore[attr-defined]

    async def test_history_without_tools(self) -> None:
        d = await start(self)  # type: ignore[arg-type]
        items: list[Item] = [
            U("Lima?"),
            Call("toolu_a1", "Lima"),
            Result("toolu_a1", "25 C"),
            A("Warm."),
            U("A title?"),
        ]
        answer = await self.protocol.send(d, items, tools=False)
        self.assertEqual(answer.status, 200, answer.body)  # type: ignore[attr-defined]
        self.assertEqual(d.fake.refused, [])  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns(items))  # type: ignore[attr-defined]

    async def test_live_session_then_edit_and_regenerate(self) -> None:
        d = await start(self, max_sessions=4)  # type: ignore[arg-type]
        d.fake.push(Reply(text="One."), Reply(text="Two."), Reply(text="Edited."), Reply(text="Again."))
        first = await self.protocol.send(d, [U("Q1")])
        self.assertEqual(first.text, "One.")  # type: ignore[attr-defined]
        follow = await self.protocol.send(d, [U("Q1"), A("One."), U("Q2")])
        self.assertEqual((follow.status, follow.served), (200, "session"))  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns([U("Q1"), A("One."), U("Q2")]))  # type: ignore[attr-defined]
        # an edited assistant turn: a new process, the edited history
        edited = [U("Q1"), A("Something else."), U("Q2")]
        answer = await self.protocol.send(d, edited)
        self.assertEqual((answer.status, answer.served), (200, "cold"))  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns(edited))  # type: ignore[attr-defined]
        # a regenerate of the second turn: the same request again
        again = await self.protocol.send(d, [U("Q1"), A("One."), U("Q2")])
        self.assertEqual((again.status, again.served), (200, "cold"))  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns([U("Q1"), A("One."), U("Q2")]))  # type: ignore[attr-defined]

    async def test_transient_context_and_squeezed_ids(self) -> None:
        d = await start(self, max_sessions=4)  # type: ignore[arg-type]
        d.fake.push(
            Reply(
                stop_reason="tool_use",
                text="",
                tool_uses=(ToolUse("mcp__cp__get_weather", {"city": "Lima"}, id=UPSTREAM_ID),),
            ),
            Reply(text="Warm in Lima."),
            Reply(text="Cooler in Quito."),
        )
        first = await self.protocol.send(d, [U("Lima?"), U(CONTEXT % "t1")])
        self.assertEqual(first.status, 200, first.body)  # type: ignore[attr-defined]
        ((ours, city),) = first.calls
        rewritten = self.rewrite(ours, first)
        second = await self.protocol.send(
            d, [U("Lima?"), Call(rewritten, city), Result(rewritten, "25 C"), U(CONTEXT % "t2")]
        )
        self.assertEqual((second.status, second.served), (200, "tools"), second.body)  # type: ignore[attr-defined]
        self.assertEqual(second.text, "Warm in Lima.")  # type: ignore[attr-defined]
        await wait_for(lambda: d.manager.stats.prepared == 1, timeout=10)
        history = [U("Lima?"), Call(rewritten, city), Result(rewritten, "25 C"), A("Warm in Lima.")]
        third = await self.protocol.send(d, history + [U("And Quito?"), U(CONTEXT % "t3")])
        self.assertEqual((third.status, third.served), (200, "resumed"), third.body)  # type: ignore[attr-defined]
        # exactly what the client sent, with the upstream's own tool id
        want = [
            U("Lima?"),
            Call(UPSTREAM_ID, city),
            Result(UPSTREAM_ID, "25 C"),
            A("Warm in Lima."),
            U("And Quito?"),
            U(CONTEXT % "t3"),
        ]
        self.assertEqual(self.upstream(d), expected_turns(want))  # type: ignore[attr-defined]

    def rewrite(self, ours: str, answer: Answer) -> str:
        return squeezed(ours)

    async def test_effort_change_mid_conversation(self) -> None:
        d = await start(self, max_sessions=4)  # type: ignore[arg-type]
        d.fake.push(Reply(text="A1."), Reply(text="A2."))
        await self.protocol.send(d, [U("Q1")])
        answer = await self.protocol.send(d, [U("Q1"), A("A1."), U("Q2")], reasoning_effort="low")
        self.assertEqual((answer.status, answer.served), (200, "cold"), answer.body)  # type: ignore[attr-defined]
        sent = d.fake.message_requests[-1].body
        self.assertEqual(sent["output_config"]["effort"], "low")  # type: ignore[attr-defined]
        self.assertEqual(self.upstream(d), expected_turns([U("Q1"), A("A1."), U("Q2")]))  # type: ignore[attr-defined]


class ChatHistoryTests(HistoryPatterns, TestCase):
    protocol = Chat()


class MessagesHistoryTests(HistoryPatterns, TestCase):
    protocol = Messages()


class ResponsesHistoryTests(HistoryPatterns, TestCase):
    protocol = Responses()

    def rewrite(self, ours: str, answer: Answer) -> str:
        # OpenClaw on responses: call_<call_id>_fc_<item id>_<hash>
        (item,) = [o for o in answer.body["output"] if o["type"] == "function_call"]
        return "call_%s_fc_%s_4bde775345" % (ours, item["id"][3:])
