"""
The OpenAI Responses API (POST /v1/responses) with the real CLI and the
fake upstream, driven by the official C{openai} SDK in a thread.
"""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

import openai
from openai.types.responses import (
    FunctionToolParam,
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInputParam,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseStreamEvent,
)
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from claudeproxy.engine.ids import call_alias
from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, scaled, start, wait_for

T = TypeVar("T")

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def response_of(event: ResponseStreamEvent) -> Response:
    """
    The response that ends a stream (C{event} its last or, before an
    C{error} event, last but one).
    """
    assert isinstance(event, (ResponseCompletedEvent, ResponseIncompleteEvent, ResponseFailedEvent)), event.type
    return event.response


def is_a(value: object, kind: type[T]) -> T:
    """
    C{value}, which must be a C{kind} (an output item, a content part).
    """
    assert isinstance(value, kind), value
    return value


def client(d: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=d.url + "/v1", api_key="x", max_retries=0)


async def sdk(d: Running, call: Callable[[openai.OpenAI], T]) -> T:
    """
    Run C{call} with an SDK client in a thread (the SDK blocks).
    """
    c = client(d)
    try:
        return await deferToThread(call, c)
    finally:
        c.close()


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


def system_text(d: Running, n: int = -1) -> str:
    return "".join(b.get("text", "") for b in d.fake.message_requests[n].body.get("system", []))


