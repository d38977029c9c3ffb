"""
Admission: how many requests run at once, how many wait, and the 429 for
the rest.
"""

from __future__ import annotations

from collections import deque
from typing import Deque

from twisted.internet.defer import Deferred, succeed

from .errors import ProxyError


class Limiter:
    """
    At most C{max_concurrent} requests run; at most C{max_queued} more wait
    in order; beyond that, 429.
    """

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.running = 0
        self._waiting: Deque[Deferred[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def acquire(self) -> Deferred[None]:
        if self.running < self.max_concurrent and not self._waiting:
            self.running += 1
            return succeed(None)
        if len(self._waiting) >= self.max_queued:
            raise ProxyError(
                429,
                "Too many requests: %d running and %d waiting, the most this daemon accepts (--max-concurrent, --max-queued)"
                % (self.running, len(self._waiting)),
                "rate_limit_error",
                "queue_full",
                None,
                1,
            )

        def cancel(d: Deferred[None]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: Deferred[None] = Deferred(cancel)
        self._waiting.append(d)
        return d

    def close(self, error: Exception) -> None:
        """
        Fail everything still waiting with C{error}.
        """
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(error)

    def release(self) -> None:
        if self._waiting:
            self._waiting.popleft().callback(None)
        else:
            self.running -= 1
