"""
Nothing outlives the daemon: a real twistd daemon with the real CLI against
the fake upstream, SIGKILLed mid-stream (its watchdog kills every CLI it
started, and the upstream stream is cut before its end), and a daemon
started next to CLI processes that a killed daemon left (it finds them from
the record in its state directory and kills them).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time

from twisted.internet.interfaces import ITCPTransport
from twisted.trial.unittest import TestCase

from claudeproxy.engine.reaper import RECORD_PREFIX
from tests.fakeanthropic import FakeAnthropic, Reply
from tests.fakes import tcp_port
from tests.harness import (
    ROOT,
    Twistd,
    children_of,
    cli_env,
    cli_path,
    cmdline,
    live_pids,
    raw_post,
    reactor,
    sleep,
    start_twistd,
    wait_for,
)
from tests.test_integration_lifecycle import HI, first_token, group_gone

TAC = os.path.join(ROOT, "tests", "claudeproxy_test.tac")
#: 200 chunks 0.1 s apart: about 20 s of streaming
SLOW = Reply(text="".join("word%03d " % i for i in range(200)), chunk=8, delay=0.1)


def is_watchdog(pid: int) -> bool:
    return "watchdog.py" in cmdline(pid)


def is_cli(pid: int) -> bool:
    """
    A CLI process serving requests (not the daemon's short C{claude
    --version} probe at start, nor the watchdog).
    """
    return "--input-format stream-json" in cmdline(pid)


class OrphanTests(TestCase):
    timeout = 120

    async def _daemon(self, fake: FakeAnthropic, state: str, warm: int = 1) -> Twistd:
        env = cli_env(fake_url(fake), tempfile.mkdtemp(prefix="cp-home-"))
        env.update(
            CLAUDEPROXY_TAC_LISTEN="tcp:{port}:interface=127.0.0.1",
            CLAUDEPROXY_TAC_CLI=cli_path(),
            CLAUDEPROXY_TAC_WARM=str(warm),
            CLAUDEPROXY_TAC_STATE=state,
        )
        return await start_twistd(self, env, ["-y", TAC])

    def _fake(self) -> FakeAnthropic:
        fake = FakeAnthropic(reactor)
        fake.listen()
        # last of all: the connections of the CLIs killed at the end close
        self.addCleanup(sleep, 0.5)
        self.addCleanup(fake.stop)
        fake.default = SLOW
        return fake

    def _kill_at_end(self, pids: list[int]) -> None:
        def kill() -> None:
            for pid in pids:
                for kill, target in ((os.killpg, pid), (os.kill, pid)):
                    try:
                        kill(target, signal.SIGKILL)
                    except OSError:
                        pass

        self.addCleanup(kill)

    async def test_sigkill_mid_stream_kills_every_cli(self) -> None:
        fake = self._fake()
        state = tempfile.mkdtemp(prefix="cp-state-")
        daemon = await self._daemon(fake, state)
        client = await raw_post(daemon.port, "/v1/chat/completions", dict(HI, stream=True))
        self.addCleanup(lambda: ITCPTransport(client.transport).abortConnection() if client.connected else None)
        await first_token(client)
        children = children_of(daemon.pid)
        self._kill_at_end(children)
        clis = [p for p in children if is_cli(p)]
        watchdogs = [p for p in children if is_watchdog(p)]
        # the CLI serving the stream (and maybe a warm one)
        self.assertTrue(clis, [cmdline(p) for p in children])
        self.assertEqual(len(watchdogs), 1)
        self.assertEqual(fake.lost, [])
        killed_at = time.monotonic()
        daemon.transport.signalProcess("KILL")
        await wait_for(lambda: all(group_gone([p]) for p in clis), timeout=1.0, interval=0.01)
        took = time.monotonic() - killed_at
        self.assertLess(took, 1.0)
        # the upstream stream was cut before its end
        await wait_for(lambda: fake.lost == [1], timeout=1.0, interval=0.01)
        self.assertEqual(len(fake.message_requests), 1)
        # and the watchdog is gone too
        await wait_for(lambda: not live_pids(watchdogs), timeout=1.0, interval=0.01)
        await daemon.proto.ended

    async def test_next_daemon_kills_what_a_killed_one_left(self) -> None:
        fake = self._fake()
        state = tempfile.mkdtemp(prefix="cp-state-")
        first = await self._daemon(fake, state)
        client = await raw_post(first.port, "/v1/chat/completions", dict(HI, stream=True))
        self.addCleanup(lambda: ITCPTransport(client.transport).abortConnection() if client.connected else None)
        await first_token(client)
        # the daemon and its watchdog both die (the daemon frozen first, so
        # that it cannot start another watchdog, nor another CLI: a warm
        # replacement starts at the first token): the CLIs are orphans
        first.transport.signalProcess("STOP")
        await sleep(0.2)
        children = children_of(first.pid)
        self._kill_at_end(children)
        clis = [p for p in children if is_cli(p)]
        (watchdog,) = [p for p in children if is_watchdog(p)]
        self.assertTrue(clis, [cmdline(p) for p in children])
        records = [n for n in os.listdir(state) if n.startswith(RECORD_PREFIX)]
        self.assertEqual(records, ["%s%d.log" % (RECORD_PREFIX, first.pid)])
        os.kill(watchdog, signal.SIGKILL)
        await wait_for(lambda: not live_pids([watchdog]), timeout=5)
        first.transport.signalProcess("KILL")
        await first.proto.ended
        await sleep(0.5)
        # the idle warm CLI ends by itself (its stdin closed); the one in
        # the middle of a turn goes on
        survivors = live_pids(clis)
        self.assertTrue(survivors, "the serving CLI should have outlived the killed daemon")
        self.assertEqual(fake.lost, [])
        # a new daemon on the same state directory ends them as it starts
        second = await self._daemon(fake, state, warm=0)
        # (a process SIGKILLed takes a moment to be gone)
        await wait_for(lambda: all(group_gone([p]) for p in clis), timeout=1.0, interval=0.01)
        await wait_for(lambda: fake.lost == [1], timeout=2.0, interval=0.01)
        found = re.search(r"CLI process group\(s\) an earlier daemon left: \[([0-9, ]+)\]", second.output())
        assert found is not None, second.output()
        killed = [int(p) for p in found.group(1).split(",")]
        # the serving CLI at least (the warm one may have ended by itself)
        self.assertTrue(set(killed) <= set(clis) and killed, (killed, clis))
        self.assertEqual(
            [n for n in os.listdir(state) if n.startswith(RECORD_PREFIX)], ["%s%d.log" % (RECORD_PREFIX, second.pid)]
        )
        second.transport.signalProcess("TERM")
        await second.proto.ended
        # a clean stop leaves no record
        self.assertEqual([n for n in os.listdir(state) if n.startswith(RECORD_PREFIX)], [])


def fake_url(fake: FakeAnthropic) -> str:
    assert fake.port is not None
    return "http://127.0.0.1:%d" % (tcp_port(fake.port),)
