"""
What every protocol's Klein app shares: the L{Serving} its requests go
through (L{ProtocolApp}), and how it answers a L{ProxyError}: in the
protocol's own shape, by the writer the protocol gives
(L{answering_errors}).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, cast

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from ..engine.errors import ProxyError
from ..engine.spec import TurnSpec
from ..engine.streaming import TurnOutput
from ..engine.turn import TurnState
from ..web.serving import Serving

#: writes an error as a plain answer in a protocol's shape
ErrorWriter = Callable[[Request, ProxyError], None]
#: a protocol's request parser: the body and the model aliases to a spec
Parser = Callable[[bytes, tuple[tuple[str, str], ...]], TurnSpec]
#: a protocol's output maker: how the request is answered
Answer = Callable[[Request, TurnSpec, TurnState, str, int], TurnOutput]


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


class ProtocolApp:
    """
    The base of a protocol's Klein app (its own C{app = Klein()}, its
    routes and its state are the subclass's): the one L{Serving} its
    requests go through.
    """

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    @property
    def aliases(self) -> tuple[tuple[str, str], ...]:
        """
        The model aliases requests are resolved with.
        """
        return self.serving.config.model_aliases

    async def turn(
        self, request: Request, endpoint: str, id_prefix: str, parse: Parser, answer: Answer, write_error: ErrorWriter
    ) -> None:
        """
        Serve C{request} as one turn (L{Serving.serve}): its body read by
        C{parse}, answered by the output C{answer} makes, errors before the
        answer starts written by C{write_error}.
        """
        aliases = self.aliases
        await self.serving.serve(
            request, endpoint, id_prefix, lambda body: parse(body, aliases), partial(answer, request), write_error
        )


__all__ = ["Answer", "ErrorWriter", "Parser", "ProtocolApp", "answering_errors"]
