"""
Small helpers for writing JSON and errors onto a twisted.web request, and a
request class that enforces the body size limit while the body arrives.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from twisted.web.server import Request

from ..engine.errors import ProxyError
from ..engine.jsontext import json_bytes


def gone(request: Request) -> bool:
    """
    The request is finished or its client has gone: nothing more may be
    written.
    """
    return bool(request.finished) or bool(getattr(request, "_disconnected", False))


def write_live(request: Request, data: bytes) -> None:
    if not gone(request):
        request.write(data)


def open_event_stream(request: Request) -> None:
    """
    Start a 200 server-sent-events response.
    """
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"cache-control", b"no-cache")
    request.setHeader(b"x-accel-buffering", b"no")


def end_response(request: Request) -> None:
    """
    Detach the producer and finish the response, if the client is still
    there.
    """
    if getattr(request, "producer", None) is not None:
        request.unregisterProducer()
    if not gone(request):
        request.finish()


def write_json(request: Request, status: int, obj: Any, headers: Mapping[str, str] = {}) -> None:
    """
    Answer C{request} with C{obj} as JSON and finish it, unless it is
    already finished or its client is gone.
    """
    if gone(request):
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    for name, value in headers.items():
        request.setHeader(name.encode(), value.encode())
    request.write(json_bytes(obj))
    request.finish()


def openai_error(error: ProxyError) -> dict[str, Any]:
    """
    C{error} as OpenAI's error object: the shape of the daemon's own
    errors, and of the OpenAI protocols' (chat, responses).
    """
    return {"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}}


def error_bytes(error: ProxyError) -> bytes:
    """
    The body of an error the daemon answers before any route runs (the
    Host guard, an unknown path): OpenAI's error object.
    """
    return json.dumps(openai_error(error)).encode()


def write_error(request: Request, error: ProxyError) -> None:
    """
    Answer C{request} with C{error} as OpenAI's error object.
    """
    write_json(request, error.status, openai_error(error), error.headers())


def no_delay(channel: Any) -> None:
    """
    Turn Nagle's algorithm off on a TCP connection, once: a streamed reply
    is many small writes (the headers, then each event), and on loopback a
    small write behind one not yet acknowledged waits for the peer's
    delayed ACK (up to 40 ms on Linux).
    """
    if channel is None or getattr(channel, "_claudeproxy_no_delay", False):
        return
    channel._claudeproxy_no_delay = True
    setter = getattr(getattr(channel, "transport", None), "setTcpNoDelay", None)
    if setter is not None:
        try:
            setter(True)
        except OSError:
            # not a TCP socket after all (a UNIX socket listener)
            return


class LimitedRequest(Request):
    """
    A request that stops storing its body once it passes C{max_body}
    bytes; the route then answers 413.
    """

    max_body = 32 * 1024 * 1024
    too_large = False

    def process(self) -> None:
        no_delay(self.channel)
        super().process()

    def gotLength(self, length: Any) -> None:
        if length is not None and length > self.max_body:
            self.too_large = True
            length = 0
        super().gotLength(length)
        self._received = 0

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self.too_large = True
            if self.content is not None:
                self.content.seek(0)
                self.content.truncate()
            return
        super().handleContentChunk(data)


def error_before_stream(request: Request, error: ProxyError, write_err: Callable[[Request, ProxyError], None]) -> None:
    """
    A streamed turn failed before its first event: no longer its push
    producer, the request gets a plain error in the protocol's shape.
    """
    if getattr(request, "producer", None) is not None:
        request.unregisterProducer()
    write_err(request, error)


def limited_request(max_body: int) -> type[LimitedRequest]:
    return type("LimitedRequest", (LimitedRequest,), {"max_body": max_body})


__all__ = [
    "end_response",
    "error_before_stream",
    "error_bytes",
    "gone",
    "LimitedRequest",
    "json_bytes",
    "limited_request",
    "no_delay",
    "open_event_stream",
    "openai_error",
    "write_error",
    "write_json",
    "write_live",
]
