"""
Nothing the daemon starts outlives it.

Every CLI runs in its own session and process group (L{process}), so it
does not die with the daemon by itself: a CLI in the middle of a turn,
orphaned by a SIGKILL, an OOM kill or a crash of the daemon, finishes the
whole upstream turn and spends the subscription on an answer nobody reads.
Two things make sure it is ended:

 - L{ChildGuard}: a watchdog process per daemon (L{watchdog}), tied to it by
   a pipe whose only write end the daemon holds.  The daemon records each
   CLI's process group on that pipe as it starts and reaps it; when the
   daemon is gone, however it ended, the kernel closes the pipe, the
   watchdog reads end-of-file and kills every group still recorded, within
   milliseconds.  This needs nothing from the dying daemon.  The
   alternative, C{prctl(PR_SET_PDEATHSIG)}, exists on Linux only (not on
   macOS), must be set in the child between fork and exec (posix_spawn,
   which the daemon uses to start CLIs cheaply, has no hook for it), and
   fires when the parent I{thread} ends rather than the process.  A
   watchdog works the same on both systems and with posix_spawn.

 - L{GroupRecord} and L{sweep}: a record in the daemon's state directory of
   the groups it started, each with its leader's start time.  A daemon
   starting up kills the groups an earlier daemon left (its watchdog was
   killed too, or the machine's process table was in trouble), found from
   that record, never by process name, and only if the process leading the
   group still started when the record says: a pid reused since is left
   alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from .process import Killer, Spawner, _GroupProcess, kill_group

WATCHDOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "watchdog.py")

# -- which process is which ----------------------------------------------------


@attrs.frozen
class Identity:
    """
    What makes a running process the one a record describes: its process
    group and when it started (seconds; on Linux since boot, from
    C{/proc}, exact to a clock tick; on macOS the wall clock, from C{ps -o
    lstart}, to the second).
    """

    pgid: int
    started: float


#: how far a process's start may be from the recorded one and still be it
START_TOLERANCE = 0.05 if sys.platform.startswith("linux") else 2.0


def _linux_identity(pid: int) -> Optional[Identity]:
    try:
        with open("/proc/%d/stat" % (pid,), "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    return Identity(int(fields[2]), int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def _ps_identity(pid: int) -> Optional[Identity]:
    try:
        out = subprocess.run(
            ["ps", "-o", "pgid=,stat=,lstart=", "-p", str(pid)],
            capture_output=True,
            env=dict(os.environ, LC_ALL="C"),
            timeout=5,
        ).stdout.decode("ascii", "replace")
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.split(None, 2)
    if len(parts) < 3 or parts[1].startswith("Z"):
        return None
    try:
        started = time.mktime(time.strptime(parts[2].strip(), "%a %b %d %H:%M:%S %Y"))
        return Identity(int(parts[0]), started)
    except ValueError:
        return None


def identity(pid: int) -> Optional[Identity]:
    """
    The L{Identity} of the live process C{pid}, or None when there is none
    (zombies count as gone).
    """
    if pid <= 1:
        return None
    if sys.platform.startswith("linux"):
        return _linux_identity(pid)
    return _ps_identity(pid)


def spawn_stamp(pid: int) -> float:
    """
    The start time to record for a process just started: read from C{/proc}
    on Linux (cheap, exact); elsewhere the wall clock now (reading C{ps}
    would cost a process start on every spawn).
    """
    if sys.platform.startswith("linux"):
        found = _linux_identity(pid)
        if found is not None:
            return found.started
    return time.time()


# -- the record in the state directory -------------------------------------------

RECORD_PREFIX = "cli-groups-"
RECORD_MAGIC = "claudeproxy-cli-groups 1"


class GroupRecord:
    """
    An append-only file, C{cli-groups-PID.log} in the state directory: a
    header naming the daemon (pid and start), then C{+PGID START} for each
    CLI group started and C{-PGID} for each reaped.  Written with plain
    unbuffered writes, so it is on disk the moment the spawn returns.
    Rewritten whole now and then, so it stays small.
    """

    def __init__(self, directory: str, pid: int, started: float) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "%s%d.log" % (RECORD_PREFIX, pid))
        self.header = "%s %d %.3f\n" % (RECORD_MAGIC, pid, started)
        self.groups: dict[int, float] = {}
        self._lines = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._fd = self._write_whole()

    def _write_whole(self) -> int:
        text = self.header + "".join("+%d %.3f\n" % (g, s) for g, s in self.groups.items())
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.write(fd, text.encode())
        os.replace(tmp, self.path)
        self._lines = len(self.groups)
        return fd

    def _append(self, line: str) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, line.encode())
        except OSError:
            return
        self._lines += 1
        if self._lines > 4 * len(self.groups) + 256:
            old, self._fd = self._fd, -1
            os.close(old)
            try:
                self._fd = self._write_whole()
            except OSError:
                pass

    def add(self, pgid: int, started: float) -> None:
        self.groups[pgid] = started
        self._append("+%d %.3f\n" % (pgid, started))

    def remove(self, pgid: int) -> None:
        if self.groups.pop(pgid, None) is not None:
            self._append("-%d\n" % (pgid,))

    def close(self) -> None:
        """
        The daemon stopped with every group reaped: the record goes.
        """
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            os.unlink(self.path)
        except OSError:
            pass


@attrs.frozen
class Leftover:
    """
    What a record file says an earlier daemon left running.
    """

    path: str
    daemon_pid: int
    daemon_started: float
    groups: Mapping[int, float]


def read_record(path: str) -> Optional[Leftover]:
    """
    The record at C{path}, or None if it is not one.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    head = lines[0].rsplit(" ", 2) if lines else []
    if len(head) != 3 or head[0] != RECORD_MAGIC:
        return None
    try:
        daemon_pid, daemon_started = int(head[1]), float(head[2])
    except ValueError:
        return None
    groups: dict[int, float] = {}
    for line in lines[1:]:
        try:
            if line.startswith("+"):
                pgid, started = line[1:].split()
                groups[int(pgid)] = float(started)
            elif line.startswith("-"):
                groups.pop(int(line[1:]), None)
        except ValueError:
            continue
    return Leftover(path, daemon_pid, daemon_started, groups)


