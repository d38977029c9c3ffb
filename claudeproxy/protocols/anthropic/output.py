"""
Anthropic Messages answers written onto an HTTP response: the streaming
(SSE) and the whole-message forms.  The shapes come from
L{shapes}; this module only writes them.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.spec import TurnSpec
from ...engine.told import ProtocolOutput
from ...engine.turn import Finished, TurnState, Usage, WebSearch
from ...web.httpio import write_json
from ..streamed import StreamedOutput
from . import shapes
from .parse import MessagesRequest


def _copy_request_id(request: Request) -> None:
    rid = request.responseHeaders.getRawHeaders(b"x-request-id")
    if rid:
        request.setHeader(b"request-id", rid[0])


def write_anthropic_error(request: Request, error: ProxyError) -> None:
    """
    Answer C{request} with C{error} in Anthropic's shape and its real
    HTTP status.
    """
    _copy_request_id(request)
    write_json(request, error.status, shapes.error_object(error), error.headers())


def messages_output(request: Request, spec: TurnSpec, state: TurnState, rid: str, created: int) -> ProtocolOutput:
    """
    How a Messages request is answered: events when it asks for a stream,
    else one message at the end.
    """
    assert isinstance(spec, MessagesRequest)
    if spec.stream:
        return AnthropicStreamOutput(request, rid, state.usage_so_far, spec.include_thinking)
    return AnthropicOutput(request, rid, spec.include_thinking)


class AnthropicStreamOutput(StreamedOutput):
    """
    Server-sent events with Anthropic's event names.  Headers and
    C{message_start} go out with the first content, so an error before it
    gets its real HTTP status; an error after it ends the stream with an
    C{error} event.
    """

    def __init__(
        self,
        request: Request,
        message_id: str,
        usage: Callable[[], Usage],
        include_thinking: bool = False,
    ) -> None:
        super().__init__(request, write_anthropic_error, message_id)
        self.usage = usage
        self.include_thinking = include_thinking
        #: the reply is streamed, not kept
        self.needs_text = False
        #: the open content block: its kind ("text", "thinking", "tool_use") and index
        self._open: Optional[tuple[str, int]] = None
        self._next = 0
        #: tool call index -> content block index
        self._calls: dict[int, int] = {}

    def opening(self) -> None:
        _copy_request_id(self.request)
        self._write(shapes.message_start(self.reply_id, self.model, self.usage()))

    def _close_block(self) -> None:
        if self._open is not None:
            self._write(shapes.block_stop(self._open[1]))
            self._open = None

    def _block(self, kind: str, block: dict[str, Any]) -> int:
        """
        The index of an open block of C{kind}, opening a new one (after
        closing the last) unless the open one is of that kind.
        """
        self._start()
        if self._open is not None and self._open[0] == kind and kind != "tool_use":
            return self._open[1]
        self._close_block()
        index = self._next
        self._next += 1
        self._open = (kind, index)
        self._write(shapes.block_start(index, block))
        return index

    def text(self, text: str) -> None:
        index = self._block("text", {"type": "text", "text": ""})
        self._write(shapes.block_delta(index, {"type": "text_delta", "text": text}))

    def reasoning(self, text: str) -> None:
        if not self.include_thinking:
            return
        index = self._block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        self._write(shapes.block_delta(index, {"type": "thinking_delta", "thinking": text}))

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self._calls[index] = self._block("tool_use", shapes.tool_use_block(call_id, name, {}))

    def tool_call_delta(self, index: int, arguments: str) -> None:
        block = self._calls.get(index)
        if block is None or self._open != ("tool_use", block):
            return
        self._write(shapes.block_delta(block, {"type": "input_json_delta", "partial_json": arguments}))

    def web_search(self, search: WebSearch) -> None:
        use, result = shapes.search_blocks(search)
        index = self._block("server_tool_use", dict(use, input={}))
        self._write(shapes.block_delta(index, {"type": "input_json_delta", "partial_json": json.dumps(use["input"])}))
        self._close_block()
        self._block("web_search_tool_result", result)
        self._close_block()

    def finished(self, finished: Finished) -> None:
        self._start()
        self._close_block()
        self._write(shapes.message_delta(shapes.stop_reason(finished), finished.stop_sequence, finished.usage))
        self._write(shapes.MESSAGE_STOP)
        self._end()

    def error_events(self, error: ProxyError) -> None:
        self._write(shapes.error_event(error))


class AnthropicOutput:
    """
    One JSON message at the end.
    """

    needs_text = True

    def __init__(self, request: Request, message_id: str, include_thinking: bool = False) -> None:
        self.request = request
        self.message_id = message_id
        self.include_thinking = include_thinking
        self.status = 200
        #: content blocks in order; tool_use inputs are gathered as JSON text
        self.blocks: list[dict[str, Any]] = []
        self._calls: dict[int, dict[str, Any]] = {}

    def _last(self, kind: str) -> Optional[dict[str, Any]]:
        if self.blocks and self.blocks[-1]["type"] == kind:
            return self.blocks[-1]
        return None

    def text(self, text: str) -> None:
        block = self._last("text")
        if block is None:
            self.blocks.append({"type": "text", "text": text})
        else:
            block["text"] += text

    def reasoning(self, text: str) -> None:
        if not self.include_thinking:
            return
        block = self._last("thinking")
        if block is None:
            self.blocks.append({"type": "thinking", "thinking": text, "signature": ""})
        else:
            block["thinking"] += text

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        block = {"type": "tool_use", "id": call_id, "name": name, "input": ""}
        self._calls[index] = block
        self.blocks.append(block)

    def tool_call_delta(self, index: int, arguments: str) -> None:
        block = self._calls.get(index)
        if block is not None:
            block["input"] += arguments

    def web_search(self, search: WebSearch) -> None:
        self.blocks.extend(shapes.search_blocks(search))

    def named(self, model: str) -> None:
        """
        The model the message names: the finished turn names it.
        """

    def content(self, finished: Finished) -> list[dict[str, Any]]:
        """
        The message's content blocks; tool inputs parsed, or taken from
        the finished turn's calls.
        """
        calls = {c.id: c for c in finished.tool_calls}
        out: list[dict[str, Any]] = []
        for block in self.blocks:
            if block["type"] != "tool_use":
                out.append(block)
                continue
            call = calls.pop(block["id"], None)
            if call is not None:
                tool_input = call.input()
            else:
                try:
                    tool_input = json.loads(block["input"]) if block["input"].strip() else {}
                except ValueError:
                    tool_input = {}
            out.append(shapes.tool_use_block(block["id"], block["name"], tool_input))
        for call in finished.tool_calls:
            if call.id in calls:
                out.append(shapes.tool_use_block(call.id, call.name, call.input()))
        return out

    def finished(self, finished: Finished) -> None:
        body = shapes.message(
            self.message_id,
            finished.model,
            self.content(finished),
            shapes.stop_reason(finished),
            finished.stop_sequence,
            finished.usage,
        )
        _copy_request_id(self.request)
        write_json(self.request, 200, body)

    def failed(self, error: ProxyError) -> None:
        self.status = error.status
        write_anthropic_error(self.request, error)
