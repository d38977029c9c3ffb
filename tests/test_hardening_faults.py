"""
Fault injection: CLIs that crash mid-stream, hang, print garbage, print one
line of 1 MiB, exit before printing anything, or vanish from disk while the
daemon runs (tests/fakeclis/faulty.py; the first word of the prompt picks
the fault).  Each ends with the right status or error event, nothing in the
log at error level, and no CLI process left (the harness checks at clean-up;
the tests check before that too).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Optional

from twisted.trial.unittest import TestCase

from tests.harness import (
    FAKECLIS,
    LoggedErrors,
    Running,
    fast_script,
    left_running,
    parse_sse,
    raw_connect,
    raw_post,
    reap_leaks,
    scaled,
    streamed_text,
    wait_for,
)
from tests.harness import start_settled as start

FAULTY = os.path.join(FAKECLIS, "faulty.py")
INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"
#: clients that leave at once, in test_client_gone_right_after_spawn
ATTEMPTS = 16
#: descriptors held open meanwhile
HELD_FDS = 4000


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return dict({"model": "sonnet", "messages": [{"role": "user", "content": text}]}, **extra)


def big_text(size: int) -> str:
    pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
    return (pattern * (size // len(pattern) + 1))[:size]


class FaultTests(TestCase):
    timeout = 60

    async def _start(self, claude: Optional[str] = None, **overrides: Any) -> Running:
        self.errors = LoggedErrors().install(self)
        return await start(self, claude=claude or fast_script(FAULTY, self.mktemp()), **overrides)

    async def _end(self, d: Running) -> None:
        """
        No CLI process left, nothing logged at error level, /health fine.
        """
        await wait_for(lambda: not left_running(d.spawned) and not d.manager.live, timeout=5)
        resp = await d.get("/health")
        self.assertEqual(resp.code, 200)
        health = await resp.json()
        self.assertEqual(health["requests"]["in_flight"], 0)
        self.assertEqual(self.errors.texts(), [])

    def assertOpenAIError(self, body: Any, code: str, *fragments: str) -> str:
        self.assertEqual(list(body), ["error"], body)
        error = body["error"]
        self.assertEqual(sorted(error), ["code", "message", "param", "type"], body)
        self.assertEqual(error["code"], code, body)
        for fragment in fragments:
            self.assertIn(fragment, error["message"])
        return str(error["message"])

    async def _json(self, d: Running, body: dict[str, Any]) -> tuple[int, Any]:
        resp = await d.post("/v1/chat/completions", body)
        raw = await resp.content()
        self.assertTrue((resp.headers.getRawHeaders("content-type") or [""])[0].startswith("application/json"))
        return resp.code, json.loads(raw)

    # crash mid-stream

    async def test_crash_mid_stream(self) -> None:
        d = await self._start()
        code, items, _ = await d.chat_stream(ask("crash"))
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items), "partial answer")
        self.assertEqual(items[-1], "[DONE]")
        self.assertOpenAIError(items[-2], "cli_error", "status 1", "crashed mid-stream on purpose")
        await self._end(d)

    async def test_crash_mid_stream_non_stream(self) -> None:
        d = await self._start()
        code, body = await self._json(d, ask("crash"))
        self.assertEqual(code, 502)
        self.assertOpenAIError(body, "cli_error", "status 1", "panic: faulty CLI crashed mid-stream on purpose")
        await self._end(d)

    async def test_crash_mid_stream_messages(self) -> None:
        d = await self._start()
        body = {
            "model": "sonnet",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "crash"}],
        }
        resp = await d.post("/v1/messages", body)
        raw = await resp.content()
        self.assertEqual(resp.code, 200, raw[:500])
        frames = [f for f in raw.decode().split("\n\n") if f.strip()]
        self.assertTrue(frames[-1].startswith("event: error\n"), frames[-3:])
        error = json.loads(frames[-1].split("data: ", 1)[1])
        self.assertEqual(error["type"], "error")
        self.assertIn("crashed mid-stream on purpose", error["error"]["message"])
        deltas = [json.loads(f.split("data: ", 1)[1]) for f in frames if f.startswith("event: content_block_delta\n")]
        self.assertEqual("".join(e["delta"].get("text", "") for e in deltas), "partial answer")
        await self._end(d)

    async def test_crash_mid_stream_responses(self) -> None:
        d = await self._start()
        resp = await d.post("/v1/responses", {"model": "sonnet", "input": "crash", "stream": True})
        raw = await resp.content()
        self.assertEqual(resp.code, 200, raw[:500])
        events = [json.loads(line[len("data: ") :]) for line in raw.decode().split("\n") if line.startswith("data: ")]
        types = [e["type"] for e in events]
        self.assertIn("response.output_text.delta", types)
        self.assertIn(types[-1], ("response.failed", "error"), types)
        self.assertIn("crashed mid-stream on purpose", json.dumps(events[-1]))
        await self._end(d)

    # hangs

    async def test_hang_is_504(self) -> None:
        d = await self._start(idle_timeout=scaled(0.5))
        code, body = await self._json(d, ask("hang"))
        self.assertEqual(code, 504)
        self.assertOpenAIError(body, "timeout", "--idle-timeout")
        code, items, resp = await d.chat_stream(ask("hang"))
        # nothing was streamed yet: the real status
        self.assertEqual(code, 504)
        await self._end(d)

    async def test_hang_after_first_tokens(self) -> None:
        d = await self._start(idle_timeout=scaled(0.5))
        code, items, _ = await d.chat_stream(ask("hangafter"))
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items), "partial answer")
        self.assertEqual(items[-1], "[DONE]")
        self.assertOpenAIError(items[-2], "timeout", "--idle-timeout")
        await self._end(d)

    # garbage

    async def test_garbage_is_502(self) -> None:
        d = await self._start()
        code, body = await self._json(d, ask("garbage"))
        self.assertEqual(code, 502)
        self.assertOpenAIError(body, "cli_error", "not stream-json", "Segmentation fault")
        code, items, resp = await d.chat_stream(ask("garbage"))
        self.assertEqual(code, 502)
        await self._end(d)
        # the daemon warned about it, at warning level
        self.flushLoggedErrors()

    # a 1 MiB line

    async def test_one_mib_line_stream(self) -> None:
        d = await self._start()
        code, items, _ = await d.chat_stream(ask("big"))
        self.assertEqual(code, 200)
        self.assertEqual(items[-1], "[DONE]")
        got = streamed_text(items)
        self.assertEqual(len(got), 1 << 20)
        self.assertTrue(got == big_text(1 << 20), "the 1 MiB delta arrived changed")
        await self._end(d)

    async def test_one_mib_line_non_stream(self) -> None:
        d = await self._start()
        code, body = await self._json(d, ask("big"))
        self.assertEqual(code, 200)
        got = body["choices"][0]["message"]["content"]
        self.assertEqual(len(got), 1 << 20)
        self.assertTrue(got == big_text(1 << 20), "the 1 MiB delta arrived changed")
        await self._end(d)

    # exit before any output

    async def test_exit_before_output(self) -> None:
        d = await self._start()
        code, body = await self._json(d, ask("exit"))
        self.assertEqual(code, 502)
        self.assertOpenAIError(body, "cli_error", "exited (status 1)", "exits before any output")
        code, items, resp = await d.chat_stream(ask("exit"))
        self.assertEqual(code, 502)
        await self._end(d)

    # the binary removed while the daemon runs

    async def test_binary_removed(self) -> None:
        where = tempfile.mkdtemp(prefix="cp-gone-")
        self.addCleanup(shutil.rmtree, where, True)
        claude = fast_script(FAULTY, where)
        d = await self._start(claude=claude, extra_env={"FAULTY_DELAY": "0.05"})
        code, body = await self._json(d, ask("ok"))
        self.assertEqual(code, 200, body)
        # a stream is under way when the file goes: it is served to its end
        client = await raw_post(d.port.getHost().port, "/v1/chat/completions", ask("drip", stream=True))
        await wait_for(lambda: b"drip00" in client.data, timeout=10)
        os.remove(claude)
        raw = await client.closed
        items = parse_sse(raw.split(b"\r\n\r\n", 1)[1])
        self.assertEqual(items[-1], "[DONE]")
        self.assertEqual(streamed_text(items), "".join("drip%02d " % (i,) for i in range(10)))
        # then every request gets a 503 that says what to do
        for stream in (False, True):
            code, body = await self._json(d, ask("ok", stream=stream))
            self.assertEqual(code, 503)
            self.assertOpenAIError(body, "cli_unavailable", claude, "missing or not executable", INSTALL_HINT)
        spawned = len(d.spawned)
        for _ in range(3):
            resp = await d.get("/health")
            self.assertEqual(resp.code, 200)
            health = await resp.json()
            self.assertEqual(health["status"], "degraded")
            self.assertEqual(health["cli"]["path"], claude)
            self.assertIn("missing or not executable", health["cli"]["error"])
            self.assertIn(INSTALL_HINT, health["cli"]["error"])
        self.assertEqual(len(d.spawned), spawned)
        # put back, it is used again without a restart
        fast_script(FAULTY, where)
        code, body = await self._json(d, ask("ok"))
        self.assertEqual(code, 200, body)
        resp = await d.get("/health")
        self.assertEqual((await resp.json())["status"], "ok")
        await self._end(d)

    # a client gone the moment its CLI is spawned

    async def test_client_gone_right_after_spawn(self) -> None:
        """
        A client that sends its request and closes at once: the CLI spawned
        for it is killed (here one that would hang forever).
        """
        # a busy daemon has many descriptors open, and a new CLI closes them
        # all before it makes its own group: that widens the window
        null = os.open(os.devnull, os.O_RDONLY)
        held = [os.dup(null) for _ in range(HELD_FDS)] + [null]
        for fd in held:
            self.addCleanup(os.close, fd)
        d = await self._start()
        port = d.port.getHost().port
        data = json.dumps(ask("hang", stream=True)).encode()
        head = "POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n" % (
            port,
            len(data),
        )
        for _ in range(ATTEMPTS):
            client = await raw_connect(port)
            assert client.transport is not None
            client.transport.write(head.encode() + data)
            client.transport.loseConnection()
            await client.closed
            await wait_for(lambda: not d.proxy.runs and d.proxy.limiter.running == 0, timeout=5)
        leaked = await reap_leaks(d)
        print("\nclient gone at once: %d CLI spawned, %d left running" % (len(d.spawned), len(leaked)))
        self.assertEqual(leaked, [], "%d of %d CLI processes left running" % (len(leaked), len(d.spawned)))
        await self._end(d)
