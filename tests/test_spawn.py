"""
The spawner really starts CLI processes in a session and process group of
their own, both ways: posix_spawn (the child runs in the daemon's own
directory) and fork (any other directory).
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from claudeproxy.engine.process import CLIProcess, group_spawner, kill_group
from tests.harness import reactor, wait_for


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.pid: Optional[int] = None
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        # read now: a child that ends at once may be reaped (and the
        # transport's pid cleared) before the spawn call returns
        self.pid = self.transport.pid  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(self.out)


class SpawnTests(TestCase):
    async def _stat(self, path: str) -> tuple[int, list[str], str]:
        proto = _Collect()
        group_spawner(reactor)(proto, "/bin/sh", ["/bin/sh", "-c", "cat /proc/self/stat; pwd"], dict(os.environ), path)
        out = (await proto.done).decode()
        pid = proto.pid
        assert pid is not None
        stat, cwd = out.strip().split("\n")
        fields = stat.rsplit(")", 1)[1].split()
        return pid, fields, cwd

    async def test_posix_spawn_in_own_directory(self) -> None:
        pid, fields, cwd = await self._stat(os.getcwd())
        # sh execs cat: cat's pid is the spawned pid, and it leads its
        # own process group and session
        self.assertEqual(int(fields[2]), pid)
        self.assertEqual(int(fields[3]), pid)
        self.assertEqual(cwd, os.getcwd())

    async def test_fork_elsewhere(self) -> None:
        where = os.path.realpath(tempfile.mkdtemp(prefix="cp-spawn-"))
        self.addCleanup(os.rmdir, where)
        pid, fields, cwd = await self._stat(where)
        self.assertEqual(int(fields[2]), pid)
        self.assertEqual(int(fields[3]), pid)
        self.assertEqual(cwd, where)


class EmptyWriteTests(TestCase):
    """
    A real process written an empty line still has its end noticed (a
    resumed tool call used to write C{b""}, after which Twisted never saw
    the stdin pipe close, so C{processEnded} never fired).
    """

    async def test_end_seen_after_empty_write(self) -> None:
        proc = CLIProcess(kill_group)
        group_spawner(reactor)(proc, "/bin/sh", ["/bin/sh", "-c", "exec sleep 30"], dict(os.environ), os.getcwd())
        assert proc.pid is not None
        proc.write(b"")
        proc.write(b"")
        os.kill(proc.pid, 9)
        await wait_for(lambda: proc.is_ended, timeout=5)
        self.assertEqual(proc.exit_status, -9)
