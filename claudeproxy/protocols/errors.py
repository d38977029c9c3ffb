"""
How a protocol's Klein app answers a L{ProxyError}: in the protocol's own
shape, by the writer the protocol gives.
"""

from __future__ import annotations

from typing import Any, Callable, cast

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from ..engine.errors import ProxyError

#: writes an error as a plain answer in a protocol's shape
ErrorWriter = Callable[[Request, ProxyError], None]


def answering_errors(app: Klein, write: ErrorWriter) -> Klein:
    """
    C{app}, with an error handler that answers a L{ProxyError} raised by any
    of its routes with C{write}.
    """

    def proxy_error(self: Any, request: IRequest, failure: Failure) -> None:
        # self: the app's instance, unused
        write(cast(Request, request), cast(ProxyError, failure.value))

    app.handle_errors(ProxyError)(proxy_error)
    return app


__all__ = ["ErrorWriter", "answering_errors"]
