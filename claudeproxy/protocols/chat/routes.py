"""
Routes of the OpenAI Chat Completions protocol: C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from twisted.web.server import Request

from ...engine.spec import TurnSpec
from ...engine.streaming import TurnOutput
from ...engine.turn import TurnState
from ...web.httpio import write_error
from ...web.router import app
from ...web.serving import Serving
from . import parse as openai_chat
from .output import ChatOutput, ChatStreamOutput


class ChatRoutes(Serving):
    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        def output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, openai_chat.ChatRequest)
            if spec.stream:
                return ChatStreamOutput(request, rid, created, lambda: spec.model, spec.include_usage)
            return ChatOutput(request, rid, created)

        await self.serve(
            request,
            "/v1/chat/completions",
            "chatcmpl-",
            lambda body: openai_chat.parse_request(body, self.config.model_aliases),
            output,
            write_error,
        )
