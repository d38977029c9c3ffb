"""
Per-client budgets: optional daily, weekly and monthly limits on a named
key's requests, tokens or API-equivalent dollars.

A budget's period is a calendar one in UTC (the day from midnight, the week
from Monday, the month from its first), and it resets at the next.  The
tallies are taken from the usage history (so they survive restarts) when
the daemon starts, then kept up to date as each row is stored; requests
still being answered count against a request budget, so a burst cannot
overshoot it.  L{Budgets.check} is a dictionary lookup: it is on the
request's path.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
import sqlite3
from typing import Callable, Iterable, Optional

import attrs

from ..engine.errors import ProxyError

PERIODS = ("daily", "weekly", "monthly")
#: the error code of a request refused for its budget
REFUSED = "budget_exceeded"
#: the error codes of requests refused before they were served: they use
#: no budget (nor did they begin, see L{Budgets.begin})
NOT_COUNTED = (REFUSED, "plan_limit_reached", "reserve_reached")
KINDS = ("requests", "tokens", "usd")
_ITEM = re.compile(r"(daily|weekly|monthly):(?:\$(\d+(?:\.\d+)?)|(\d+)(req|requests|tok|tokens))\Z")
#: budget items at the end of an API key file's line
TRAILING = re.compile(r"(?:\s+(?:daily|weekly|monthly):\S+)+\s*\Z")


@attrs.frozen
class Budget:
    client: str
    period: str
    kind: str
    amount: float

    def describe(self) -> str:
        return "%s budget of %s" % (self.period, amount_text(self.kind, self.amount))


def amount_text(kind: str, amount: float) -> str:
    if kind == "usd":
        return "$%.2f" % (amount,)
    return "%d %s" % (amount, kind)


def parse_budget(client: str, item: str) -> Budget:
    """
    One budget item, C{PERIOD:AMOUNT}: C{daily:200req}, C{weekly:$25},
    C{monthly:5000000tok}.  Raises ValueError with what is wrong.
    """
    m = _ITEM.match(item)
    if m is None:
        raise ValueError(
            "not a budget: %r (write daily:, weekly: or monthly: then N req, N tok or $N, e.g. daily:200req)" % (item,)
        )
    period, dollars, count, unit = m.groups()
    if dollars is not None:
        return Budget(client, period, "usd", float(dollars))
    return Budget(client, period, "requests" if unit.startswith("req") else "tokens", float(count))


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """
    The start and end (the reset) of the C{period} that holds C{now}, in UTC.
    """
    t = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        start, end = day, day + datetime.timedelta(days=1)
    elif period == "weekly":
        start = day - datetime.timedelta(days=day.weekday())
        end = start + datetime.timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = start + datetime.timedelta(days=calendar.monthrange(start.year, start.month)[1])
    return start.timestamp(), end.timestamp()


@attrs.define
class Tally:
    start: float = 0.0
    requests: int = 0
    tokens: int = 0
    usd: float = 0.0

    def used(self, kind: str) -> float:
        return float(getattr(self, kind))


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Budgets:
    """
    The budgets of the named keys and what each client has used of them;
    C{clock} is the wall clock.
    """

    def __init__(self, budgets: Iterable[Budget], clock: Callable[[], float]) -> None:
        self.clock = clock
        self.budgets: dict[str, list[Budget]] = {}
        for b in budgets:
            self.budgets.setdefault(b.client, []).append(b)
        self._tallies: dict[tuple[str, str], Tally] = {}
        self._running: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.budgets)

    def _tally(self, client: str, period: str, now: float) -> Tally:
        start, _ = period_bounds(period, now)
        tally = self._tallies.get((client, period))
        if tally is None or tally.start != start:
            tally = self._tallies[(client, period)] = Tally(start)
        return tally

    def load(self, conn: sqlite3.Connection) -> None:
        """
        Take the tallies of the current periods from the usage history.
        """
        now = self.clock()
        for client, budgets in self.budgets.items():
            for period in {b.period for b in budgets}:
                tally = self._tally(client, period, now)
                requests, tokens, usd = conn.execute(
                    "SELECT COUNT(*), TOTAL(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens),"
                    " TOTAL(cost) FROM usage WHERE client = ? AND time >= ? AND error_code IS NOT ?"
                    " AND error_code IS NOT ? AND error_code IS NOT ?",
                    (client, tally.start, *NOT_COUNTED),
                ).fetchone()
                tally.requests, tally.tokens, tally.usd = int(requests), int(tokens), float(usd)

    def stored(self, client: str, time: float, tokens: int, cost: Optional[float], error_code: Optional[str]) -> None:
        """
        A usage row of C{client} was stored (C{time}: when its request
        began); a request refused before it was served (its budget, the
        plan's limit, the reserve) does not count.
        """
        if client not in self.budgets or error_code in NOT_COUNTED:
            return
        self.end(client)
        now = self.clock()
        for period in {b.period for b in self.budgets[client]}:
            tally = self._tally(client, period, now)
            if time >= tally.start:
                tally.requests += 1
                tally.tokens += tokens
                tally.usd += cost or 0.0

    def check(self, client: str) -> None:
        """
        Raise the 429 of the first budget C{client} is over (a request
        budget counts its requests being answered too).
        """
        budgets = self.budgets.get(client)
        if not budgets:
            return
        now = self.clock()
        for b in budgets:
            tally = self._tally(client, b.period, now)
            used = tally.used(b.kind) + (self._running.get(client, 0) if b.kind == "requests" else 0)
            if used >= b.amount:
                _, reset = period_bounds(b.period, now)
                raise ProxyError(
                    429,
                    "The client %r is over its %s (%s used); it resets at %s."
                    % (client, b.describe(), amount_text(b.kind, used), _iso(reset)),
                    "rate_limit_error",
                    REFUSED,
                    None,
                    max(1, math.ceil(reset - now)),
                )

    def begin(self, client: str) -> None:
        """
        A request of C{client} passed L{check}: it counts as running until its row is stored.
        """
        if client in self.budgets:
            self._running[client] = self._running.get(client, 0) + 1

    def end(self, client: str) -> None:
        if client in self._running:
            self._running[client] -= 1
            if not self._running[client]:
                del self._running[client]

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """
        Each client's budgets with what is used and when each resets (for C{/v1/usage}).
        """
        now = self.clock()
        out: dict[str, list[dict[str, object]]] = {}
        for client, budgets in self.budgets.items():
            for b in budgets:
                tally = self._tally(client, b.period, now)
                out.setdefault(client, []).append(
                    {
                        "period": b.period,
                        "kind": b.kind,
                        "limit": b.amount,
                        "used": tally.used(b.kind),
                        "resets_at": period_bounds(b.period, now)[1],
                    }
                )
        return out
