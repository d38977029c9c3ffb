"""
OpenAI chat completions written onto an HTTP response: the streaming
(SSE) and the whole-answer forms.  The shapes come from
L{shapes}; this module only writes them.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.ids import call_alias
from ...engine.spec import TurnSpec
from ...engine.streaming import WholeReply
from ...engine.told import ProtocolOutput
from ...engine.turn import Finished, TurnState, WebSearch
from ...web.httpio import openai_error, write_error, write_json
from ..openai import finish_reason
from ..streamed import StreamedOutput
from . import shapes
from .parse import ChatRequest


def chat_output(request: Request, spec: TurnSpec, state: TurnState, rid: str, created: int) -> ProtocolOutput:
    """
    How a chat completion request is answered: chunks when it asks for a
    stream, else one C{chat.completion} at the end.
    """
    assert isinstance(spec, ChatRequest)
    if spec.stream:
        return ChatStreamOutput(request, rid, created, spec.include_usage)
    return ChatOutput(request, rid, created)


class ChatStreamOutput(StreamedOutput):
    """
    Server-sent events.  Headers go out with the first token, so an error
    before any token gets its real HTTP status; an error after it ends the
    stream with an error event and C{[DONE]}.
    """

    #: the finished turn's whole text is not used (so it is not kept)
    needs_text = False

    def __init__(self, request: Request, completion_id: str, created: int, include_usage: bool) -> None:
        super().__init__(request, write_error, completion_id)
        self.created = created
        self.include_usage = include_usage

    def _chunk(self, delta: dict[str, Any], finish_reason: Any = None) -> None:
        self._write(shapes.sse(shapes.chunk(self.reply_id, self.created, self.model, delta, finish_reason)))

    def opening(self) -> None:
        self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> None:
        self._start()
        self._chunk({"content": text})

    def reasoning(self, text: str) -> None:
        self._start()
        self._chunk({"reasoning_content": text})

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self._start()
        self._chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call_alias(call_id),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        )

    def tool_call_delta(self, index: int, arguments: str) -> None:
        self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})

    def web_search(self, search: WebSearch) -> None:
        self._start()

    def _end(self) -> None:
        self._write(shapes.DONE)
        super()._end()

    def finished(self, finished: Finished) -> None:
        self._start()
        if finished.searches:
            self._chunk({"annotations": shapes.url_citations(None, finished.searches)})
        self._chunk({}, finish_reason(finished))
        if self.include_usage:
            self._write(shapes.sse(shapes.usage_chunk(self.reply_id, self.created, finished.model, finished.usage)))
        self._end()

    def error_events(self, error: ProxyError) -> None:
        self._write(shapes.sse(openai_error(error)))


class ChatOutput(WholeReply):
    """
    One JSON chat.completion at the end.
    """

    def __init__(self, request: Request, completion_id: str, created: int) -> None:
        self.request = request
        self.completion_id = completion_id
        self.created = created
        super().__init__()

    def finished(self, finished: Finished) -> None:
        text = "".join(self.parts)
        body = shapes.completion(self.completion_id, self.created, finished, text, finish_reason(finished))
        if finished.searches:
            body["choices"][0]["message"]["annotations"] = shapes.url_citations(text, finished.searches)
        write_json(self.request, 200, body)

    def failed(self, error: ProxyError) -> None:
        self.status = error.status
        write_error(self.request, error)
