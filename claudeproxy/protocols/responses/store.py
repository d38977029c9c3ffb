"""
The responses kept for C{previous_response_id}, C{GET} and C{DELETE}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional

import attrs

from ...engine.conversation import Conversation


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
    The last C{size} responses, least recently used forgotten first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Stored] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, response_id: str) -> Optional[Stored]:
        stored = self._items.get(response_id)
        if stored is not None:
            self._items.move_to_end(response_id)
        return stored

    def conversation(self, response_id: str) -> Optional[Conversation]:
        stored = self.get(response_id)
        return stored.conversation if stored is not None else None

    def put(self, response_id: str, stored: Stored) -> None:
        self._items[response_id] = stored
        self._items.move_to_end(response_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def delete(self, response_id: str) -> bool:
        return self._items.pop(response_id, None) is not None
