"""
The vocabulary the two OpenAI protocols (chat completions and Responses)
share and no other speaks: the reasoning efforts they accept, why a turn
ended as their C{finish_reason}, and their content parts' text.  (Their
error object is the daemon's own, L{claudeproxy.web.httpio.openai_error}.)
"""

from __future__ import annotations

from typing import Any

from ..engine.conversation import Block, text_block
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


__all__ = ["EFFORTS", "FINISH_REASONS", "finish_reason", "said"]
