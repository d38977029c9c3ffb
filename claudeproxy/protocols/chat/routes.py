"""
The OpenAI Chat Completions protocol as a Klein app:
C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from functools import partial

from klein import Klein
from twisted.web.server import Request

from ...engine.spec import TurnSpec
from ...web.httpio import write_error
from ..apps import ProtocolApp, answering_errors
from . import parse as openai_chat
from .output import chat_output


class ChatApp(ProtocolApp):
    """
    The Chat Completions routes; errors are OpenAI error objects.
    """

    app = answering_errors(Klein(), write_error)

    def _parse(self, body: bytes) -> TurnSpec:
        return openai_chat.parse_request(body, self.aliases)

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        output = partial(chat_output, request)
        await self.serving.serve(request, "/v1/chat/completions", "chatcmpl-", self._parse, output, write_error)


__all__ = ["ChatApp"]
