"""
The OpenAI Chat Completions protocol as a Klein app:
C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.server import Request

from ...engine.spec import TurnSpec
from ...engine.streaming import TurnOutput
from ...engine.turn import TurnState
from ...web.httpio import write_error
from ...web.serving import Serving
from ..errors import answering_errors
from . import parse as openai_chat
from .output import ChatOutput, ChatStreamOutput


class ChatApp:
    """
    The Chat Completions routes; errors are OpenAI error objects.
    """

    app = answering_errors(Klein(), write_error)

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        def output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, openai_chat.ChatRequest)
            if spec.stream:
                return ChatStreamOutput(request, rid, created, lambda: spec.model, spec.include_usage)
            return ChatOutput(request, rid, created)

        aliases = self.serving.config.model_aliases
        await self.serving.serve(
            request,
            "/v1/chat/completions",
            "chatcmpl-",
            lambda body: openai_chat.parse_request(body, aliases),
            output,
            write_error,
        )


__all__ = ["ChatApp"]
