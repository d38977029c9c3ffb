"""
Chat Completions' wire shapes: the C{chat.completion} object, the stream's
C{chat.completion.chunk}s and their server-sent-event framing.  Pure
functions: a finished turn in, OpenAI JSON out.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ...engine.ids import call_alias
from ...engine.jsontext import json_bytes
from ...engine.turn import Finished, Usage, WebSearch


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _chunk(completion_id: str, created: int, model: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: Mapping[str, Any],
    finish_reason: Optional[str] = None,
) -> dict[str, Any]:
    choice = {"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}
    return _chunk(completion_id, created, model, [choice])


def usage_chunk(completion_id: str, created: int, model: str, usage: Usage) -> dict[str, Any]:
    return dict(_chunk(completion_id, created, model, []), usage=usage_object(usage))


def completion(completion_id: str, created: int, finished: Finished, text: str, finish_reason: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not finished.tool_calls else None,
        "refusal": None,
    }
    if finished.tool_calls:
        message["tool_calls"] = [
            {"id": call_alias(c.id), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in finished.tool_calls
        ]
    if finished.reasoning:
        message["reasoning_content"] = finished.reasoning
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": finished.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage_object(finished.usage),
    }


def sse(obj: Mapping[str, Any]) -> bytes:
    return b"data: " + json_bytes(obj) + b"\n\n"


DONE = b"data: [DONE]\n\n"


def url_citations(text: Optional[str], searches: Sequence[WebSearch]) -> list[dict[str, Any]]:
    """
    The web search results of a reply as OpenAI's C{url_citation}
    annotations: where the text mentions a result's URL, its span; else
    (or with no text at hand, when streamed) an empty span at the end.
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    end = len(text) if text else 0
    for search in searches:
        for url, title in search.sources:
            if url in seen:
                continue
            seen.add(url)
            start = text.find(url) if text else -1
            span = (start, start + len(url)) if start >= 0 else (end, end)
            out.append(
                {
                    "type": "url_citation",
                    "url_citation": {"url": url, "title": title, "start_index": span[0], "end_index": span[1]},
                }
            )
    return out
