"""
The models the CLI was seen to serve (see L{claudeproxy.engine.models.ModelCatalog}),
kept so that C{/v1/models} lists them after a restart too.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping, Optional

from .db import StateDB


def create_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE models ("
        " id TEXT PRIMARY KEY,"
        " alias TEXT,"
        " context_window INTEGER,"
        " max_output_tokens INTEGER,"
        " seen REAL NOT NULL"
        ")"
    )


def load(db: StateDB) -> list[tuple[str, Any, Any, Any]]:
    return db.read_now(
        lambda conn: [
            (str(r[0]), r[1], r[2], r[3])
            for r in conn.execute("SELECT id, alias, context_window, max_output_tokens FROM models ORDER BY seen")
        ]
    )


def saver(db: StateDB, clock: Any) -> Any:
    """
    A C{ModelCatalog.on_learn} that writes what was learned.
    """

    def save(model_id: str, alias: Optional[str], limits: Mapping[str, int]) -> None:
        row = (model_id, alias, limits.get("context_window"), limits.get("max_output_tokens"), clock())
        db.write(
            lambda conn: conn.execute(
                "INSERT INTO models (id, alias, context_window, max_output_tokens, seen) VALUES (?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET alias = COALESCE(excluded.alias, alias),"
                " context_window = COALESCE(excluded.context_window, context_window),"
                " max_output_tokens = COALESCE(excluded.max_output_tokens, max_output_tokens), seen = excluded.seen",
                row,
            )
        ).addErrback(lambda _: None)

    return save
