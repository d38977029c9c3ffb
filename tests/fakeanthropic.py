"""
A fake Anthropic Messages API on loopback, for driving the real Claude Code
CLI offline.

Tests script what the next upstream call returns with L{Reply} objects and
read what the CLI actually sent from L{FakeAnthropic.requests}.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any, Callable, Deque, List, Optional

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IListeningPort, IReactorTime, ITCPTransport
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from tests.fakes import tcp_port


@attrs.frozen
class ToolUse:
    name: str
    input: dict[str, Any]
    id: str = ""


@attrs.frozen
class Reply:
    """
    What one upstream call returns.

    @ivar text: the assistant text, streamed as text deltas of C{chunk} chars.
    @ivar thinking: thinking text streamed before the answer, if any.
    @ivar status: an HTTP error status to answer with instead (with C{error}).
    @ivar cut_after: end the SSE stream without C{message_stop} after this
        many text chunks (the CLI then re-requests without streaming).
    @ivar hang: never answer (the connection stays open).
    @ivar delay: seconds to wait between chunks.
    @ivar hang_after: stop sending (the connection stays open, no
        C{message_stop}) after this many text chunks.
    """

    text: str = "Hello from the fake upstream."
    thinking: str = ""
    chunk: int = 8
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "fake error"
    headers: dict[str, str] = attrs.field(factory=dict)
    cut_after: Optional[int] = None
    hang: bool = False
    delay: float = 0.0
    stop_reason: str = "end_turn"
    tool_uses: tuple[ToolUse, ...] = ()
    input_tokens: int = 11
    output_tokens: int = 7
    cache_read: int = 0
    cache_creation: int = 0
    hang_after: Optional[int] = None
    #: answer as the real API does for the web search server tool: a
    #: server_tool_use block, a web_search_tool_result block with these
    #: (url, title) results, and text citing the first
    search: tuple[tuple[str, str], ...] = ()


def prompt_too_long(used: int, limit: int = 200000) -> Reply:
    """
    The real API's answer to a prompt over the model's context window.
    """
    return Reply(
        status=400,
        error_type="invalid_request_error",
        error_message="prompt is too long: %d tokens > %d maximum" % (used, limit),
    )


def web_search_tool(body: dict[str, Any]) -> Optional[dict[str, Any]]:
    """
    The web search server tool (C{web_search_2025xxxx}) a request offers.
    """
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and str(tool.get("type", "")).startswith("web_search_"):
            return tool
    return None


def search_query(body: dict[str, Any]) -> str:
    """
    The query of a web search request: the last user text (the CLI sends
    "Perform a web search for the query: Q").
    """
    text = ""
    for m in body.get("messages") or []:
        content = m.get("content")
        if m.get("role") == "user":
            text = (
                content
                if isinstance(content, str)
                else " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
            )
    return text.split("query: ", 1)[-1].strip()


#: what the fake answers a chat UI's background task prompt with, by the
#: key the prompt's JSON example asks for (Open WebUI: "### Task: …
#: ### Output: JSON format: { "title": … }")
TASK_ANSWERS: dict[str, Any] = {
    "title": "🧪 Fake upstream chat",
    "tags": ["General", "Testing"],
    "follow_ups": ["Can you say more?", "Can you give an example?", "What should I try next?"],
    "queries": ["fake upstream search"],
    "text": " from the fake upstream",
    "prompt": "A test pattern drawn by the fake upstream",
}
_TASK_JSON = re.compile(r"\{[^{}]*\}", re.S)


def last_user_text(body: dict[str, Any]) -> str:
    """
    The text of the last user message, without the CLI's own
    C{<system-reminder>} blocks.
    """
    for m in reversed(body.get("messages") or []):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, str):
            return content
        return "".join(
            b.get("text", "")
            for b in content or []
            if isinstance(b, dict) and b.get("type") == "text" and not b.get("text", "").startswith("<system-reminder>")
        )
    return ""


def task_answer(body: dict[str, Any]) -> Optional[str]:
    """
    The answer to a chat UI's task prompt (a user message starting
    "### Task:"): the JSON object its "### Output:" example asks for, with
    L{TASK_ANSWERS}' values for the keys it knows (others keep the example's
    type), or the plain title when the prompt asks for the title alone.
    None for any other request.
    """
    text = last_user_text(body).lstrip()
    if not text.startswith("### Task:"):
        return None
    output = text.split("### Output:", 1)[-1].split("### Chat History:", 1)[0]
    found = _TASK_JSON.search(output)
    example: Any = None
    if found is not None:
        try:
            example = json.loads(found.group(0))
        except ValueError:
            example = None
    if not isinstance(example, dict):
        return str(TASK_ANSWERS["title"]) if "title" in output.lower() else None
    answer = {}
    for key, value in example.items():
        if key in TASK_ANSWERS:
            answer[key] = TASK_ANSWERS[key]
        else:
            answer[key] = ["fake"] if isinstance(value, list) else "fake"
    return json.dumps(answer, ensure_ascii=False)


#: in a frame list: stop here and leave the response open
_HANG = object()


@attrs.define
class Recorded:
    path: bytes
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def turns(self) -> list[dict[str, Any]]:
        """
        The user and assistant messages (newer CLIs add mid-conversation
        system messages of their own).
        """
        return [m for m in self.body.get("messages") or [] if m.get("role") != "system"]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json.dumps(data).encode() + b"\n\n"


_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def api_refusal(body: dict[str, Any]) -> Optional[str]:
    """
    The 400 message the real API gives a request that breaks its rules on
    tool blocks and thinking blocks in the history, or None.
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    has_tool_blocks = False
    for i, m in enumerate(messages):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for j, b in enumerate(content):
            if not isinstance(b, dict):
                continue
            kind = b.get("type")
            if kind in ("tool_use", "tool_result"):
                has_tool_blocks = True
                tid = b.get("id") if kind == "tool_use" else b.get("tool_use_id")
                if not isinstance(tid, str) or not _TOOL_ID.match(tid):
                    field = "id" if kind == "tool_use" else "tool_use_id"
                    return "messages.%d.content.%d.%s.%s: String should match pattern '^[a-zA-Z0-9_-]+$'" % (
                        i,
                        j,
                        kind,
                        field,
                    )
            if kind == "thinking" and not b.get("signature"):
                return "messages.%d.content.%d: Invalid `signature` in `thinking` block" % (i, j)
    if has_tool_blocks and not body.get("tools"):
        return "Requests which include `tool_use` or `tool_result` blocks must define tools."
    for n, m in enumerate(turns):
        if m.get("role") != "assistant" or not isinstance(m.get("content"), list):
            continue
        ids = [b.get("id") for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_use"]
        if not ids:
            continue
        nxt = turns[n + 1].get("content") if n + 1 < len(turns) else None
        lead = []
        for b in nxt if isinstance(nxt, list) else []:
            if not isinstance(b, dict) or b.get("type") != "tool_result":
                break
            lead.append(b.get("tool_use_id"))
        missing = [t for t in ids if t not in lead]
        if missing:
            return (
                "messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. "
                "Each `tool_use` block must have a corresponding `tool_result` block in the next message."
                % (messages.index(m), ", ".join(str(t) for t in missing))
            )
    return None


class _Messages(Resource):
    isLeaf = True

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__()
        self.fake = fake

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(404)
        return b'{"type":"error","error":{"type":"not_found_error","message":"nope"}}'

    def render_POST(self, request: Request) -> Any:
        raw = request.content.read() if request.content else b""
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        path = request.path
        self.fake.requests.append(Recorded(path, headers, body))
        self.fake._watch(request, len(self.fake.requests))
        if not path.startswith(b"/v1/messages") or path.startswith(b"/v1/messages/count_tokens"):
            request.setResponseCode(404)
            return b'{"type":"error","error":{"type":"not_found_error","message":"nope"}}'
        check = self.fake.check_auth
        if check is not None and not check(headers.get("authorization", "")):
            # the real API's answer to an expired or unknown OAuth access token
            self.fake.unauthorized += 1
            request.setResponseCode(401)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(
                {
                    "type": "error",
                    "error": {
                        "type": "authentication_error",
                        "message": "OAuth token has expired. Please obtain a new token or refresh your existing token.",
                    },
                }
            ).encode()
        refusal = api_refusal(body)
        if refusal is not None:
            self.fake.refused.append(refusal)
            request.setResponseCode(400)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(
                {"type": "error", "error": {"type": "invalid_request_error", "message": refusal}}
            ).encode()
        reply = self.fake.next_reply(body)
        n = len(self.fake.requests)
        return self.fake._answer(request, body, reply, n)


class FakeAnthropic:
    """
    The fake API. Start with L{listen}; queue replies with L{push}; without a
    queued reply every call gets C{default}.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.requests: List[Recorded] = []
        self.replies: Deque[Reply] = deque()
        self.default = Reply()
        #: the 5-hour and 7-day windows' utilization the rate-limit headers report
        self.utilization = (0.25, 0.5)
        #: the windows ("5h", "7d") past a warning threshold, and the threshold
        self.surpassed: dict[str, float] = {}
        #: whether answers carry the unified rate-limit headers (as the
        #: real API's do for a subscription login)
        self.rate_limit_headers = True
        #: the plan's window ("5h", "7d") reported used up (unified status
        #: "rejected"), None when the plan allows
        self.plan_rejected: Optional[str] = None
        #: seconds from the answer to the rejected window's reset (default:
        #: the window's usual reset, 3 hours or 4 days ahead)
        self.plan_reset_in: Optional[float] = None
        #: whether extra usage pays once the plan's window is used up: the
        #: answer is served, with the overage headers saying extra usage is
        #: in use (as the real API does); without it the plan's rejection is
        #: a 429
        self.overage_allowed = False
        #: when set, a request whose Authorization header it refuses gets
        #: the real API's 401 for an expired OAuth token
        self.check_auth: Optional[Callable[[str], bool]] = None
        self.unauthorized = 0
        self.port: Optional[IListeningPort] = None
        self._open: list[Request] = []
        #: numbers (1-based, as in L{requests}) of the requests whose
        #: client went away before the answer was finished
        self.lost: list[int] = []
        #: the 400s given for requests the real API refuses
        self.refused: list[str] = []
        #: whether a chat UI's task prompt ("### Task: …") gets the JSON it
        #: asks for (L{task_answer}), and how many did
        self.answer_tasks = True
        self.task_requests = 0
        self._timers: list[Deferred[Any]] = []
        #: what a request offering the web search server tool finds
        self.search_results: tuple[tuple[str, str], ...] = (
            ("https://example.com/bern-weather", "Bern weather today"),
            ("https://example.org/forecast", "Forecast for Bern"),
        )

    def push(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def next_reply(self, body: dict[str, Any]) -> Reply:
        if web_search_tool(body) is not None:
            # the real API runs a server tool itself: no scripted reply
            return Reply(text="", search=self.search_results)
        task = task_answer(body) if self.answer_tasks else None
        if task is not None:
            # a chat UI's background task (title, tags, follow-ups), asked
            # beside the conversation: answered as a model would, whatever
            # the test queued for the conversation
            self.task_requests += 1
            return Reply(text=task)
        if self.replies:
            return self.replies.popleft()
        return self.default

    @property
    def message_requests(self) -> List[Recorded]:
        return [r for r in self.requests if r.path.startswith(b"/v1/messages")]

    def _watch(self, request: Request, n: int) -> None:
        def gone(_: Any) -> None:
            self.lost.append(n)

        request.notifyFinish().addErrback(gone)

    def _forget_timer(self, result: object, timer: Deferred[Any]) -> None:
        if timer in self._timers:
            self._timers.remove(timer)

    def listen(self) -> str:
        root = _Messages(self)
        site = Site(root)
        site.noisy = False
        self.port = self.reactor.listenTCP(0, site, interface="127.0.0.1")
        return "http://127.0.0.1:%d" % (tcp_port(self.port),)

    def stop(self) -> Deferred[None]:
        timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for r in self._open:
            if r.channel is not None and r.channel.transport is not None:
                ITCPTransport(r.channel.transport).abortConnection()
        self._open = []
        assert self.port is not None
        d: Deferred[None] = Deferred()
        res = self.port.stopListening()
        if isinstance(res, Deferred):
            return res
        d.callback(None)
        return d

    # -- answering --------------------------------------------------------

    def _rate_limit_headers(self, request: Request) -> None:
        """
        The subscription's unified rate-limit headers the real API sends a
        Claude Code login with every answer (the CLI's rate_limit_event is
        made from them): the status, the representative window and its
        reset, each window's utilization (0..1) and reset.
        """
        if not self.rate_limit_headers:
            return
        now = int(self.reactor.seconds())
        five, seven = now + 3 * 3600, now + 4 * 86400
        headers = {
            "anthropic-ratelimit-unified-status": "allowed",
            "anthropic-ratelimit-unified-reset": str(five),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
            "anthropic-ratelimit-unified-fallback": "unavailable",
            "anthropic-ratelimit-unified-5h-status": "allowed",
            "anthropic-ratelimit-unified-5h-utilization": str(self.utilization[0]),
            "anthropic-ratelimit-unified-5h-reset": str(five),
            "anthropic-ratelimit-unified-7d-status": "allowed",
            "anthropic-ratelimit-unified-7d-utilization": str(self.utilization[1]),
            "anthropic-ratelimit-unified-7d-reset": str(seven),
            "anthropic-ratelimit-unified-overage-status": "rejected",
            "anthropic-ratelimit-unified-overage-disabled-reason": "org_level_disabled",
        }
        if self.plan_rejected is not None:
            claim = {"5h": "five_hour", "7d": "seven_day"}[self.plan_rejected]
            reset = five if claim == "five_hour" else seven
            if self.plan_reset_in is not None:
                reset = int(self.reactor.seconds() + self.plan_reset_in)
            headers.update(
                {
                    "anthropic-ratelimit-unified-status": "rejected",
                    "anthropic-ratelimit-unified-reset": str(reset),
                    "anthropic-ratelimit-unified-%s-reset" % (self.plan_rejected,): str(reset),
                    "anthropic-ratelimit-unified-representative-claim": claim,
                    "anthropic-ratelimit-unified-%s-status" % (self.plan_rejected,): "rejected",
                    "anthropic-ratelimit-unified-%s-utilization" % (self.plan_rejected,): "1.0",
                }
            )
        if self.overage_allowed:
            del headers["anthropic-ratelimit-unified-overage-disabled-reason"]
            headers["anthropic-ratelimit-unified-overage-status"] = "allowed"
            headers["anthropic-ratelimit-unified-overage-reset"] = str(now + 20 * 86400)
            if self.plan_rejected is not None:
                headers["anthropic-ratelimit-unified-overage-in-use"] = "true"
        for k, v in headers.items():
            request.setHeader(k.encode(), v.encode())
        # a window past a warning threshold: the CLI reports it as allowed_warning with its utilization
        for claim, threshold in self.surpassed.items():
            request.setHeader(
                ("anthropic-ratelimit-unified-%s-surpassed-threshold" % (claim,)).encode(), str(threshold).encode()
            )

    def _answer(self, request: Request, body: dict[str, Any], reply: Reply, n: int) -> Any:
        model = body.get("model", "claude-sonnet-5")
        self._rate_limit_headers(request)
        if reply.hang:
            self._open.append(request)
            return NOT_DONE_YET
        if reply.status != 200:
            request.setResponseCode(reply.status)
            request.setHeader(b"content-type", b"application/json")
            for k, v in reply.headers.items():
                request.setHeader(k.encode(), v.encode())
            return json.dumps(
                {
                    "type": "error",
                    "error": {"type": reply.error_type, "message": reply.error_message},
                }
            ).encode()
        if not body.get("stream"):
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(self._message(model, reply, n, search_query(body))).encode()
        request.setHeader(b"content-type", b"text/event-stream")
        for k, v in reply.headers.items():
            request.setHeader(k.encode(), v.encode())
        self._open.append(request)
        self._stream(request, model, reply, n, search_query(body))
        return NOT_DONE_YET

    def _message(self, model: str, reply: Reply, n: int, query: str = "") -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.search:
            sid = "srvtoolu_fake_%d" % (n,)
            content.append({"type": "server_tool_use", "id": sid, "name": "web_search", "input": {"query": query}})
            content.append(
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": sid,
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": url,
                            "title": title,
                            "encrypted_content": "ZW5jcnlwdGVk",
                            "page_age": None,
                        }
                        for url, title in reply.search
                    ],
                }
            )
            url, title = reply.search[0]
            content.append(
                {
                    "type": "text",
                    "text": "It is sunny in Bern.",
                    "citations": [
                        {
                            "type": "web_search_result_location",
                            "url": url,
                            "title": title,
                            "encrypted_index": "ZW5j",
                            "cited_text": "Sunny in Bern today.",
                        }
                    ],
                }
            )
        if reply.thinking:
            content.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig"})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for i, t in enumerate(reply.tool_uses):
            content.append({"type": "tool_use", "id": t.id or "toolu_%d_%d" % (n, i), "name": t.name, "input": t.input})
        return {
            "id": "msg_fake_%d" % (n,),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": dict(self._usage(reply), server_tool_use={"web_search_requests": 1})
            if reply.search
            else self._usage(reply),
        }

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_read_input_tokens": reply.cache_read,
            "cache_creation_input_tokens": reply.cache_creation,
        }

    def _frames(self, model: str, reply: Reply, n: int, query: str = "") -> list[Any]:
        """
        The SSE frames of a streamed reply; the marker C{None} stands for the
        point where a C{cut_after} reply stops.
        """
        msg = self._message(model, reply, n, query)
        start = dict(msg, content=[], stop_reason=None)
        start["usage"] = dict(msg["usage"], output_tokens=1)
        frames: list[Any] = [_sse("message_start", {"type": "message_start", "message": start})]
        index = 0
        text_chunks = 0
        if reply.search:
            frames.extend(self._search_frames(msg["content"][:3]))
            index = 3
        if reply.thinking:
            frames.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    },
                )
            )
            for i in range(0, len(reply.thinking), reply.chunk):
                frames.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": reply.thinking[i : i + reply.chunk]},
                        },
                    )
                )
            frames.append(
                _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": "sig"},
                    },
                )
            )
            frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        if reply.text:
            frames.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
            )
            for i in range(0, len(reply.text), reply.chunk):
                if reply.cut_after is not None and text_chunks >= reply.cut_after:
                    frames.append(None)
                    return frames
                if reply.hang_after is not None and text_chunks >= reply.hang_after:
                    frames.append(_HANG)
                    return frames
                frames.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": reply.text[i : i + reply.chunk]},
                        },
                    )
                )
                text_chunks += 1
            frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        for block in msg["content"]:
            if block["type"] != "tool_use":
                continue
            frames.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}},
                    },
                )
            )
            # the input as the API streams it: an empty delta, then the
            # model's JSON in pieces
            written = json.dumps(block["input"])
            for piece in [""] + [written[i : i + reply.chunk] for i in range(0, len(written), reply.chunk)]:
                frames.append(
                    _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                )
            frames.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
            index += 1
        if reply.cut_after is not None:
            frames.append(None)
            return frames
        frames.append(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": reply.output_tokens},
                },
            )
        )
        frames.append(_sse("message_stop", {"type": "message_stop"}))
        return frames

    def _search_frames(self, blocks: list[dict[str, Any]]) -> list[bytes]:
        """
        A web search as the real API streams it: the server_tool_use block
        with its input as JSON deltas, the result block whole, then the
        text with a citations delta.
        """
        use, result, text = blocks
        frames = [
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": dict(use, input={})},
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(use["input"])},
                },
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": result}),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
            _sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 2,
                    "content_block": {"type": "text", "text": "", "citations": []},
                },
            ),
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 2,
                    "delta": {"type": "citations_delta", "citation": text["citations"][0]},
                },
            ),
            _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": text["text"]}},
            ),
            _sse("content_block_stop", {"type": "content_block_stop", "index": 2}),
        ]
        return frames

    def _stream(self, request: Request, model: str, reply: Reply, n: int, query: str = "") -> None:
        frames = self._frames(model, reply, n, query)
        clock: IReactorTime = self.reactor

        def finish() -> None:
            if request in self._open:
                self._open.remove(request)
            if not request.finished and request.channel is not None:
                request.finish()

        def cut() -> None:
            if request in self._open:
                self._open.remove(request)
            if request.channel is not None and request.channel.transport is not None:
                # end the body without message_stop: chunked terminator sent
                request.finish()

        def step(i: int) -> None:
            if request.channel is None or request.finished:
                return
            if i == len(frames):
                finish()
                return
            frame = frames[i]
            if frame is None:
                cut()
                return
            if frame is _HANG:
                return
            request.write(frame)
            if reply.delay:
                timer = deferLater(clock, reply.delay, step, i + 1)
                self._timers.append(timer)
                timer.addErrback(lambda f: f.trap(CancelledError))
                timer.addBoth(self._forget_timer, timer)
            else:
                step(i + 1)

        step(0)
