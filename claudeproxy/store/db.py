"""
One SQLite database for the daemon's state.

Writes run on a thread of their own (a one-thread pool, so they keep their
order and never block the reactor); each returns a Deferred that fires in
the reactor thread.  Reads that a request needs at once (a primary-key
lookup after a restart) may use L{StateDB.read_now}, a separate connection
in WAL mode, which never waits for a writer.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable, Optional, Sequence, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

FILENAME = "claudeproxy.sqlite3"

#: each schema step, applied in order once (PRAGMA user_version counts them)
Migration = Callable[[sqlite3.Connection], None]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class StateDB:
    """
    The state database.  C{reactor} runs the callbacks; L{start} and
    L{stop} bracket the writer thread's life (the daemon's service does).
    """

    log = Logger()

    def __init__(self, reactor: Any, path: str, migrations: Sequence[Migration] = ()) -> None:
        self.reactor = reactor
        self.path = path
        self._writer = _connect(path)
        self._reader = _connect(path)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="claudeproxy-state")
        self._migrate(migrations)
        self.pending = 0

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        (version,) = self._writer.execute("PRAGMA user_version").fetchone()
        for n, step in enumerate(migrations[version:], start=version + 1):
            self._writer.execute("BEGIN")
            try:
                step(self._writer)
                self._writer.execute("PRAGMA user_version=%d" % (n,))
                self._writer.execute("COMMIT")
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise

    def start(self) -> None:
        self._pool.start()

    def write(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """
        Run C{work} with the writing connection, in a transaction, on the
        writer thread.  Failures are logged (and passed on).
        """

        def run() -> T:
            self._writer.execute("BEGIN")
            try:
                result = work(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")
            return result

        self.pending += 1
        if not self._pool.started:
            # not running (tests, or before start): do it now
            try:
                return succeed(run())
            finally:
                self.pending -= 1
        d: Deferred[T] = deferToThreadPool(self.reactor, self._pool, run)

        def done(result: Any) -> Any:
            self.pending -= 1
            return result

        def failed(f: Any) -> Any:
            self.log.failure("writing the state database failed", f)
            return f

        d.addBoth(done)
        d.addErrback(failed)
        return d

    def read(self, work: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """
        Run C{work} with the reading connection, off the reactor thread
        (after the writes queued before it).
        """
        if not self._pool.started:
            return succeed(work(self._reader))
        return deferToThreadPool(self.reactor, self._pool, lambda: work(self._reader))

    def read_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """
        Run C{work} with the reading connection on the calling thread: for
        lookups a request cannot wait a thread hop for.
        """
        return work(self._reader)

    def stop(self) -> None:
        """
        Finish the queued writes, then close.
        """
        if self._pool.started:
            self._pool.stop()
        self._writer.close()
        self._reader.close()


def open_state(reactor: Any, state_dir: str, migrations: Sequence[Migration]) -> Optional[StateDB]:
    """
    The state database in C{state_dir} (made if missing, private to the
    user), or None when there is no state directory.
    """
    if not state_dir:
        return None
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    return StateDB(reactor, os.path.join(state_dir, FILENAME), migrations)