class CreateTests(TestCase):
    timeout = 60

    async def test_non_stream(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Hello from Claude.", input_tokens=20, output_tokens=5, cache_read=3))
        resp = await sdk(d, lambda c: c.responses.create(model="sonnet", input="Say hello", metadata={"k": "v"}))
        self.assertEqual(resp.output_text, "Hello from Claude.")
        self.assertTrue(resp.id.startswith("resp_"))
        self.assertEqual(resp.object, "response")
        self.assertEqual(resp.status, "completed")
        self.assertEqual(resp.model, "sonnet", "the id the client asked for")
        (item,) = resp.output
        message = is_a(item, ResponseOutputMessage)
        self.assertEqual((message.type, message.role, message.status), ("message", "assistant", "completed"))
        assert resp.usage is not None
        self.assertEqual((resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens), (23, 5, 28))
        self.assertEqual(resp.usage.input_tokens_details.cached_tokens, 3)
        self.assertEqual(resp.metadata, {"k": "v"})
        # what reached upstream: the input as the user turn
        sent = d.fake.message_requests[0].turns
        self.assertIn("Say hello", json.dumps(sent))
        # and the response is kept: GET returns it, DELETE forgets it
        again = await sdk(d, lambda c: c.responses.retrieve(resp.id))
        self.assertEqual((again.id, again.output_text), (resp.id, "Hello from Claude."))
        await sdk(d, lambda c: c.responses.delete(resp.id))
        with self.assertRaises(openai.NotFoundError):
            await sdk(d, lambda c: c.responses.retrieve(resp.id))

    async def test_stream(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Streaming words arrive.", chunk=5))

        def run(c: openai.OpenAI) -> list[Any]:
            return list(c.responses.create(model="sonnet", input="stream please", stream=True))

        events = await sdk(d, run)
        types = [e.type for e in events]
        self.assertEqual(
            types[:4],
            ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"],
        )
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        self.assertEqual("".join(deltas), "Streaming words arrive.")
        self.assertGreater(len(deltas), 1)
        self.assertEqual(
            types[4 + len(deltas) :],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ],
        )
        self.assertEqual([e.sequence_number for e in events], list(range(len(events))))
        final = events[-1].response
        self.assertEqual(final.output_text, "Streaming words arrive.")
        self.assertEqual(final.status, "completed")
        self.assertEqual(final.model, "sonnet")
        assert final.usage is not None
        self.assertEqual(final.usage.output_tokens, 7)
        self.assertEqual(events[0].response.id, final.id)
        self.assertEqual(events[0].response.status, "in_progress")

    async def test_stream_helper(self) -> None:
        """
        The SDK's own accumulating stream helper accepts the event order.
        """
        d = await start(self)
        d.fake.push(Reply(thinking="Think first.", text="Then answer."))

        def run(c: openai.OpenAI) -> Any:
            with c.responses.stream(model="sonnet", input="x") as stream:
                for _ in stream:
                    pass
                return stream.get_final_response()

        final = await sdk(d, run)
        self.assertEqual(final.output_text, "Then answer.")
        self.assertEqual([o.type for o in final.output], ["reasoning", "message"])

    async def test_instructions_and_developer_items(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Ahoy."))
        resp = await sdk(
            d,
            lambda c: c.responses.create(
                model="sonnet",
                instructions="Talk like a pirate.",
                input=[
                    {"role": "developer", "content": "Keep it short."},
                    {"role": "user", "content": [{"type": "input_text", "text": "Greet me"}]},
                ],
            ),
        )
        self.assertEqual(resp.output_text, "Ahoy.")
        self.assertEqual(resp.instructions, "Talk like a pirate.")
        system = system_text(d)
        self.assertIn("Talk like a pirate.", system)
        self.assertIn("Keep it short.", system)
        self.assertNotIn("Talk like a pirate.", json.dumps(d.fake.message_requests[0].body["messages"]))

    async def test_multi_turn_items_and_image(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="A red dot."))
        resp = await sdk(
            d,
            lambda c: c.responses.create(
                model="sonnet",
                input=[
                    {"role": "user", "content": "Remember the word 'kiwi'."},
                    # a client's echo of the previous response's output item
                    {
                        "type": "message",
                        "id": "msg_1",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": "Noted: kiwi.", "annotations": []}],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "What is in this image?"},
                            {"type": "input_image", "image_url": "data:image/png;base64," + PNG, "detail": "auto"},
                        ],
                    },
                ],
            ),
        )
        self.assertEqual(resp.output_text, "A red dot.")
        sent = d.fake.message_requests[0].turns
        flat = json.dumps(sent)
        self.assertIn("kiwi", flat)
        self.assertIn("Noted: kiwi.", flat)
        images = [b for m in sent for b in m["content"] if isinstance(b, dict) and b.get("type") == "image"]
        self.assertEqual(len(images), 1)
        self.assertEqual(images[0]["source"], {"type": "base64", "media_type": "image/png", "data": PNG})

    async def test_reasoning_item(self) -> None:
        d = await start(self)
        d.fake.push(Reply(thinking="Let me think about it.", text="42."))
        resp = await sdk(d, lambda c: c.responses.create(model="opus", input="Answer?", reasoning={"effort": "low"}))
        self.assertEqual(resp.output_text, "42.")
        reasoning, message = resp.output
        assert reasoning.type == "reasoning"
        self.assertEqual([s.text for s in reasoning.summary], ["Let me think about it."])
        self.assertTrue(reasoning.id.startswith("rs_"))
        self.assertEqual(d.fake.message_requests[0].body["output_config"], {"effort": "low"})
        assert resp.reasoning is not None
        self.assertEqual(resp.reasoning.effort, "low")
        # streamed: the reasoning summary events come first, then the text
        d.fake.push(Reply(thinking="Thinking again.", text="43."))
        events = await sdk(d, lambda c: list(c.responses.create(model="opus", input="Again?", stream=True)))
        types = [e.type for e in events]
        self.assertEqual(
            [t for t in types if "reasoning" in t],
            [
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
            ],
        )
        self.assertLess(types.index("response.reasoning_summary_part.done"), types.index("response.content_part.added"))
        last = response_of(events[-1])
        self.assertEqual([o.type for o in last.output], ["reasoning", "message"])
        self.assertEqual(is_a(last.output[0], ResponseReasoningItem).summary[0].text, "Thinking again.")

    async def test_structured_output(self) -> None:
        d = await start(self)
        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", {"name": "Ada", "age": 36}),))
        )
        resp = await sdk(
            d,
            lambda c: c.responses.create(
                model="sonnet",
                input="Who?",
                text={"format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}},
            ),
        )
        self.assertEqual(json.loads(resp.output_text), {"name": "Ada", "age": 36})
        assert resp.text is not None and resp.text.format is not None
        self.assertEqual(resp.text.format.type, "json_schema")
        tools = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in tools], ["StructuredOutput"])
        self.assertEqual(tools[0]["input_schema"]["required"], ["name", "age"])

    async def test_structured_output_parse(self) -> None:
        """
        C{responses.parse} with a pydantic model, streamed through the
        SDK's helper.
        """
        import pydantic

        class Person(pydantic.BaseModel):
            name: str
            age: int

        d = await start(self)
        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", {"name": "Bo", "age": 3}),))
        )
        parsed = await sdk(d, lambda c: c.responses.parse(model="sonnet", input="Who?", text_format=Person))
        self.assertEqual(parsed.output_parsed, Person(name="Bo", age=3))

    async def test_max_output_tokens_incomplete(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="This reply is cut", stop_reason="max_tokens", output_tokens=5))
        resp = await sdk(d, lambda c: c.responses.create(model="sonnet", input="x", max_output_tokens=5))
        self.assertEqual(resp.status, "incomplete")
        assert resp.incomplete_details is not None
        self.assertEqual(resp.incomplete_details.reason, "max_output_tokens")
        self.assertEqual(resp.output_text, "This reply is cut")
        self.assertEqual(resp.max_output_tokens, 5)
        self.assertEqual(d.fake.message_requests[0].body["max_tokens"], 5)
        # streamed: the stream ends with response.incomplete
        d.fake.push(Reply(text="cut short", stop_reason="max_tokens"))
        events = await sdk(
            d, lambda c: list(c.responses.create(model="sonnet", input="x", max_output_tokens=3, stream=True))
        )
        self.assertEqual(events[-1].type, "response.incomplete")
        incomplete = response_of(events[-1]).incomplete_details
        assert incomplete is not None
        self.assertEqual(incomplete.reason, "max_output_tokens")
        self.assertEqual(response_of(events[-1]).output_text, "cut short")


