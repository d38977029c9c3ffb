"""
The vocabulary the two OpenAI protocols (chat completions and Responses)
share and no other speaks: the reasoning efforts they accept, why a turn
ended as their C{finish_reason}, and their content parts: text, and
images (an C{image_url}: a data: or http(s) URL) as the Anthropic image
blocks the CLI passes upstream.  (Their
error object is the daemon's own, L{claudeproxy.web.httpio.openai_error}.)
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..engine.conversation import IMAGE_TYPES, Block, text_block
from ..engine.errors import bad_request
from ..engine.turn import Finished

#: reasoning efforts the OpenAI protocols accept -> the CLI's --effort levels
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}

#: the engine's stop reasons -> OpenAI's finish reasons
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def finish_reason(finished: Finished) -> str:
    """
    Why the turn ended, as OpenAI's C{finish_reason}.
    """
    if finished.tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(finished.stop_reason or "end_turn", "stop")


def said(text: Any) -> list[Block]:
    """
    The words of a text or refusal content part as a text block: none when
    it has none.
    """
    return [text_block(text)] if isinstance(text, str) and text else []


_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*),(.*)$", re.S)


def image_url_block(part: Mapping[str, Any], where: str) -> Block:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise bad_request("%s.image_url.url must be a string URL" % (where,), where + ".image_url")
    if url.startswith("data:"):
        m = _DATA_URL.match(url)
        if not m or ";base64" not in m.group(2):
            raise bad_request("%s.image_url.url must be a base64 data: URL" % (where,), where + ".image_url")
        media_type = m.group(1).lower()
        if media_type not in IMAGE_TYPES:
            raise bad_request(
                "%s: image type %s is not supported (use %s)" % (where, media_type, ", ".join(IMAGE_TYPES)),
                where + ".image_url",
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": m.group(3)}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("%s.image_url.url must be a data: or http(s) URL" % (where,), where + ".image_url")


__all__ = ["EFFORTS", "FINISH_REASONS", "finish_reason", "image_url_block", "said"]
