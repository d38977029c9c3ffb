"""
The Anthropic Messages protocol as a Klein app (mounted by
L{claudeproxy.app.ProxyApp}):
C{POST /v1/messages}, and C{POST /v1/messages/count_tokens} answered with
an estimate (L{claudeproxy.engine.tokens}).
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.web.server import Request

from ...engine import tokens
from ...web.httpio import write_json
from ...web.mount import answering_errors
from ..apps import ProtocolApp
from ..fields import load_json
from . import parse as anthropic_messages
from .output import messages_output, write_anthropic_error

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


class AnthropicApp(ProtocolApp):
    """
    The Messages routes; errors are Anthropic's C{{"type": "error", ...}}.
    """

    app = answering_errors(Klein(), write_anthropic_error)

    @app.route("/v1/messages", methods=["POST"])
    async def messages(self, request: Request) -> None:
        parse = anthropic_messages.parse_request
        await self.turn(request, "/v1/messages", "msg_", parse, messages_output, write_anthropic_error)

    @app.route("/v1/messages/count_tokens", methods=["POST"])
    def count_tokens(self, request: Request) -> None:
        self.serving.authorize(request)
        count = count_request_tokens(self.serving.read_body(request), self.aliases)
        write_json(request, 200, {"input_tokens": count}, {COUNT_METHOD_HEADER: tokens.METHOD})


__all__ = ["AnthropicApp", "count_request_tokens"]
