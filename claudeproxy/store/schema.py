"""
The state database's schema, one step per change, applied in order.
"""

from __future__ import annotations

import sqlite3

from .db import Migration
from .models import create_table as _models
from .usage import add_cost as _usage_cost
from .usage import create_table as _usage


def _responses(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE responses ("
        " id TEXT PRIMARY KEY,"
        " created REAL NOT NULL,"
        " conversation TEXT NOT NULL,"
        " response TEXT"
        ")"
    )
    conn.execute("CREATE INDEX responses_created ON responses (created)")


MIGRATIONS: list[Migration] = [_responses, _usage, _models, _usage_cost]
