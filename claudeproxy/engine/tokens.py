"""
Counting tokens without a model call: an estimate from the text's
characters, for C{count_tokens} and for context-management triggers.

Claude's tokenizer is not published.  The estimate counts, per piece of
text, one token per L{CHARS_PER_TOKEN} characters of ASCII (rounded up),
one per non-ASCII character, plus a fixed cost per message, per image and
per tool definition.  Measured against Anthropic's published legacy
tokenizer (docs/api.md "count_tokens"), it stays within the bound stated there.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Optional

#: ASCII characters per token (measured: see docs/api.md "count_tokens")
CHARS_PER_TOKEN = 3.8
#: per message (role markers)
MESSAGE_TOKENS = 4
#: an image of unknown size (the API charges ~ width*height/750, at most ~1600)
IMAGE_TOKENS = 1600
#: the framing of each tool definition
TOOL_TOKENS = 12
#: the framing around the system prompt and the tool list
SYSTEM_TOKENS = 4
#: how the estimate is made, for the response header
METHOD = "estimate-chars/3.8"


def text_tokens(text: str) -> int:
    """
    The estimate for one piece of text.
    """
    if not text:
        return 0
    ascii_chars = sum(1 for c in text if ord(c) < 128)
    other = len(text) - ascii_chars
    return int(math.ceil(ascii_chars / CHARS_PER_TOKEN)) + other


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return text_tokens(content)
    total = 0
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            total += text_tokens(str(block.get("text", "")))
        elif kind == "image":
            total += IMAGE_TOKENS
        elif kind == "tool_use":
            total += text_tokens(str(block.get("name", ""))) + text_tokens(
                json.dumps(block.get("input", {}), ensure_ascii=False, separators=(",", ":"))
            )
        elif kind == "tool_result":
            total += 3 + _content_tokens(block.get("content"))
        elif kind == "document":
            source = block.get("source")
            data = source.get("data") if isinstance(source, Mapping) else None
            is_text = isinstance(source, Mapping) and source.get("type") == "text"
            total += text_tokens(data) if isinstance(data, str) and is_text else IMAGE_TOKENS
        elif kind in ("thinking",):
            total += text_tokens(str(block.get("thinking", "")))
    return total


def message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """
    The estimate for Anthropic-shaped messages (C{role}, C{content}).
    """
    return sum(MESSAGE_TOKENS + _content_tokens(m.get("content")) for m in messages)


def count(
    messages: Iterable[Mapping[str, Any]],
    system: Optional[str] = None,
    tools: Iterable[Mapping[str, Any]] = (),
) -> int:
    """
    The estimate for a whole request: system text, tool definitions
    (name, description and schema as compact JSON) and messages.
    """
    total = message_tokens(messages)
    if system:
        total += SYSTEM_TOKENS + text_tokens(system)
    for tool in tools:
        total += TOOL_TOKENS + text_tokens(json.dumps(tool, ensure_ascii=False, separators=(",", ":")))
    return max(1, total)
