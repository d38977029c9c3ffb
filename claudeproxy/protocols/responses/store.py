"""
The responses kept for C{previous_response_id}, C{GET} and C{DELETE}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import attrs

from ...engine.conversation import Conversation
from ...store.responses import PersistedResponses


@attrs.define
class Stored:
    """
    A kept response: the conversation a follow-up continues, and the
    response object as the client got it.
    """

    conversation: Conversation
    response: Optional[dict[str, Any]]


class ResponseStore:
    """
    The last C{size} responses in memory, least recently used forgotten
    first; with C{persisted}, every response is also kept in the state
    database, so a follow-up still finds it after a restart.
    """

    def __init__(self, size: int, persisted: Optional[PersistedResponses] = None) -> None:
        self.size = size
        self.persisted = persisted
        self._items: OrderedDict[str, Stored] = OrderedDict()
        #: output item id -> the response that holds it (kept responses only)
        self._item_owner: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, response_id: str) -> Optional[Stored]:
        stored = self._items.get(response_id)
        if stored is not None:
            self._items.move_to_end(response_id)
            return stored
        if self.persisted is not None:
            found = self.persisted.load(response_id)
            if found is not None:
                stored = Stored(*found)
                self._remember(response_id, stored)
        return stored

    def conversation(self, response_id: str) -> Optional[Conversation]:
        stored = self.get(response_id)
        return stored.conversation if stored is not None else None

    def put(self, response_id: str, stored: Stored) -> None:
        self._remember(response_id, stored)
        if self.persisted is not None:
            self.persisted.save(response_id, stored.conversation, stored.response)

    def _remember(self, response_id: str, stored: Stored) -> None:
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        for item_id in _item_ids(stored):
            self._item_owner[item_id] = response_id
        while len(self._items) > self.size:
            _, gone = self._items.popitem(last=False)
            self._forget_items(gone)

    def _forget_items(self, stored: Stored) -> None:
        for item_id in _item_ids(stored):
            self._item_owner.pop(item_id, None)

    def item(self, item_id: str) -> Optional[dict[str, Any]]:
        """
        An output item of a kept response, by its id (what an
        C{item_reference} names), or None.
        """
        owner = self._item_owner.get(item_id)
        stored = self._items.get(owner) if owner is not None else None
        if stored is not None and stored.response is not None:
            for item in stored.response.get("output") or []:
                if isinstance(item, dict) and item.get("id") == item_id:
                    return item
        if self.persisted is not None:
            return self.persisted.find_item(item_id)
        return None

    def delete(self, response_id: str) -> bool:
        gone = self._items.pop(response_id, None)
        if gone is not None:
            self._forget_items(gone)
        found = gone is not None
        if self.persisted is not None:
            found = self.persisted.delete(response_id) or found
        return found


def _item_ids(stored: Stored) -> list[str]:
    output = (stored.response or {}).get("output") or []
    return [str(item["id"]) for item in output if isinstance(item, dict) and isinstance(item.get("id"), str)]
