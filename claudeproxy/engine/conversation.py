"""
The protocol-neutral conversation: what every front-end protocol (OpenAI
chat, later Anthropic messages and OpenAI responses) is translated into, and
how it becomes the one stream-json user line the CLI reads on stdin.

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

HISTORY_OPEN = (
    "The conversation so far is in <conversation_history> below (earlier turns, "
    "oldest first). Continue it: answer the final user turn that follows it."
)


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


def _block_as_transcript(block: Block) -> list[Block]:
    """
    A block of an earlier turn as transcript: text stays text, images stay
    images (so the model still sees them), tool traffic is written out.
    """
    kind = block.get("type")
    if kind == "text":
        return [text_block(block.get("text", ""))]
    if kind == "image":
        return [block]
    if kind == "tool_use":
        return [
            text_block(
                '<tool_call id="%s" name="%s">%s</tool_call>'
                % (block.get("id", ""), block.get("name", ""), json.dumps(block.get("input", {}), ensure_ascii=False))
            )
        ]
    if kind == "tool_result":
        inner: list[Block] = []
        content = block.get("content", "")
        if isinstance(content, str):
            inner.append(text_block(content))
        else:
            for part in content:
                inner.extend(_block_as_transcript(part))
        opened = '<tool_result id="%s"%s>' % (
            block.get("tool_use_id", ""),
            ' is_error="true"' if block.get("is_error") else "",
        )
        return [text_block(opened), *inner, text_block("</tool_result>")]
    if kind == "thinking":
        return []
    return [text_block(json.dumps(block, ensure_ascii=False))]


def _merge_text(blocks: list[Block]) -> list[Block]:
    """
    Join adjacent text blocks so the transcript is one text block between
    images.
    """
    out: list[Block] = []
    for b in blocks:
        if b.get("type") == "text" and out and out[-1].get("type") == "text" and "cache_control" not in out[-1]:
            out[-1] = text_block(out[-1]["text"] + b["text"])
        else:
            out.append(dict(b))
    return out


def transcript_blocks(history: tuple[Message, ...]) -> list[Block]:
    """
    Earlier turns as one clearly delimited transcript.
    """
    if not history:
        return []
    blocks: list[Block] = [text_block(HISTORY_OPEN + "\n<conversation_history>\n")]
    for message in history:
        blocks.append(text_block("<%s>\n" % (message.role,)))
        for block in message.blocks:
            blocks.extend(_block_as_transcript(block))
        blocks.append(text_block("\n</%s>\n" % (message.role,)))
    blocks.append(text_block("</conversation_history>\n\n"))
    return _merge_text(blocks)


def turn_blocks(messages: tuple[Message, ...]) -> list[Block]:
    """
    The blocks of user turn(s) written to a process as they are.
    """
    out: list[Block] = []
    for message in messages:
        out.extend(dict(b) for b in message.blocks)
    return out


CONTINUE_AFTER_TOOLS = "Continue from the tool results at the end of the conversation above."


def has_tool_results(messages: tuple[Message, ...]) -> bool:
    return any(b.get("type") == "tool_result" for m in messages for b in m.blocks)


def stdin_blocks(conversation: Conversation) -> list[Block]:
    """
    Everything a fresh process is told: the transcript, then the last turn.
    A last turn of tool results (whose calls this process never made) is
    part of the transcript.
    """
    if has_tool_results(conversation.last_turn):
        return transcript_blocks(conversation.messages) + [text_block(CONTINUE_AFTER_TOOLS)]
    return transcript_blocks(conversation.history) + turn_blocks(conversation.last_turn)


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
