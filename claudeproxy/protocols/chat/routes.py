"""
The OpenAI Chat Completions protocol as a Klein app:
C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.server import Request

from ...web.httpio import write_error
from ...web.mount import answering_errors
from ..apps import ProtocolApp
from . import parse as openai_chat
from .output import chat_output


class ChatApp(ProtocolApp):
    """
    The Chat Completions routes; errors are OpenAI error objects.
    """

    app = answering_errors(Klein(), write_error)

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        await self.turn(
            request, "/v1/chat/completions", "chatcmpl-", openai_chat.parse_request, chat_output, write_error
        )


__all__ = ["ChatApp"]
