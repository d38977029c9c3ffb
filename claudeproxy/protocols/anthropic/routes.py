"""
Routes of the anthropic protocol (composed into L{claudeproxy.web.app.ProxyApp}):
C{POST /v1/messages}, and C{POST /v1/messages/count_tokens} refused
clearly.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from ...engine.errors import ProxyError
from ...engine.spec import TurnSpec
from ...engine.streaming import TurnOutput
from ...engine.turn import TurnState
from ...web.router import app
from ...web.serving import Serving
from . import parse as anthropic_messages
from .output import AnthropicOutput, AnthropicStreamOutput, write_anthropic_error

COUNT_TOKENS_UNSUPPORTED = ProxyError(
    501,
    "count_tokens is not supported: the Claude Code CLI cannot count tokens without running a turn. "
    "Use the usage of a /v1/messages reply instead.",
    "invalid_request_error",
    "not_implemented",
)


class AnthropicRoutes(Serving):
    @app.route("/v1/messages", methods=["POST"])
    async def messages(self, request: Request) -> None:
        def output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, anthropic_messages.MessagesRequest)
            if spec.stream:
                return AnthropicStreamOutput(
                    request,
                    rid,
                    lambda: state.model,
                    state.usage_so_far,
                    spec.include_thinking,
                )
            return AnthropicOutput(request, rid, spec.include_thinking)

        await self.serve(
            request,
            "/v1/messages",
            "msg_",
            lambda body: anthropic_messages.parse_request(body, self.config.model_aliases),
            output,
            write_anthropic_error,
        )

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    def count_tokens(self, request: Request) -> Any:
        try:
            self._authorize(request)
        except ProxyError as e:
            write_anthropic_error(request, e)
            return None
        request.setHeader(b"x-should-retry", b"false")
        write_anthropic_error(request, COUNT_TOKENS_UNSUPPORTED)
        return None
