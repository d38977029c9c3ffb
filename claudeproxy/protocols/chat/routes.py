"""
The OpenAI Chat Completions protocol as a Klein app:
C{POST /v1/chat/completions}.
"""

from __future__ import annotations

from typing import cast

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.spec import TurnSpec
from ...engine.streaming import TurnOutput
from ...engine.turn import TurnState
from ...web.httpio import write_error
from ...web.serving import Serving
from . import parse as openai_chat
from .output import ChatOutput, ChatStreamOutput


class ChatApp:
    """
    The Chat Completions routes; errors are OpenAI error objects.
    """

    app = Klein()

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    @app.handle_errors(ProxyError)
    def proxy_error(self, request: IRequest, failure: Failure) -> None:
        assert isinstance(failure.value, ProxyError)
        write_error(cast(Request, request), failure.value)

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
