"""
What every protocol's Klein app shares (L{ProtocolApp}): the L{Serving}
its requests go through, and serving one turn with the protocol's parser,
output and error writer.  Its error handler is
L{claudeproxy.web.mount.answering_errors}'s.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from twisted.web.server import Request

from ..engine.spec import TurnSpec
from ..engine.told import ProtocolOutput
from ..engine.turn import TurnState
from ..web.mount import ErrorWriter
from ..web.serving import Serving

#: a protocol's request parser: the body and the model aliases to a spec
Parser = Callable[[bytes, tuple[tuple[str, str], ...]], TurnSpec]
#: a protocol's output maker: how the request is answered
Answer = Callable[[Request, TurnSpec, TurnState, str, int], ProtocolOutput]


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


__all__ = ["Answer", "Parser", "ProtocolApp"]
