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
from ...web.serving import Serving
from ..errors import answering_errors
from . import parse as openai_chat
from .output import chat_output


class ChatApp:
    """
    The Chat Completions routes; errors are OpenAI error objects.
    """

    app = answering_errors(Klein(), write_error)

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    def _parse(self, body: bytes) -> TurnSpec:
        return openai_chat.parse_request(body, self.serving.config.model_aliases)

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        output = partial(chat_output, request)
        await self.serving.serve(request, "/v1/chat/completions", "chatcmpl-", self._parse, output, write_error)


__all__ = ["ChatApp"]
