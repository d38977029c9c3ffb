"""
The Responses API's response object and its output items (messages,
reasoning, function and custom tool calls, web searches), and how a
finished turn ends one.  Pure functions; ids and clocks are passed in.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence

from ...engine.errors import ProxyError
from ...engine.ids import call_alias
from ...engine.tools import ToolCall
from ...engine.turn import Finished, Usage, WebSearch
from .parse import ClientTool

#: codes the SDK's C{ResponseError.code} allows; others are reported as
#: C{server_error} there (the C{error} event carries the exact code)
RESPONSE_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_creation_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: Optional[str], status: str = "completed") -> dict[str, Any]:
    """
    An assistant message item; C{text} None for one just opened (no
    content part yet).
    """
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [output_text(text)],
    }


def reasoning_item(item_id: str, text: Optional[str], status: str = "completed") -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [] if text is None else [{"type": "summary_text", "text": text}],
        "status": status,
    }


def function_call_item(item_id: str, call: ToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_alias(call.id),
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def call_item(
    item_id: str, call: ToolCall, client_tools: Mapping[str, ClientTool], status: str = "completed"
) -> dict[str, Any]:
    """
    A call as the client declared the tool: a C{function_call} (with its
    C{namespace} and own name for a namespaced function, as Codex requires),
    or a C{custom_tool_call} with the free-text input.
    """
    tool = client_tools.get(call.name)
    if tool is not None and tool.custom:
        args = call.input() if call.arguments else {}
        text = args.get("input") if isinstance(args, Mapping) else None
        return {
            "type": "custom_tool_call",
            "id": item_id,
            "call_id": call_alias(call.id),
            "name": tool.name,
            "input": text if isinstance(text, str) else "",
            "status": status,
        }
    item = function_call_item(item_id, call, status)
    if tool is not None:
        item["name"] = tool.name
        if tool.namespace is not None:
            item["namespace"] = tool.namespace
    return item


def web_search_item(item_id: str, search: Optional[WebSearch], status: str = "completed") -> dict[str, Any]:
    """
    A C{web_search_call} item: the query and the URLs found.
    """
    item: dict[str, Any] = {"type": "web_search_call", "id": item_id, "status": status}
    if search is not None:
        item["action"] = {
            "type": "search",
            "query": search.query,
            "sources": [{"type": "url", "url": url} for url, _ in search.sources],
        }
    return item


def end_status(finished: Finished) -> tuple[str, Optional[dict[str, Any]]]:
    """
    C{completed}, or C{incomplete} with its details when the output limit
    (or a refusal) cut the reply.
    """
    if finished.tool_calls:
        return "completed", None
    if finished.stop_reason == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    if finished.stop_reason == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def output_items(
    finished: Finished,
    text: str,
    new_id: Callable[[str], str],
    client_tools: Mapping[str, ClientTool] = {},
) -> list[dict[str, Any]]:
    """
    The output of a whole reply: a reasoning item (if the model thought
    aloud), a web_search_call per search, a message (if it wrote text, or
    did nothing else), then one function_call (or custom_tool_call) per
    call.
    """
    items: list[dict[str, Any]] = []
    if finished.reasoning:
        items.append(reasoning_item(new_id("rs_"), finished.reasoning))
    for search in finished.searches:
        items.append(web_search_item(new_id("ws_"), search))
    if text or not finished.tool_calls:
        status = "incomplete" if end_status(finished)[0] == "incomplete" else "completed"
        items.append(message_item(new_id("msg_"), text, status))
    for call in finished.tool_calls:
        items.append(call_item(new_id("fc_"), call, client_tools))
    return items


def response_error(error: ProxyError) -> dict[str, Any]:
    code = error.code if error.code in RESPONSE_ERROR_CODES else "server_error"
    if error.status == 429:
        code = "rate_limit_exceeded"
    return {"code": code, "message": error.message}


def response_object(
    response_id: str,
    created: int,
    model: str,
    status: str,
    output: Sequence[Mapping[str, Any]],
    echo: Mapping[str, Any],
    usage: Optional[Usage] = None,
    error: Optional[ProxyError] = None,
    incomplete: Optional[Mapping[str, Any]] = None,
    completed_at: Optional[int] = None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "completed_at": completed_at if status == "completed" else None,
        "error": response_error(error) if error is not None else None,
        "incomplete_details": dict(incomplete) if incomplete is not None else None,
        "model": model,
        "output": [dict(item) for item in output],
        "usage": usage_object(usage) if usage is not None else None,
    }
    obj.update(echo)
    return obj
