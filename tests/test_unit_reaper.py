"""
L{claudeproxy.engine.reaper}: the record of CLI process groups in the state
directory, the start-up sweep (with identities injected, and with real
processes), and the watchdog (a real one).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from typing import Optional

from twisted.trial.unittest import SynchronousTestCase, TestCase

from claudeproxy.engine.reaper import ChildGuard, GroupRecord, Identity, identity, read_record, sweep
from tests.harness import live_pids, reactor, wait_for


class RecordTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-state-")

    def test_round_trip(self) -> None:
        record = GroupRecord(self.dir, 100, 5.0)
        record.add(200, 6.0)
        record.add(300, 7.0)
        record.remove(200)
        found = read_record(record.path)
        assert found is not None
        self.assertEqual((found.daemon_pid, found.daemon_started, dict(found.groups)), (100, 5.0, {300: 7.0}))

    def test_compacted(self) -> None:
        record = GroupRecord(self.dir, 100, 5.0)
        for pgid in range(1000, 2000):
            record.add(pgid, 1.0)
            record.remove(pgid)
        record.add(42, 2.0)
        with open(record.path) as f:
            self.assertLess(len(f.read().splitlines()), 300)
        found = read_record(record.path)
        assert found is not None
        self.assertEqual(dict(found.groups), {42: 2.0})

    def test_close_removes(self) -> None:
        record = GroupRecord(self.dir, 100, 5.0)
        record.close()
        self.assertEqual(os.listdir(self.dir), [])

    def test_not_a_record(self) -> None:
        path = os.path.join(self.dir, "cli-groups-1.log")
        with open(path, "w") as f:
            f.write("something else\n+5 1.0\n")
        self.assertIsNone(read_record(path))


class SweepTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cp-state-")
        self.procs: dict[int, Identity] = {}
        self.killed: list[int] = []

    def identify(self, pid: int) -> Optional[Identity]:
        return self.procs.get(pid)

    def sweep(self) -> list[int]:
        return sweep(self.dir, self.identify, self.killed.append)

    def record(self, daemon: int, groups: dict[int, float]) -> GroupRecord:
        record = GroupRecord(self.dir, daemon, 10.0)
        for pgid, started in groups.items():
            record.add(pgid, started)
        return record

    def test_dead_daemon_groups_killed(self) -> None:
        self.record(7, {70: 100.0, 71: 101.0})
        self.procs[70] = Identity(70, 100.0)
        # 71 is gone already
        self.assertEqual(self.sweep(), [70])
        self.assertEqual(self.killed, [70])
        self.assertEqual(os.listdir(self.dir), [])

    def test_reused_pid_left_alone(self) -> None:
        self.record(7, {70: 100.0, 71: 101.0})
        self.procs[70] = Identity(70, 500.0)  # started later: another process
        self.procs[71] = Identity(5, 101.0)  # not leading its own group
        self.assertEqual(self.sweep(), [])
        self.assertEqual(os.listdir(self.dir), [])

    def test_live_daemon_left_alone(self) -> None:
        self.record(7, {70: 100.0})
        self.procs[7] = Identity(7, 10.0)
        self.procs[70] = Identity(70, 100.0)
        self.assertEqual(self.sweep(), [])
        self.assertEqual(len(os.listdir(self.dir)), 1)

    def test_daemon_pid_reused(self) -> None:
        self.record(7, {70: 100.0})
        self.procs[7] = Identity(7, 999.0)
        self.procs[70] = Identity(70, 100.0)
        self.assertEqual(self.sweep(), [70])

    def test_no_directory(self) -> None:
        self.assertEqual(sweep(os.path.join(self.dir, "missing"), self.identify, self.killed.append), [])


def orphan() -> int:
    """
    A process in a session of its own, like a CLI the daemon started.
    """
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return child.pid


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


class RealSweepTests(SynchronousTestCase):
    def test_kills_recorded_group_verified_by_start_time(self) -> None:
        state = tempfile.mkdtemp(prefix="cp-state-")
        victim, bystander = orphan(), orphan()
        self.addCleanup(kill, victim)
        self.addCleanup(kill, bystander)
        found, other = identity(victim), identity(bystander)
        assert found is not None and other is not None
        self.assertEqual(found.pgid, victim)
        # a daemon that is gone (pid 0x7ffffff0 does not exist)
        record = GroupRecord(state, 0x7FFFFFF0, 1.0)
        record.add(victim, found.started)
        record.add(bystander, other.started - 60.0)  # the pid was reused since
        self.assertEqual(sweep(state), [victim])
        os.waitpid(victim, 0)
        self.assertEqual(live_pids([bystander]), [bystander])

    def test_own_record_left_alone(self) -> None:
        state = tempfile.mkdtemp(prefix="cp-state-")
        victim = orphan()
        self.addCleanup(kill, victim)
        me = identity(os.getpid())
        found = identity(victim)
        assert me is not None and found is not None
        GroupRecord(state, os.getpid(), me.started).add(victim, found.started)
        self.assertEqual(sweep(state), [])
        self.assertEqual(live_pids([victim]), [victim])


class WatchdogTests(TestCase):
    timeout = 30

    async def test_closing_the_pipe_kills_recorded_groups(self) -> None:
        guard = ChildGuard(reactor)
        guard.start()
        recorded, forgotten = orphan(), orphan()
        self.addCleanup(kill, recorded)
        self.addCleanup(kill, forgotten)
        guard.add(recorded)
        guard.add(forgotten)
        guard.remove(forgotten)
        await guard.stop()
        self.assertEqual(os.waitpid(recorded, 0)[1] & 0x7F, signal.SIGKILL)
        self.assertEqual(live_pids([forgotten]), [forgotten])

    async def test_watchdog_replaced_when_it_dies(self) -> None:
        guard = ChildGuard(reactor)
        guard.start()
        recorded = orphan()
        self.addCleanup(kill, recorded)
        guard.add(recorded)
        first = guard.watchdog_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: guard.starts == 2, timeout=5)
        self.assertNotEqual(guard.watchdog_pid, first)
        self.flushLoggedErrors()
        # the new watchdog knows the group
        await guard.stop()
        self.assertEqual(os.waitpid(recorded, 0)[1] & 0x7F, signal.SIGKILL)
