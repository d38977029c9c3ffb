"""
The process layer: admission (how many requests run, how many wait) and the
manager that hands out CLI processes and takes them back.

Every CLI process the daemon starts goes through L{ProcessManager}, so one
place knows them all: for shutdown, for /health, and for the warm pool and
live conversations that reuse them.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Deque, Mapping, Optional

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .errors import ProxyError, cli_missing
from .process import CLIProcess, Killer, Spawner, SpawnKey, build_argv, kill_group


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


class ProcessManager:
    """
    Starts CLI processes for requests and ends them.  One process serves
    one request at a time.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        claude: Optional[str],
        claude_missing_reason: str,
        env: Mapping[str, str],
        workdir: str,
        spawner: Spawner,
        killer: Killer = kill_group,
    ) -> None:
        self.reactor = reactor
        self.claude = claude
        self.claude_missing_reason = claude_missing_reason
        self.env = dict(env)
        self.workdir = workdir
        self.spawner = spawner
        self.killer = killer
        self.live: set[CLIProcess] = set()
        self.spawned = 0
        self.closing = False

    def check_cli(self) -> None:
        """
        Raise the 503 a request gets when the CLI cannot be started.
        """
        if self.claude is None:
            raise cli_missing(self.claude_missing_reason or "`claude` was not found on PATH")
        if not os.access(self.claude, os.X_OK):
            raise cli_missing("%s is missing or not executable" % (self.claude,))

    def acquire(self, key: SpawnKey) -> CLIProcess:
        """
        A process for C{key}, ready for a user line on stdin.
        """
        if self.closing:
            raise ProxyError(503, "claudeproxy is shutting down", "server_error", "shutting_down")
        self.check_cli()
        assert self.claude is not None
        proc = CLIProcess(self.killer)
        argv = build_argv(self.claude, key)
        try:
            self.spawner(proc, self.claude, argv, self.env, self.workdir)
        except OSError as e:
            raise cli_missing("starting %s failed: %s" % (self.claude, e))
        self.spawned += 1
        self.live.add(proc)
        proc.ended.addBoth(self._gone, proc)
        return proc

    def _gone(self, result: Any, proc: CLIProcess) -> Any:
        self.live.discard(proc)
        return result

    def release(self, proc: CLIProcess, reusable: bool = False) -> None:
        """
        The request is done with C{proc}.  (A process that could serve
        again is kept by the warm layer; here every process ends.)
        """
        proc.attach(None)
        proc.kill()

    def shutdown(self) -> Deferred[Any]:
        """
        Kill every process; fires when all have been reaped.
        """
        self.closing = True
        waits = []
        for proc in list(self.live):
            proc.kill()
            waits.append(proc.ended)
        return DeferredList(waits, consumeErrors=True)
