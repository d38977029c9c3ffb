"""
A conversation's earlier turns as a session file the CLI loads at start-up
(C{claude --resume PATH}): the model then sees them as real user and
assistant turns, with tool_use, tool_result and image blocks intact.

The file is JSON lines, one row per message, chained by C{parentUuid}
(format in docs/CLI-NOTES.md).  The rules of the real API are checked here,
before any process starts, so a history that cannot be expressed exactly
is a 400 naming the message and the rule, never a silent rewrite.  Pure
functions only.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Callable, Optional, Sequence

from .conversation import Block, Message
from .errors import bad_request
from .tools import PREFIX, ToolSpec
from .tools import spec as tool_spec

#: tool ids the Anthropic API accepts
TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")


def merged(messages: Sequence[Message]) -> list[Message]:
    """
    Consecutive messages of one role as one message, as the API reads them
    (the CLI would otherwise join them with a newline of its own).
    """
    out: list[Message] = []
    for message in messages:
        if out and out[-1].role == message.role:
            out[-1] = Message(message.role, out[-1].blocks + message.blocks)
        else:
            out.append(message)
    return out


def _where(index: int) -> str:
    return "messages[%d]" % (index,)


def _runs(messages: Sequence[Message]) -> list[tuple[int, Message]]:
    """
    Consecutive messages of one role merged, each with the index of its
    first message in C{messages}.
    """
    out: list[tuple[int, Message]] = []
    for i, message in enumerate(messages):
        if out and out[-1][1].role == message.role:
            out[-1] = (out[-1][0], Message(message.role, out[-1][1].blocks + message.blocks))
        else:
            out.append((i, message))
    return out


def check_tool_pairs(messages: Sequence[Message]) -> None:
    """
    The API's rule: every tool_use is answered by a tool_result at the start
    of the next message, and every tool_result answers a tool_use of the
    message before (consecutive messages of one role count as one).  A 400
    names the message that breaks it.
    """
    runs = _runs(messages)
    for n, (i, message) in enumerate(runs):
        if message.role == "assistant":
            ids = [str(b.get("id")) for b in message.blocks if b.get("type") == "tool_use"]
            if not ids:
                continue
            following = runs[n + 1][1].blocks if n + 1 < len(runs) else ()
            lead: list[str] = []
            for block in following:
                if block.get("type") != "tool_result":
                    break
                lead.append(str(block.get("tool_use_id")))
            missing = [t for t in ids if t not in lead]
            if missing:
                raise bad_request(
                    "%s: tool call(s) %s are not answered by tool results at the start of the next message; "
                    "the API requires every tool call to be answered there" % (_where(i), ", ".join(missing)),
                    _where(i),
                    "tool_result_missing",
                )
        else:
            results = [str(b.get("tool_use_id")) for b in message.blocks if b.get("type") == "tool_result"]
            if not results:
                continue
            before = runs[n - 1][1] if n > 0 else None
            called = {str(b.get("id")) for b in before.blocks if b.get("type") == "tool_use"} if before else set()
            stray = [r for r in results if r not in called]
            if stray:
                raise bad_request(
                    "%s: tool result(s) for %s answer no tool call of the message before"
                    % (_where(i), ", ".join(stray)),
                    _where(i),
                    "tool_call_missing",
                )


def upstream_block(block: Block) -> Optional[Block]:
    """
    A history block as the API gets it: a tool_use names the tool as the
    CLI offers it (C{mcp__cp__NAME}); cache_control markers are left out
    (the CLI places its own, and the API allows four); a thinking block
    without its signature cannot be replayed and is left out, as the API
    itself ignores the thinking of earlier turns.
    """
    kind = block.get("type")
    if kind == "thinking" and not block.get("signature"):
        return None
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if kind == "tool_use":
        name = str(out.get("name", ""))
        out["name"] = name if name.startswith(PREFIX) else PREFIX + name
    return out


def history_tools(messages: Sequence[Message]) -> tuple[ToolSpec, ...]:
    """
    The tools a history's tool_use blocks name, for a request that declares
    none: the API refuses tool blocks in a request without tools, so they
    are offered again (described as the earlier turns' tools).
    """
    seen: dict[str, ToolSpec] = {}
    for message in messages:
        for block in message.blocks:
            if block.get("type") == "tool_use":
                name = str(block.get("name", ""))
                if name.startswith(PREFIX):
                    name = name[len(PREFIX) :]
                if name and name not in seen:
                    seen[name] = tool_spec(name, "A tool used earlier in this conversation.", {"type": "object"})
    return tuple(seen.values())


def session_rows(
    history: Sequence[Message],
    model: str,
    cwd: str,
    version: str,
    now: str,
    make_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> list[dict[str, Any]]:
    """
    The rows of a session file holding C{history} (merged by role, ending
    with the assistant's message): each row chained to the one before,
    every assistant message with an id of its own (the CLI merges rows that
    share one).
    """
    session = make_uuid()
    rows: list[dict[str, Any]] = []
    parent: Optional[str] = None
    for n, message in enumerate(merged(history)):
        blocks = [b for b in (upstream_block(b) for b in message.blocks) if b is not None]
        if not blocks:
            raise bad_request(
                "%s (%s) has no content the API accepts (a thinking block without its signature cannot be replayed)"
                % (_where(n), message.role),
                _where(n),
                "empty_message",
            )
        row_id = make_uuid()
        content: dict[str, Any] = {"role": message.role, "content": blocks}
        if message.role == "assistant":
            digest = hashlib.sha256(("%s:%d" % (session, n)).encode()).hexdigest()[:24]
            content = {
                "id": "msg_cp" + digest,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        rows.append(
            {
                "parentUuid": parent,
                "isSidechain": False,
                "userType": "external",
                "cwd": cwd,
                "sessionId": session,
                "version": version,
                "type": message.role,
                "message": content,
                "uuid": row_id,
                "timestamp": now,
            }
        )
        parent = row_id
    return rows


def session_file_text(rows: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=True, separators=(",", ":")).encode("utf-8") + b"\n" for row in rows)
