"""
The daemon's child services, one job each; L{claudeproxy.service.build}
puts them in a tree.  A L{Sequence} starts its children in order and stops
them one after the other in the reverse order, so the order they are added
in is the shutdown order.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.utils import getProcessOutput
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Site

from .engine.pool import ProcessManager
from .engine.reaper import ChildGuard, GroupRecord, own_identity, sweep
from .engine.usageprobe import UsageChecker
from .store.db import StateDB
from .store.usage import PRUNE_INTERVAL, UsageLog
from .web.mcp import McpServer
from .web.serving import Serving

log = Logger()


class Sequence(MultiService):
    """
    Children start in the order they were added and stop in the reverse
    order, each once the one after it has stopped (a failure is logged and
    the next stops anyway).
    """

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        done: Deferred[Any] = succeed(None)
        for child in reversed(list(self)):
            done.addCallback(_stop, child)
            done.addErrback(_logged)
        return done


def _stop(_: object, service: IService) -> Deferred[Any]:
    return maybeDeferred(service.stopService)


def _logged(f: Failure) -> None:
    log.failure("stopping a service", f)


class WithinGrace(MultiService):
    """
    Children stop all at once; stopping is over when they all have, or
    C{grace} seconds have passed.
    """

    def __init__(self, reactor: Any, grace: float) -> None:
        super().__init__()
        self.reactor = reactor
        self.grace = grace

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        stopping = [maybeDeferred(child.stopService) for child in reversed(list(self))]
        done: Deferred[None] = Deferred()

        def grace_over() -> None:
            log.warn("CLI processes did not end within {grace}s of shutdown", grace=self.grace)
            done.callback(None)

        call = self.reactor.callLater(self.grace, grace_over)

        def finished(_: Any) -> None:
            if call.active():
                call.cancel()
            if not done.called:
                done.callback(None)

        DeferredList(stopping, consumeErrors=True).addBoth(finished)
        return done


class ChildReaper(Service):
    """
    At start, kills the CLI process groups an earlier daemon left (from its
    records in C{state_dir}), then keeps this daemon's record and runs the
    watchdog (C{guard}); at stop, the watchdog kills whatever was not reaped.
    """

    def __init__(self, guard: Optional[ChildGuard], state_dir: str) -> None:
        self.guard = guard
        self.state_dir = state_dir
        #: the groups an earlier daemon left, killed at start
        self.swept: list[int] = []

    def startService(self) -> None:
        super().startService()
        if self.state_dir:
            try:
                self.swept = sweep(self.state_dir)
                if self.swept:
                    log.warn(
                        "killed {n} CLI process group(s) an earlier daemon left: {groups}",
                        n=len(self.swept),
                        groups=self.swept,
                    )
                if self.guard is not None:
                    self.guard.record = GroupRecord(self.state_dir, os.getpid(), own_identity())
            except OSError as e:
                log.warn("cannot keep a record in {dir}: {e}", dir=self.state_dir, e=e)
        if self.guard is not None:
            self.guard.start()

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        return self.guard.stop() if self.guard is not None else None


class StateService(Service):
    """
    The state database: open while the daemon runs; its queued writes
    finish at stop.
    """

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def startService(self) -> None:
        super().startService()
        self.state.start()

    def stopService(self) -> None:
        super().stopService()
        self.state.stop()


def usage_pruner(usage: UsageLog, reactor: Any, interval: float = PRUNE_INTERVAL) -> TimerService:
    """
    Prunes the usage history at start and every C{interval} seconds.
    """
    pruner = TimerService(interval, usage.prune)
    pruner.clock = reactor
    return pruner


def remove_workdir(workdir: str) -> None:
    """
    Remove the daemon's private directory: the system prompt files it wrote
    and the directory itself, if nothing else is in it.
    """
    try:
        for name in os.listdir(workdir):
            if name.startswith("system-") and name.endswith(".txt"):
                os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    except OSError:
        pass


class Workdir(Service):
    """
    The CLI's private directory.  With C{enter}, the daemon moves into it at
    start (so CLI processes, which run there, can be started with
    posix_spawn instead of a fork) and back at stop; at stop it is removed.
    """

    def __init__(self, workdir: str, enter: bool) -> None:
        self.workdir = workdir
        self.enter = enter
        self._left: Optional[str] = None

    def startService(self) -> None:
        super().startService()
        if self.enter:
            self._left = os.getcwd()
            os.chdir(self.workdir)

    def stopService(self) -> None:
        super().stopService()
        if self._left is not None:
            # back where twistd started us (it removes its pid file by a
            # relative path once we are done)
            os.chdir(self._left)
            self._left = None
        remove_workdir(self.workdir)


class McpPort(StreamServerEndpointService):
    """
    The MCP endpoint CLI processes call their client's tools through, on a
    free loopback port; C{mcp.port} is set once it listens.
    """

    def __init__(self, reactor: Any, mcp: McpServer) -> None:
        site = Site(mcp.resource())
        site.noisy = False
        super().__init__(serverFromString(reactor, "tcp:0:interface=127.0.0.1"), site)
        # a port that cannot be had stops the start
        self._raiseSynchronously = True
        self.mcp = mcp

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        assert self._waitingForPort is not None
        self._waitingForPort.addCallback(self._listening)

    def _listening(self, port: Any) -> Any:
        self.mcp.port = port.getHost().port
        return port


class Engine(Service):
    """
    The CLI processes and the requests they serve.  At stop the running
    requests end with an error, every CLI group is killed, and the
    background checks finish; fires once all are done.
    """

    def __init__(self, proxy: Serving, manager: ProcessManager) -> None:
        self.proxy = proxy
        self.manager = manager

    def startService(self) -> None:
        super().startService()
        self.manager.start()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        self.proxy.shutdown()
        reaped: Deferred[Any] = self.manager.shutdown()
        # a login check still running finishes first (~1 s)
        return DeferredList([reaped, *self.proxy.background], consumeErrors=True)


class UsageCheck(Service):
    """
    Asks the CLI for the subscription's usage while idle; at stop the check
    still running is killed.
    """

    def __init__(self, checker: UsageChecker) -> None:
        self.checker = checker

    def startService(self) -> None:
        super().startService()
        self.checker.start()

    def stopService(self) -> Optional[Deferred[Any]]:
        super().stopService()
        return self.checker.stop()


class CliVersion(Service):
    """
    The owner of the CLI's version: C{claude --version} is asked at start,
    and C{version} is what it printed (None until then, or when it cannot
    be read).  C{known} is told once it is read.
    """

    def __init__(
        self,
        reactor: Any,
        claude: Optional[str],
        env: Mapping[str, str],
        workdir: str,
        known: Callable[[Optional[str]], None],
    ) -> None:
        self.reactor = reactor
        self.claude = claude
        self.env = env
        self.workdir = workdir
        self.known = known
        self.version: Optional[str] = None
        self._asking: Optional[Deferred[None]] = None

    def startService(self) -> None:
        super().startService()
        claude = self.claude
        if claude is None or not os.access(claude, os.X_OK):
            return
        # a CLI that cannot be started must not stop the daemon: /health
        # and the 503s say why
        d = maybeDeferred(
            getProcessOutput,
            claude,
            ["--version"],
            env=dict(self.env),
            path=self.workdir,
            reactor=self.reactor,
            errortoo=True,
        )

        def got(out: bytes) -> None:
            self.read(out.decode("utf-8", "replace"))

        def failed(f: Failure) -> None:
            self.version = None
            log.warn("could not read the CLI version: {f}", f=f.getErrorMessage())

        self._asking = d.addCallbacks(got, failed)

    def read(self, text: str) -> None:
        """
        C{claude --version} printed C{text}.
        """
        self.version = text.strip() or None
        self.known(self.version)

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        # the question still asked is answered first
        asking = self._asking
        return asking if asking is not None and not asking.called else None
