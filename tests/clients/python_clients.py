"""
Plain, streamed, multi-turn and tool-loop scenarios of one Python client
library against the daemon at $CLAUDEPROXY_URL (run by tests/clients.sh).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

URL = os.environ["CLAUDEPROXY_URL"]
V1 = URL + "/v1"
MODEL = "claude-sonnet-4"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def check(name: str, ok: bool, detail: Any = "") -> None:
    print("   %-12s %s %s" % (name, "ok" if ok else "FAILED", "" if ok else detail))
    if not ok:
        raise SystemExit(1)


def openai_sdk() -> None:
    from openai import OpenAI

    c = OpenAI(base_url=V1, api_key="x")
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    check("plain", bool(r.choices[0].message.content) and r.model == MODEL, r)
    text = "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
        if ch.choices
    )
    check("stream", bool(text))
    msgs: list[Any] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": text}]
    msgs.append({"role": "user", "content": "again"})
    check("multi-turn", bool(c.chat.completions.create(model=MODEL, messages=msgs).choices[0].message.content))
    msgs = [{"role": "user", "content": "Use the tool for Bern."}]
    r = c.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER])
    call = r.choices[0].message.tool_calls[0]
    msgs += [
        r.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    r = c.chat.completions.create(model=MODEL, messages=msgs, tools=[WEATHER])
    check("tool-loop", r.choices[0].finish_reason == "stop", r)
    r1 = c.responses.create(model=MODEL, input="hi")
    r2 = c.responses.create(model=MODEL, input="again", previous_response_id=r1.id)
    check("responses", bool(r2.output_text))


def anthropic_sdk() -> None:
    import anthropic

    c = anthropic.Anthropic(base_url=URL, api_key="x")
    hi = [{"role": "user", "content": "hi"}]
    m = c.messages.create(model=MODEL, max_tokens=100, messages=hi)
    check("plain", m.content[0].type == "text" and m.model == MODEL, m)
    with c.messages.stream(model=MODEL, max_tokens=100, messages=hi) as s:
        check("stream", bool("".join(s.text_stream)))
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    msgs: list[Any] = [{"role": "user", "content": "Use the tool for Bern."}]
    m = c.messages.create(model=MODEL, max_tokens=100, messages=msgs, tools=[tool])
    use = [b for b in m.content if b.type == "tool_use"][0]
    msgs += [
        {"role": "assistant", "content": [b.model_dump() for b in m.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    m = c.messages.create(model=MODEL, max_tokens=100, messages=msgs, tools=[tool])
    check("tool-loop", m.stop_reason == "end_turn", m)
    check("count_tokens", c.messages.count_tokens(model=MODEL, messages=hi).input_tokens > 0)


def openai_agents() -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool
    from openai import AsyncOpenAI

    @function_tool
    def get_weather(city: str) -> str:
        return "sunny in " + city

    model = OpenAIResponsesModel(model=MODEL, openai_client=AsyncOpenAI(base_url=V1, api_key="x"))
    agent = Agent(name="a", instructions="Be brief.", model=model, tools=[get_weather])
    check("plain", bool(Runner.run_sync(agent, "hi").final_output))
    check("tool-loop", bool(Runner.run_sync(agent, "Use the tool for Bern.").final_output))


def langchain() -> None:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    for name, llm in (
        ("openai", ChatOpenAI(model=MODEL, base_url=V1, api_key="x")),
        ("responses", ChatOpenAI(model=MODEL, base_url=V1, api_key="x", use_responses_api=True)),
        ("anthropic", ChatAnthropic(model=MODEL, base_url=URL, api_key="x")),
    ):
        check(name, bool(llm.invoke("hi").content))
        check(name + "-stream", bool("".join(str(c.content) for c in llm.stream("hi"))))
        bound = llm.bind_tools([WEATHER])
        check(name + "-tools", bool(bound.invoke("Use the tool for Bern.").tool_calls))


def pydantic_ai() -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    agent = Agent(OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=V1, api_key="x")))

    @agent.tool_plain
    def get_weather(city: str) -> str:
        return "sunny"

    check("plain", bool(agent.run_sync("hi").output))
    check("tool-loop", bool(agent.run_sync("Use the tool for Bern.").output))


def llm_cli() -> None:
    import subprocess

    cfg = os.path.join(os.environ.get("TMPDIR", "/tmp"), "cp-llm")
    os.makedirs(cfg, exist_ok=True)
    with open(os.path.join(cfg, "extra-openai-models.yaml"), "w") as f:
        f.write("- model_id: cp\n  model_name: %s\n  api_base: %s\n  api_key_name: cp\n" % (MODEL, V1))
    env = dict(os.environ, LLM_USER_PATH=cfg, LLM_CP_KEY="x")
    out = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "llm"), "-m", "cp", "--key", "x", "hi"],
        env=env,
        capture_output=True,
        text=True,
    )
    check("plain", out.returncode == 0 and bool(out.stdout.strip()), out.stderr)


def litellm_() -> None:
    import litellm

    r = litellm.completion(
        model="openai/" + MODEL, api_base=V1, api_key="x", messages=[{"role": "user", "content": "hi"}]
    )
    check("plain", bool(r.choices[0].message.content))
    r = litellm.completion(
        model="anthropic/" + MODEL, api_base=URL, api_key="x", messages=[{"role": "user", "content": "hi"}]
    )
    check("anthropic", bool(r.choices[0].message.content))


def instructor_() -> None:
    import instructor
    from openai import OpenAI
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    c = instructor.from_openai(OpenAI(base_url=V1, api_key="x"), mode=instructor.Mode.TOOLS)
    try:
        c.chat.completions.create(
            model=MODEL, response_model=City, messages=[{"role": "user", "content": "Use the tool."}]
        )
        check("structured", True)
    except Exception as e:  # the fake's tool input is not a City: a validation error is the library working
        check("structured", "validation" in str(e).lower(), e)


CLIENTS: dict[str, Callable[[], None]] = {
    "openai": openai_sdk,
    "anthropic": anthropic_sdk,
    "openai-agents": openai_agents,
    "langchain": langchain,
    "pydantic-ai": pydantic_ai,
    "llm": llm_cli,
    "litellm": litellm_,
    "instructor": instructor_,
}

if __name__ == "__main__":
    CLIENTS[sys.argv[1]]()
    print(json.dumps({"client": sys.argv[1], "ok": True}))
