"""
What one turn of the CLI produced, read from its stream-json lines.

L{TurnState.feed} takes each parsed line and returns protocol-neutral output
events; every front-end renders those.  Pure: no I/O, no clock (the caller
passes C{now}).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping, Optional, Union

import attrs

from .errors import ProxyError, error_from_result
from .isolation import reports_compaction
from .tools import ToolCall, client_name

#: why a turn ends (L{Finished.stop_reason}): the words upstream uses, as
#: the CLI reports them; each protocol maps them to its own
STOP_REASONS = frozenset({"end_turn", "stop_sequence", "max_tokens", "tool_use", "pause_turn", "refusal"})


@attrs.frozen
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage:
        if not isinstance(usage, Mapping):
            return cls()

        def n(key: str) -> int:
            v = usage.get(key)
            return v if isinstance(v, int) and v >= 0 else 0

        return cls(
            n("input_tokens"),
            n("output_tokens"),
            n("cache_read_input_tokens"),
            n("cache_creation_input_tokens"),
        )


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def digest_text(text: str) -> str:
    """
    The digest a reply's text is remembered by (sha256 of its UTF-8).
    """
    return hashlib.sha256(_utf8(text)).hexdigest()


@attrs.frozen
class TextOut:
    text: str


@attrs.frozen
class ReasoningOut:
    text: str


@attrs.frozen
class ToolCallStart:
    """
    The model began a call of one of the client's tools (C{index} counts
    the client's calls in this turn from 0).
    """

    index: int
    id: str
    name: str


@attrs.frozen
class ToolCallDelta:
    index: int
    arguments: str


@attrs.frozen
class StructuredDelta:
    """
    A piece of the JSON the model is writing as the structured output
    (the input of the CLI's C{StructuredOutput} tool, as the model streams
    it); C{attempt} counts the model's calls of that tool in the turn from 1
    (a second one means the CLI refused the first for its schema).
    """

    json: str
    attempt: int


#: the CLI's tool the model answers with under C{--json-schema}
STRUCTURED_TOOL = "StructuredOutput"


@attrs.frozen
class WebSearch:
    """
    A web search the model ran (the CLI's WebSearch tool, backed by the
    API's web search server tool): its tool-use id, the query and the
    C{(url, title)} of each result.
    """

    id: str
    query: str
    sources: tuple[tuple[str, str], ...] = ()


#: the CLI's tool that runs a web search
WEB_SEARCH_TOOL = "WebSearch"


def search_sources(result: Any) -> tuple[tuple[str, str], ...]:
    """
    The C{(url, title)} results of a WebSearch tool result as the CLI
    reports it (C{tool_use_result.results}: result blocks and text).
    """
    out: list[tuple[str, str]] = []
    for entry in result.get("results") or [] if isinstance(result, Mapping) else []:
        if not isinstance(entry, Mapping):
            continue
        for hit in entry.get("content") or []:
            if isinstance(hit, Mapping) and isinstance(hit.get("url"), str):
                title = hit.get("title")
                out.append((hit["url"], title if isinstance(title, str) else hit["url"]))
    return tuple(out)


@attrs.frozen
class Finished:
    """
    The turn ended well.  C{stop_reason} says why (L{STOP_REASONS}, None
    when the CLI did not say).
    """

    text: str
    reasoning: str
    model: str
    stop_reason: Optional[str]
    usage: Usage
    result: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    tool_calls: tuple[ToolCall, ...] = ()
    #: the text is the CLI's validated structured output (C{--json-schema})
    structured: bool = False
    #: the client's stop sequence that ended the text, if one did
    stop_sequence: Optional[str] = None
    #: L{digest_text} of the text the turn delivered, and its length, kept
    #: even when C{text} is not (a streamed reply nobody needs whole); empty
    #: when not known (then C{text} is the reply)
    text_digest: str = ""
    text_length: int = 0
    #: L{digest_text} of the text without its trailing whitespace
    trimmed_digest: str = ""
    #: the web searches the model ran in this turn
    searches: tuple[WebSearch, ...] = ()

    def reply_digest(self) -> str:
        """
        L{digest_text} of the reply's text.
        """
        return self.text_digest or digest_text(self.text)

    def trimmed_reply_digest(self) -> str:
        """
        L{digest_text} of the reply's text without trailing whitespace.
        """
        if self.text_digest:
            return self.trimmed_digest or self.text_digest
        return digest_text(self.text.rstrip())

    @property
    def reply_length(self) -> int:
        return self.text_length if self.text_digest else len(self.text)


@attrs.frozen
class Failed:
    error: ProxyError


@attrs.frozen
class Compacting:
    """
    The CLI reported compacting (or trimming) the conversation it holds:
    what it would answer from is no longer the client's conversation.
    """

    subtype: str


Output = Union[
    TextOut, ReasoningOut, ToolCallStart, ToolCallDelta, StructuredDelta, WebSearch, Finished, Failed, Compacting
]


@attrs.define
class TurnState:
    """
    Follows one turn.  C{model} starts as the model asked for and becomes
    the one the CLI reports.

    With C{keep_text} false the text and reasoning are not kept (a streamed
    reply of any size costs no memory): L{Finished} then has empty C{text}
    and C{reasoning}, and only the digest and length of the text.
    """

    model: str
    keep_text: bool = True
    #: with C{keep_text} false, the text is still kept while it is at most
    #: this many characters (to start a process on the conversation ahead)
    keep_upto: int = 0
    text: list[str] = attrs.Factory(list)
    reasoning: list[str] = attrs.Factory(list)
    stop_reason: Optional[str] = None
    rate_limit: Optional[Mapping[str, Any]] = None
    done: bool = False
    _message_id: Optional[str] = None
    _message_complete: bool = True
    #: the current message's stream said why it stopped (message_delta)
    _message_stopped: bool = False
    #: the digest and length of all the text delivered
    _digest: Any = attrs.Factory(hashlib.sha256)
    _trimmed: Any = attrs.Factory(hashlib.sha256)
    _text_length: int = 0
    #: the text streamed for a message that has not completed (a retry of
    #: it may repeat it) is what was delivered after this point: the
    #: digest then, and the length then
    _partial_from: Any = attrs.Factory(hashlib.sha256)
    _partial_start: int = 0
    _streamed_text: set[str] = attrs.Factory(set)
    _streamed_reasoning: set[str] = attrs.Factory(set)
    _message_usage: Usage = Usage()
    _stream_usage: Usage = Usage()
    #: the client's tool calls of the current message, by content block index
    _calls: dict[int, list[Any]] = attrs.Factory(dict)
    _call_count: int = 0
    _message_tool_input: dict[str, Any] = attrs.Factory(dict)
    _kept: Optional[list[str]] = attrs.Factory(list)
    #: WebSearch tool calls seen (id -> query), and the searches done
    _search_calls: dict[str, str] = attrs.Factory(dict)
    searches: list[WebSearch] = attrs.Factory(list)
    #: the content block index of the StructuredOutput call being
    #: streamed, and how many such calls the turn has seen
    _structured_block: Optional[int] = None
    _structured_calls: int = 0

    def usage_so_far(self) -> Usage:
        """
        The usage reported by the stream until now (for a turn the daemon
        ends itself).
        """
        return self._stream_usage

    @property
    def text_length(self) -> int:
        """
        How many characters of text the turn has delivered so far (kept or
        not).
        """
        return self._text_length

    def reply_text(self) -> Optional[str]:
        """
        The whole text the turn delivered, when it was kept (see
        C{keep_upto}) and is what its digest says; else None.
        """
        text = "".join(self.text) if self.keep_text else ("".join(self._kept) if self._kept is not None else None)
        if text is None or digest_text(text) != self._digest.hexdigest():
            return None
        return text

    def text_streamed(self, message_id: str) -> bool:
        """
        Whether text deltas of the message C{message_id} arrived (its text
        is not needed again from the complete message).
        """
        return message_id in self._streamed_text

    def _add_text(self, text: str) -> None:
        head = text.rstrip()
        if head:
            # the digest of the text without its trailing whitespace, which
            # clients (Open WebUI) trim from the reply they send back
            self._trimmed = self._digest.copy()
            self._trimmed.update(_utf8(head))
        self._digest.update(_utf8(text))
        self._text_length += len(text)
        if self.keep_text:
            self.text.append(text)
        elif self._kept is not None:
            if self._text_length > self.keep_upto:
                self._kept = None
            else:
                self._kept.append(text)

    def _add_reasoning(self, text: str) -> None:
        if self.keep_text:
            self.reasoning.append(text)

    def _reset_partial(self) -> None:
        self._partial_from = self._digest.copy()
        self._partial_start = self._text_length

    @property
    def _partial_length(self) -> int:
        return self._text_length - self._partial_start

    def _starts_with_partial(self, text: str) -> bool:
        """
        Whether C{text} begins with the partial text (compared by digest).
        """
        n = self._partial_length
        if not n or len(text) < n:
            return False
        candidate = self._partial_from.copy()
        candidate.update(_utf8(text[:n]))
        return bool(candidate.digest() == self._digest.digest())

    def discard_text(self) -> None:
        """
        Forget the text and reasoning delivered so far: the client never
        saw them (an answer refused because it called no tool).
        """
        self.text = []
        self.reasoning = []
        self._digest = hashlib.sha256()
        self._trimmed = hashlib.sha256()
        self._text_length = 0
        self._kept = []
        self._reset_partial()

    def finished_so_far(self, **kwargs: Any) -> Finished:
        """
        A L{Finished} with the text, reasoning and digest so far (unless
        given).
        """
        kwargs.setdefault("text", "".join(self.text))
        kwargs.setdefault("reasoning", "".join(self.reasoning))
        kwargs.setdefault("text_digest", self._digest.hexdigest())
        kwargs.setdefault("trimmed_digest", self._trimmed.hexdigest())
        kwargs.setdefault("text_length", self._text_length)
        kwargs.setdefault("searches", tuple(self.searches))
        return Finished(model=self.model, **kwargs)

    def feed(self, line: Mapping[str, Any], now: float = 0.0) -> list[Output]:
        kind = line.get("type")
        if kind == "stream_event":
            return self._stream_event(line.get("event"))
        if kind == "assistant":
            return self._assistant(line.get("message"))
        if kind == "system":
            if reports_compaction(line):
                return [Compacting(str(line.get("subtype")))]
            if line.get("subtype") == "init" and isinstance(line.get("model"), str):
                self.model = line["model"]
            return []
        if kind == "rate_limit_event":
            info = line.get("rate_limit_info")
            if isinstance(info, Mapping):
                self.rate_limit = info
            return []
        if kind == "result":
            return [self._result(line, now)]
        if kind == "user":
            return self._tool_results(line)
        return []

    def _tool_results(self, line: Mapping[str, Any]) -> list[Output]:
        """
        A C{user} line the CLI reports for its own tool results: a
        WebSearch result becomes a L{WebSearch}.
        """
        message = line.get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        out: list[Output] = []
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, Mapping) or block.get("type") != "tool_result":
                continue
            tid = block.get("tool_use_id")
            if tid not in self._search_calls:
                continue
            result = line.get("tool_use_result")
            query = self._search_calls.pop(str(tid))
            if isinstance(result, Mapping) and isinstance(result.get("query"), str):
                query = result["query"]
            search = WebSearch(str(tid), query, search_sources(result))
            self.searches.append(search)
            out.append(search)
        return out

    def _stream_event(self, event: Any) -> list[Output]:
        if not isinstance(event, Mapping):
            return []
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            if self._message_complete or not self._partial_length:
                self._reset_partial()
            self._message_id = message.get("id")
            self._calls = {}
            self._structured_block = None
            self._message_tool_input = {}
            self._stream_usage = Usage.from_anthropic(message.get("usage"))
            self._message_complete = False
            self._message_stopped = False
            if isinstance(message.get("model"), str) and message["model"] != "<synthetic>":
                self.model = message["model"]
            return []
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name") == WEB_SEARCH_TOOL:
                self._search_calls.setdefault(str(block.get("id", "")), "")
            if block.get("type") == "tool_use" and block.get("name") == STRUCTURED_TOOL:
                self._structured_block = event.get("index")
                self._structured_calls += 1
            name = client_name(block.get("name")) if block.get("type") == "tool_use" else None
            if name is not None and isinstance(event.get("index"), int):
                index = self._call_count
                self._call_count += 1
                self._calls[event["index"]] = [index, str(block.get("id", "")), name, []]
                return [ToolCallStart(index, str(block.get("id", "")), name)]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dkind = delta.get("type")
            if (
                dkind == "input_json_delta"
                and self._structured_block is not None
                and event.get("index") == self._structured_block
            ):
                partial = delta.get("partial_json")
                if isinstance(partial, str) and partial:
                    return [StructuredDelta(partial, self._structured_calls)]
                return []
            if dkind == "input_json_delta" and event.get("index") in self._calls:
                partial = delta.get("partial_json")
                if isinstance(partial, str) and partial:
                    call = self._calls[event["index"]]
                    call[3].append(partial)
                    return [ToolCallDelta(call[0], partial)]
                return []
            if dkind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
                if self._message_id:
                    self._streamed_text.add(self._message_id)
                self._add_text(delta["text"])
                return [TextOut(delta["text"])]
            if dkind == "thinking_delta" and isinstance(delta.get("thinking"), str) and delta["thinking"]:
                if self._message_id:
                    self._streamed_reasoning.add(self._message_id)
                self._add_reasoning(delta["thinking"])
                return [ReasoningOut(delta["thinking"])]
            return []
        if kind == "message_delta":
            delta = event.get("delta") or {}
            if isinstance(delta.get("stop_reason"), str):
                self.stop_reason = delta["stop_reason"]
                self._message_stopped = True
            usage = event.get("usage")
            if isinstance(usage, Mapping) and isinstance(usage.get("output_tokens"), int):
                self._stream_usage = attrs.evolve(self._stream_usage, output_tokens=usage["output_tokens"])
            if self.stop_reason == "max_tokens":
                # the output limit: the turn ends here (the CLI would go on
                # asking the model to resume)
                return [self._cut("max_tokens")]
            return []
        if kind == "message_stop":
            if not self._message_stopped:
                # a stream that broke: newer CLIs (2.1.332) close it with a
                # message_stop of their own, then send the reply they got
                # again without streaming; what was streamed stays partial
                return []
            self._message_complete = True
            self._reset_partial()
            if self.stop_reason == "tool_use" and self._calls:
                return [self._tool_turn_end()]
            return []
        return []

    def _cut(self, stop_reason: str) -> Finished:
        self.done = True
        return self.finished_so_far(
            stop_reason=stop_reason,
            usage=self._stream_usage if self._stream_usage != Usage() else self._message_usage,
        )

    def _tool_turn_end(self) -> Finished:
        """
        The model stopped to call the client's tools: the turn ends here for
        the client, while the CLI waits inside its MCP calls.
        """
        calls = []
        for _, (_, cid, name, parts) in sorted(self._calls.items()):
            arguments = "".join(parts)
            if not arguments and cid in self._message_tool_input:
                arguments = json.dumps(self._message_tool_input[cid], ensure_ascii=False)
            calls.append(ToolCall(cid, name, arguments or "{}"))
        self.done = True
        return self.finished_so_far(
            stop_reason="tool_use",
            usage=self._stream_usage,
            tool_calls=tuple(calls),
        )

    def _assistant(self, message: Any) -> list[Output]:
        """
        A complete message.  When its text never came as deltas (the CLI
        re-requested without streaming after the upstream stream broke),
        send it now; if an interrupted message already sent a prefix of it,
        send only the rest.
        """
        if not isinstance(message, Mapping) or message.get("model") == "<synthetic>":
            return []
        mid = message.get("id")
        if isinstance(message.get("model"), str):
            self.model = message["model"]
        if isinstance(message.get("stop_reason"), str):
            self.stop_reason = message["stop_reason"]
        usage = Usage.from_anthropic(message.get("usage"))
        if usage != Usage():
            self._message_usage = usage
        out: list[Output] = []
        unstreamed_calls = []
        for block in message.get("content") or []:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "tool_use":
                self._message_tool_input[str(block.get("id", ""))] = block.get("input", {})
                if block.get("name") == WEB_SEARCH_TOOL:
                    tool_input = block.get("input")
                    query = tool_input.get("query") if isinstance(tool_input, Mapping) else None
                    self._search_calls[str(block.get("id", ""))] = query if isinstance(query, str) else ""
                name = client_name(block.get("name"))
                if name is not None and mid != self._message_id:
                    unstreamed_calls.append(block)
                continue
            if block.get("type") == "text" and mid not in self._streamed_text:
                text = block.get("text") or ""
                if self._starts_with_partial(text):
                    text = text[self._partial_length :]
                if text:
                    self._add_text(text)
                    out.append(TextOut(text))
                self._reset_partial()
            elif block.get("type") == "thinking" and mid not in self._streamed_reasoning:
                thinking = block.get("thinking") or ""
                if thinking:
                    self._add_reasoning(thinking)
                    out.append(ReasoningOut(thinking))
        if mid is not None and mid == self._message_id and not self._message_complete:
            # the streamed message, whole: it is complete
            self._message_complete = True
            self._reset_partial()
        if mid != self._message_id and message.get("stop_reason") == "max_tokens":
            out.append(self._cut("max_tokens"))
            return out
        if unstreamed_calls and message.get("stop_reason") == "tool_use":
            # a reply that came without deltas and stops for tool calls
            self._calls = {}
            for i, block in enumerate(unstreamed_calls):
                index = self._call_count
                self._call_count += 1
                arguments = json.dumps(block.get("input", {}), ensure_ascii=False)
                self._calls[i] = [index, str(block.get("id", "")), client_name(block.get("name")), [arguments]]
                out.append(ToolCallStart(index, str(block.get("id", "")), str(client_name(block.get("name")))))
                out.append(ToolCallDelta(index, arguments))
            out.append(self._tool_turn_end())
        return out

    def _result(self, line: Mapping[str, Any], now: float) -> Output:
        self.done = True
        if line.get("is_error"):
            return Failed(error_from_result(line, self.rate_limit, now))
        usage = Usage.from_anthropic(line.get("usage"))
        if usage.output_tokens == 0 and usage.input_tokens == 0:
            usage = self._message_usage
        stop = line.get("stop_reason")
        if isinstance(stop, str):
            self.stop_reason = stop
        structured = "structured_output" in line
        if structured:
            stop = "end_turn"
            self.stop_reason = stop
        model_usage = line.get("modelUsage")
        if isinstance(model_usage, Mapping) and len(model_usage) == 1:
            only = next(iter(model_usage))
            if isinstance(only, str) and only != "<synthetic>":
                self.model = only
        extra: dict[str, Any] = {}
        if structured:
            text = json.dumps(line["structured_output"], ensure_ascii=False)
            extra = {"text": text, "text_digest": digest_text(text), "text_length": len(text)}
        return self.finished_so_far(
            **extra,
            stop_reason=self.stop_reason,
            usage=usage,
            result=line,
            structured=structured,
        )
