"""
C{context_management} edits of a Messages request, applied to the history
the daemon sends (the CLI cannot pass them upstream).  Pure functions.

- C{clear_thinking_*}: earlier thinking blocks are never sent back (they
  are dropped from every history), so any C{keep} is already honoured.
- C{clear_tool_uses_*}: when the history is estimated above the trigger
  (C{trigger.value} input tokens, default 100,000), the results of all but
  the last C{keep.value} tool uses (default 3) are replaced by a short
  placeholder, except tools named in C{exclude_tools}; with
  C{clear_tool_inputs} their inputs are emptied too.
- anything else: a 400 naming the edit.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

from ...engine import tokens
from ...engine.conversation import Block, Conversation, Message, text_block
from ...engine.errors import bad_request

CLEAR_THINKING = re.compile(r"^clear_thinking_\d{8}$")
CLEAR_TOOL_USES = re.compile(r"^clear_tool_uses_\d{8}$")
#: what a cleared tool result says
CLEARED = "[Tool result cleared to save context]"
DEFAULT_TRIGGER = 100_000
DEFAULT_KEEP = 3


def _value(edit: Mapping[str, Any], key: str, unit: str, default: int, where: str) -> int:
    spec = edit.get(key)
    if spec is None:
        return default
    if not isinstance(spec, Mapping) or spec.get("type") != unit or not isinstance(spec.get("value"), int):
        raise bad_request(
            '%s.%s must be {"type": "%s", "value": <integer>}' % (where, key, unit), "%s.%s" % (where, key)
        )
    return int(spec["value"])


def _blocks_json(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    return [{"role": m.role, "content": list(m.blocks)} for m in messages]


def clear_tool_uses(conversation: Conversation, edit: Mapping[str, Any], where: str) -> Conversation:
    trigger = _value(edit, "trigger", "input_tokens", DEFAULT_TRIGGER, where)
    keep = _value(edit, "keep", "tool_uses", DEFAULT_KEEP, where)
    exclude = edit.get("exclude_tools") or []
    if not isinstance(exclude, list) or not all(isinstance(n, str) for n in exclude):
        raise bad_request("%s.exclude_tools must be an array of tool names" % (where,), where + ".exclude_tools")
    clear_inputs = bool(edit.get("clear_tool_inputs", False))
    messages = conversation.messages
    if tokens.count(_blocks_json(messages), conversation.system) < trigger:
        return conversation
    uses = [
        (b.get("id"), b.get("name"))
        for m in messages
        if m.role == "assistant"
        for b in m.blocks
        if b.get("type") == "tool_use"
    ]
    # the last turn's results are the ones the model is answering now
    cleared = {i for i, name in uses[: max(0, len(uses) - keep)] if name not in exclude}
    if not cleared:
        return conversation
    out: list[Message] = []
    for m in messages:
        blocks: list[Block] = []
        for b in m.blocks:
            if b.get("type") == "tool_result" and b.get("tool_use_id") in cleared:
                b = dict(b, content=[text_block(CLEARED)])
            elif clear_inputs and b.get("type") == "tool_use" and b.get("id") in cleared:
                b = dict(b, input={})
            blocks.append(b)
        out.append(Message(m.role, blocks))
    return Conversation(conversation.system, out)


def apply_context_management(raw: Any, conversation: Conversation) -> Conversation:
    """
    C{context_management} applied to C{conversation}, or a 400 naming the
    edit that cannot be applied.
    """
    if raw is None:
        return conversation
    if not isinstance(raw, Mapping):
        raise bad_request("'context_management' must be an object", "context_management")
    edits: Optional[Any] = raw.get("edits")
    if edits is None:
        return conversation
    if not isinstance(edits, list):
        raise bad_request("'context_management.edits' must be an array", "context_management.edits")
    for i, edit in enumerate(edits):
        where = "context_management.edits[%d]" % (i,)
        if not isinstance(edit, Mapping):
            raise bad_request("%s must be an object" % (where,), where)
        kind = edit.get("type")
        if isinstance(kind, str) and CLEAR_THINKING.match(kind):
            continue
        if isinstance(kind, str) and CLEAR_TOOL_USES.match(kind):
            conversation = clear_tool_uses(conversation, edit, where)
            continue
        raise bad_request(
            "%s.type %r is not supported: claudeproxy applies clear_tool_uses and clear_thinking edits" % (where, kind),
            where + ".type",
            "unsupported_parameter",
        )
    return conversation
