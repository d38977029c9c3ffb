"""
Anthropic Messages' wire shapes: the message object, its content blocks,
the stream's events (server-sent events) and the error object.  Pure
functions: a finished turn or a piece of one in, Anthropic JSON out.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ...engine.errors import ProxyError
from ...engine.jsontext import json_bytes
from ...engine.turn import Finished, Usage, WebSearch

#: Anthropic's stop reasons, passed through as the turn reports them.
STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"})
#: Anthropic's error type for each HTTP status.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation_input_tokens": usage.cache_creation_tokens,
    }


def stop_reason(finished: Finished) -> str:
    if finished.tool_calls:
        return "tool_use"
    reason = finished.stop_reason or "end_turn"
    return reason if reason in STOP_REASONS else "end_turn"


def server_tool_id(search: WebSearch) -> str:
    """
    The C{srvtoolu_} id a web search is reported under (from the CLI's
    tool-use id).
    """
    tail = re.sub(r"[^A-Za-z0-9_]", "", search.id[len("toolu_") :] if search.id.startswith("toolu_") else search.id)
    return "srvtoolu_" + (tail or "0")


def search_blocks(search: WebSearch) -> list[dict[str, Any]]:
    """
    A web search as the API reports its server tool: C{server_tool_use}
    then C{web_search_tool_result}.
    """
    sid = server_tool_id(search)
    return [
        {"type": "server_tool_use", "id": sid, "name": "web_search", "input": {"query": search.query}},
        {
            "type": "web_search_tool_result",
            "tool_use_id": sid,
            "content": [
                {"type": "web_search_result", "url": url, "title": title, "encrypted_content": "", "page_age": None}
                for url, title in search.sources
            ],
        },
    ]


def tool_use_block(call_id: str, name: str, tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def message(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    reason: Optional[str],
    stop_sequence: Optional[str],
    usage: Usage,
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": stop_sequence,
        "usage": usage_object(usage),
    }


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json_bytes(data) + b"\n\n"


def message_start(message_id: str, model: str, usage: Usage) -> bytes:
    return sse("message_start", {"type": "message_start", "message": message(message_id, model, [], None, None, usage)})


def block_start(index: int, block: Mapping[str, Any]) -> bytes:
    return sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": dict(block)})


def block_delta(index: int, delta: Mapping[str, Any]) -> bytes:
    return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": dict(delta)})


def block_stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(reason: Optional[str], stop_sequence: Optional[str], usage: Usage) -> bytes:
    return sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
            "usage": usage_object(usage),
        },
    )


MESSAGE_STOP = sse("message_stop", {"type": "message_stop"})


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_object(error: ProxyError) -> dict[str, Any]:
    """
    Anthropic's error body: the type follows the HTTP status.
    """
    message = error.anthropic_message if error.anthropic_message is not None else error.message
    return {"type": "error", "error": {"type": error_type(error.status), "message": message}}


def error_event(error: ProxyError) -> bytes:
    return sse("error", error_object(error))
