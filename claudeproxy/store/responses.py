"""
Responses kept across restarts: each stored response's conversation (what a
C{previous_response_id} or C{item_reference} continues) and the response
object as the client got it.  Bounded: at most C{keep} rows, none older
than C{max_age} seconds, pruned as rows are added.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable, Optional

from ..engine.conversation import Conversation, Message
from .db import StateDB

#: prune once every this many writes
PRUNE_EVERY = 100


def conversation_json(conversation: Conversation) -> str:
    return json.dumps(
        {"system": conversation.system, "messages": [[m.role, list(m.blocks)] for m in conversation.messages]},
        ensure_ascii=True,
        separators=(",", ":"),
    )


def conversation_from_json(text: str) -> Conversation:
    data = json.loads(text)
    return Conversation(data["system"], [Message(role, blocks) for role, blocks in data["messages"]])


class PersistedResponses:
    def __init__(
        self, db: StateDB, clock: Callable[[], float], keep: int = 10_000, max_age: float = 30 * 86400.0
    ) -> None:
        self.db = db
        self.clock = clock
        self.keep = keep
        self.max_age = max_age
        self._writes = 0

    def save(self, response_id: str, conversation: Conversation, response: Optional[dict[str, Any]]) -> None:
        row = (
            response_id,
            self.clock(),
            conversation_json(conversation),
            json.dumps(response, ensure_ascii=True, separators=(",", ":")) if response is not None else None,
        )
        self._writes += 1
        prune = self._writes % PRUNE_EVERY == 1

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT OR REPLACE INTO responses (id, created, conversation, response) VALUES (?,?,?,?)", row)
            if prune:
                self._prune(conn, row[1])

        self.db.write(work)

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM responses WHERE created < ?", (now - self.max_age,))
        conn.execute(
            "DELETE FROM responses WHERE id NOT IN (SELECT id FROM responses ORDER BY created DESC LIMIT ?)",
            (self.keep,),
        )

    def prune_now(self) -> None:
        now = self.clock()
        self.db.write(lambda conn: self._prune(conn, now))

    def load(self, response_id: str) -> Optional[tuple[Conversation, Optional[dict[str, Any]]]]:
        row = self.db.read_now(
            lambda conn: conn.execute(
                "SELECT conversation, response FROM responses WHERE id = ?", (response_id,)
            ).fetchone()
        )
        if row is None:
            return None
        return conversation_from_json(row[0]), (json.loads(row[1]) if row[1] is not None else None)

    def find_item(self, item_id: str) -> Optional[dict[str, Any]]:
        """
        The output item C{item_id} of a kept response (for
        C{item_reference}), or None.
        """
        needle = '%"id":"' + item_id.replace("\\", "").replace('"', "") + '"%'
        rows = self.db.read_now(
            lambda conn: conn.execute(
                "SELECT response FROM responses WHERE response LIKE ? ORDER BY created DESC LIMIT 5", (needle,)
            ).fetchall()
        )
        for (text,) in rows:
            response = json.loads(text) if text else None
            for item in (response or {}).get("output") or []:
                if isinstance(item, dict) and item.get("id") == item_id:
                    return item
        return None

    def delete(self, response_id: str) -> bool:
        found = self.load(response_id) is not None
        self.db.write(lambda conn: conn.execute("DELETE FROM responses WHERE id = ?", (response_id,)))
        return found
