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
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def delete(self, response_id: str) -> bool:
        found = self._items.pop(response_id, None) is not None
        if self.persisted is not None:
            found = self.persisted.delete(response_id) or found
        return found