class ConversationStateTests(TestCase):
    timeout = 60

    async def test_previous_response_id_continues_the_process(self) -> None:
        d = await start(self, max_sessions=2)
        d.fake.push(Reply(text="Paris."), Reply(text="About 2 million."), Reply(text="You're welcome."))
        first = await sdk(
            d, lambda c: c.responses.create(model="sonnet", instructions="Be brief.", input="Capital of France?")
        )
        self.assertEqual(first.output_text, "Paris.")
        self.assertEqual(d.manager.session_count, 1)
        spawned = d.manager.stats.spawned
        second = await sdk(
            d,
            lambda c: c.responses.create(
                model="sonnet", instructions="Be brief.", input="Population?", previous_response_id=first.id
            ),
        )
        self.assertEqual(second.output_text, "About 2 million.")
        self.assertEqual(second.previous_response_id, first.id)
        self.assertEqual(d.manager.stats.session_hits, 1)
        self.assertEqual(d.manager.stats.spawned, spawned)
        # upstream saw the earlier turns as real messages, not a transcript
        sent = d.fake.message_requests[-1].turns
        self.assertEqual([m["role"] for m in sent], ["user", "assistant", "user"])
        self.assertNotIn("conversation_history", json.dumps(sent))
        # streamed third turn continues it again
        events = await sdk(
            d,
            lambda c: list(
                c.responses.create(
                    model="sonnet",
                    instructions="Be brief.",
                    input="Thanks",
                    previous_response_id=second.id,
                    stream=True,
                )
            ),
        )
        self.assertEqual(response_of(events[-1]).output_text, "You're welcome.")
        self.assertEqual(d.manager.stats.session_hits, 2)
        self.assertEqual(d.manager.stats.spawned, spawned)

    async def test_previous_response_id_on_a_fresh_process(self) -> None:
        """
        Without a kept process the stored conversation still goes upstream
        (as a transcript).
        """
        d = await start(self)
        d.fake.push(Reply(text="The code word is mango."), Reply(text="mango"))
        first = await sdk(d, lambda c: c.responses.create(model="sonnet", input="Pick a code word."))
        second = await sdk(
            d, lambda c: c.responses.create(model="sonnet", input="Repeat it.", previous_response_id=first.id)
        )
        self.assertEqual(second.output_text, "mango")
        sent = json.dumps(d.fake.message_requests[-1].body["messages"])
        self.assertIn("The code word is mango.", sent)
        self.assertIn("Pick a code word.", sent)

    async def test_unknown_previous_response_id(self) -> None:
        d = await start(self)
        with self.assertRaises(openai.NotFoundError) as caught:
            await sdk(d, lambda c: c.responses.create(model="sonnet", input="x", previous_response_id="resp_nope"))
        body: Any = caught.exception.body
        self.assertEqual(body["code"], "previous_response_not_found")
        self.assertEqual(body["param"], "previous_response_id")
        self.assertEqual(d.manager.stats.spawned, 0)
        self.assertEqual(d.fake.message_requests, [])


