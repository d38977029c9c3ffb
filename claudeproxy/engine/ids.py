"""
Tool-call ids as clients send them back.  Some clients rewrite the ids the
daemon gave them: OpenClaw keeps only letters and digits on chat
completions and messages (C{toolu_01Ab_x} becomes C{toolu01Abx}) and sends
C{call_<id>_fc_<item id>_<hash>} on responses.  L{ToolIds} remembers the
ids the daemon handed out and maps such rewrites back to them, only when
the match is certain: one known id and only one fits.

A protocol may give its clients each call under an alias
(L{call_alias}: C{call_} and 24 letters and digits): some clients rewrite
every id of another shape (agno turns them all into one C{call_000…}), and
a result that cannot be matched to its call cannot resume the process
waiting on it.  The upstream id stays the engine's; the
alias is a digest of it, so it is the same every time and needs no record
to be given out.

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


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: the letters and digits after C{call_} (29 characters in all)
ALIAS_LENGTH = 24


def _squeezed(tool_id: str) -> str:
    return _NOT_ALNUM.sub("", tool_id)


def call_alias(tool_id: str) -> str:
    """
    The alias of the upstream call C{tool_id}: C{call_} and 24 letters and
    digits derived from it (an id that already starts with C{call_} is the
    client's own, kept).
    """
    if tool_id.startswith("call_"):
        return tool_id
    n = int.from_bytes(hashlib.sha256(tool_id.encode("utf-8", "surrogatepass")).digest(), "big")
    chars = []
    for _ in range(ALIAS_LENGTH):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    return "call_" + "".join(chars)


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
    The last C{size} tool-call ids the daemon handed to clients (upstream
    ids, each also given out as its L{call_alias}).
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        #: upstream id -> its alias
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._aliases: dict[str, str] = {}
        self._squeezed: dict[str, set[str]] = {}

    def _forms(self, tool_id: str, alias: str) -> set[str]:
        return {_squeezed(tool_id), _squeezed(alias)}

    def issued(self, tool_id: str) -> None:
        if tool_id in self._ids:
            self._ids.move_to_end(tool_id)
            return
        alias = call_alias(tool_id)
        self._ids[tool_id] = alias
        self._aliases[alias] = tool_id
        for form in self._forms(tool_id, alias):
            self._squeezed.setdefault(form, set()).add(tool_id)
        while len(self._ids) > self.size:
            old, old_alias = self._ids.popitem(last=False)
            if self._aliases.get(old_alias) == old:
                del self._aliases[old_alias]
            for form in self._forms(old, old_alias):
                group = self._squeezed.get(form)
                if group is not None:
                    group.discard(old)
                    if not group:
                        del self._squeezed[form]

    def ours(self, tool_id: str) -> Optional[str]:
        """
        The upstream id the daemon handed out (as itself or as its alias)
        that C{tool_id} is, or None.
        """
        found = self._unique(tool_id)
        if found is not None:
            return found
        m = _CALL_FC.match(tool_id)
        if m:
            # OpenClaw's call_<id>_fc_<item>: <id> is ours, with or
            # without the alias's own "call_"
            for candidate in (m.group(1), "call_" + m.group(1)):
                found = self._unique(candidate)
                if found is not None:
                    return found
        return None

    def _unique(self, tool_id: str) -> Optional[str]:
        if tool_id in self._ids:
            return tool_id
        if tool_id in self._aliases:
            return self._aliases[tool_id]
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