def sweep(
    directory: str,
    identify: Callable[[int], Optional[Identity]] = identity,
    killer: Killer = kill_group,
) -> list[int]:
    """
    Kill the CLI process groups that earlier daemons recorded in
    C{directory} and left running; the groups killed.  A record whose
    daemon still runs (its pid alive and started when recorded: another
    daemon, or this very process) is left alone; so is a group whose
    leader is not the process recorded (the pid was reused since).
    Records of daemons that are gone are removed.
    """
    killed: list[int] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return killed
    for name in names:
        if not (name.startswith(RECORD_PREFIX) and name.endswith(".log")):
            continue
        record = read_record(os.path.join(directory, name))
        if record is None:
            continue
        daemon = identify(record.daemon_pid)
        if daemon is not None and abs(daemon.started - record.daemon_started) <= START_TOLERANCE:
            continue
        for pgid, started in record.groups.items():
            found = identify(pgid)
            if found is not None and found.pgid == pgid and abs(found.started - started) <= START_TOLERANCE:
                killer(pgid)
                killed.append(pgid)
        try:
            os.unlink(record.path)
        except OSError:
            pass
    return killed


# -- the watchdog ------------------------------------------------------------------


class _WatchdogProtocol(ProcessProtocol):
    log = Logger()

    def __init__(self, guard: ChildGuard) -> None:
        self.guard = guard
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.log.warn("CLI watchdog: {out}", out=data.decode("utf-8", "replace").rstrip())

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.guard._watchdog_ended(self, reason)


