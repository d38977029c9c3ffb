"""
Lifecycle with the real CLI: a client going away, a client reading slowly
(backpressure down to the CLI's stdout), and the daemon being stopped, in
process and as a twistd process receiving SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import FakeAnthropic, Reply
from tests.harness import (
    ROOT,
    RawClient,
    children_of,
    cli_env,
    cli_path,
    group_members,
    live_pids,
    parse_sse,
    raw_post,
    reactor,
    sleep,
    start_twistd,
    streamed_text,
    wait_for,
)
from tests.harness import start_settled as start

TAC = os.path.join(ROOT, "tests", "claudeproxy_test.tac")
HI = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}
SLOW = Reply(text="".join("word%03d " % i for i in range(200)), chunk=8, delay=0.1)


def complete_items(body: bytes) -> list[Any]:
    """
    The SSE data items of the complete frames received so far.
    """
    frames = body.split(b"\n\n")[:-1]
    return parse_sse(b"".join(f + b"\n\n" for f in frames))


def group_gone(pids: list[int]) -> bool:
    return not live_pids(pids) and not any(group_members(pid) for pid in pids)


async def first_token(client: RawClient, timeout: float = 15.0) -> None:
    await wait_for(lambda: streamed_text(complete_items(client.body)) != "" or not client.connected, timeout)
    if not client.connected:
        raise AssertionError("the stream ended before a token: %r" % (bytes(client.data[:2000]),))


class DisconnectTests(TestCase):
    timeout = 60

    async def _disconnect_mid_stream(self) -> None:
        d = await start(self)
        d.fake.default = SLOW
        client = await raw_post(d.port.getHost().port, "/v1/chat/completions", dict(HI, stream=True))
        await first_token(client)
        self.assertEqual(client.status, 200)
        (pid,) = d.spawned
        self.assertIn(pid, group_members(pid))
        assert client.transport is not None
        gone_at = time.monotonic()
        client.transport.loseConnection()
        await wait_for(lambda: group_gone([pid]), timeout=2.0, interval=0.01)
        self.assertLess(time.monotonic() - gone_at, 1.0)
        # the request is over in the daemon, and the upstream call was dropped
        await wait_for(lambda: not d.proxy.runs and d.proxy.limiter.running == 0, timeout=1)
        await wait_for(lambda: d.fake.lost == [1], timeout=2)
        self.assertEqual(len(d.fake.message_requests), 1)
        # the daemon goes on serving
        d.fake.default = Reply(text="still here")
        code, body = await d.chat(HI)
        self.assertEqual((code, body["choices"][0]["message"]["content"]), (200, "still here"))

    async def test_disconnect_mid_stream_kills_cli_group(self) -> None:
        await self._disconnect_mid_stream()
        # and nothing is logged as an error (e.g. twisted.web's "Producer was
        # not unregistered" when the turn stays the request's producer)
        self.assertEqual([e.getErrorMessage() for e in self.flushLoggedErrors()], [])

    async def test_disconnect_non_stream_kills_cli_group(self) -> None:
        d = await start(self)
        d.fake.default = SLOW
        client = await raw_post(d.port.getHost().port, "/v1/chat/completions", HI)
        await wait_for(lambda: len(d.fake.message_requests) == 1, timeout=15)
        await sleep(0.3)
        (pid,) = d.spawned
        self.assertIn(pid, group_members(pid))
        assert client.transport is not None
        gone_at = time.monotonic()
        client.transport.loseConnection()
        await wait_for(lambda: group_gone([pid]), timeout=2.0, interval=0.01)
        self.assertLess(time.monotonic() - gone_at, 1.0)
        await wait_for(lambda: not d.proxy.runs and d.proxy.limiter.running == 0, timeout=1)
        await wait_for(lambda: d.fake.lost == [1], timeout=2)
        self.assertEqual(client.data, b"")


class BackpressureTests(TestCase):
    timeout = 120

    async def test_slow_reader_pauses_cli_stdout(self) -> None:
        d = await start(self)
        line = "%07d the quick brown fox jumps over the lazy dog\n"
        text = "".join(line % i for i in range(8 * 1024 * 1024 // len(line % 0) + 1))[: 8 * 1024 * 1024]
        d.fake.default = Reply(text=text, chunk=16 * 1024)
        client = await raw_post(d.port.getHost().port, "/v1/chat/completions", dict(HI, stream=True))
        IPushProducer(client.transport).pauseProducing()
        # the socket fills, the daemon pauses the turn and stops reading the CLI
        await wait_for(lambda: len(d.proxy.runs) == 1, timeout=15)
        (run,) = d.proxy.runs
        # the kernel's socket buffers grow for a while (the daemon resumes and
        # pauses again); wait until it stays paused, then nothing more is read
        await wait_for(lambda: run.paused, timeout=30)
        read, deadline = -1, time.monotonic() + 30
        while read != run.state.text_length or not run.paused:
            self.assertLess(time.monotonic(), deadline, "the daemon never stayed paused")
            read = run.state.text_length
            await sleep(0.5)
        proc = run.proc
        self.assertTrue(proc._paused)
        self.assertNotIn(proc.transport.pipes[1], reactor.getReaders())
        self.assertGreater(read, 0)
        self.assertLess(read, len(text), "the daemon read the whole reply although its client read nothing")
        self.assertFalse(run.ended)
        # the client reads again: every byte arrives, in order, then [DONE]
        IPushProducer(client.transport).resumeProducing()
        raw = await client.closed
        self.assertEqual(client.status, 200)
        items = parse_sse(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(items[-1], "[DONE]")
        got = streamed_text(items)
        self.assertEqual(len(got), len(text))
        self.assertTrue(got == text, "the streamed text differs from what upstream sent")
        self.assertEqual(len(d.fake.message_requests), 1)


class ShutdownTests(TestCase):
    timeout = 60

    async def test_stop_service_ends_streams_and_queue(self) -> None:
        d = await start(self, max_concurrent=1, max_queued=1)
        d.fake.default = SLOW
        port = d.port.getHost().port
        streaming = await raw_post(port, "/v1/chat/completions", dict(HI, stream=True))
        await first_token(streaming)
        queued = await raw_post(port, "/v1/chat/completions", HI)
        await wait_for(lambda: d.proxy.limiter.queued == 1, timeout=5)
        pids = list(d.spawned)
        await d.daemon.core.stopService()
        self.assertTrue(group_gone(pids))
        raw = await streaming.closed
        items = parse_sse(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(items[-1], "[DONE]")
        self.assertEqual(items[-2]["error"]["code"], "shutting_down")
        self.assertTrue(streamed_text(items).startswith("word000 "))
        await queued.closed
        self.assertEqual(queued.status, 503)
        self.assertEqual(json.loads(queued.body)["error"]["code"], "shutting_down")
        # later requests are refused the same way
        code, body = await d.chat(HI)
        self.assertEqual((code, body["error"]["code"]), (503, "shutting_down"))
        self.assertEqual(len(d.fake.message_requests), 1)


#: where the twistd of L{SigtermTests} listens
LISTEN = "tcp:{port}:interface=127.0.0.1"


class SigtermTests(TestCase):
    """
    The daemon as twistd runs it, sent SIGTERM mid-stream.
    """

    timeout = 90

    async def _sigterm(self, twistd_args: list[str], extra_env: dict[str, str]) -> None:
        """
        Run twistd with C{twistd_args} (C{{port}} the port it listens on).
        """
        fake = FakeAnthropic(reactor)
        base_url = fake.listen()
        self.addCleanup(fake.stop)
        fake.default = SLOW
        home = tempfile.mkdtemp(prefix="cp-home-")
        env = cli_env(base_url, home)
        env.update(extra_env, CLAUDEPROXY_TAC_LISTEN=LISTEN)
        daemon = await start_twistd(self, env, twistd_args)
        proto, transport, port = daemon.proto, daemon.transport, daemon.port
        seen: list[int] = []

        def cleanup() -> None:
            for pid in seen:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass

        # cleanups run last first: the CLIs left are killed, then twistd
        self.addCleanup(cleanup)

        client = await raw_post(port, "/v1/chat/completions", dict(HI, stream=True))
        await first_token(client)
        seen.extend(children_of(transport.pid))
        self.assertTrue(seen, "no CLI process under twistd")
        term_at = time.monotonic()
        transport.signalProcess("TERM")
        raw = await client.closed
        items = parse_sse(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(items[-1], "[DONE]")
        self.assertEqual(items[-2]["error"]["code"], "shutting_down")
        self.assertTrue(streamed_text(items).startswith("word000 "))
        await wait_for(lambda: not proto.running, timeout=5.0, interval=0.05)
        self.assertLess(time.monotonic() - term_at, 5.0)
        # twistd ends a SIGTERM shutdown by re-raising the signal on itself
        self.assertIn(proto.status, (0, -signal.SIGTERM), proto.output.decode(errors="replace"))
        self.assertIn(b"Server Shut Down.", proto.output)
        self.assertNotIn(b"Traceback", proto.output, proto.output.decode(errors="replace"))
        self.assertEqual([p for p in seen if not group_gone([p])], [])
        self.assertEqual(len(fake.message_requests), 1)

    async def test_sigterm_tac(self) -> None:
        await self._sigterm(["-y", TAC], {"CLAUDEPROXY_TAC_CLI": cli_path(), "CLAUDEPROXY_TAC_WARM": "1"})

    async def test_sigterm_plugin(self) -> None:
        await self._sigterm(["claudeproxy", "--listen", LISTEN, "--claude", cli_path()], {})
