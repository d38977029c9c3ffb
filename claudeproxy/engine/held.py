"""
Processes held between requests, each with its own timer: the base of
live sessions (L{claudeproxy.engine.sessions}) and parked tool waits
(L{claudeproxy.engine.toolwaits}).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Iterator, Optional, Protocol, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .process import CLIProcess


class Entry(Protocol):
    proc: CLIProcess
    timer: Optional[IDelayedCall]
    #: when it was put here
    since: float


E = TypeVar("E", bound=Entry)


def cancel(call: Optional[IDelayedCall]) -> None:
    """
    Cancel C{call} if it is still to come.
    """
    if call is not None and call.active():
        call.cancel()


class Held(Generic[E]):
    """
    At most C{limit} entries, each for C{ttl} seconds, in the order they
    came.  C{ended} is told of each one ended here, with why (C{expired}
    says why one outlived its C{ttl}).
    """

    expired = "expired"

    def __init__(
        self, reactor: IReactorTime, limit: int, ttl: float, ended: Callable[[E, str], Optional[bool]]
    ) -> None:
        self.reactor = reactor
        self.limit = limit
        self.ttl = ttl
        self._ended = ended
        self._entries: OrderedDict[CLIProcess, E] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._entries.values()))

    def _hold(self, entry: E) -> None:
        entry.since = self.reactor.seconds()
        entry.timer = self.reactor.callLater(self.ttl, self._expired, entry.proc)
        self._entries[entry.proc] = entry
        while len(self._entries) > self.limit:
            self.end(self._first_out(), "evicted")

    def _first_out(self) -> E:
        """
        The entry ended when there are more than C{limit}: the oldest.
        """
        return next(iter(self._entries.values()))

    def _taken(self, entry: E) -> Optional[E]:
        """
        C{entry}, taken out for a request; None if its process is gone.
        """
        self.remove(entry)
        if entry.proc.is_ended or entry.proc.killed:
            return None
        return entry

    def remove(self, entry: E) -> None:
        self._entries.pop(entry.proc, None)
        cancel(entry.timer)

    def discard(self, proc: CLIProcess) -> None:
        entry = self._entries.pop(proc, None)
        if entry is not None:
            cancel(entry.timer)

    def end(self, entry: E, cause: str) -> None:
        """
        End C{entry}: its process is killed unless C{ended} kept it (said
        True).
        """
        self.remove(entry)
        if not self._ended(entry, cause):
            entry.proc.kill(cause)

    def _expired(self, proc: CLIProcess) -> None:
        entry = self._entries.get(proc)
        if entry is not None:
            self.end(entry, self.expired)

    def clear(self) -> None:
        for entry in self._entries.values():
            cancel(entry.timer)
        self._entries.clear()
