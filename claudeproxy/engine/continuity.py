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

import json
from typing import Any, Optional

from .conversation import Block, Conversation, Message, text_block
from .tools import ToolCall

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
