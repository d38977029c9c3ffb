"""
Unit tests for L{claudeproxy.services}: the daemon's tree of services, and
the order its parts start and stop in.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.config import Config
from claudeproxy.engine.warm import start_slots
from claudeproxy.service import build
from claudeproxy.services import (
    ChildReaper,
    CliVersion,
    Engine,
    McpPort,
    Sequence,
    StateService,
    WithinGrace,
    Workdir,
)


class Recorded(Service):
    """
    A service that notes its start and stop in C{log}; its stop fires when
    the test says (C{stopping}), or at once.
    """

    def __init__(self, name: str, log: list[str], slow: bool = False) -> None:
        self.name = name
        self.log = log
        self.slow = slow
        self.stopping: Optional[Deferred[None]] = None

    def startService(self) -> None:
        super().startService()
        self.log.append("start %s" % (self.name,))

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        self.log.append("stop %s" % (self.name,))
        if not self.slow:
            return None
        self.stopping = Deferred()
        return self.stopping


class SequenceTests(SynchronousTestCase):
    def test_reverse_order_each_after_the_next(self) -> None:
        """
        Children start in the order added and stop in the reverse order,
        each once the one added after it has stopped.
        """
        log: list[str] = []
        top = Sequence()
        first, second, third = Recorded("a", log), Recorded("b", log, slow=True), Recorded("c", log)
        for child in (first, second, third):
            child.setServiceParent(top)
        top.startService()
        self.assertEqual(log, ["start a", "start b", "start c"])
        stopped = top.stopService()
        # b has not stopped yet: a waits
        self.assertEqual(log[3:], ["stop c", "stop b"])
        self.assertNoResult(stopped)
        assert second.stopping is not None
        second.stopping.callback(None)
        self.assertEqual(log[5:], ["stop a"])
        self.successResultOf(stopped)

    def test_a_failed_stop_does_not_stop_the_rest(self) -> None:
        log: list[str] = []
        top = Sequence()
        Recorded("a", log).setServiceParent(top)
        failing = Recorded("b", log, slow=True)
        failing.setServiceParent(top)
        top.startService()
        stopped = top.stopService()
        assert failing.stopping is not None
        failing.stopping.errback(RuntimeError("boom"))
        self.successResultOf(stopped)
        self.assertEqual(log[2:], ["stop b", "stop a"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class WithinGraceTests(SynchronousTestCase):
    def test_all_at_once(self) -> None:
        log: list[str] = []
        clock = Clock()
        group = WithinGrace(clock, 3.0)
        slow = Recorded("a", log, slow=True)
        slow.setServiceParent(group)
        Recorded("b", log).setServiceParent(group)
        group.startService()
        stopped = group.stopService()
        self.assertEqual(log[2:], ["stop b", "stop a"])
        self.assertNoResult(stopped)
        assert slow.stopping is not None
        slow.stopping.callback(None)
        self.successResultOf(stopped)
        # the grace timer is gone
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_grace_over(self) -> None:
        clock = Clock()
        group = WithinGrace(clock, 3.0)
        Recorded("a", [], slow=True).setServiceParent(group)
        group.startService()
        stopped = group.stopService()
        clock.advance(2.9)
        self.assertNoResult(stopped)
        clock.advance(0.1)
        self.successResultOf(stopped)


class TreeTests(SynchronousTestCase):
    def build(self, **config: Any) -> Any:
        workdir = tempfile.mkdtemp(prefix="cp-services-")

        def remove() -> None:
            if os.path.isdir(workdir):
                os.rmdir(workdir)

        self.addCleanup(remove)
        return build(MemoryReactorClock(), Config(workdir=workdir, **config), {"PATH": "/nonexistent"})

    def test_shape(self) -> None:
        """
        The core starts the reaper first and the work last, so it stops the
        work (requests, CLI processes) first and the watchdog last; the
        listening port stops before the core.
        """
        state_dir = self.mktemp()
        daemon = self.build(state_dir=state_dir, usage_retention=1.0)
        self.addCleanup(lambda: daemon.proxy.state and daemon.proxy.state.stop())
        core, port = list(daemon.top)
        self.assertIs(core, daemon.core)
        self.assertIsInstance(port, StreamServerEndpointService)
        kinds = [type(child) for child in core]
        self.assertEqual(kinds, [ChildReaper, StateService, TimerService, Workdir, McpPort, WithinGrace])
        work = list(core)[-1]
        self.assertEqual([type(child) for child in work], [Engine, CliVersion])
        self.assertIs(list(work)[-1], daemon.cli)

    def test_start_and_stop(self) -> None:
        """
        The MCP port listens before the engine starts, and is closed, and
        the workdir removed, once the core has stopped.
        """
        daemon = self.build(watchdog=False)
        reactor = daemon.proxy.reactor
        daemon.core.startService()
        self.assertEqual(len(reactor.tcpServers), 1)
        self.successResultOf(daemon.core.stopService())
        self.assertFalse(os.path.exists(daemon.manager.workdir))
        self.assertFalse(daemon.core.running)

    def test_starts_at_once(self) -> None:
        """
        --max-starting bounds the warm processes starting at once; 0 (the
        default) is one a core.
        """
        self.assertEqual(self.build(max_starting=3).manager.max_starting, 3)
        self.assertEqual(self.build().manager.max_starting, start_slots())
        self.assertEqual(start_slots(2), 2)
        self.assertEqual(start_slots(10), 10)
        self.assertEqual(start_slots(0), 1)

    def test_the_version_has_one_owner(self) -> None:
        """
        What C{claude --version} printed is read from the probe by
        C{/health}'s source and told to the engine (session files carry it).
        """
        daemon = self.build(watchdog=False)
        self.assertIsNone(daemon.proxy.cli_version())
        daemon.cli.read("2.1.332 (Claude Code)\n")
        self.assertEqual(daemon.proxy.cli_version(), "2.1.332 (Claude Code)")
        self.assertEqual(daemon.manager.cli_version, "2.1.332")
