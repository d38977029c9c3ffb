"""
What the next request of a conversation will most likely hold, for clients
that change their history between requests in known ways.  Pure functions.

OpenClaw appends a transient user message to every request
(C{<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>> … <<<END_OPENCLAW_INTERNAL_CONTEXT>>>})
and drops it from the next request's history.  A process that served such
a request holds a message the client will not send again, so the daemon
starts, while the client reads the reply, a process on the conversation
as the client will send it.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Optional

import attrs

from .conversation import Block, Conversation, Message, text_block
from .tools import ToolCall
from .turn import digest_text

#: text that marks a block as context the client sends once
TRANSIENT_MARKERS = ("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>",)


def is_transient(block: Block) -> bool:
    text = block.get("text")
    # the marker opens the block (OpenClaw's system prompt quotes it too)
    return block.get("type") == "text" and isinstance(text, str) and text.lstrip().startswith(TRANSIENT_MARKERS)


def without_transient(conversation: Conversation) -> Optional[tuple[Message, ...]]:
    """
    C{conversation}'s messages without the transient blocks at the end of
    its last user turn, or None when it ends with none.
    """
    messages = list(conversation.messages)
    dropped = False
    while messages and messages[-1].role == "user":
        blocks = list(messages[-1].blocks)
        while blocks and is_transient(blocks[-1]):
            blocks.pop()
            dropped = True
        if blocks:
            if len(blocks) != len(messages[-1].blocks):
                messages[-1] = Message("user", blocks)
            break
        messages.pop()
    if not dropped or not messages or messages[-1].role != "user":
        return None
    return tuple(messages)


def assistant_message(text: str, calls: tuple[ToolCall, ...] = ()) -> Message:
    """
    The assistant message a turn produced, as a client sends it back.
    """
    blocks: list[Block] = [text_block(text)] if text else []
    for call in calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input()})
    return Message("assistant", blocks)


def call_list(calls: tuple[ToolCall, ...]) -> list[list[Any]]:
    """
    Tool calls as the C{[id, name, input]} lists an assistant digest uses.
    """
    return [[c.id, c.name, json.loads(json.dumps(c.input()))] for c in calls]


#: the turn written after a history that ends with tool results (the CLI
#: starts a turn only for a user line; see L{resume_split})
CONTINUE_AFTER_RESULTS = "Continue."


def resume_split(conversation: Conversation) -> tuple[tuple[Message, ...], Optional[tuple[Message, ...]]]:
    """
    What a new process loads from its session file, and the turn then
    written to it (None: the conversation's last turn).

    A last turn that answers tool calls can't be written on stdin: the CLI
    drops (2.1.197) or marks as interrupted (2.1.332) a loaded tool call
    without its result.  So the results go in the file with the calls, and
    the rest of the turn (or L{CONTINUE_AFTER_RESULTS}) is written; the CLI
    then puts its own C{"No response requested."} assistant message between
    them, the one difference from the conversation the client sent.
    """
    blocks = [b for m in conversation.last_turn for b in m.blocks]
    n = 0
    while n < len(blocks) and blocks[n].get("type") == "tool_result":
        n += 1
    if not n:
        return conversation.history, None
    rest = blocks[n:] or [text_block(CONTINUE_AFTER_RESULTS)]
    return conversation.history + (Message("user", blocks[:n]),), (Message("user", rest),)


@attrs.frozen
class Continuation:
    """
    The conversation a process holds after a clean reply: the request's
    C{messages}, then the reply, known by its digest (L{assistant_digest};
    the text itself need not be kept).  C{trimmed_digest} is the digest of
    a text reply without its trailing whitespace, when that differs.
    """

    messages: tuple[Message, ...]
    reply_digest: str
    trimmed_digest: Optional[str] = None

    def answered_by(self, digest: Optional[str]) -> bool:
        """
        Whether an assistant message with C{digest} is the reply.
        """
        return digest is not None and (digest == self.reply_digest or digest == self.trimmed_digest)


def assistant_digest(message: Message) -> Optional[str]:
    """
    What an assistant message is remembered by: the L{digest_text} of its
    text when it is only text; with tool calls, a digest of that and of
    each call's id, name and input.  Thinking blocks do not count.  None
    for a message that is neither.
    """
    if message.role != "assistant" or not message.blocks:
        return None
    parts: list[str] = []
    calls: list[list[Any]] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "tool_use":
            calls.append([str(block.get("id")), str(block.get("name")), block.get("input")])
        elif kind not in ("thinking", "redacted_thinking"):
            return None
    if not calls:
        return digest_text("".join(parts)) if parts else None
    return calls_digest(digest_text("".join(parts)), calls)


def calls_digest(text_digest: str, calls: list[list[Any]]) -> str:
    """
    The digest of an assistant message with tool calls: its text's digest
    and each call as C{[id, name, input]}.
    """
    return digest_text(json.dumps([text_digest, calls], sort_keys=True, separators=(",", ":"), ensure_ascii=True))


class HistoryDigest:
    """
    A conversation's history, with the digest of its last message worked
    out at most once.
    """

    def __init__(self, history: tuple[Message, ...]) -> None:
        self.history = history

    @functools.cached_property
    def last_digest(self) -> Optional[str]:
        return assistant_digest(self.history[-1]) if self.history else None

    def continues(self, held: Continuation) -> bool:
        """
        Whether the history is exactly what C{held} holds: its messages,
        then its reply.
        """
        history = self.history
        return (
            len(history) == len(held.messages) + 1
            and history[:-1] == held.messages
            and held.answered_by(self.last_digest)
        )


def continues(history: tuple[Message, ...], held: Continuation) -> bool:
    """
    Whether C{history} (the turns before a request's final user turn) is
    the conversation C{held} describes.
    """
    return HistoryDigest(history).continues(held)
