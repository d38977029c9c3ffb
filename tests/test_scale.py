"""
Many streams at once and a slow reader, with the fast fake CLI
(bench/fakecli.py) in place of the real one: the daemon's own costs.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from typing import Any, Optional

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from bench.fakecli import reply_text
from tests.harness import Running, live_pids, parse_sse, scaled, slowdown, start, streamed_text

FAKECLI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "fakecli.py")


def fakecli_env(nbytes: int, chunk: int) -> dict[str, str]:
    """
    The fake CLI's settings, and a PATH whose first C{python3} is this
    interpreter itself (a version-manager shim would cost ~100 ms a spawn).
    """
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath)
    return {"FAKECLI_BYTES": str(nbytes), "FAKECLI_CHUNK": str(chunk), "PATH": path}


def request(prompt: str) -> dict[str, Any]:
    return {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": prompt}]}


class ConcurrencyTests(TestCase):
    timeout = 60

    async def test_256_concurrent_streams(self) -> None:
        n = 256
        size = 1500
        d = await start(self, claude=FAKECLI, extra_env=fakecli_env(size, 100), max_concurrent=n, max_queued=0)

        async def one(i: int) -> tuple[int, str, Any]:
            code, items, _ = await d.chat_stream(request("req-%d" % (i,)))
            return code, streamed_text(items), items

        results = await gatherResults([Deferred.fromCoroutine(one(i)) for i in range(n)])
        for i, (code, text, items) in enumerate(results):
            self.assertEqual(code, 200, items)
            self.assertEqual(text, reply_text(size, "req-%d" % (i,)))
            self.assertEqual(items[-1], "[DONE]")
            self.assertFalse([x for x in items if isinstance(x, dict) and "error" in x])
            self.assertEqual(items[-2]["choices"][0]["finish_reason"], "stop")
        self.assertEqual(d.manager.stats.spawned, n)
        self.assertEqual(d.proxy.requests_served, n)
        self.assertEqual((d.proxy.limiter.running, d.proxy.limiter.queued), (0, 0))
        await _all_gone(d)


async def _all_gone(d: Running) -> None:
    deadline = time.monotonic() + scaled(10)
    while live_pids(d.spawned) or d.manager.live:
        if time.monotonic() > deadline:
            raise AssertionError("CLI processes still running: %r" % (live_pids(d.spawned),))
        await deferToThread(time.sleep, 0.05)


def slow_read(port: int, body: bytes, rate: float, slow_for: float, enough: Optional[threading.Event] = None) -> bytes:
    """
    POST C{body} over a plain socket, read the reply at most C{rate} bytes
    a second for C{slow_for} seconds (or until C{enough} is set), then as
    fast as it comes; the whole response.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(scaled(30))
    sock.connect(("127.0.0.1", port))
    head = "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sock.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % (len(body),) + body)
    parts = []
    started = time.monotonic()
    got = 0
    try:
        while True:
            elapsed = time.monotonic() - started
            if elapsed < slow_for and not (enough is not None and enough.is_set()):
                ahead = got / rate - elapsed
                if ahead > 0:
                    time.sleep(ahead)
                data = sock.recv(16 * 1024)
            else:
                data = sock.recv(1 << 20)
            if not data:
                break
            got += len(data)
            parts.append(data)
    finally:
        sock.close()
    return b"".join(parts)


class BackpressureTests(TestCase):
    timeout = 180

    async def test_slow_reader_pauses_the_cli_and_gets_every_byte(self) -> None:
        size = 20 * 1000 * 1000
        d = await start(self, claude=FAKECLI, extra_env=fakecli_env(size, 4096), max_concurrent=4, max_queued=0)
        paused = []
        #: the most bytes of one stdout line held, and of reply text kept
        held = [0, 0]

        seen_paused = threading.Event()

        def look() -> None:
            if any(run.paused for run in d.proxy.runs):
                paused.append(time.monotonic())
                seen_paused.set()
            for run in d.proxy.runs:
                held[0] = max(held[0], run.proc.buffered)
                held[1] = max(held[1], len(run.state.text))

        watch = LoopingCall(look)
        watch.start(0.01)
        try:
            # slowly until the daemon is seen pausing (however long a busy
            # machine takes to fill the socket), then as fast as it comes
            raw = await deferToThread(
                slow_read,
                d.port.getHost().port,
                json.dumps(request("slow")).encode(),
                2_000_000.0 / slowdown(),
                scaled(2.5),
                seen_paused,
            )
        finally:
            watch.stop()
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:200])
        self.assertTrue(paused, "the turn was never paused for the slow reader")
        items = parse_sse(body)
        self.assertEqual(items[-1], "[DONE]")
        self.assertFalse([x for x in items if isinstance(x, dict) and "error" in x])
        text = streamed_text(items)
        self.assertEqual(len(text), size)
        self.assertTrue(text == reply_text(size, "slow"), "the streamed text differs from what the CLI wrote")
        # memory stays bounded: the streamed text is not kept, and the CLI's
        # final lines (each the whole text) are not held whole
        self.assertEqual(held[1], 0)
        self.assertLess(held[0], 1 << 20)
        await _all_gone(d)
