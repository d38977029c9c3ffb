"""
The warm pool: processes started ahead, waiting on stdin.

- Generic processes, started with only what must be fixed at spawn
  (L{claudeproxy.engine.binding.generic_argv}) and bound to a request's
  settings and history when it arrives.  How many are kept ready follows
  demand (L{Demand}): the recent peak of requests that needed a fresh
  process at once, plus one, within C{bound}.
- Keyed processes, started with one request's settings, for what cannot be
  bound late (a hosted web search) or a CLI without the control requests:
  one for each key used recently, the rest of the budget by request rate.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from typing import Callable, Deque, Optional

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .binding import switchable
from .continuity import Continuation, HistoryDigest
from .held import cancel
from .process import CLIProcess, SpawnKey

#: the resident memory of one idle CLI process, for the default cap
PROCESS_RSS = 300 * 1024 * 1024
#: how long a peak of demand keeps the pool large (seconds)
DEMAND_WINDOW = 600.0


def memory_cap(total_bytes: Optional[int] = None) -> int:
    """
    The default most warm processes: what a quarter of the machine's
    memory holds at ~300 MB each (24 GiB: 20; 8 GiB: 6), at least 1.
    """
    if total_bytes is None:
        try:
            total_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total_bytes = 8 * 1024**3
    return max(1, total_bytes // 4 // PROCESS_RSS)


def start_slots(cpus: Optional[int] = None) -> int:
    """
    The default most warm processes starting at once: one a core (2
    cores: 2).  A start keeps a core busy for ~0.7 s; with more at once
    than there are cores, they slow each other and the turns being served
    (nine at once on 2 cores took ~3 s each).  One less than the cores
    served back-to-back requests faster still on 2 cores, but left too few
    processes ready for real clients' first requests.
    """
    if cpus is None:
        cpus = os.cpu_count() or 2
    return max(1, cpus)


class Demand:
    """
    How many fresh processes (for a new conversation, or one no live
    process holds) were needed at once, at the peak within C{window}
    seconds: requests needing one at the same time, or one after another
    faster than a process starts (C{begin}'s C{span}: as many as came
    within the time a start takes).
    """

    def __init__(self, window: float = DEMAND_WINDOW) -> None:
        self.window = window
        self.in_flight = 0
        self._samples: Deque[tuple[float, int]] = deque()
        self._takes: Deque[float] = deque(maxlen=256)

    def begin(self, now: float, span: float = 0.0) -> None:
        self.in_flight += 1
        self._takes.append(now)
        recent = sum(1 for t in self._takes if now - t <= span)
        self._samples.append((now, max(self.in_flight, recent)))

    def end(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def short(self, now: float) -> None:
        """
        A request found no ready process (it took one still starting, or
        none): the pool was too small for the demand, so its peak grows by
        one at once instead of waiting for the rate to show it.
        """
        self._samples.append((now, self.peak(now) + 1))

    def peak(self, now: float) -> int:
        while self._samples and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        return max((n for _, n in self._samples), default=0)


def generic_target(peak: int, bound: int) -> int:
    """
    How many generic processes to keep ready: one more than the recent
    peak (so the next request finds one while a taken one's replacement
    starts), at least two (a chat request and its title request arrive
    together), never more than C{bound}.
    """
    if bound <= 0:
        return 0
    return max(min(2, bound), min(peak + 1, bound))


@attrs.define(eq=False)
class Idle:
    proc: CLIProcess
    #: the request settings it was started with; None for a generic process
    key: Optional[SpawnKey]
    born: float
    #: the model a generic process was started with
    model: str = ""
    #: a generic process started with the WebSearch tool
    web: bool = False
    timer: Optional[IDelayedCall] = None
    #: a conversation's process, bound to C{key}, its conversation cleared
    #: (still C{clearing} until the CLI has said so)
    cleared: bool = False
    clearing: bool = False
    #: the conversation a pushed-out process still holds, for a moment
    #: before it is cleared (C{clear_timer}; never while C{clearing})
    held: Optional[Continuation] = None
    clear_timer: Optional[IDelayedCall] = None


def _held(entry: Idle) -> bool:
    return entry.held is not None


class WarmPool:
    """
    The idle processes, generic and keyed, each for C{ttl} seconds.
    C{expired} is told of each one that outlived it.
    """

    def __init__(self, reactor: IReactorTime, ttl: float, expired: Callable[[Idle], None]) -> None:
        self.reactor = reactor
        self.ttl = ttl
        self._expired_cb = expired
        self.generic: list[Idle] = []
        self.keyed: dict[SpawnKey, list[Idle]] = {}
        self.cleared: list[Idle] = []

    def add(self, entry: Idle) -> None:
        entry.timer = self.reactor.callLater(self.ttl, self._expired, entry)
        if entry.cleared:
            self.cleared.append(entry)
        elif entry.key is None:
            self.generic.append(entry)
        else:
            self.keyed.setdefault(entry.key, []).append(entry)

    def _list(self, entry: Idle) -> list[Idle]:
        if entry.cleared:
            return self.cleared
        return self.generic if entry.key is None else self.keyed.get(entry.key, [])

    def remove(self, entry: Idle) -> bool:
        entries = self._list(entry)
        if entry not in entries:
            return False
        entries.remove(entry)
        cancel(entry.timer)
        cancel(entry.clear_timer)
        if entry.key is not None and not entries and not entry.cleared:
            self.keyed.pop(entry.key, None)
        return True

    def _expired(self, entry: Idle) -> None:
        if self.remove(entry):
            self._expired_cb(entry)

    @staticmethod
    def _pick(entries: list[Idle], model: Optional[str] = None) -> Optional[Idle]:
        """
        The entry to lend: one that has finished starting (started with
        C{model} first), else the oldest.
        """
        live = [e for e in entries if not (e.proc.is_ended or e.proc.killed)]
        if not live:
            return None
        ready = [e for e in live if e.proc.ready]
        same = [e for e in ready if e.model == model]
        return (same or ready or live)[0]

    def generics(self, web: bool) -> list[Idle]:
        return [e for e in self.generic if e.web == web]

    def take_generic(self, model: str, web: bool = False) -> Optional[Idle]:
        entry = self._pick(self.generics(web), model)
        if entry is not None:
            self.remove(entry)
        return entry

    def take_keyed(self, key: SpawnKey) -> Optional[Idle]:
        entry = self._pick(self.keyed.get(key, []))
        if entry is not None:
            self.remove(entry)
        return entry

    def take_held(self, key: SpawnKey, history: HistoryDigest) -> Optional[Idle]:
        """
        A pushed-out process not cleared yet whose conversation C{history}
        continues, taken out.
        """
        for entry in self.cleared:
            held = entry.held
            if held is not None and entry.key == key and history.continues(held):
                if entry.proc.is_ended or entry.proc.killed:
                    return None
                self.remove(entry)
                return entry
        return None

    def take_cleared(self, key: SpawnKey) -> Optional[Idle]:
        """
        A cleared process done clearing, bound to exactly C{key}, else to
        settings it can be switched from (L{switchable}: another model or
        effort); one that still holds its conversation (C{held}) is to be
        cleared by the request.
        """
        usable = [e for e in self.cleared if not e.clearing and not (e.proc.is_ended or e.proc.killed)]
        # exact settings first, and among them those already cleared
        exact = [e for e in usable if e.key == key]
        switched = [e for e in usable if e.key and switchable(e.key, key)]
        candidates = sorted(exact, key=_held) + sorted(switched, key=_held)
        if not candidates:
            return None
        self.remove(candidates[0])
        return candidates[0]

    def find(self, proc: CLIProcess) -> Optional[Idle]:
        for entry in self.all():
            if entry.proc is proc:
                return entry
        return None

    def all(self) -> list[Idle]:
        return list(self.generic) + [e for entries in self.keyed.values() for e in entries] + list(self.cleared)

    def ready_generic(self, web: Optional[bool] = None) -> int:
        return sum(1 for e in self.generic if e.proc.ready and (web is None or e.web == web))

    def __len__(self) -> int:
        return len(self.generic) + sum(len(e) for e in self.keyed.values())

    def clear(self) -> None:
        for entry in self.all():
            cancel(entry.timer)
            cancel(entry.clear_timer)
        self.generic.clear()
        self.keyed.clear()
        self.cleared.clear()


def keyed_targets(
    recent: OrderedDict[SpawnKey, float],
    arrivals: dict[SpawnKey, Deque[float]],
    now: float,
    ttl: float,
    budget: int,
) -> dict[SpawnKey, int]:
    """
    How many idle keyed processes each key should have: each key used
    within C{ttl} (most recent first, as many as the budget allows) gets
    one, and the rest of the budget goes to the keys in proportion to how
    many requests each had in that time, so a key with back-to-back
    requests keeps several ready.
    """
    keys = [k for k, t in reversed(recent.items()) if now - t < ttl][:budget]
    if not keys:
        return {}
    out = {k: 1 for k in keys}
    spare = budget - len(keys)
    if spare > 0:
        rates = {k: sum(1 for t in arrivals.get(k, ()) if now - t < ttl) for k in keys}
        total = sum(rates.values()) or 1
        shares = {k: spare * rates[k] / total for k in keys}
        for k in keys:
            out[k] += int(shares[k])
        left = budget - sum(out.values())
        # the largest remainders, most recent first among equals
        for k in sorted(keys, key=lambda k: shares[k] - int(shares[k]), reverse=True)[:left]:
            out[k] += 1
    return out