class FunctionToolTests(TestCase):
    timeout = 60

    async def test_function_call_then_output_with_previous_response_id(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), Reply(text="It is sunny in Paris."))
        first = await sdk(d, lambda c: c.responses.create(model="sonnet", input="Weather in Paris?", tools=[WEATHER]))
        self.assertEqual(first.status, "completed")
        (call,) = first.output
        assert call.type == "function_call"
        self.assertEqual(call.name, "get_weather")
        self.assertEqual(json.loads(call.arguments), {"city": "Paris"})
        # OpenAI's shape: call_ and 24 letters and digits
        self.assertRegex(call.call_id, r"^call_[A-Za-z0-9]{24}$")
        assert call.id is not None
        self.assertTrue(call.id.startswith("fc_"))
        offered = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in offered], ["mcp__cp__get_weather"])
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        spawned = d.manager.stats.spawned
        second = await sdk(
            d,
            lambda c: c.responses.create(
                model="sonnet",
                previous_response_id=first.id,
                input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22 C, sunny"}],
                tools=[WEATHER],
            ),
        )
        self.assertEqual(second.output_text, "It is sunny in Paris.")
        self.assertEqual(d.manager.stats.spawned, spawned)
        self.assertEqual(d.manager.stats.tool_hits, 1)
        (result,) = tool_results(d)
        # the upstream's own id for it
        self.assertEqual(call_alias(result["tool_use_id"]), call.call_id)
        self.assertIn("22 C, sunny", json.dumps(result["content"]))

    async def test_function_call_output_with_full_input(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Oslo"}), text="Checking."), Reply(text="Cold in Oslo."))
        items: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
        first = await sdk(d, lambda c: c.responses.create(model="sonnet", input=items, tools=[WEATHER]))
        self.assertEqual([o.type for o in first.output], ["message", "function_call"])
        self.assertEqual(first.output_text, "Checking.")
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        spawned = d.manager.stats.spawned
        call = first.output[1]
        assert call.type == "function_call"
        # the SDK's documented pattern: the output objects go back as input
        items += first.output
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": "-5 C"})
        second = await sdk(d, lambda c: c.responses.create(model="sonnet", input=items, tools=[WEATHER]))
        self.assertEqual(second.output_text, "Cold in Oslo.")
        self.assertEqual(d.manager.stats.spawned, spawned)
        self.assertEqual(d.manager.stats.tool_hits, 1)
        self.assertIn("-5 C", json.dumps(tool_results(d)))

    async def test_streamed_function_call(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Bern"})), Reply(text="Bern: 3 C."))

        def run(c: openai.OpenAI) -> list[Any]:
            return list(c.responses.create(model="sonnet", input="Bern?", tools=[WEATHER], stream=True))

        events = await sdk(d, run)
        # the arguments as the model writes them, in pieces
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        self.assertGreater(len(deltas), 1)
        types = [e.type for e in events if e.type != "response.function_call_arguments.delta"]
        self.assertEqual(
            types,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ],
        )
        events = [e for e in events if e.type != "response.function_call_arguments.delta"]
        self.assertEqual(json.loads(events[3].arguments), {"city": "Bern"})
        self.assertEqual("".join(deltas), events[3].arguments)
        added, done = events[2].item, events[4].item
        self.assertEqual((added.status, done.status), ("in_progress", "completed"))
        self.assertEqual(added.id, done.id)
        final = events[-1].response
        (call,) = final.output
        self.assertEqual(call.call_id, done.call_id)
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        events = await sdk(
            d,
            lambda c: list(
                c.responses.create(
                    model="sonnet",
                    previous_response_id=final.id,
                    input=[{"type": "function_call_output", "call_id": call.call_id, "output": "3 C"}],
                    tools=[WEATHER],
                    stream=True,
                )
            ),
        )
        self.assertEqual(response_of(events[-1]).output_text, "Bern: 3 C.")
        self.assertEqual(d.manager.stats.tool_hits, 1)

    async def test_agent_loop_with_sdk(self) -> None:
        d = await start(self)
        d.fake.push(
            calls(("get_weather", {"city": "Rome"})), calls(("get_weather", {"city": "Lima"})), Reply(text="Done.")
        )

        def agent(c: openai.OpenAI) -> str:
            resp = c.responses.create(model="claude-sonnet-4", input="Rome, then Lima", tools=[WEATHER])
            for _ in range(4):
                outputs: ResponseInputParam = [
                    {
                        "type": "function_call_output",
                        "call_id": o.call_id,
                        "output": "warm in " + json.loads(o.arguments)["city"],
                    }
                    for o in resp.output
                    if o.type == "function_call"
                ]
                if not outputs:
                    return resp.output_text
                resp = c.responses.create(
                    model="claude-sonnet-4", input=outputs, previous_response_id=resp.id, tools=[WEATHER]
                )
            raise AssertionError("the loop did not end")

        self.assertEqual(await sdk(d, agent), "Done.")
        self.assertEqual(d.manager.stats.tool_hits, 2)
        self.assertEqual(d.manager.stats.spawned, 1)
        self.assertIn("warm in Lima", json.dumps(tool_results(d)))


class ErrorTests(TestCase):
    timeout = 60

    async def test_bad_request_names_the_field(self) -> None:
        d = await start(self)
        with self.assertRaises(openai.BadRequestError) as caught:
            await sdk(
                d,
                lambda c: c.responses.create(model="sonnet", input="x", tools=[{"type": 5}]),  # type: ignore[list-item, misc]
            )
        body: Any = caught.exception.body
        self.assertEqual(body["param"], "tools[0].type")
        self.assertEqual(caught.exception.response.headers.get("x-should-retry"), "false")

    async def test_upstream_error_before_output(self) -> None:
        d = await start(self)
        # every call refused, as the real API would (CLI 2.1.332 tries a 400
        # once more with one beta fewer)
        d.fake.default = Reply(
            status=400, error_type="invalid_request_error", error_message="messages: text is too long"
        )
        with self.assertRaises(openai.BadRequestError) as caught:
            await sdk(d, lambda c: list(c.responses.create(model="sonnet", input="x", stream=True)))
        self.assertIn("text is too long", str(caught.exception))
        self.assertEqual(caught.exception.status_code, 400)

    async def test_error_after_stream_started(self) -> None:
        d = await start(self, warm=1, idle_timeout=scaled(3.0))
        await wait_for(lambda: d.manager.idle_count == 1, timeout=20)
        d.fake.default = Reply(text="first words, then silence forever", chunk=6, hang_after=2)
        events = await sdk(d, lambda c: list(c.responses.create(model="sonnet", input="x", stream=True)))
        types = [e.type for e in events]
        self.assertEqual(types[-2:], ["response.failed", "error"])
        failed = response_of(events[-2])
        self.assertEqual(failed.status, "failed")
        assert failed.error is not None
        self.assertIn("--idle-timeout", failed.error.message)
        message = is_a(failed.output[0], ResponseOutputMessage)
        self.assertEqual(message.status, "incomplete")
        self.assertEqual(is_a(message.content[0], ResponseOutputText).text, "first words,")
        self.assertEqual(is_a(events[-1], ResponseErrorEvent).code, "timeout")
