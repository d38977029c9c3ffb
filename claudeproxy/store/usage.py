"""
Usage history: one row per request (who asked, what was served and how,
how it ended, how long it took, the tokens, the subscription's rate-limit
state), kept in the state database for C{retention} seconds.

Recording never waits: L{UsageLog.record} puts the row on a queue and asks
the writer thread to drain it, so a burst of requests becomes a few
transactions of many rows, and no row is lost however many arrive at once.
The summaries the dashboard shows (L{UsageLog.summary}) are read on the
same thread, after the rows queued before them.
"""

from __future__ import annotations

import collections
import json
import sqlite3
import threading
from typing import Any, Callable, Mapping, Optional

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from .db import StateDB
from .pricing import api_cost

HOUR = 3600
DAY = 86400
#: the windows summarised, in seconds
WINDOWS = {"day": DAY, "week": 7 * DAY, "month": 30 * DAY}
#: how often old rows are pruned
PRUNE_INTERVAL = float(HOUR)

COLUMNS = (
    "time",
    "request_id",
    "client",
    "endpoint",
    "model_asked",
    "model_served",
    "served",
    "stream",
    "status",
    "error_code",
    "first_token_ms",
    "total_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "rate_limit_status",
    "rate_limit",
    "cost",
)


def create_table(conn: sqlite3.Connection) -> None:
    """
    The schema step that adds the usage table.
    """
    conn.execute(
        "CREATE TABLE usage ("
        " time REAL NOT NULL,"
        " request_id TEXT NOT NULL,"
        " client TEXT NOT NULL,"
        " endpoint TEXT NOT NULL,"
        " model_asked TEXT NOT NULL,"
        " model_served TEXT NOT NULL,"
        " served TEXT NOT NULL,"
        " stream INTEGER NOT NULL,"
        " status INTEGER NOT NULL,"
        " error_code TEXT,"
        " first_token_ms REAL,"
        " total_ms REAL NOT NULL,"
        " input_tokens INTEGER NOT NULL,"
        " output_tokens INTEGER NOT NULL,"
        " cache_read_tokens INTEGER NOT NULL,"
        " cache_write_tokens INTEGER NOT NULL,"
        " rate_limit_status TEXT,"
        " rate_limit TEXT"
        ")"
    )
    conn.execute("CREATE INDEX usage_time ON usage (time)")


def add_cost(conn: sqlite3.Connection) -> None:
    """
    The schema step that adds each row's API-equivalent cost in dollars
    (C{NULL}: unpriced, the price database does not know the model).
    """
    conn.execute("ALTER TABLE usage ADD COLUMN cost REAL")


@attrs.frozen
class UsageRow:
    """
    One request, as recorded.  C{time} is when it started (wall clock);
    C{client} the name of the API key it used (C{default} for a single
    unnamed key, C{-} with no keys configured or a refused key).
    """

    time: float
    request_id: str
    client: str
    endpoint: str
    model_asked: str
    model_served: str
    served: str
    stream: bool
    status: int
    error_code: Optional[str]
    first_token_ms: Optional[float]
    total_ms: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    rate_limit: Optional[Mapping[str, Any]] = None
    #: the API-equivalent cost in dollars, C{None} if unpriced
    cost: Optional[float] = None

    def priced(self) -> UsageRow:
        """
        This row with its API-equivalent cost.
        """
        cost = api_cost(
            self.model_served or self.model_asked,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.time,
        )
        return attrs.evolve(self, cost=cost)

    def values(self) -> tuple[Any, ...]:
        limit = self.rate_limit
        status = limit.get("status") if limit else None
        return (
            self.time,
            self.request_id,
            self.client,
            self.endpoint,
            self.model_asked,
            self.model_served,
            self.served,
            int(self.stream),
            self.status,
            self.error_code,
            self.first_token_ms,
            self.total_ms,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            status if isinstance(status, str) else None,
            json.dumps(dict(limit), separators=(",", ":"), default=str) if limit else None,
            self.cost,
        )

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> UsageRow:
        values = dict(zip(COLUMNS, row, strict=True))
        values.pop("rate_limit_status")
        raw = values.pop("rate_limit")
        values["stream"] = bool(values["stream"])
        return cls(rate_limit=json.loads(raw) if raw else None, **values)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_INSERT = "INSERT INTO usage (%s) VALUES (%s)" % (", ".join(COLUMNS), ", ".join("?" * len(COLUMNS)))


