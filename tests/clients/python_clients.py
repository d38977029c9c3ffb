# ruff: noqa: B023 - each scenario function runs within its loop iteration
"""
Plain, streamed, multi-turn, tool-loop and structured-output scenarios of
one Python client library against the daemon at $CLAUDEPROXY_URL (run by
tests/clients.sh).  The daemon's upstream is the fake of
tests/clients/serve.py: text, a call of the offered tool when the prompt
says "use the tool", a schema-shaped value for structured output.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    # the client venvs have no openai but the openai one: types only
    from openai.types.chat import ChatCompletionFunctionToolParam

URL = os.environ["CLAUDEPROXY_URL"]
V1 = URL + "/v1"
MODEL = "claude-sonnet-4"
FAKE = "Hello from the fake upstream."
TOOL_PROMPT = "Use the tool for Bern."
PARAMS: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather in a city", "parameters": PARAMS},
}
CITY_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["name", "population"],
    "additionalProperties": False,
}
failures: list[str] = []


def check(name: str, ok: Any, detail: Any = "") -> None:
    print("   %-24s %s %s" % (name, "ok" if ok else "FAILED", "" if ok else str(detail)[:600]), flush=True)
    if not ok:
        failures.append(name)


def scenario(name: str, fn: Callable[[], Any]) -> None:
    """
    Run one scenario; an exception fails it (and only it).
    """
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - any failure is reported
        check(name, False, "%s: %s" % (type(e).__name__, e))


def openai_sdk() -> None:
    from openai import OpenAI
    from pydantic import BaseModel

    c = OpenAI(base_url=V1, api_key="x")
    hi: list[Any] = [{"role": "user", "content": "hi"}]

    def plain() -> None:
        r = c.chat.completions.create(model=MODEL, messages=hi)
        check("chat plain", r.choices[0].message.content == FAKE and r.model == MODEL, r)

    def stream() -> None:
        chunks = list(
            c.chat.completions.create(model=MODEL, messages=hi, stream=True, stream_options={"include_usage": True})
        )
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        check("chat stream", text == FAKE and chunks[-1].usage is not None, chunks[-2:])

    def multi() -> None:
        msgs = hi + [{"role": "assistant", "content": FAKE}, {"role": "user", "content": "again"}]
        check("chat multi-turn", c.chat.completions.create(model=MODEL, messages=msgs).choices[0].message.content)

    def tools() -> None:
        msgs: list[Any] = [{"role": "user", "content": TOOL_PROMPT}]
        r = c.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER])
        call = (r.choices[0].message.tool_calls or [])[0]
        msgs += [
            r.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        r2 = c.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER])
        check(
            "chat tool-loop", r.choices[0].finish_reason == "tool_calls" and r2.choices[0].finish_reason == "stop", r2
        )

    def structured() -> None:
        class City(BaseModel):
            name: str
            population: int

        r = c.beta.chat.completions.parse(model=MODEL, messages=hi, response_format=City)
        check("chat structured", r.choices[0].message.parsed is not None, r)

    def responses() -> None:
        r1 = c.responses.create(model=MODEL, input="hi")
        r2 = c.responses.create(model=MODEL, input="again", previous_response_id=r1.id)
        check("responses multi-turn", r1.output_text == FAKE and r2.output_text == FAKE and r1.model == MODEL, r2)
        with c.responses.stream(model=MODEL, input="hi") as s:
            done = s.get_final_response()
        check("responses stream", done.output_text == FAKE, done)
        tool = {"type": "function", "name": "get_weather", "parameters": PARAMS}
        r = c.responses.create(model=MODEL, input=TOOL_PROMPT, tools=[tool])  # type: ignore[list-item]
        call = [i for i in r.output if i.type == "function_call"][0]
        r3 = c.responses.create(
            model=MODEL,
            previous_response_id=r.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
            tools=[tool],  # type: ignore[list-item]
        )
        check("responses tool-loop", r3.output_text == FAKE, r3)

    for name, fn in (
        ("chat plain", plain),
        ("chat stream", stream),
        ("chat multi-turn", multi),
        ("chat tool-loop", tools),
        ("chat structured", structured),
        ("responses", responses),
    ):
        scenario(name, fn)


def anthropic_sdk() -> None:
    import anthropic

    c = anthropic.Anthropic(base_url=URL, api_key="x")
    hi: list[Any] = [{"role": "user", "content": "hi"}]
    tool = {"name": "get_weather", "description": "Weather", "input_schema": PARAMS}

    def plain() -> None:
        m = c.messages.create(model=MODEL, max_tokens=100, messages=hi)
        check("plain", m.content[0].type == "text" and m.model == MODEL, m)

    def stream() -> None:
        with c.messages.stream(model=MODEL, max_tokens=100, messages=hi) as s:
            check("stream", "".join(s.text_stream) == FAKE)

    def multi() -> None:
        msgs = hi + [{"role": "assistant", "content": FAKE}, {"role": "user", "content": "again"}]
        check("multi-turn", c.messages.create(model=MODEL, max_tokens=100, messages=msgs).content[0].type == "text")

    def tools() -> None:
        msgs: list[Any] = [{"role": "user", "content": TOOL_PROMPT}]
        m = c.messages.create(model=MODEL, max_tokens=100, messages=msgs, tools=[tool])  # type: ignore[list-item]
        use = [b for b in m.content if b.type == "tool_use"][0]
        msgs += [
            {"role": "assistant", "content": [b.model_dump() for b in m.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
        ]
        m = c.messages.create(model=MODEL, max_tokens=100, messages=msgs, tools=[tool])  # type: ignore[list-item]
        check("tool-loop", m.stop_reason == "end_turn", m)

    def count() -> None:
        check("count_tokens", c.messages.count_tokens(model=MODEL, messages=hi).input_tokens > 0)

    for name, fn in (
        ("plain", plain),
        ("stream", stream),
        ("multi-turn", multi),
        ("tool-loop", tools),
        ("count", count),
    ):
        scenario(name, fn)


def openai_agents() -> None:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openai import AsyncOpenAI
    from pydantic import BaseModel

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return "sunny in " + city

    class City(BaseModel):
        name: str
        population: int

    async def scenarios(flavour: str, model: Any) -> None:
        # one event loop for all runs: the client's connections belong to it
        agent = Agent(name="a", instructions="Be brief.", model=model, tools=[get_weather])

        async def plain() -> None:
            check(flavour + " plain", (await Runner.run(agent, "hi")).final_output == FAKE)

        async def stream() -> None:
            r = Runner.run_streamed(agent, "hi")
            async for _ in r.stream_events():
                pass
            check(flavour + " stream", r.final_output == FAKE)

        async def multi() -> None:
            r = await Runner.run(agent, "hi")
            r2 = await Runner.run(agent, r.to_input_list() + [{"role": "user", "content": "again"}])
            check(flavour + " multi-turn", r2.final_output == FAKE)

        async def tools() -> None:
            r = await Runner.run(agent, TOOL_PROMPT)
            kinds = [i.type for i in r.new_items]
            check(flavour + " tool-loop", "tool_call_output_item" in kinds and r.final_output == FAKE, kinds)

        async def structured() -> None:
            typed = Agent(name="s", instructions="Be brief.", model=model, output_type=City)
            out = (await Runner.run(typed, "A city?")).final_output
            check(flavour + " structured", isinstance(out, City), out)

        for name, fn in (
            ("plain", plain),
            ("stream", stream),
            ("multi-turn", multi),
            ("tool-loop", tools),
            ("structured", structured),
        ):
            try:
                await fn()
            except Exception as e:  # noqa: BLE001 - any failure is reported
                check(flavour + " " + name, False, "%s: %s" % (type(e).__name__, e))

    async def run_all() -> None:
        client = AsyncOpenAI(base_url=V1, api_key="x")
        await scenarios("responses", OpenAIResponsesModel(model=MODEL, openai_client=client))
        await scenarios("chat", OpenAIChatCompletionsModel(model=MODEL, openai_client=client))

    asyncio.run(run_all())


def langchain() -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    for flavour, llm in (
        ("openai", ChatOpenAI(model=MODEL, base_url=V1, api_key="x")),
        ("responses", ChatOpenAI(model=MODEL, base_url=V1, api_key="x", use_responses_api=True)),
        ("anthropic", ChatAnthropic(model=MODEL, base_url=URL, api_key="x")),
    ):

        def plain() -> None:
            check(flavour + " plain", llm.invoke("hi").text == FAKE)

        def stream() -> None:
            check(flavour + " stream", "".join(c.text for c in llm.stream("hi")) == FAKE)

        def multi() -> None:
            msgs = [HumanMessage("hi"), AIMessage(FAKE), HumanMessage("again")]
            check(flavour + " multi-turn", llm.invoke(msgs).text == FAKE)

        def tools() -> None:
            bound = llm.bind_tools([WEATHER])
            msgs: list[Any] = [HumanMessage(TOOL_PROMPT)]
            ai = bound.invoke(msgs)
            call = ai.tool_calls[0]
            msgs += [ai, ToolMessage("sunny", tool_call_id=call["id"])]
            check(flavour + " tool-loop", bound.invoke(msgs).text == FAKE, ai)

        def structured() -> None:
            out = llm.with_structured_output(City).invoke("A city?")
            check(flavour + " structured", isinstance(out, City), out)

        for name, fn in (
            ("plain", plain),
            ("stream", stream),
            ("multi-turn", multi),
            ("tool-loop", tools),
            ("structured", structured),
        ):
            scenario(flavour + " " + name, fn)


def pydantic_ai() -> None:
    from pydantic import BaseModel
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.openai import OpenAIProvider

    class City(BaseModel):
        name: str
        population: int

    provider = OpenAIProvider(base_url=V1, api_key="x")
    for flavour, model in (
        ("chat", OpenAIChatModel(MODEL, provider=provider)),
        ("responses", OpenAIResponsesModel(MODEL, provider=provider)),
        ("anthropic", AnthropicModel(MODEL, provider=AnthropicProvider(base_url=URL, api_key="x"))),
    ):
        agent: Any = Agent(model)

        @agent.tool_plain
        def get_weather(city: str) -> str:
            """Weather in a city."""
            return "sunny"

        def plain() -> None:
            check(flavour + " plain", agent.run_sync("hi").output == FAKE)

        def stream() -> None:
            async def go() -> str:
                async with agent.run_stream("hi") as r:
                    return "".join([t async for t in r.stream_text(delta=True)])

            check(flavour + " stream", asyncio.run(go()) == FAKE)

        def multi() -> None:
            r = agent.run_sync("hi")
            check(flavour + " multi-turn", agent.run_sync("again", message_history=r.all_messages()).output == FAKE)

        def tools() -> None:
            r = agent.run_sync(TOOL_PROMPT)
            parts = [p.part_kind for m in r.all_messages() for p in m.parts]
            check(flavour + " tool-loop", "tool-return" in parts and r.output == FAKE, parts)

        def structured() -> None:
            out = Agent(model, output_type=City).run_sync("A city?").output
            check(flavour + " structured", isinstance(out, City), out)

        for name, fn in (
            ("plain", plain),
            ("stream", stream),
            ("multi-turn", multi),
            ("tool-loop", tools),
            ("structured", structured),
        ):
            scenario(flavour + " " + name, fn)


def llm_cli() -> None:
    cfg = tempfile.mkdtemp(prefix="cp-llm-")
    # docs/clients.md's extra-openai-models.yaml
    with open(os.path.join(cfg, "extra-openai-models.yaml"), "w") as f:
        f.write(
            "- model_id: claude-sonnet-4\n  model_name: claude-sonnet-4\n  api_base: %s\n"
            "  api_key_name: claudeproxy\n  supports_tools: true\n  supports_schema: true\n" % (V1,)
        )
    env = dict(os.environ, LLM_USER_PATH=cfg)
    llm = os.path.join(os.path.dirname(sys.executable), "llm")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([llm, *args], env=env, capture_output=True, text=True, timeout=120)

    out = run("keys", "set", "claudeproxy", "--value", "unused")
    check("keys", out.returncode == 0, out.stderr)
    out = run("-m", "claude-sonnet-4", "--no-stream", "hi")
    check("plain", out.returncode == 0 and out.stdout.strip() == FAKE, out.stdout + out.stderr)
    out = run("-m", "claude-sonnet-4", "hi")
    check("stream", out.returncode == 0 and out.stdout.strip() == FAKE, out.stdout + out.stderr)
    out = run("-c", "again")
    check("multi-turn", out.returncode == 0 and out.stdout.strip() == FAKE, out.stdout + out.stderr)
    out = run(
        "-m",
        "claude-sonnet-4",
        "--functions",
        "def get_weather(city: str) -> str:\n    'Weather in a city.'\n    return 'sunny'\n",
        "--td",
        TOOL_PROMPT,
    )
    check("tool-loop", out.returncode == 0 and "get_weather" in out.stdout + out.stderr and FAKE in out.stdout, out)
    out = run("-m", "claude-sonnet-4", "--schema", "name, population int", "A city?")
    try:
        ok = set(json.loads(out.stdout)) == {"name", "population"}
    except ValueError:
        ok = False
    check("structured", out.returncode == 0 and ok, out.stdout + out.stderr)


def litellm_() -> None:
    # its bundled price map: offline, the remote fetch waits ~8 s
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    hi: list[Any] = [{"role": "user", "content": "hi"}]
    for flavour, model, base in (("openai", "openai/" + MODEL, V1), ("anthropic", "anthropic/" + MODEL, URL)):
        kw: dict[str, Any] = dict(model=model, api_base=base, api_key="x")

        def plain() -> None:
            check(flavour + " plain", litellm.completion(messages=hi, **kw).choices[0].message.content == FAKE)

        def stream() -> None:
            text = "".join(c.choices[0].delta.content or "" for c in litellm.completion(messages=hi, stream=True, **kw))
            check(flavour + " stream", text == FAKE, text)

        def multi() -> None:
            msgs = hi + [{"role": "assistant", "content": FAKE}, {"role": "user", "content": "again"}]
            check(flavour + " multi-turn", litellm.completion(messages=msgs, **kw).choices[0].message.content == FAKE)

        def tools() -> None:
            msgs: list[Any] = [{"role": "user", "content": TOOL_PROMPT}]
            r = litellm.completion(messages=msgs, tools=[WEATHER], **kw)
            m = r.choices[0].message
            call = m.tool_calls[0]
            msgs += [m.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
            r2 = litellm.completion(messages=msgs, tools=[WEATHER], **kw)
            check(flavour + " tool-loop", r2.choices[0].message.content == FAKE, r2)

        def structured() -> None:
            r = litellm.completion(messages=[{"role": "user", "content": "A city?"}], response_format=City, **kw)
            City.model_validate_json(r.choices[0].message.content)
            check(flavour + " structured", True)

        for name, fn in (
            ("plain", plain),
            ("stream", stream),
            ("multi-turn", multi),
            ("tool-loop", tools),
            ("structured", structured),
        ):
            scenario(flavour + " " + name, fn)


def instructor_() -> None:
    import anthropic
    import instructor
    from openai import OpenAI
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    ask: list[Any] = [{"role": "user", "content": "A city?"}]
    for flavour, client in (
        ("openai tools", instructor.from_openai(OpenAI(base_url=V1, api_key="x"), mode=instructor.Mode.TOOLS)),
        (
            "openai json_schema",
            instructor.from_openai(OpenAI(base_url=V1, api_key="x"), mode=instructor.Mode.JSON_SCHEMA),
        ),
        ("openai json", instructor.from_openai(OpenAI(base_url=V1, api_key="x"), mode=instructor.Mode.JSON)),
        ("anthropic tools", instructor.from_anthropic(anthropic.Anthropic(base_url=URL, api_key="x"))),
    ):

        def structured() -> None:
            out = client.chat.completions.create(model=MODEL, max_tokens=200, response_model=City, messages=ask)
            check(flavour + " structured", isinstance(out, City), out)

        def stream() -> None:
            parts = list(
                client.chat.completions.create_partial(model=MODEL, max_tokens=200, response_model=City, messages=ask)
            )
            print("   %s create_partial pieces: %d" % (flavour, len(parts)), flush=True)
            check(flavour + " stream", len(parts) > 1 and parts[-1].name, parts[-1:])

        scenario(flavour + " structured", structured)
        scenario(flavour + " stream", stream)


def health_tools() -> dict[str, int]:
    """
    The daemon's counts of CLI processes parked on tool calls: resumed by
    the result, abandoned (the conversation went on without it), expired
    (waited out --tool-wait), and those evicted by the process budget.
    """
    import urllib.request

    with urllib.request.urlopen(URL + "/health") as r:
        pool = json.load(r)["pool"]
    counts = {k: v for k, v in pool["tools"].items() if k in ("waiting", "resumed", "abandoned", "expired")}
    return dict(counts, budget_evicted=pool["budget_evicted"])


def since(before: dict[str, int]) -> dict[str, int]:
    after = health_tools()
    return {k: after[k] - before[k] for k in after}


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny in " + city


def agno_() -> None:
    from agno.agent import Agent
    from agno.models.openai import OpenAIResponses
    from agno.models.openai.like import OpenAILike

    for flavour, model in (
        ("chat", OpenAILike(id=MODEL, base_url=V1, api_key="x")),
        ("responses", OpenAIResponses(id=MODEL, base_url=V1, api_key="x")),
    ):
        agent = Agent(model=model, tools=[get_weather])

        def plain() -> None:
            r = agent.run("hi")
            check(flavour + " plain", r.content == FAKE, r.content)

        def stream() -> None:
            pieces = [e.content for e in agent.run("hi", stream=True) if getattr(e, "event", "") == "RunContent"]
            check(flavour + " stream", "".join(p for p in pieces if isinstance(p, str)) == FAKE, pieces)

        def tools() -> None:
            # agno rewrites ids that are not OpenAI's shape: with the
            # daemon's call_ ids its result reaches the parked process
            before = health_tools()
            loops = 5
            outs = [agent.run(TOOL_PROMPT) for _ in range(loops)]
            used = [len(r.tools or []) for r in outs]
            seen = since(before)
            print("   %s tool loops: %d, calls %s, parked processes %s" % (flavour, loops, used, seen), flush=True)
            check(
                flavour + " tool-loop",
                all(r.content == FAKE for r in outs) and all(used) and seen["resumed"] == loops,
                (seen, [r.content for r in outs]),
            )

        def stream_tools() -> None:
            before = health_tools()
            events = list(agent.run(TOOL_PROMPT, stream=True))
            pieces = [e.content for e in events if getattr(e, "event", "") == "RunContent"]
            text = "".join(p for p in pieces if isinstance(p, str))
            seen = since(before)
            check(flavour + " stream tool-loop", text == FAKE and seen["resumed"] == 1, (text, seen))

        for name, fn in (
            ("plain", plain),
            ("stream", stream),
            ("tool-loop", tools),
            ("stream tool-loop", stream_tools),
        ):
            scenario(flavour + " " + name, fn)


def smolagents_() -> None:
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    @tool
    def get_weather(city: str) -> str:
        """
        Weather in a city.

        Args:
            city: the city
        """
        return "sunny in " + city

    model = OpenAIServerModel(model_id=MODEL, api_base=V1, api_key="x")

    def plain() -> None:
        out = model.generate([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
        check("plain", out.content == FAKE, out)

    def loops() -> None:
        # tool_choice "required" on every step, its results sent back as
        # text: no refused text reaches it, no parked process waits
        before = health_tools()
        runs = int(os.environ.get("CLAUDEPROXY_CLIENTS_SMOL_LOOPS", "10"))
        outs = []
        for _ in range(runs):
            agent = ToolCallingAgent(tools=[get_weather], model=model, max_steps=4, verbosity_level=0)
            outs.append((agent.run(TOOL_PROMPT), len(agent.memory.steps)))
        seen = since(before)
        print("   tool loops: %d, answers %s, parked processes %s" % (runs, outs[:2], seen), flush=True)
        # each get_weather call's process ends when the text result comes
        # (abandoned, not waited out); the final_answer call's result never
        # comes, so its process stays parked ("waiting") until --tool-wait
        # or the process budget ends it
        check(
            "tool-loop",
            all(o == "Bern" for o, _ in outs) and not seen["expired"] and seen["abandoned"] >= runs,
            (outs, seen),
        )

    def stream() -> None:
        agent = ToolCallingAgent(tools=[get_weather], model=model, max_steps=4, verbosity_level=0, stream_outputs=True)
        events = list(agent.run(TOOL_PROMPT, stream=True))
        text = "".join(getattr(e, "content", "") or "" for e in events if type(e).__name__ == "ChatMessageStreamDelta")
        check("stream", FAKE not in text and events and events[-1].output == "Bern", (text, events[-1:]))

    for name, fn in (("plain", plain), ("tool-loop", loops), ("stream", stream)):
        scenario(name, fn)


def dspy_() -> None:
    import dspy

    lm = dspy.LM("openai/" + MODEL, api_base=V1, api_key="x", cache=False)
    # the JSON adapter asks for structured output (response_format json_schema)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())

    class City(dspy.Signature):
        """Name a city."""

        question: str = dspy.InputField()
        name: str = dspy.OutputField()
        population: int = dspy.OutputField()

    predict = dspy.Predict(City)

    def structured() -> None:
        out = predict(question="A city?")
        check("structured", out.name == "Bern" and out.population == 1, out)

    def stream() -> None:
        listener = dspy.streaming.StreamListener(signature_field_name="name")
        streamed = dspy.streamify(predict, stream_listeners=[listener])

        async def go() -> tuple[list[str], Any]:
            pieces: list[str] = []
            final = None
            async for item in streamed(question="A city?"):
                if isinstance(item, dspy.streaming.StreamResponse):
                    pieces.append(item.chunk)
                elif isinstance(item, dspy.Prediction):
                    final = item
            return pieces, final

        pieces, final = asyncio.run(go())
        print("   stream listener pieces: %d %s" % (len(pieces), pieces), flush=True)
        # dspy's JSON listener hands out what follows the field's value up to
        # where it sees the field end: the pieces hold the value, not only it
        check("stream", len(pieces) > 1 and "Bern" in "".join(pieces) and final.name == "Bern", (pieces, final))

    def tools() -> None:
        # dspy's native function calling: the tools as the API's tools, the
        # calls come back as dspy.ToolCalls for the program to run
        # (built, not a class: this module's annotations are strings)
        fields = {
            "question": (str, dspy.InputField()),
            "tools": (list[dspy.Tool], dspy.InputField()),
            "outputs": (dspy.ToolCalls, dspy.OutputField()),
        }
        Ask = dspy.make_signature(fields, "Answer with the tools.")
        out = dspy.Predict(Ask)(question=TOOL_PROMPT, tools=[dspy.Tool(get_weather)])
        results = [c.execute(functions={"get_weather": get_weather}) for c in out.outputs.tool_calls]
        check("tool-call", results == ["sunny in Bern"], out)

    for name, fn in (("structured", structured), ("stream", stream), ("tool-call", tools)):
        scenario(name, fn)


def crewai_() -> None:
    os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool

    called: list[str] = []
    llm = LLM(model="openai/" + MODEL, base_url=V1, api_key="x")

    def plain() -> None:
        check("plain", llm.call("hi") == FAKE)

    def stream() -> None:
        out = LLM(model="openai/" + MODEL, base_url=V1, api_key="x", stream=True).call("hi")
        check("stream", out == FAKE, out)

    def tools() -> None:
        @tool("get_weather")
        def weather(city: str) -> str:
            """Weather in a city."""
            called.append(city)
            return "sunny in " + city

        agent = Agent(role="helper", goal="answer", backstory="brief", llm=llm, tools=[weather], max_iter=3)
        task = Task(description=TOOL_PROMPT, expected_output="the weather", agent=agent)
        out = Crew(agents=[agent], tasks=[task], verbose=False).kickoff()
        check("tool-loop", called and FAKE in str(out), (called, out))

    for name, fn in (("plain", plain), ("stream", stream), ("tool-loop", tools)):
        scenario(name, fn)


def autogen_() -> None:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.openai import OpenAIChatCompletionClient

    info: Any = {
        "vision": False,
        "function_calling": True,
        "json_output": True,
        "structured_output": True,
        "family": "unknown",
    }

    async def run_all() -> None:
        client = OpenAIChatCompletionClient(model=MODEL, base_url=V1, api_key="x", model_info=info)

        async def plain() -> None:
            r = await AssistantAgent("a", model_client=client).run(task="hi")
            check("plain", r.messages[-1].content == FAKE, r.messages[-1])

        async def stream() -> None:
            agent = AssistantAgent("a", model_client=client, model_client_stream=True)
            events = [e async for e in agent.run_stream(task="hi")]
            chunks = [e.content for e in events if type(e).__name__ == "ModelClientStreamingChunkEvent"]
            check("stream", "".join(chunks) == FAKE and len(chunks) > 1, chunks)

        async def tools() -> None:
            agent = AssistantAgent("a", model_client=client, tools=[get_weather], reflect_on_tool_use=True)
            r = await agent.run(task=TOOL_PROMPT)
            kinds = [type(m).__name__ for m in r.messages]
            check("tool-loop", "ToolCallExecutionEvent" in kinds and r.messages[-1].content == FAKE, kinds)

        for name, fn in (("plain", plain), ("stream", stream), ("tool-loop", tools)):
            try:
                await fn()
            except Exception as e:  # noqa: BLE001 - any failure is reported
                check(name, False, "%s: %s" % (type(e).__name__, e))
        await client.close()

    asyncio.run(run_all())


def llama_index_() -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL, api_base=V1, api_key="x", is_chat_model=True, is_function_calling_model=True, context_window=200000
    )
    hi = [ChatMessage(role="user", content="hi")]

    def plain() -> None:
        check("plain", llm.chat(hi).message.content == FAKE)

    def stream() -> None:
        pieces = [c.delta for c in llm.stream_chat(hi)]
        check("stream", "".join(p or "" for p in pieces) == FAKE, pieces)

    def tools() -> None:
        weather = FunctionTool.from_defaults(fn=get_weather)
        r = llm.chat_with_tools([weather], user_msg=TOOL_PROMPT)
        call = llm.get_tool_calls_from_response(r)[0]
        history = [
            ChatMessage(role="user", content=TOOL_PROMPT),
            r.message,
            ChatMessage(role="tool", content="sunny", additional_kwargs={"tool_call_id": call.tool_id}),
        ]
        r2 = llm.chat_with_tools([weather], chat_history=history)
        check("tool-loop", r2.message.content == FAKE, r2)

    for name, fn in (("plain", plain), ("stream", stream), ("tool-loop", tools)):
        scenario(name, fn)


def strands_() -> None:
    from strands import Agent, tool
    from strands.models.openai import OpenAIModel

    model = OpenAIModel(client_args={"api_key": "x", "base_url": V1}, model_id=MODEL)
    called: list[str] = []

    @tool
    def weather(city: str) -> str:
        """Weather in a city."""
        called.append(city)
        return "sunny in " + city

    def plain() -> None:
        out = str(Agent(model=model, callback_handler=None)("hi")).strip()
        check("plain", out == FAKE, out)

    def stream() -> None:
        async def go() -> list[str]:
            agent = Agent(model=model, callback_handler=None)
            return [e["data"] async for e in agent.stream_async("hi") if "data" in e]

        pieces = asyncio.run(go())
        check("stream", "".join(pieces) == FAKE and len(pieces) > 1, pieces)

    def tools() -> None:
        out = str(Agent(model=model, tools=[weather], callback_handler=None)(TOOL_PROMPT)).strip()
        check("tool-loop", called and out == FAKE, (called, out))

    for name, fn in (("plain", plain), ("stream", stream), ("tool-loop", tools)):
        scenario(name, fn)


def mirascope_() -> None:
    from mirascope import llm

    llm.register_provider("openai", scope="openai/", base_url=V1, api_key="x")

    @llm.tool
    def weather(city: str) -> str:
        """Weather in a city."""
        return "sunny in " + city

    for flavour in ("completions", "responses"):
        model = "openai/%s:%s" % (MODEL, flavour)

        @llm.call(model)
        def hi() -> str:
            return "hi"

        @llm.call(model, tools=[weather])
        def ask() -> str:
            return TOOL_PROMPT

        def plain() -> None:
            check(flavour + " plain", hi().text() == FAKE)

        def stream() -> None:
            # (its text_stream ends with its separator, "\n")
            pieces = list(hi.stream().text_stream())
            check(flavour + " stream", "".join(pieces).strip() == FAKE and len(pieces) > 1, pieces)

        def tools() -> None:
            r = ask()
            calls = len(r.tool_calls)
            while r.tool_calls:
                r = r.resume(r.execute_tools())
            check(flavour + " tool-loop", calls and r.text() == FAKE, r)

        for name, fn in (("plain", plain), ("stream", stream), ("tool-loop", tools)):
            scenario(flavour + " " + name, fn)


CLIENTS: dict[str, Callable[[], None]] = {
    "openai": openai_sdk,
    "anthropic": anthropic_sdk,
    "openai-agents": openai_agents,
    "langchain": langchain,
    "pydantic-ai": pydantic_ai,
    "llm": llm_cli,
    "litellm": litellm_,
    "instructor": instructor_,
    "agno": agno_,
    "smolagents": smolagents_,
    "dspy": dspy_,
    "crewai": crewai_,
    "autogen": autogen_,
    "llama-index": llama_index_,
    "strands": strands_,
    "mirascope": mirascope_,
}

if __name__ == "__main__":
    scenario("import", CLIENTS[sys.argv[1]])
    print(json.dumps({"client": sys.argv[1], "failed": failures}))
    sys.exit(1 if failures else 0)
