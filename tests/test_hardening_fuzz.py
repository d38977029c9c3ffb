"""
Property-based fuzzing of the request bodies of every endpoint that runs a
turn, against the real site over real sockets (with the fast fake CLI, so
valid bodies are answered quickly).

Whatever the body (random JSON, a plausible body with wrong types, missing
fields, huge numbers, odd unicode or odd content parts, or raw bytes), the
answer is a 2xx, or a 4xx in the endpoint's error shape; never a 5xx caused
by the input, never an error in the log, and the daemon goes on answering
/health.

Hypothesis runs in a thread with a blocking client (http.client) while the
reactor serves in the test's thread.  L{InputTests} pins single inputs
that gave a 5xx (deep nesting, lone surrogates, NUL and over-long values
bound for the CLI's argv).  Every endpoint fuzzed must be routed: a 404 or
405 for a body of C{{}} fails the test (a lost route is a bug, not a skip).
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Callable, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.harness import BENCH_FAKECLI, LoggedErrors, Running, fast_script, parse_sse, reap_leaks
from tests.harness import start_settled as start

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"

#: random text includes lone surrogates (JSON \ud800 escapes)
SURROGATES = True
#: nesting of the raw bodies that stays within what json.loads reads
MAX_DEPTH = 200
#: 502s the fast fake CLI causes, not the input: it ignores --json-schema
#: and the declared tools, so a required tool call or structured output
#: never comes
FAKE_CLI_LIMITS = frozenset({"structured_output_missing", "tool_choice_not_followed"})
#: the same, told by their messages (Anthropic's errors carry no code)
FAKE_CLI_MESSAGES = ("did not produce JSON matching the requested schema", "required a tool call")

EXAMPLES = 100


# -- a blocking client, for the hypothesis thread ---------------------------------


def http_call(
    port: int, method: str, path: str, body: Optional[bytes] = None, timeout: float = 30.0
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# -- strategies ------------------------------------------------------------------


def chars() -> st.SearchStrategy[str]:
    if SURROGATES:
        return st.characters(codec=None, exclude_categories=())
    return st.characters(exclude_categories=["Cs"])


TEXT = st.one_of(
    st.text(chars(), max_size=20),
    st.sampled_from(["", " ", "hi", "\x00", "a\x00b", "\u202eevil", "🦀" * 8, "\ufeff", "x" * 3000, "\r\n\t"]),
)
NUMBER = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 10**300]),
    st.floats(),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
JUNK = st.recursive(
    SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """
    Mostly C{strategy}, sometimes any JSON value at all.
    """
    return st.one_of(strategy, strategy, strategy, JUNK)


def obj(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """
    A JSON object with these keys (each optional one maybe absent), and
    maybe some unknown keys too.
    """
    base = st.fixed_dictionaries(
        {k: maybe(v) for k, v in required.items()}, optional={k: maybe(v) for k, v in optional.items()}
    )
    extra = st.dictionaries(st.text(max_size=8), JUNK, max_size=2)
    return st.one_of(base, base, st.builds(lambda a, b: dict(b, **a), base, extra))


MODEL = st.one_of(
    st.sampled_from(["sonnet", "haiku", "opus", "claude-sonnet-4", "claude-x-1", "gpt-4o", "", "claude-"]), TEXT
)
IMAGE_URL = st.one_of(
    st.sampled_from(
        [
            "data:image/png;base64,iVBORw0KGgo=",
            "data:image/png,notbase64",
            "data:text/plain;base64,aGk=",
            "data:;base64,",
            "data:",
            "https://example.com/cat.png",
            "ftp://example.com/x",
            "",
        ]
    ),
    TEXT,
)
B64_SOURCE = obj(
    {"type": st.sampled_from(["base64", "url", "file", "x"])},
    {
        "media_type": st.sampled_from(["image/png", "image/jpeg", "application/pdf", "text/plain", ""]),
        "data": st.sampled_from(["iVBORw0KGgo=", "", "!!!"]),
        "url": IMAGE_URL,
    },
)
PART_TYPES = ["text", "input_text", "output_text", "image_url", "input_image", "image", "refusal", "input_audio"]
PART_TYPES += ["file", "document", "tool_use", "tool_result", "thinking", "video", ""]


def good_user(content: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"role": st.just("user"), "content": content})


def conversation(message: st.SearchStrategy[Any], last: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """
    Lists of messages, often ending with a well-formed user message, so a
    good share of the bodies are answered.
    """
    return st.one_of(
        st.builds(lambda ms, tail: ms + [tail], st.lists(message, max_size=3), last),
        st.lists(message, max_size=4),
    )


# OpenAI chat completions

CHAT_PART = st.one_of(
    obj({"type": st.sampled_from(["text", "input_text", "output_text"]), "text": TEXT}, {}),
    obj(
        {"type": st.just("image_url"), "image_url": st.one_of(obj({"url": IMAGE_URL}, {"detail": TEXT}), IMAGE_URL)}, {}
    ),
    obj({"type": st.sampled_from(PART_TYPES)}, {"text": TEXT, "refusal": TEXT, "input_audio": JUNK, "file": JUNK}),
    TEXT,
    JUNK,
)
CHAT_CONTENT = st.one_of(TEXT, st.lists(CHAT_PART, max_size=3), st.none())
TOOL_CALL = obj({"id": TEXT, "type": st.just("function"), "function": obj({"name": TEXT, "arguments": TEXT}, {})}, {})
CHAT_MESSAGE = obj(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "bot", ""])},
    {
        "content": CHAT_CONTENT,
        "tool_calls": st.lists(TOOL_CALL, max_size=2),
        "tool_call_id": TEXT,
        "name": TEXT,
        "function_call": obj({"name": TEXT, "arguments": TEXT}, {}),
    },
)
FUNCTION = obj(
    {"name": st.one_of(st.sampled_from(["get_weather", "a-b_c", "x" * 65, "bad name"]), TEXT)},
    {"description": TEXT, "parameters": st.one_of(st.just({"type": "object", "properties": {}}), JUNK)},
)
CHAT_BODY = obj(
    {
        "model": MODEL,
        "messages": conversation(
            CHAT_MESSAGE, good_user(st.one_of(TEXT.filter(bool), st.lists(CHAT_PART, max_size=2)))
        ),
    },
    {
        "stream": st.booleans(),
        "stream_options": obj({}, {"include_usage": st.booleans()}),
        "n": NUMBER,
        "stop": st.one_of(TEXT, st.lists(TEXT, max_size=6)),
        "max_tokens": NUMBER,
        "max_completion_tokens": NUMBER,
        "temperature": NUMBER,
        "top_p": NUMBER,
        "tools": st.lists(obj({"type": st.just("function"), "function": FUNCTION}, {}), max_size=3),
        "tool_choice": st.one_of(
            st.sampled_from(["none", "auto", "required", "any"]),
            obj({"type": st.just("function"), "function": obj({"name": TEXT}, {})}, {}),
        ),
        "functions": st.lists(FUNCTION, max_size=2),
        "function_call": st.one_of(st.sampled_from(["none", "auto"]), obj({"name": TEXT}, {})),
        "parallel_tool_calls": st.booleans(),
        "response_format": obj(
            {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
            {"json_schema": obj({"name": TEXT, "schema": JUNK}, {"strict": st.booleans()})},
        ),
        "reasoning_effort": st.sampled_from(["minimal", "low", "medium", "high", "xhigh", "max", "extreme"]),
        "logprobs": st.booleans(),
        "modalities": st.lists(st.sampled_from(["text", "audio"]), max_size=2),
        "audio": JUNK,
        "user": TEXT,
        "seed": NUMBER,
        "metadata": JUNK,
    },
)

# Anthropic messages

ANTHROPIC_BLOCK = st.one_of(
    obj({"type": st.just("text"), "text": TEXT}, {"cache_control": obj({"type": st.just("ephemeral")}, {})}),
    obj({"type": st.sampled_from(["image", "document"]), "source": B64_SOURCE}, {}),
    obj({"type": st.just("tool_use"), "id": TEXT, "name": TEXT, "input": JUNK}, {}),
    obj(
        {"type": st.just("tool_result"), "tool_use_id": TEXT},
        {
            "content": st.one_of(TEXT, st.lists(obj({"type": st.just("text"), "text": TEXT}, {}), max_size=2)),
            "is_error": st.booleans(),
        },
    ),
    obj(
        {"type": st.sampled_from(["thinking", "redacted_thinking"])},
        {"thinking": TEXT, "signature": TEXT, "data": TEXT},
    ),
    obj({"type": st.sampled_from(PART_TYPES)}, {"text": TEXT}),
    JUNK,
)
ANTHROPIC_CONTENT = st.one_of(TEXT, st.lists(ANTHROPIC_BLOCK, max_size=3))
ANTHROPIC_MESSAGE = obj(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", ""]), "content": ANTHROPIC_CONTENT}, {}
)
ANTHROPIC_TOOL = obj(
    {"name": st.one_of(st.sampled_from(["get_weather", "x" * 65, "bad name"]), TEXT)},
    {"description": TEXT, "input_schema": st.one_of(st.just({"type": "object", "properties": {}}), JUNK), "type": TEXT},
)
MESSAGES_BODY = obj(
    {
        "model": MODEL,
        "max_tokens": st.one_of(st.integers(1, 4096), NUMBER),
        "messages": conversation(
            ANTHROPIC_MESSAGE, good_user(st.one_of(TEXT.filter(bool), st.lists(ANTHROPIC_BLOCK, max_size=2)))
        ),
    },
    {
        "system": st.one_of(TEXT, st.lists(obj({"type": st.just("text"), "text": TEXT}, {}), max_size=2)),
        "stream": st.booleans(),
        "stop_sequences": st.lists(TEXT, max_size=6),
        "temperature": NUMBER,
        "top_k": NUMBER,
        "top_p": NUMBER,
        "tools": st.lists(ANTHROPIC_TOOL, max_size=3),
        "tool_choice": obj(
            {"type": st.sampled_from(["auto", "any", "tool", "none", "required"])},
            {"name": TEXT, "disable_parallel_tool_use": st.booleans()},
        ),
        "thinking": obj({"type": st.sampled_from(["enabled", "disabled", "adaptive"])}, {"budget_tokens": NUMBER}),
        "metadata": obj({}, {"user_id": TEXT}),
        "service_tier": TEXT,
    },
)

# OpenAI responses

RESPONSES_PART = st.one_of(
    obj({"type": st.sampled_from(["input_text", "output_text", "text"]), "text": TEXT}, {}),
    obj({"type": st.just("input_image")}, {"image_url": IMAGE_URL, "detail": TEXT, "file_id": TEXT}),
    obj({"type": st.sampled_from(PART_TYPES + ["input_file"])}, {"text": TEXT}),
    JUNK,
)
RESPONSES_ITEM = st.one_of(
    obj(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", ""])},
        {"content": st.one_of(TEXT, st.lists(RESPONSES_PART, max_size=3)), "type": st.just("message")},
    ),
    obj({"type": st.just("function_call"), "call_id": TEXT, "name": TEXT, "arguments": TEXT}, {"id": TEXT}),
    obj({"type": st.just("function_call_output"), "call_id": TEXT, "output": st.one_of(TEXT, JUNK)}, {}),
    obj({"type": st.sampled_from(["reasoning", "item_reference", "web_search_call", ""])}, {"id": TEXT}),
    JUNK,
)
RESPONSES_BODY = obj(
    {
        "model": MODEL,
        "input": st.one_of(
            TEXT.filter(bool),
            conversation(RESPONSES_ITEM, good_user(st.one_of(TEXT.filter(bool), st.lists(RESPONSES_PART, max_size=2)))),
        ),
    },
    {
        "instructions": TEXT,
        "stream": st.booleans(),
        "max_output_tokens": NUMBER,
        "temperature": NUMBER,
        "tools": st.lists(
            obj(
                {"type": st.sampled_from(["function", "web_search", "file_search"])},
                {"name": TEXT, "parameters": JUNK, "strict": st.booleans()},
            ),
            max_size=3,
        ),
        "tool_choice": st.one_of(
            st.sampled_from(["none", "auto", "required"]), obj({"type": st.just("function"), "name": TEXT}, {})
        ),
        "parallel_tool_calls": st.booleans(),
        "text": obj(
            {},
            {
                "format": obj(
                    {"type": st.sampled_from(["text", "json_object", "json_schema", "xml"])},
                    {"name": TEXT, "schema": JUNK},
                )
            },
        ),
        "reasoning": obj(
            {}, {"effort": st.sampled_from(["minimal", "low", "medium", "high", "huge"]), "summary": TEXT}
        ),
        "previous_response_id": TEXT,
        "store": st.booleans(),
        "truncation": st.sampled_from(["auto", "disabled", "x"]),
        "include": st.lists(TEXT, max_size=2),
        "metadata": JUNK,
    },
)

# bodies that are valid, or valid but for one field

GOOD_MODEL = st.sampled_from(["sonnet", "haiku", "opus", "claude-sonnet-4", "claude-opus-4-8"])
GOOD_TEXT = st.text(chars(), min_size=1, max_size=30)
GOOD_STOPS = st.lists(GOOD_TEXT, max_size=4)
GOOD_IMAGE = "data:image/png;base64,iVBORw0KGgo="
GOOD_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@st.composite
def near(draw: st.DrawFn, good: st.SearchStrategy[dict[str, Any]], plausible: st.SearchStrategy[Any]) -> Any:
    """
    A valid body as is, or with one field dropped, made junk, or taken
    from a merely plausible body.
    """
    body = dict(draw(good))
    how = draw(st.sampled_from(["as is", "as is", "as is", "drop", "junk", "swap"]))
    if how == "drop":
        del body[draw(st.sampled_from(sorted(body)))]
    elif how == "junk":
        body[draw(st.sampled_from(sorted(body) + ["extra"]))] = draw(JUNK)
    elif how == "swap":
        other = draw(plausible)
        if isinstance(other, dict) and other:
            key = draw(st.sampled_from(sorted(other)))
            body[key] = other[key]
    return body


GOOD_CHAT = st.fixed_dictionaries(
    {
        "model": GOOD_MODEL,
        "messages": st.builds(
            lambda head, last: head + [last],
            st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": GOOD_TEXT}
                ),
                max_size=3,
            ),
            good_user(
                st.one_of(
                    GOOD_TEXT,
                    st.lists(
                        st.one_of(
                            st.fixed_dictionaries({"type": st.just("text"), "text": GOOD_TEXT}),
                            st.just({"type": "image_url", "image_url": {"url": GOOD_IMAGE}}),
                        ),
                        min_size=1,
                        max_size=3,
                    ).filter(lambda parts: any(p["type"] == "text" for p in parts)),
                )
            ),
        ),
    },
    optional={
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
        "stop": st.one_of(GOOD_TEXT, GOOD_STOPS),
        "max_tokens": st.integers(1, 10**30),
        "max_completion_tokens": st.integers(1, 2**31),
        "temperature": st.floats(0, 2),
        "n": st.just(1),
        "user": GOOD_TEXT,
        "seed": st.integers(),
        "reasoning_effort": st.sampled_from(["minimal", "low", "medium", "high"]),
        "tools": st.just([{"type": "function", "function": {"name": "get_weather", "parameters": GOOD_SCHEMA}}]),
        "tool_choice": st.sampled_from(["auto", "none"]),
        "parallel_tool_calls": st.booleans(),
        "response_format": st.just({"type": "text"}),
    },
)
GOOD_MESSAGES = st.fixed_dictionaries(
    {
        "model": GOOD_MODEL,
        "max_tokens": st.integers(1, 64000),
        "messages": st.builds(
            lambda head, last: head + [last],
            st.lists(
                st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": GOOD_TEXT}),
                max_size=3,
            ),
            good_user(
                st.one_of(
                    GOOD_TEXT,
                    st.lists(
                        st.fixed_dictionaries({"type": st.just("text"), "text": GOOD_TEXT}), min_size=1, max_size=3
                    ),
                )
            ),
        ),
    },
    optional={
        "system": st.one_of(
            GOOD_TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": GOOD_TEXT}), max_size=2)
        ),
        "stream": st.booleans(),
        "stop_sequences": GOOD_STOPS,
        "temperature": st.floats(0, 1),
        "top_k": st.integers(1, 500),
        "metadata": st.fixed_dictionaries({"user_id": GOOD_TEXT}),
        "tools": st.just([{"name": "get_weather", "input_schema": GOOD_SCHEMA}]),
        "tool_choice": st.just({"type": "auto"}),
    },
)
GOOD_RESPONSES = st.fixed_dictionaries(
    {
        "model": GOOD_MODEL,
        "input": st.one_of(
            GOOD_TEXT,
            st.builds(
                lambda head, last: head + [last],
                st.lists(
                    st.fixed_dictionaries(
                        {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": GOOD_TEXT}
                    ),
                    max_size=3,
                ),
                good_user(
                    st.one_of(
                        GOOD_TEXT,
                        st.lists(
                            st.fixed_dictionaries({"type": st.just("input_text"), "text": GOOD_TEXT}),
                            min_size=1,
                            max_size=3,
                        ),
                    )
                ),
            ),
        ),
    },
    optional={
        "instructions": GOOD_TEXT,
        "stream": st.booleans(),
        "max_output_tokens": st.integers(16, 10**9),
        "temperature": st.floats(0, 2),
        "store": st.booleans(),
        "reasoning": st.fixed_dictionaries({"effort": st.sampled_from(["low", "medium", "high"])}),
        "tools": st.just([{"type": "function", "name": "get_weather", "parameters": GOOD_SCHEMA}]),
        "tool_choice": st.sampled_from(["auto", "none"]),
        "text": st.just({"format": {"type": "text"}}),
        "metadata": st.fixed_dictionaries({}, optional={"k": GOOD_TEXT}),
    },
)
CHAT_FUZZ = st.one_of(near(GOOD_CHAT, CHAT_BODY), CHAT_BODY)
MESSAGES_FUZZ = st.one_of(near(GOOD_MESSAGES, MESSAGES_BODY), MESSAGES_BODY)
RESPONSES_FUZZ = st.one_of(near(GOOD_RESPONSES, RESPONSES_BODY), RESPONSES_BODY)


RAW_SPECIALS = [
    b"",
    b" ",
    b"null",
    b"[]",
    b"{}",
    b'"just a string"',
    b"NaN",
    b"-Infinity",
    b"1e999999",
    b'{"n": 1' + b"0" * 5000 + b"}",
    b"\xef\xbb\xbf{}",
    b"\xff\xfe{\x00}\x00",
    b"\xff\xff\xff\xff",
    b'{"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]',
    b'{"model": "sonnet"}{"model": "sonnet"}',
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    b"[" * 100000 + b"]" * 100000,
    b'{"model":"sonnet","messages":[{"role":"user","content":"\\ud800"}]}',
    b'{"model":"claude-x\\u0000","messages":[{"role":"user","content":"hi"}]}',
    b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH,
    b'{"model": "sonnet", "messages": [{"role": "user", "content": "\\u0000"}]}',
    b'{"model": "sonnet", "messages": [{"role": "user", "content": "\xc3\x28"}]}',
    b"\x00" * 100,
]
RAW = st.one_of(
    st.sampled_from(RAW_SPECIALS),
    st.binary(max_size=300),
    st.text(chars(), max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda a, b: a + b, st.sampled_from([b'{"model":"sonnet","messages":[', b'{"', b"["]), st.binary(max_size=40)
    ),
)


def json_bytes(value: Any) -> bytes:
    """
    C{value} as JSON bytes (non-finite floats as Python writes them, which
    its json module reads back).
    """
    return json.dumps(value).encode("utf-8")


# -- what an answer must look like ---------------------------------------------------


def openai_error(status: int, data: bytes) -> Optional[str]:
    """
    Check OpenAI's error shape; the error code.
    """
    body = json.loads(data)
    assert isinstance(body, dict) and list(body) == ["error"], (status, body)
    error = body["error"]
    assert isinstance(error, dict) and sorted(error) == ["code", "message", "param", "type"], (status, body)
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body
    return error["code"]


def anthropic_error(status: int, data: bytes) -> Optional[str]:
    """
    Check Anthropic's error shape; the error type.
    """
    body = json.loads(data)
    assert isinstance(body, dict) and body.get("type") == "error", (status, body)
    assert set(body) <= {"type", "error", "request_id"}, (status, body)
    error = body["error"]
    assert isinstance(error, dict) and {"type", "message"} <= set(error), (status, body)
    assert isinstance(error["type"], str) and error["type"], body
    assert isinstance(error["message"], str) and error["message"], body
    return str(error["type"])


def sse_items(data: bytes) -> list[tuple[Optional[str], Any]]:
    """
    The (event name, parsed data) of every SSE frame.
    """
    items: list[tuple[Optional[str], Any]] = []
    for frame in data.decode("utf-8").split("\n\n"):
        name: Optional[str] = None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                raw = line[len("data: ") :]
                items.append((name, "[DONE]" if raw == "[DONE]" else json.loads(raw)))
    return items


Check = Callable[[int, dict[str, str], bytes], None]


def check_chat(status: int, headers: dict[str, str], data: bytes) -> None:
    assert status < 500 or status == 502, (status, data[:500])
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (status, headers)
        code = openai_error(status, data)
        if status >= 500:
            assert code in FAKE_CLI_LIMITS, (status, data[:500])
        return
    assert status == 200, (status, data[:500])
    if headers.get("content-type", "").startswith("text/event-stream"):
        items = parse_sse(data)
        assert items and items[-1] == "[DONE]", data[-500:]
        assert not any(isinstance(i, dict) and "error" in i for i in items), data[-500:]
        assert all(i["object"] == "chat.completion.chunk" for i in items[:-1]), data[:500]
    else:
        body = json.loads(data)
        assert body["object"] == "chat.completion", body
        assert isinstance(body["choices"][0]["message"]["content"], str), body


def check_messages(status: int, headers: dict[str, str], data: bytes) -> None:
    assert status < 500 or status == 502, (status, data[:500])
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (status, headers)
        anthropic_error(status, data)
        if status >= 500:
            message = json.loads(data)["error"]["message"]
            assert any(m in message for m in FAKE_CLI_MESSAGES), (status, data[:500])
        return
    assert status == 200, (status, data[:500])
    if headers.get("content-type", "").startswith("text/event-stream"):
        items = sse_items(data)
        assert items and items[0][0] == "message_start", data[:500]
        assert items[-1][0] == "message_stop", data[-500:]
        assert all(name == item["type"] for name, item in items), data[:500]
    else:
        body = json.loads(data)
        assert body["type"] == "message" and body["role"] == "assistant", body
        assert isinstance(body["content"], list), body


def check_responses(status: int, headers: dict[str, str], data: bytes) -> None:
    assert status < 500 or status == 502, (status, data[:500])
    if status >= 400:
        assert headers.get("content-type", "").startswith("application/json"), (status, headers)
        code = openai_error(status, data)
        if status >= 500:
            assert code in FAKE_CLI_LIMITS, (status, data[:500])
        return
    assert status == 200, (status, data[:500])
    if headers.get("content-type", "").startswith("text/event-stream"):
        items = sse_items(data)
        assert items and items[0][1]["type"] == "response.created", data[:500]
        last = items[-1][1]
        assert last["type"] in ("response.completed", "response.incomplete"), data[-500:]
    else:
        body = json.loads(data)
        assert body["object"] == "response", body
        assert body["status"] in ("completed", "incomplete"), body


# -- the tests -----------------------------------------------------------------------


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class FuzzTests(TestCase):
    """
    One daemon per endpoint and kind of input; hypothesis in a thread.
    """

    timeout = 120

    async def _daemon(self) -> tuple[Running, LoggedErrors]:
        errors = LoggedErrors().install(self)
        d = await start(
            self,
            claude=fast_script(BENCH_FAKECLI, self.mktemp()),
            max_concurrent=64,
            max_queued=64,
            idle_timeout=10.0,
            request_timeout=30.0,
            extra_env={"FAKECLI_BYTES": "200", "FAKECLI_CHUNK": "50"},
        )
        return d, errors

    async def _require(self, d: Running, path: str) -> None:
        """
        Fail when the daemon has no route at C{path}: every fuzzed body
        would be a 404 or 405, and the fuzzing would prove nothing.
        """
        port = d.port.getHost().port
        status, _, data = await deferToThread(http_call, port, "POST", path, b"{}")
        self.assertNotIn(status, (404, 405), "POST %s is not routed: %r" % (path, data[:300]))

    async def _fuzz(self, path: str, strategy: st.SearchStrategy[Any], check: Check, examples: int = EXAMPLES) -> None:
        d, errors = await self._daemon()
        await self._require(d, path)
        port = d.port.getHost().port
        seen: dict[int, int] = {}

        @fuzz_settings(examples)
        @given(strategy)
        def prop(value: Any) -> None:
            body = value if isinstance(value, bytes) else json_bytes(value)
            status, headers, data = http_call(port, "POST", path, body)
            seen[status] = seen.get(status, 0) + 1
            check(status, headers, data)
            health, _, hdata = http_call(port, "GET", "/health")
            assert health == 200, (health, hdata[:300])

        await deferToThread(prop)
        print("%s: statuses %r" % (path, dict(sorted(seen.items()))))
        status, _, data = await deferToThread(http_call, port, "GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data)["requests"]["in_flight"], 0)
        self.assertEqual(errors.texts(), [])

    # chat completions

    async def test_chat_random_json(self) -> None:
        await self._fuzz(CHAT, JUNK, check_chat, 40)

    async def test_chat_plausible_bodies(self) -> None:
        await self._fuzz(CHAT, CHAT_FUZZ, check_chat, 150)

    async def test_chat_raw_bytes(self) -> None:
        await self._fuzz(CHAT, RAW, check_chat, 40)

    # anthropic messages

    async def test_messages_random_json(self) -> None:
        await self._fuzz(MESSAGES, JUNK, check_messages, 40)

    async def test_messages_plausible_bodies(self) -> None:
        await self._fuzz(MESSAGES, MESSAGES_FUZZ, check_messages, 150)

    async def test_messages_raw_bytes(self) -> None:
        await self._fuzz(MESSAGES, RAW, check_messages, 40)

    # responses

    async def test_responses_random_json(self) -> None:
        await self._fuzz(RESPONSES, JUNK, check_responses, 40)

    async def test_responses_plausible_bodies(self) -> None:
        await self._fuzz(RESPONSES, RESPONSES_FUZZ, check_responses, 150)

    async def test_responses_raw_bytes(self) -> None:
        await self._fuzz(RESPONSES, RAW, check_responses, 40)


class InputTests(TestCase):
    """
    Single inputs that gave a 5xx, each answered 2xx/4xx now.
    """

    timeout = 60

    async def _post(self, path: str, body: bytes, check: Check) -> tuple[int, bytes]:
        errors = LoggedErrors().install(self)
        d = await start(self, claude=fast_script(BENCH_FAKECLI, self.mktemp()), extra_env={"FAKECLI_BYTES": "200"})
        port = d.port.getHost().port
        status, headers, data = await deferToThread(http_call, port, "POST", path, body)
        logged = errors.texts()
        self.flushLoggedErrors()
        health, _, _ = await deferToThread(http_call, port, "GET", "/health")
        self.assertEqual(health, 200)
        leaked = await reap_leaks(d)
        try:
            check(status, headers, data)
        except AssertionError as e:
            self.fail("%s: %d %r" % (e, status, data[:400]))
        self.assertEqual(logged, [])
        self.assertEqual(leaked, [], "CLI processes left running")
        return status, data

    async def test_deep_nesting(self) -> None:
        await self._post(CHAT, b"[" * 100000 + b"]" * 100000, check_chat)

    async def test_deep_nesting_messages(self) -> None:
        await self._post(MESSAGES, b'{"model":' + b"[" * 100000 + b"]" * 100000 + b"}", check_messages)

    async def test_deep_nesting_responses(self) -> None:
        await self._post(RESPONSES, b"[" * 100000 + b"]" * 100000, check_responses)

    async def test_deep_nesting_tool_arguments(self) -> None:
        arguments = "[" * 100000 + "]" * 100000
        body = {
            "model": "sonnet",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "user", "content": "and?"},
            ],
        }
        await self._post(CHAT, json_bytes(body), check_chat)

    async def test_lone_surrogate(self) -> None:
        body = b'{"model":"sonnet","messages":[{"role":"user","content":"hi \\ud800 there"}]}'
        await self._post(CHAT, body, check_chat)

    async def test_lone_surrogate_messages(self) -> None:
        body = b'{"model":"sonnet","max_tokens":10,"messages":[{"role":"user","content":"hi \\udfff"}]}'
        await self._post(MESSAGES, body, check_messages)

    async def test_lone_surrogate_responses(self) -> None:
        await self._post(RESPONSES, b'{"model":"sonnet","input":"hi \\ud83d"}', check_responses)

    async def test_lone_surrogate_system(self) -> None:
        body = b'{"model":"sonnet","messages":[{"role":"system","content":"\\ud800"},{"role":"user","content":"hi"}]}'
        await self._post(CHAT, body, check_chat)

    async def test_nul_in_model(self) -> None:
        await self._post(CHAT, b'{"model":"claude-x\\u0000y","messages":[{"role":"user","content":"hi"}]}', check_chat)

    async def test_nul_in_system(self) -> None:
        body = b'{"model":"sonnet","messages":[{"role":"system","content":"a\\u0000b"},{"role":"user","content":"hi"}]}'
        await self._post(CHAT, body, check_chat)

    async def test_nul_in_instructions(self) -> None:
        await self._post(RESPONSES, b'{"model":"sonnet","input":"hi","instructions":"a\\u0000b"}', check_responses)

    async def test_huge_system_prompt(self) -> None:
        system = {"role": "system", "content": "s" * 200_000}
        body = {"model": "sonnet", "messages": [system, {"role": "user", "content": "hi"}]}
        await self._post(CHAT, json_bytes(body), check_chat)

    async def test_huge_system_prompt_messages(self) -> None:
        body = {
            "model": "sonnet",
            "max_tokens": 10,
            "system": "s" * 200_000,
            "messages": [{"role": "user", "content": "hi"}],
        }
        await self._post(MESSAGES, json_bytes(body), check_messages)

    async def test_huge_schema(self) -> None:
        schema = {"type": "object", "description": "d" * 200_000}
        body = {
            "model": "sonnet",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
        }
        await self._post(CHAT, json_bytes(body), check_chat)

    async def test_huge_instructions(self) -> None:
        await self._post(
            RESPONSES, json_bytes({"model": "sonnet", "input": "hi", "instructions": "i" * 200_000}), check_responses
        )

    async def test_huge_int_digits(self) -> None:
        # Python refuses integers of over 4300 digits with a ValueError: a 400
        await self._post(CHAT, b'{"model":"sonnet","max_tokens":1' + b"0" * 5000 + b',"messages":[]}', check_chat)
