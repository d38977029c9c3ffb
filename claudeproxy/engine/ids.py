"""
Tool-call ids as clients send them back.  Some clients rewrite the ids the
daemon gave them: OpenClaw keeps only letters and digits on chat
completions and messages (C{toolu_01Ab_x} becomes C{toolu01Abx}) and sends
C{call_<id>_fc_<item id>_<hash>} on responses.  L{ToolIds} remembers the
ids the daemon handed out and maps such rewrites back to them, only when
the match is certain: one known id and only one fits.

Ids the daemon never handed out are the client's own: kept as they are
when the API accepts them, else replaced by a stable id of allowed
characters (the same every time, so tool_use and tool_result still pair).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Optional

import attrs

from .conversation import Block, Conversation, Message
from .history import TOOL_ID_RE

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
#: OpenClaw's responses rewrite: call_<our id>_fc_<item id>[_<hash>]
_CALL_FC = re.compile(r"^call_(.+?)_fc_.*$")


def _squeezed(tool_id: str) -> str:
    return _NOT_ALNUM.sub("", tool_id)


def safe_id(tool_id: str) -> str:
    """
    C{tool_id} if the API accepts it, else a stable id made of its allowed
    characters and a digest of the whole.
    """
    if TOOL_ID_RE.match(tool_id):
        return tool_id
    digest = hashlib.sha256(tool_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return "toolu_cp%s_%s" % (re.sub(r"[^a-zA-Z0-9_-]", "", tool_id)[:32], digest)


class ToolIds:
    """
    The last C{size} tool-call ids the daemon handed to clients.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._squeezed: dict[str, set[str]] = {}

    def issued(self, tool_id: str) -> None:
        if tool_id in self._ids:
            self._ids.move_to_end(tool_id)
            return
        self._ids[tool_id] = None
        self._squeezed.setdefault(_squeezed(tool_id), set()).add(tool_id)
        while len(self._ids) > self.size:
            old, _ = self._ids.popitem(last=False)
            group = self._squeezed.get(_squeezed(old))
            if group is not None:
                group.discard(old)
                if not group:
                    del self._squeezed[_squeezed(old)]

    def ours(self, tool_id: str) -> Optional[str]:
        """
        The id the daemon handed out that C{tool_id} is, or None.
        """
        if tool_id in self._ids:
            return tool_id
        m = _CALL_FC.match(tool_id)
        if m:
            found = self._unique(m.group(1))
            if found is not None:
                return found
        return self._unique(tool_id)

    def _unique(self, tool_id: str) -> Optional[str]:
        if tool_id in self._ids:
            return tool_id
        group = self._squeezed.get(_squeezed(tool_id))
        if group is not None and len(group) == 1:
            return next(iter(group))
        return None

    def canonical(self, conversation: Conversation) -> Conversation:
        """
        C{conversation} with every tool id the daemon's own, where certain,
        and every other id one the API accepts.
        """
        changed = False
        messages: list[Message] = []
        for message in conversation.messages:
            blocks: list[Block] = []
            for block in message.blocks:
                key = "id" if block.get("type") == "tool_use" else "tool_use_id"
                if block.get("type") in ("tool_use", "tool_result") and isinstance(block.get(key), str):
                    old = block[key]
                    new = self.ours(old) or safe_id(old)
                    if new != old:
                        block = dict(block, **{key: new})
                        changed = True
                blocks.append(block)
            messages.append(Message(message.role, blocks))
        if not changed:
            return conversation
        return attrs.evolve(conversation, messages=tuple(messages))
