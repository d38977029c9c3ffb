"""
The base of every protocol's streamed output: a turn written as
server-sent events onto an HTTP response.
"""

from __future__ import annotations

from twisted.web.server import Request

from ..engine.errors import ProxyError
from ..web.httpio import end_response, error_before_stream, open_event_stream, write_live
from ..web.mount import ErrorWriter


class StreamedOutput:
    """
    A turn as server-sent events.  The headers and the protocol's opening
    events (L{opening}) go out with the first piece of the reply, so an
    error before any gets its real HTTP status, written by C{write_error};
    an error after it is written into the stream (L{error_events}), and
    the stream ends.  The model the reply names is told before the first
    output (L{named}).
    """

    def __init__(self, request: Request, write_error: ErrorWriter, reply_id: str) -> None:
        self.request = request
        self.write_error = write_error
        #: the id the reply is given (the request's id)
        self.reply_id = reply_id
        #: the model the reply names, as the client asked for it
        self.model = ""
        self.started = False
        self.status = 200

    def named(self, model: str) -> None:
        self.model = model

    # -- what each protocol writes ---------------------------------------------

    def opening(self) -> None:
        """
        The events that open the stream, after its headers.
        """

    def error_events(self, error: ProxyError) -> None:
        """
        The events that say the turn failed after the stream began.
        """
        raise NotImplementedError

    # -- writing -----------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        write_live(self.request, data)

    def _start(self) -> None:
        if self.started:
            return
        self.started = True
        open_event_stream(self.request)
        self.opening()

    def _end(self) -> None:
        end_response(self.request)

    def failed(self, error: ProxyError) -> None:
        self.status = error.status
        if not self.started:
            error_before_stream(self.request, error, self.write_error)
            return
        self.error_events(error)
        self._end()


__all__ = ["StreamedOutput"]
