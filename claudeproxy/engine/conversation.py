"""
The protocol-neutral conversation: what every front-end protocol (OpenAI
chat, later Anthropic messages and OpenAI responses) is translated into, and
how its last turn becomes the stream-json user line the CLI reads on stdin
(the earlier turns reach a process as a session file, see L{history}).

Content blocks use Anthropic's shapes (text, image, tool_use, tool_result)
because that is what the CLI passes upstream.  Pure functions only.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import attrs

Block = dict[str, Any]

#: the image types Claude takes
IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _freeze(blocks: Any) -> tuple[Block, ...]:
    return tuple(blocks)


def _freeze_messages(messages: Any) -> tuple[Message, ...]:
    return tuple(messages)


@attrs.frozen
class Message:
    """
    One turn: C{role} is C{"user"} or C{"assistant"}; C{blocks} are content
    blocks.
    """

    role: str
    blocks: tuple[Block, ...] = attrs.field(converter=_freeze)


@attrs.frozen
class Conversation:
    """
    A request's system text and turns; the last turn is the user's.
    """

    system: Optional[str]
    messages: tuple[Message, ...] = attrs.field(converter=_freeze_messages)

    @property
    def history(self) -> tuple[Message, ...]:
        """
        Every turn before the final user turn.
        """
        return self.messages[: self._last_turn_start()]

    @property
    def last_turn(self) -> tuple[Message, ...]:
        """
        The trailing run of user messages.
        """
        return self.messages[self._last_turn_start() :]

    def _last_turn_start(self) -> int:
        i = len(self.messages)
        while i > 0 and self.messages[i - 1].role == "user":
            i -= 1
        return i


def text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def turn_blocks(messages: tuple[Message, ...]) -> list[Block]:
    """
    The blocks of user turn(s) written to a process as they are.
    """
    out: list[Block] = []
    for message in messages:
        out.extend(dict(b) for b in message.blocks)
    return out


def user_line(blocks: list[Block]) -> bytes:
    """
    The stream-json line for one user turn.
    """
    return (
        json.dumps(
            {"type": "user", "message": {"role": "user", "content": blocks}},
            # escaped: a lone surrogate the client sent goes through as sent
            ensure_ascii=True,
            separators=(",", ":"),
        ).encode("utf-8")
        + b"\n"
    )
