"""
OpenAI Responses written onto an HTTP response: the streaming (semantic
server-sent events) and the whole-response forms.  The shapes come from
L{shapes} and L{events}; this module only orders and writes them.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Optional

import attrs
from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.streaming import WholeReply
from ...engine.tools import ToolCall
from ...engine.turn import Finished, WebSearch
from ...web.httpio import write_error, write_json
from ..streamed import StreamedOutput
from . import events, shapes
from . import parse as orsp


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@attrs.define
class _Item:
    """
    An output item being streamed: its slot in C{output}, its kind and
    what has been streamed into it so far.
    """

    index: int
    kind: str
    id: str
    parts: list[str] = attrs.Factory(list)
    call_id: str = ""
    name: str = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ResponsesStreamOutput(StreamedOutput):
    """
    The semantic event stream.  Headers go out with the first output, so an
    error before any gets its real HTTP status; an error after it ends the
    stream with C{response.failed} and an C{error} event.

    @ivar response: the final response object, once there is one.
    """

    #: the reply is kept whole (a stored response can be continued)
    needs_text = True

    def __init__(
        self,
        request: Request,
        spec: orsp.ResponsesRequest,
        response_id: str,
        created: int,
        clock: Callable[[], float],
        make_id: Callable[[str], str] = new_id,
    ) -> None:
        super().__init__(request, write_error, response_id)
        self.spec = spec
        self.created = created
        self.clock = clock
        self.make_id = make_id
        self.sequence = 0
        #: every item so far, in output order: the finished ones as dicts
        self.output: list[dict[str, Any]] = []
        #: the open text or reasoning item
        self.current: Optional[_Item] = None
        #: open function calls, by the turn's call index
        self.calls: dict[int, _Item] = {}
        self.response: Optional[dict[str, Any]] = None

    # -- writing -------------------------------------------------------------

    def _emit(self, build: Callable[..., dict[str, Any]], *args: Any) -> None:
        obj = build(self.sequence, *args)
        self.sequence += 1
        self._write(events.sse(obj))

    def _response(self, status: str, **kw: Any) -> dict[str, Any]:
        return shapes.response_object(
            self.reply_id, self.created, self.model, status, self.output, self.spec.echo, **kw
        )

    def opening(self) -> None:
        pending = self._response("in_progress")
        self._emit(events.lifecycle, "response.created", pending)
        self._emit(events.lifecycle, "response.in_progress", pending)

    # -- items -----------------------------------------------------------------

    def _open(self, kind: str, prefix: str, placeholder: dict[str, Any], **kw: Any) -> _Item:
        item = _Item(len(self.output), kind, self.make_id(prefix), **kw)
        placeholder["id"] = item.id
        self.output.append(placeholder)
        self._emit(events.item_added, item.index, placeholder)
        return item

    def _open_text(self, kind: str) -> _Item:
        if self.current is not None and self.current.kind == kind:
            return self.current
        self._close_current()
        self._close_calls()
        if kind == "message":
            item = self._open("message", "msg_", shapes.message_item("", None, "in_progress"))
            self._emit(events.content_part_added, item.id, item.index)
        else:
            item = self._open("reasoning", "rs_", shapes.reasoning_item("", None, "in_progress"))
            self._emit(events.summary_part_added, item.id, item.index)
        self.current = item
        return item

    def _close_current(self, status: str = "completed") -> None:
        item, self.current = self.current, None
        if item is None:
            return
        text = item.text
        if item.kind == "message":
            self._emit(events.text_done, item.id, item.index, text)
            self._emit(events.content_part_done, item.id, item.index, text)
            done = shapes.message_item(item.id, text, status)
        else:
            self._emit(events.summary_text_done, item.id, item.index, text)
            self._emit(events.summary_part_done, item.id, item.index, text)
            done = shapes.reasoning_item(item.id, text)
        self.output[item.index] = done
        self._emit(events.item_done, item.index, done)

    def _close_calls(self, final: tuple[ToolCall, ...] = ()) -> None:
        calls, self.calls = self.calls, {}
        for _, item in sorted(calls.items()):
            arguments = item.text
            for call in final:
                if call.id == item.call_id:
                    if call.arguments != arguments and call.arguments.startswith(arguments):
                        self._emit(events.arguments_delta, item.id, item.index, call.arguments[len(arguments) :])
                    arguments = call.arguments
            if not arguments:
                arguments = "{}"
            tool = self.spec.client_tools.get(item.name)
            if tool is None or not tool.custom:
                self._emit(events.arguments_done, item.id, item.index, arguments)
            done = shapes.call_item(item.id, ToolCall(item.call_id, item.name, arguments), self.spec.client_tools)
            self.output[item.index] = done
            self._emit(events.item_done, item.index, done)

    # -- TurnOutput ------------------------------------------------------------

    def text(self, text: str) -> None:
        self._start()
        item = self._open_text("message")
        item.parts.append(text)
        self._emit(events.text_delta, item.id, item.index, text)

    def reasoning(self, text: str) -> None:
        self._start()
        item = self._open_text("reasoning")
        item.parts.append(text)
        self._emit(events.summary_text_delta, item.id, item.index, text)

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self._start()
        self._close_current()
        placeholder = shapes.call_item("", ToolCall(call_id, name, ""), self.spec.client_tools, "in_progress")
        self.calls[index] = self._open("function_call", "fc_", placeholder, call_id=call_id, name=name)

    def tool_call_delta(self, index: int, arguments: str) -> None:
        item = self.calls.get(index)
        if item is None or not arguments:
            return
        item.parts.append(arguments)
        tool = self.spec.client_tools.get(item.name)
        if tool is None or not tool.custom:
            # a custom tool's input is only known whole (it is JSON upstream)
            self._emit(events.arguments_delta, item.id, item.index, arguments)

    def web_search(self, search: WebSearch) -> None:
        self._start()
        self._close_current()
        self._close_calls()
        item = self._open("web_search_call", "ws_", shapes.web_search_item("", None, "in_progress"))
        for kind in ("in_progress", "searching", "completed"):
            self._emit(
                events.event_of, "response.web_search_call." + kind, {"item_id": item.id, "output_index": item.index}
            )
        done = shapes.web_search_item(item.id, search)
        self.output[item.index] = done
        self._emit(events.item_done, item.index, done)

    def finished(self, finished: Finished) -> None:
        self._start()
        status, incomplete = shapes.end_status(finished)
        if self.current is not None:
            self._close_current(
                "incomplete" if status == "incomplete" and self.current.kind == "message" else "completed"
            )
        self._close_calls(finished.tool_calls)
        if not any(item["type"] in ("message", "function_call", "custom_tool_call") for item in self.output):
            # nothing said and nothing called: still one (empty) message
            self._open_text("message")
            self._close_current("incomplete" if status == "incomplete" else "completed")
        self.response = self._response(
            status,
            usage=finished.usage,
            incomplete=incomplete,
            completed_at=int(self.clock()),
        )
        self.response["model"] = finished.model
        kind = "response.completed" if status == "completed" else "response.incomplete"
        self._emit(events.lifecycle, kind, self.response)
        self._end()

    def error_events(self, error: ProxyError) -> None:
        for item in [self.current, *self.calls.values()]:
            if item is None:
                continue
            if item.kind == "message":
                self.output[item.index] = shapes.message_item(item.id, item.text, "incomplete")
            elif item.kind == "reasoning":
                self.output[item.index] = shapes.reasoning_item(item.id, item.text, "incomplete")
            else:
                call = ToolCall(item.call_id, item.name, item.text)
                self.output[item.index] = shapes.call_item(item.id, call, self.spec.client_tools, "incomplete")
        self.current, self.calls = None, {}
        self.response = self._response("failed", error=error)
        self._emit(events.lifecycle, "response.failed", self.response)
        self._emit(events.error_event, error)


class ResponsesOutput(WholeReply):
    """
    One JSON response object at the end.
    """

    def __init__(
        self,
        request: Request,
        spec: orsp.ResponsesRequest,
        response_id: str,
        created: int,
        clock: Callable[[], float],
        make_id: Callable[[str], str] = new_id,
    ) -> None:
        self.request = request
        self.spec = spec
        self.response_id = response_id
        self.created = created
        self.clock = clock
        self.make_id = make_id
        super().__init__()
        self.response: Optional[dict[str, Any]] = None

    def finished(self, finished: Finished) -> None:
        status, incomplete = shapes.end_status(finished)
        self.response = shapes.response_object(
            self.response_id,
            self.created,
            finished.model,
            status,
            shapes.output_items(finished, "".join(self.parts), self.make_id, self.spec.client_tools),
            self.spec.echo,
            usage=finished.usage,
            incomplete=incomplete,
            completed_at=int(self.clock()),
        )
        write_json(self.request, 200, self.response)

    def failed(self, error: ProxyError) -> None:
        self.status = error.status
        write_error(self.request, error)