class UsageLog:
    """
    The usage history in C{db}; C{clock} is the wall clock, C{retention}
    how many seconds rows are kept.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        db: StateDB,
        clock: Callable[[], float],
        retention: float = 90 * DAY,
    ) -> None:
        self.reactor = reactor
        self.db = db
        self.clock = clock
        self.retention = retention
        self._queue: collections.deque[UsageRow] = collections.deque()
        self._lock = threading.Lock()
        #: called on the reactor thread with the rows just stored, priced
        self.on_stored: Optional[Callable[[list[UsageRow]], None]] = None

    # -- writing ---------------------------------------------------------------------

    def record(self, row: UsageRow) -> None:
        """
        Queue C{row}; the writer thread prices and stores it (with any
        others queued), so pricing is off the reactor thread.
        """
        self._queue.append(row)
        try:
            d = self.db.write(self._drain)
        except sqlite3.ProgrammingError:
            # the database is closed: the daemon is stopping
            return
        d.addCallback(self._stored)
        # a failure is logged by the database
        d.addErrback(lambda _: None)

    def _stored(self, rows: list[UsageRow]) -> None:
        if rows and self.on_stored is not None:
            self.on_stored(rows)

    def _drain(self, conn: sqlite3.Connection) -> list[UsageRow]:
        with self._lock:
            rows = []
            while self._queue:
                rows.append(self._queue.popleft().priced())
        if rows:
            conn.executemany(_INSERT, [r.values() for r in rows])
        return rows

    def prune(self) -> Deferred[int]:
        """
        Delete the rows older than the retention; fires with how many.
        """
        cutoff = self.clock() - self.retention
        return self.db.write(lambda conn: conn.execute("DELETE FROM usage WHERE time < ?", (cutoff,)).rowcount)

    # -- reading ---------------------------------------------------------------------

    def rows(self, since: float = 0.0, limit: int = 1000) -> Deferred[list[UsageRow]]:
        """
        The rows since C{since}, newest first.
        """
        sql = "SELECT %s FROM usage WHERE time >= ? ORDER BY time DESC LIMIT ?" % (", ".join(COLUMNS),)
        return self.db.read(lambda conn: [UsageRow.from_db(r) for r in conn.execute(sql, (since, limit))])

    def count(self) -> Deferred[int]:
        return self.db.read(lambda conn: int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]))

    def summary(self, errors: int = 20, recent: int = 20) -> Deferred[dict[str, Any]]:
        """
        Requests and tokens per hour and per client over the last day,
        week and month; the last C{errors} failed requests and the last
        C{recent} requests.
        """
        now = self.clock()
        return self.db.read(lambda conn: summarise(conn, now, errors, recent))


#: what is counted per client and per hour, in the order shown
COUNTS = ("requests", "errors", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
#: besides the counts: the API-equivalent cost of the priced rows, and how many rows are unpriced
MONEY = ("cost", "unpriced")
_SUMS = (
    "COUNT(*), SUM(status >= 400), SUM(input_tokens), SUM(output_tokens),"
    " SUM(cache_read_tokens), SUM(cache_write_tokens), TOTAL(cost), SUM(cost IS NULL)"
)


def _figures(counts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {k: v or 0 for k, v in zip(COUNTS + MONEY, counts, strict=True)}
    out["cost"] = float(out["cost"])
    return out


def _add(into: dict[str, Any], more: Mapping[str, Any]) -> None:
    for key in COUNTS + MONEY:
        into[key] = into.get(key, 0) + more[key]


def summarise(conn: sqlite3.Connection, now: float, errors: int, recent: int) -> dict[str, Any]:
    since = now - WINDOWS["month"]
    cells: list[dict[str, Any]] = []
    for hour, client, model, *counts in conn.execute(
        "SELECT CAST(time / 3600 AS INTEGER) * 3600 AS hour, client,"
        " CASE WHEN model_served != '' THEN model_served ELSE model_asked END AS model, "
        + _SUMS
        + " FROM usage WHERE time >= ? GROUP BY hour, client, model ORDER BY hour",
        (since,),
    ):
        cells.append({"hour": int(hour), "client": client, "model": model, **_figures(counts)})
    hours: list[dict[str, Any]] = []
    by_hour: dict[tuple[int, str], dict[str, Any]] = {}
    for cell in cells:
        key = (cell["hour"], cell["client"])
        if key not in by_hour:
            by_hour[key] = {"hour": cell["hour"], "client": cell["client"]}
            hours.append(by_hour[key])
        _add(by_hour[key], cell)
    windows: dict[str, Any] = {}
    for name, span in WINDOWS.items():
        start = (int(now - span) // HOUR) * HOUR
        series = [h for h in hours if h["hour"] >= start]
        clients: dict[str, dict[str, Any]] = {}
        for h in series:
            _add(clients.setdefault(h["client"], {}), h)
        models: dict[str, dict[str, Any]] = {}
        total: dict[str, Any] = dict.fromkeys(COUNTS + MONEY, 0)
        total["cost"] = 0.0
        for cell in cells:
            if cell["hour"] >= start:
                _add(models.setdefault(cell["model"], {}), cell)
                _add(total, cell)
        windows[name] = {
            "start": start,
            "bucket": HOUR,
            "hours": series,
            "clients": clients,
            "models": models,
            "total": total,
        }
    cols = ", ".join(COLUMNS)
    failed_rows = conn.execute(
        "SELECT %s FROM usage WHERE status >= 400 ORDER BY time DESC LIMIT ?" % (cols,), (errors,)
    ).fetchall()
    recent_rows = conn.execute("SELECT %s FROM usage ORDER BY time DESC LIMIT ?" % (cols,), (recent,)).fetchall()
    (total,) = conn.execute("SELECT COUNT(*) FROM usage").fetchone()
    return {
        "now": now,
        "rows": total,
        "windows": windows,
        "errors": [_brief(UsageRow.from_db(r)) for r in failed_rows],
        "recent": [_brief(UsageRow.from_db(r)) for r in recent_rows],
    }


def _brief(row: UsageRow) -> dict[str, Any]:
    out = row.to_json()
    out.pop("rate_limit")
    return out