class ChildGuard:
    """
    Keeps the record of the daemon's CLI process groups: on the watchdog's
    pipe and, given a L{GroupRecord}, in the state directory.  L{wrap} a
    spawner to have every process it starts recorded until it is reaped.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        python: str = sys.executable,
        record: Optional[GroupRecord] = None,
        stamp: Callable[[int], float] = spawn_stamp,
    ) -> None:
        self.reactor = reactor
        self.python = python
        self.record = record
        self.stamp = stamp
        self.groups: set[int] = set()
        self.watchdog_pid: Optional[int] = None
        #: the watchdog's process transport while it runs
        self.transport: Any = None
        self._fd = -1
        self._proto: Optional[_WatchdogProtocol] = None
        self._stopping = False
        #: how many watchdogs were started (more than one: one died)
        self.starts = 0

    # -- the watchdog --------------------------------------------------------------

    def start(self) -> None:
        """
        Start the watchdog and tell it the groups already recorded.
        """
        self._stopping = False
        read, write = os.pipe()
        proto = _WatchdogProtocol(self)
        try:
            process = _GroupProcess(
                self.reactor,
                self.python,
                [self.python, "-I", "-S", WATCHDOG],
                {"PATH": os.environ.get("PATH", os.defpath)},
                os.getcwd(),
                proto,
                childFDs={0: read, 1: "r", 2: "r"},
            )
        except OSError as e:
            os.close(read)
            os.close(write)
            self.log.error("could not start the CLI watchdog: {e}", e=e)
            return
        finally:
            try:
                os.close(read)
            except OSError:
                pass
        self._fd, self._proto = write, proto
        self.watchdog_pid = process.pid
        self.transport = process
        self.starts += 1
        for pgid in self.groups:
            self._tell(b"+%d\n" % (pgid,))

    def _tell(self, line: bytes) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, line)
        except OSError as e:
            self.log.warn("could not write to the CLI watchdog: {e}", e=e)

    def _watchdog_ended(self, proto: _WatchdogProtocol, reason: Failure) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self.transport = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self._stopping:
            self.log.warn(
                "the CLI watchdog ({pid}) ended unexpectedly ({why}); starting another",
                pid=self.watchdog_pid,
                why=reason.getErrorMessage(),
            )
            self.start()

    def stop(self) -> Deferred[None]:
        """
        Close the pipe (the watchdog kills any group still recorded, then
        exits) and remove the record; fires when the watchdog has exited.
        """
        self._stopping = True
        proto = self._proto
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.record is not None:
            self.record.close()
        if proto is None or proto.ended.called:
            return succeed(None)
        return proto.ended

    # -- the groups ----------------------------------------------------------------

    def add(self, pgid: int) -> None:
        self.groups.add(pgid)
        self._tell(b"+%d\n" % (pgid,))
        if self.record is not None:
            self.record.add(pgid, self.stamp(pgid))

    def remove(self, pgid: int) -> None:
        self.groups.discard(pgid)
        self._tell(b"-%d\n" % (pgid,))
        if self.record is not None:
            self.record.remove(pgid)

    def wrap(self, spawner: Spawner) -> Spawner:
        """
        C{spawner}, with each process it starts recorded from its spawn
        until its protocol's C{ended} fires (a L{process.CLIProcess}: the
        process was reaped and its group killed).
        """

        def spawn(
            protocol: ProcessProtocol,
            executable: str,
            args: Sequence[str],
            env: Mapping[str, str],
            path: str,
        ) -> Any:
            result = spawner(protocol, executable, args, env, path)
            pid = getattr(result, "pid", None)
            if isinstance(pid, int) and pid > 1:
                self.add(pid)
                ended = getattr(protocol, "ended", None)
                if isinstance(ended, Deferred):

                    def gone(value: Any) -> Any:
                        self.remove(pid)
                        return value

                    ended.addBoth(gone)
            return result

        return spawn


def own_identity() -> float:
    """
    This process's start, as recorded in a record's header.
    """
    found = identity(os.getpid())
    return found.started if found is not None else time.time()
