"""
A soak: 1,000 requests, streamed and not, 32 at a time, against a fast
fake CLI (tests/fakeclis/faulty.py), with clients that go away after a
random number of bytes and requests that time out (a CLI that hangs, with a
small --idle-timeout).  At the end no CLI process is left, the test process
holds no more file descriptors than before (a small slack), nothing was
logged at error level, and every request that was read to its end got the
answer it should.  The figures are printed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any, Optional

import attrs
import treq
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.harness import (
    FAKECLIS,
    ROOT,
    LoggedErrors,
    RawClient,
    children_of,
    fast_script,
    left_running,
    open_fds,
    parse_sse,
    raw_post,
    reactor,
    reap_leaks,
    scaled,
    sleep,
    start_twistd,
    wait_for,
)
from tests.harness import start_settled as start

FAULTY = os.path.join(FAKECLIS, "faulty.py")
REQUESTS = 1000
CONCURRENCY = 32
IDLE_TIMEOUT = 6.0
FD_SLACK = 8
SEED = 20261121
DRIP = "".join("drip%02d " % (i,) for i in range(10))
log = Logger()


class CuttingClient(RawClient):
    """
    A L{RawClient} that drops the connection once it has C{limit} bytes
    (None: reads to the end).
    """

    def __init__(self, limit: Optional[int]) -> None:
        super().__init__()
        self.limit = limit
        self.cut = False

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self.limit is not None and len(self.data) >= self.limit and not self.cut:
            self.cut = True
            ITCPTransport(self.transport).abortConnection()


async def send(port: int, body: dict[str, Any], limit: Optional[int]) -> CuttingClient:
    client = CuttingClient(limit)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    data = json.dumps(body).encode()
    head = "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n" % (port,)
    head += "Content-Length: %d\r\n\r\n" % (len(data),)
    assert client.transport is not None
    client.transport.write(head.encode() + data)
    return client


@attrs.define
class Figures:
    requests: int = 0
    completed: int = 0
    streamed: int = 0
    disconnects: int = 0
    timeouts: int = 0
    wrong: list[str] = attrs.Factory(list)


class SoakTests(TestCase):
    timeout = 240

    async def test_soak(self) -> None:
        errors = LoggedErrors().install(self)
        d = await start(
            self,
            claude=fast_script(FAULTY, self.mktemp()),
            max_concurrent=CONCURRENCY,
            max_queued=CONCURRENCY,
            # a reply must start within it on a busy machine too
            idle_timeout=scaled(IDLE_TIMEOUT),
            extra_env={"FAULTY_DELAY": "0.01"},
        )
        port = d.port.getHost().port
        connections = d.port.factory
        fds_before = open_fds()
        rng = random.Random(SEED)
        figures = Figures()

        async def one(i: int) -> None:
            roll = rng.random()
            stream = rng.random() < 0.5
            if roll < 0.45:
                kind, prompt, limit = "ok", "ok", None
            elif roll < 0.60:
                kind, prompt, limit = "drip", "drip", None
            elif roll < 0.90:
                # gone after 0 bytes (maybe after a pause), or mid-answer
                kind, prompt = "cut", rng.choice(["drip", "ok"])
                limit = 0 if rng.random() < 0.3 else rng.randrange(1, 1200)
            else:
                kind, prompt, limit = "hang", "hang", None
            body = {"model": "sonnet", "messages": [{"role": "user", "content": prompt}], "stream": stream}
            figures.requests += 1
            client = await send(port, body, None if limit == 0 else limit)
            if limit == 0:
                # at once (the daemon is spawning the CLI just then), or a little later
                pause = rng.choice([None, None, 0.005, 0.02, 0.05])
                if pause is not None:
                    await sleep(pause)
                assert client.transport is not None
                client.transport.loseConnection()
            raw = await client.closed
            if kind == "cut":
                figures.disconnects += 1
                return
            status = client.status
            payload = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
            if kind == "hang":
                if status == 504:
                    figures.timeouts += 1
                else:
                    figures.wrong.append("#%d hang: %r" % (i, raw[:300]))
                return
            want = "ok reply" if kind == "ok" else DRIP
            try:
                if stream:
                    items = parse_sse(payload)
                    text = "".join(
                        c["delta"].get("content") or ""
                        for item in items
                        if isinstance(item, dict)
                        for c in item.get("choices", [])
                    )
                    good = status == 200 and items[-1] == "[DONE]" and text == want
                else:
                    good = status == 200 and json.loads(payload)["choices"][0]["message"]["content"] == want
            except (ValueError, KeyError, IndexError):
                good = False
            if good:
                figures.completed += 1
                figures.streamed += stream
            else:
                figures.wrong.append("#%d %s stream=%s: %r" % (i, kind, stream, raw[:300]))

        todo = iter(range(REQUESTS))

        async def worker() -> None:
            for i in todo:
                await one(i)

        started = time.monotonic()
        await gatherResults([Deferred.fromCoroutine(worker()) for _ in range(CONCURRENCY)])
        wall = time.monotonic() - started

        # everything settles: no request, no connection, no CLI process
        await wait_for(
            lambda: not d.proxy.runs and d.proxy.limiter.running == 0 and not connections.protocols, timeout=10
        )
        settled = True
        try:
            await wait_for(lambda: not d.manager.live, timeout=5)
        except AssertionError:
            settled = False
        leaked = await reap_leaks(d)
        fds_after = open_fds()
        logged = errors.texts()
        report = (
            "soak: %d requests in %.1f s (%.0f/s), %d at a time; %d read whole (%d streamed), "
            "%d client disconnects, %d timeouts (504); CLI processes spawned %d, left %d; "
            "fds before %d, after %d; %d errors logged"
            % (
                figures.requests,
                wall,
                figures.requests / wall,
                CONCURRENCY,
                figures.completed,
                figures.streamed,
                figures.disconnects,
                figures.timeouts,
                len(d.spawned),
                len(leaked),
                fds_before,
                fds_after,
                len(logged),
            )
        )
        print("\n" + report)
        log.info("{report}", report=report)
        self.assertEqual(figures.wrong, [])
        self.assertEqual(figures.requests, REQUESTS)
        self.assertEqual(logged, [])
        self.assertLessEqual(fds_after - fds_before, FD_SLACK, report)
        self.assertEqual(leaked, [], report)
        self.assertTrue(settled, report)


STREAMS = 20
SLOTS = 16


class SigtermUnderLoadTests(TestCase):
    """
    The daemon as twistd runs it (the checkout's plugin), SIGTERM with
    C{STREAMS} streams under way: C{SLOTS} of them streaming, the others
    queued.
    """

    timeout = 90

    async def test_sigterm_under_load(self) -> None:
        claude = fast_script(FAULTY, self.mktemp())
        env = dict(os.environ)
        env.pop("ANTHROPIC_API_KEY", None)
        args = ["claudeproxy", "--listen", "tcp:{port}:interface=127.0.0.1", "--claude", claude]
        args += ["--max-concurrent", str(SLOTS), "--max-queued", str(STREAMS)]
        daemon = await start_twistd(self, env, args, ROOT)
        proto, transport, port = daemon.proto, daemon.transport, daemon.port
        seen: list[int] = []

        def cleanup() -> None:
            for pid in left_running(seen):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

        self.addCleanup(cleanup)

        async def health() -> Optional[dict[str, Any]]:
            try:
                resp = await treq.get(daemon.url + "/health", persistent=False)
                if resp.code != 200:
                    return None
                result: dict[str, Any] = json.loads(await resp.content())
                return result
            except Exception:
                return None

        body = {"model": "sonnet", "messages": [{"role": "user", "content": "slow"}], "stream": True}
        clients = [await raw_post(port, "/v1/chat/completions", body) for _ in range(STREAMS)]

        async def under_way() -> bool:
            h = await health()
            tokens = sum(1 for c in clients if b"word000" in c.data)
            return h is not None and h["requests"]["queued"] == STREAMS - SLOTS and tokens == SLOTS

        started = time.monotonic()
        while not await under_way():
            if time.monotonic() - started > 30:
                raise AssertionError("the streams did not get under way: %s" % (await health(),))
            await sleep(0.1)
        seen.extend(children_of(transport.pid))
        self.assertGreaterEqual(len(seen), SLOTS)

        term_at = time.monotonic()
        transport.signalProcess("TERM")
        await wait_for(lambda: not proto.running, timeout=10.0, interval=0.05)
        exit_after = time.monotonic() - term_at
        raws = [await c.closed for c in clients]
        ended, refused = 0, 0
        for raw in raws:
            head, _, payload = raw.partition(b"\r\n\r\n")
            if head.startswith(b"HTTP/1.0 200"):
                items = parse_sse(payload)
                self.assertEqual(items[-1], "[DONE]", payload[-300:])
                self.assertEqual(items[-2]["error"]["code"], "shutting_down", payload[-300:])
                self.assertTrue(json.dumps(items[1]).find("word000") != -1, payload[:300])
                ended += 1
            else:
                self.assertTrue(head.startswith(b"HTTP/1.0 503"), raw[:300])
                self.assertEqual(json.loads(payload)["error"]["code"], "shutting_down")
                refused += 1
        print(
            "\nsigterm: %d streams (%d streaming, %d queued), twistd exited %.2f s after SIGTERM, "
            "%d CLI processes seen, %d left" % (STREAMS, ended, refused, exit_after, len(seen), len(left_running(seen)))
        )
        self.assertEqual((ended, refused), (SLOTS, STREAMS - SLOTS))
        self.assertLess(exit_after, 5.0)
        # twistd ends a SIGTERM shutdown by re-raising the signal on itself
        self.assertIn(proto.status, (0, -signal.SIGTERM), proto.output.decode(errors="replace"))
        self.assertNotIn(b"Traceback", proto.output, proto.output.decode(errors="replace"))
        self.assertEqual(left_running(seen), [])
