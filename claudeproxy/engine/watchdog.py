"""
The watchdog: a tiny process, one per daemon, that kills the daemon's CLI
process groups when the daemon is gone, however it ended.

Run as C{python -I -S watchdog.py} with its stdin the read end of a pipe
whose only write end the daemon holds.  The daemon writes C{+PGID} when it
starts a CLI and C{-PGID} once it has reaped it.  When the read end sees
end-of-file, the daemon has closed it: a clean stop, or its death by any
cause (the kernel closes a dead process's descriptors, SIGKILL and OOM
kills included).  The watchdog then sends SIGKILL to every group still
recorded (and to its leader, which may not have called setsid() yet) and
exits.

Standard library only, no imports from the package: it starts in a few
milliseconds and runs on without the daemon.  It ignores the signals a
terminal, a session end or a system shutdown sends, so that it outlives
the daemon long enough to act; it runs in its own session, so a service
manager that kills the daemon's process group does not take it along.
"""

from __future__ import annotations

import os
import signal
import sys


def kill_all(groups: set[int]) -> None:
    for pgid in groups:
        for kill, target in ((os.killpg, pgid), (os.kill, pgid)):
            try:
                kill(target, signal.SIGKILL)
            except OSError:
                pass


def main() -> int:
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE", "SIGQUIT"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    groups: set[int] = set()
    pending = b""
    while True:
        try:
            data = os.read(0, 65536)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                pgid = int(line[1:])
            except ValueError:
                continue
            if pgid <= 1:
                continue
            if line[:1] == b"+":
                groups.add(pgid)
            elif line[:1] == b"-":
                groups.discard(pgid)
    kill_all(groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
