"""
Routes of the anthropic protocol (composed into L{claudeproxy.app.ProxyApp}):
C{POST /v1/messages}, and C{POST /v1/messages/count_tokens} answered with
an estimate (L{claudeproxy.engine.tokens}).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.server import Request

from ...engine import tokens
from ...engine.errors import ProxyError
from ...engine.spec import TurnSpec, load_json
from ...engine.streaming import TurnOutput
from ...engine.turn import TurnState
from ...web.httpio import write_json
from ...web.router import app
from ...web.serving import Serving
from . import parse as anthropic_messages
from .output import AnthropicOutput, AnthropicStreamOutput, write_anthropic_error

#: the response header that says how C{count_tokens} counted
COUNT_METHOD_HEADER = "x-claudeproxy-token-count"


def count_request_tokens(raw: bytes, aliases: tuple[tuple[str, str], ...]) -> int:
    """
    The estimated input tokens of a C{count_tokens} body: checked as a
    Messages request (C{max_tokens} not required), then its system text,
    tool definitions and messages (after context management, as they would
    be sent) estimated by L{tokens.count}.
    """
    body = load_json(raw)
    if body.get("max_tokens") is None:
        body["max_tokens"] = 1
    spec = anthropic_messages.parse_request(json.dumps(body).encode("utf-8"), aliases)
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    messages = [{"role": m.role, "content": list(m.blocks)} for m in spec.conversation.messages]
    return tokens.count(messages, spec.conversation.system, tools)


class AnthropicRoutes(Serving):
    @app.route("/v1/messages", methods=["POST"])
    async def messages(self, request: Request) -> None:
        def output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, anthropic_messages.MessagesRequest)
            if spec.stream:
                return AnthropicStreamOutput(
                    request,
                    rid,
                    lambda: spec.model,
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
            count = count_request_tokens(self._body(request), self.config.model_aliases)
        except ProxyError as e:
            write_anthropic_error(request, e)
            return None
        write_json(request, 200, {"input_tokens": count}, {COUNT_METHOD_HEADER: tokens.METHOD})
        return None
