"""
Errors as a client sees them: HTTP status, OpenAI's error shape and headers,
with the real CLI against the fake Anthropic API (or a fake CLI that
misbehaves), and what reached the upstream.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Optional

import openai
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply
from tests.harness import (
    Running,
    cli_path,
    dechunk,
    group_members,
    live_pids,
    raw_connect,
    scaled,
    streamed_text,
    wait_for,
)
from tests.harness import start_settled as start

FAKECLIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakeclis")
EXTRA_USAGE = (
    "Third-party apps now draw from your extra usage, not your plan limits. Add more at claude.ai/settings/usage"
)
HI = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}


def fakecli(name: str) -> str:
    return os.path.join(FAKECLIS, name)


class ErrorAssertions(TestCase):
    timeout = 60

    def assertOpenAIError(self, body: Any, type: str, code: Optional[str], *fragments: str) -> dict[str, Any]:
        """
        C{body} is exactly OpenAI's error object with this C{type} and
        C{code}, and its message holds every fragment; the error.
        """
        self.assertIsInstance(body, dict, body)
        self.assertEqual(list(body), ["error"], body)
        error = body["error"]
        self.assertEqual(sorted(error), ["code", "message", "param", "type"], body)
        self.assertIsInstance(error["message"], str)
        self.assertEqual((error["type"], error["code"]), (type, code), body)
        for fragment in fragments:
            self.assertIn(fragment, error["message"])
        return dict(error)

    async def error_response(
        self, d: Running, body: dict[str, Any], headers: Optional[dict[str, str]] = None
    ) -> tuple[int, Any, Any]:
        """
        POST a chat completion; status, parsed JSON body, response.
        """
        resp = await d.post("/v1/chat/completions", body, headers)
        raw = await resp.content()
        ctype = (resp.headers.getRawHeaders("content-type") or [""])[0]
        self.assertTrue(ctype.startswith("application/json"), (ctype, raw[:300]))
        rid = (resp.headers.getRawHeaders("x-request-id") or [""])[0]
        self.assertTrue(rid.startswith("chatcmpl-"), resp.headers)
        return resp.code, json.loads(raw), resp

    async def start_warm(self, **overrides: Any) -> Running:
        """
        A daemon with one CLI process started ahead and waiting, so a short
        idle timeout measures the upstream, not a cold start under load.
        """
        d = await start(self, warm=1, **overrides)
        await wait_for(lambda: d.manager.idle_count == 1, timeout=20)
        return d

    def assertNoCLILeft(self, d: Running) -> None:
        self.assertEqual(live_pids(d.spawned), [])
        for pid in d.spawned:
            self.assertEqual(group_members(pid), [])


class UpstreamErrorTests(ErrorAssertions):
    """
    Upstream errors, mapped to the status a client can act on; in stream
    mode the same status when nothing was streamed yet.
    """

    async def _upstream_error(
        self, reply: Reply, stream: bool = False, rate_limit_headers: bool = True
    ) -> tuple[Running, int, Any, Any]:
        d = await start(self)
        d.fake.default = reply
        d.fake.rate_limit_headers = rate_limit_headers
        code, body, resp = await self.error_response(d, dict(HI, stream=stream))
        # the request did reach the upstream, as the subscription (OAuth) user
        self.assertTrue(d.fake.message_requests)
        first = d.fake.message_requests[0]
        self.assertTrue(first.headers.get("authorization", "").startswith("Bearer "), first.headers)
        self.assertEqual(first.turns[-1]["role"], "user")
        self.assertNotIn("x-api-key", first.headers)
        await wait_for(lambda: not live_pids(d.spawned), timeout=3)
        return d, code, body, resp

    async def _401(self, stream: bool) -> None:
        reply = Reply(status=401, error_type="authentication_error", error_message="OAuth token has expired")
        d, code, body, _ = await self._upstream_error(reply, stream)
        self.assertEqual(code, 401)
        error = self.assertOpenAIError(body, "authentication_error", "cli_not_logged_in", "run `claude`", "log in")
        self.assertIsNone(error["param"])
        self.assertIn("OAuth token has expired", error["message"])
        # upstream_retries=0: no retry (CLI 2.1.332 tries an expired login once more)
        self.assertLessEqual(len(d.fake.message_requests), 2)

    async def test_401_not_logged_in(self) -> None:
        await self._401(stream=False)

    async def test_401_not_logged_in_stream(self) -> None:
        await self._401(stream=True)

    async def _429(self, stream: bool) -> None:
        reset = int(time.time()) + 120
        reply = Reply(
            status=429,
            error_type="rate_limit_error",
            error_message="Number of requests has exceeded your rate limit",
            headers={
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": str(reset),
            },
        )
        d, code, body, resp = await self._upstream_error(reply, stream)
        self.assertEqual(code, 429)
        self.assertOpenAIError(body, "rate_limit_error", "rate_limit_exceeded", "rate limit")
        retry_after = resp.headers.getRawHeaders("retry-after")
        self.assertIsNotNone(retry_after, "no Retry-After although the reset time is known")
        self.assertTrue(100 <= int(retry_after[0]) <= 121, retry_after)
        # a 429 with a subscription token is not retried
        self.assertEqual(len(d.fake.message_requests), 1)

    async def test_429_with_retry_after(self) -> None:
        await self._429(stream=False)

    async def test_429_with_retry_after_stream(self) -> None:
        await self._429(stream=True)

    async def test_429_reset_unknown_has_no_retry_after(self) -> None:
        reply = Reply(status=429, error_type="rate_limit_error", error_message="slow down")
        # no unified rate-limit headers: nothing says when the limit resets
        # (with them, the CLI calls any 429 the session limit, with its reset)
        _, code, body, resp = await self._upstream_error(reply, rate_limit_headers=False)
        self.assertEqual(code, 429)
        self.assertOpenAIError(body, "rate_limit_error", "rate_limit_exceeded")
        self.assertIsNone(resp.headers.getRawHeaders("retry-after"))

    async def _500(self, stream: bool) -> None:
        reply = Reply(status=500, error_type="api_error", error_message="Internal server error")
        d, code, body, _ = await self._upstream_error(reply, stream)
        self.assertEqual(code, 502)
        self.assertOpenAIError(body, "server_error", "upstream_error", "500")
        # upstream_retries=0: the CLI did not retry
        self.assertEqual(len(d.fake.message_requests), 1)

    async def test_500_is_502(self) -> None:
        await self._500(stream=False)

    async def test_500_is_502_stream(self) -> None:
        await self._500(stream=True)

    async def _529(self, stream: bool) -> None:
        reply = Reply(status=529, error_type="overloaded_error", error_message="Overloaded")
        d, code, body, _ = await self._upstream_error(reply, stream)
        self.assertEqual(code, 503)
        self.assertOpenAIError(body, "server_error", "upstream_overloaded", "verloaded")
        self.assertEqual(len(d.fake.message_requests), 1)

    async def test_529_is_503(self) -> None:
        await self._529(stream=False)

    async def test_529_is_503_stream(self) -> None:
        await self._529(stream=True)

    async def _extra_usage(self, stream: bool) -> None:
        reply = Reply(status=400, error_type="invalid_request_error", error_message=EXTRA_USAGE)
        d, code, body, _ = await self._upstream_error(reply, stream)
        self.assertEqual(code, 402)
        self.assertOpenAIError(body, "insufficient_quota", "extra_usage_required", EXTRA_USAGE)
        # not retried (CLI 2.1.332 tries a 400 again with fewer betas)
        self.assertLessEqual(len(d.fake.message_requests), 3)

    async def test_extra_usage_refusal_is_402(self) -> None:
        await self._extra_usage(stream=False)

    async def test_extra_usage_refusal_is_402_stream(self) -> None:
        await self._extra_usage(stream=True)

    async def test_other_400_is_400(self) -> None:
        reply = Reply(status=400, error_type="invalid_request_error", error_message="messages: text is too long")
        _, code, body, _ = await self._upstream_error(reply)
        self.assertEqual(code, 400)
        self.assertOpenAIError(body, "invalid_request_error", "upstream_invalid_request", "text is too long")


class StreamStartedErrorTests(ErrorAssertions):
    """
    Once a stream has started (200 and tokens sent) an error can only end
    it: an error event, then [DONE].
    """

    async def test_idle_timeout_after_first_tokens(self) -> None:
        d = await self.start_warm(idle_timeout=scaled(3.0))
        d.fake.default = Reply(text="first words, then silence forever", chunk=6, hang_after=2)
        code, items, resp = await d.chat_stream(HI)
        self.assertEqual(code, 200, items)
        self.assertEqual(streamed_text(items), "first words,")
        self.assertEqual(items[-1], "[DONE]")
        self.assertOpenAIError(items[-2], "server_error", "timeout", "--idle-timeout")
        self.assertFalse(any(isinstance(i, dict) and "choices" in i and "error" in i for i in items))
        # the CLI that served it is gone, and with it its upstream connection
        served = d.spawned[0]
        await wait_for(lambda: not live_pids([served]) and not group_members(served), timeout=2)
        await wait_for(lambda: d.fake.lost == [1], timeout=2)

    async def test_cli_crash_after_first_tokens(self) -> None:
        d = await start(self, claude=fakecli("crash_midstream.sh"))
        code, items, _ = await d.chat_stream(HI)
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items), "partial answer")
        self.assertEqual(items[-1], "[DONE]")
        self.assertOpenAIError(items[-2], "server_error", "cli_error", "status 7", "lost the plot halfway")
        self.assertEqual(d.fake.requests, [])


class CLIFailureTests(ErrorAssertions):
    """
    The CLI missing, crashing, printing garbage, or silent.
    """

    async def test_cli_missing(self) -> None:
        d = await start(self, claude="/nonexistent/claude")
        for stream in (False, True):
            code, body, _ = await self.error_response(d, dict(HI, stream=stream))
            self.assertEqual(code, 503)
            self.assertOpenAIError(
                body,
                "server_error",
                "cli_unavailable",
                "/nonexistent/claude",
                "npm install -g @anthropic-ai/claude-code",
            )
        resp = await d.get("/health")
        self.assertEqual(resp.code, 200)
        health = await resp.json()
        self.assertEqual(health["status"], "degraded")
        self.assertEqual(health["cli"]["path"], "/nonexistent/claude")
        self.assertIn("/nonexistent/claude is missing or not executable", health["cli"]["error"])
        self.assertIn("npm install", health["cli"]["error"])
        self.assertEqual(d.spawned, [])
        self.assertEqual(d.fake.requests, [])

    async def test_health_ok_with_cli(self) -> None:
        d = await start(self)
        await wait_for(lambda: d.daemon.cli.version is not None, timeout=10)
        resp = await d.get("/health")
        health = await resp.json()
        self.assertEqual(health["status"], "ok")
        self.assertNotIn("error", health["cli"])
        # the version of the CLI under test, as it reports it
        out = subprocess.run([cli_path(), "--version"], capture_output=True, text=True, timeout=60).stdout
        self.assertEqual(health["cli"]["version"].split()[0], out.split()[0])

    async def test_cli_crash_carries_stderr_tail(self) -> None:
        d = await start(self, claude=fakecli("crash.sh"))
        for stream in (False, True):
            code, body, _ = await self.error_response(d, dict(HI, stream=stream))
            self.assertEqual(code, 502)
            self.assertOpenAIError(
                body, "server_error", "cli_error", "status 3", "fatal: the fake CLI crashed on purpose (code 3)"
            )
        self.assertEqual(len(d.spawned), 2)
        self.assertNoCLILeft(d)

    async def test_cli_garbage_stdout(self) -> None:
        d = await start(self, claude=fakecli("garbage.sh"))
        for stream in (False, True):
            code, body, _ = await self.error_response(d, dict(HI, stream=stream))
            self.assertEqual(code, 502)
            self.assertOpenAIError(body, "server_error", "cli_error", "not stream-json", "Segmentation fault")
        # the CLI and the child it started are killed, not left running
        await wait_for(lambda: not any(group_members(pid) for pid in d.spawned), timeout=2)
        self.assertNoCLILeft(d)

    async def test_cli_exits_before_any_output(self) -> None:
        d = await start(self, claude=fakecli("silent_exit.sh"))
        for stream in (False, True):
            code, body, _ = await self.error_response(d, dict(HI, stream=stream))
            self.assertEqual(code, 502)
            self.assertOpenAIError(body, "server_error", "cli_error", "exited (status 0)")


class TimeoutTests(ErrorAssertions):
    async def test_idle_timeout(self) -> None:
        idle = scaled(3.0)
        d = await self.start_warm(idle_timeout=idle)
        d.fake.default = Reply(hang=True)
        started = time.monotonic()
        code, body, _ = await self.error_response(d, HI)
        self.assertEqual(code, 504)
        self.assertOpenAIError(body, "server_error", "timeout", "%g seconds" % (idle,), "--idle-timeout")
        self.assertLess(time.monotonic() - started, scaled(8))
        self.assertEqual(len(d.fake.message_requests), 1)
        served = d.spawned[0]
        await wait_for(lambda: not live_pids([served]) and not group_members(served), timeout=2)
        await wait_for(lambda: d.fake.lost == [1], timeout=2)

    async def test_idle_timeout_stream_before_tokens(self) -> None:
        d = await self.start_warm(idle_timeout=scaled(3.0))
        d.fake.default = Reply(hang=True)
        code, body, _ = await self.error_response(d, dict(HI, stream=True))
        self.assertEqual(code, 504)
        self.assertOpenAIError(body, "server_error", "timeout", "--idle-timeout")

    async def test_request_timeout(self) -> None:
        # tokens keep coming (no idle timeout) but the whole takes too long
        d = await start(self, request_timeout=2.0, idle_timeout=30.0)
        d.fake.default = Reply(text="x" * 200, chunk=1, delay=0.05)
        started = time.monotonic()
        code, body, _ = await self.error_response(d, HI)
        self.assertEqual(code, 504)
        self.assertOpenAIError(body, "server_error", "timeout", "longer than 2 seconds", "--request-timeout")
        self.assertLess(time.monotonic() - started, scaled(5))
        await wait_for(lambda: not live_pids(d.spawned), timeout=2)


class AdmissionTests(ErrorAssertions):
    """
    Requests refused before a CLI is started: the queue, the API key, the
    body, the model.  None of them reaches the upstream.
    """

    async def test_queue_full(self) -> None:
        d = await self.start_warm(max_concurrent=1, max_queued=0, idle_timeout=scaled(3.0))
        d.fake.default = Reply(hang=True)
        first = Deferred.fromCoroutine(d.post("/v1/chat/completions", HI))
        await wait_for(lambda: len(d.fake.message_requests) == 1, timeout=10)
        self.assertEqual(d.proxy.limiter.running, 1)
        await wait_for(lambda: d.manager.idle_count == 1, timeout=20)
        spawned = len(d.spawned)
        code, body, resp = await self.error_response(d, HI)
        self.assertEqual(code, 429)
        self.assertOpenAIError(body, "rate_limit_error", "queue_full", "--max-concurrent")
        self.assertEqual(resp.headers.getRawHeaders("retry-after"), ["1"])
        # refused at the door: no process taken or started for it
        self.assertEqual((len(d.spawned), d.manager.idle_count), (spawned, 1))
        # the first one ends on its own (idle timeout); then there is room
        resp1 = await first
        self.assertEqual(resp1.code, 504)
        await resp1.content()
        self.assertEqual(len(d.fake.message_requests), 1)
        d.fake.default = Reply(text="room again")
        code, body = await d.chat(HI)
        self.assertEqual((code, body["choices"][0]["message"]["content"]), (200, "room again"))

    async def test_queued_request_waits_its_turn(self) -> None:
        d = await start(self, max_concurrent=1, max_queued=1)
        d.fake.push(Reply(text="first", chunk=1, delay=0.1), Reply(text="second"))
        first = Deferred.fromCoroutine(d.chat(HI))
        await wait_for(lambda: len(d.fake.message_requests) == 1, timeout=10)
        second = Deferred.fromCoroutine(d.chat(HI))
        await wait_for(lambda: d.proxy.limiter.queued == 1, timeout=2)
        self.assertEqual(len(d.spawned), 1)
        (c1, b1), (c2, b2) = await first, await second
        self.assertEqual((c1, c2), (200, 200))
        self.assertEqual(
            [b1["choices"][0]["message"]["content"], b2["choices"][0]["message"]["content"]], ["first", "second"]
        )

    async def test_api_key(self) -> None:
        d = await start(self, api_key="k")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic az"}, {"Authorization": "k"}):
            code, body, resp = await self.error_response(d, HI, headers)
            self.assertEqual(code, 401, headers)
            self.assertOpenAIError(body, "invalid_request_error", "invalid_api_key", "Bearer")
        resp = await d.get("/v1/models")
        self.assertEqual(resp.code, 401)
        self.assertOpenAIError(await resp.json(), "invalid_request_error", "invalid_api_key")
        self.assertEqual(d.fake.requests, [])
        self.assertEqual(d.spawned, [])
        # /health needs no key
        resp = await d.get("/health")
        self.assertEqual(resp.code, 200)
        self.assertIn((await resp.json())["status"], ("ok", "degraded"))
        # the right key
        code, body = await d.chat(HI, {"Authorization": "Bearer k"})
        self.assertEqual(code, 200, body)
        resp = await d.get("/v1/models", {"Authorization": "Bearer k"})
        self.assertEqual(resp.code, 200)
        self.assertEqual(len(d.fake.message_requests), 1)

    async def test_body_too_large(self) -> None:
        d = await start(self, max_body=1000)
        big = dict(HI, messages=[{"role": "user", "content": "x" * 2000}])
        code, body, _ = await self.error_response(d, big)
        self.assertEqual(code, 413)
        self.assertOpenAIError(body, "invalid_request_error", "request_too_large", "1000 bytes", "--max-body")
        self.assertEqual(d.fake.requests, [])
        self.assertEqual(d.spawned, [])
        # just under the limit is served
        code, body = await d.chat(HI)
        self.assertEqual(code, 200, body)

    async def test_chunked_body_too_large(self) -> None:
        # no Content-Length: the limit applies while the body arrives
        d = await start(self, max_body=1000)
        port = d.port.getHost().port
        client = await raw_connect(port)
        assert client.transport is not None
        client.transport.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n" % (port,)
        )
        for _ in range(8):
            client.transport.write(b"200\r\n" + b" " * 0x200 + b"\r\n")
        client.transport.write(b"0\r\n\r\n")
        await wait_for(lambda: not client.connected, timeout=10)
        self.assertEqual(client.status, 413, bytes(client.data))
        body = client.body if b"transfer-encoding: chunked" not in client.head.lower() else dechunk(client.body)
        self.assertOpenAIError(json.loads(body), "invalid_request_error", "request_too_large", "--max-body")
        self.assertEqual(d.fake.requests, [])
        self.assertEqual(d.spawned, [])

    async def test_invalid_json(self) -> None:
        d = await start(self)
        for raw in (b"{not json", b"", b"[1, 2]"):
            code, body, _ = await self.error_response(d, raw)  # type: ignore[arg-type]
            self.assertEqual(code, 400, raw)
            self.assertOpenAIError(body, "invalid_request_error", body["error"]["code"])
        self.assertEqual(d.fake.requests, [])
        self.assertEqual(d.spawned, [])

    async def test_unknown_model(self) -> None:
        d = await start(self)
        for stream in (False, True):
            code, body, _ = await self.error_response(d, dict(HI, model="gpt-4o", stream=stream))
            self.assertEqual(code, 404)
            error = self.assertOpenAIError(body, "invalid_request_error", "model_not_found", "gpt-4o", "sonnet")
            self.assertEqual(error["param"], "model")
        resp = await d.get("/v1/models/gpt-4o")
        self.assertEqual(resp.code, 404)
        self.assertOpenAIError(await resp.json(), "invalid_request_error", "model_not_found")
        self.assertEqual(d.fake.requests, [])
        self.assertEqual(d.spawned, [])

    async def test_unknown_path_and_method(self) -> None:
        d = await start(self)
        resp = await d.post("/v1/completions", HI)
        self.assertEqual(resp.code, 404)
        self.assertOpenAIError(await resp.json(), "invalid_request_error", "unknown_url", "/v1/completions")
        resp = await d.get("/v1/chat/completions")
        self.assertEqual(resp.code, 405)
        self.assertOpenAIError(await resp.json(), "invalid_request_error", "method_not_allowed")


class OpenAISDKTests(ErrorAssertions):
    """
    The official C{openai} client, in a thread, against the daemon.
    """

    def client(self, d: Running, api_key: str = "unused") -> openai.OpenAI:
        c = openai.OpenAI(base_url=d.url + "/v1", api_key=api_key, max_retries=0, timeout=scaled(30))
        self.addCleanup(c.close)
        return c

    async def test_sdk_non_stream_and_stream(self) -> None:
        d = await start(self)
        client = self.client(d)
        d.fake.push(Reply(text="Hello from the SDK test."), Reply(text="Streamed to the SDK.", chunk=3))

        def complete() -> Any:
            return client.chat.completions.create(model="claude-sonnet-4", messages=[{"role": "user", "content": "hi"}])

        completion = await deferToThread(complete)
        self.assertEqual(completion.choices[0].message.content, "Hello from the SDK test.")
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        self.assertEqual(completion.usage.completion_tokens, 7)

        def stream() -> list[Any]:
            return list(
                client.chat.completions.create(
                    model="sonnet",
                    messages=[{"role": "user", "content": "hi"}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )

        chunks = await deferToThread(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, "Streamed to the SDK.")
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "stop")
        self.assertEqual(chunks[-1].usage.completion_tokens, 7)
        self.assertEqual(len(d.fake.message_requests), 2)

    async def test_sdk_rate_limit_error(self) -> None:
        d = await start(self)
        client = self.client(d)
        reset = int(time.time()) + 60
        d.fake.default = Reply(
            status=429,
            error_type="rate_limit_error",
            error_message="rate limited",
            headers={
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-reset": str(reset),
            },
        )

        def call() -> Any:
            return client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])

        error = await self.assertFailure(deferToThread(call), openai.RateLimitError)
        self.assertEqual(error.status_code, 429)
        self.assertEqual(error.code, "rate_limit_exceeded")
        self.assertTrue(40 <= int(error.response.headers["retry-after"]) <= 61)

    async def test_sdk_authentication_error(self) -> None:
        d = await start(self, api_key="right")
        client = self.client(d, api_key="wrong")

        def call() -> Any:
            return client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])

        error = await self.assertFailure(deferToThread(call), openai.AuthenticationError)
        self.assertEqual(error.status_code, 401)
        self.assertEqual(error.code, "invalid_api_key")
        good = self.client(d, api_key="right")
        models = await deferToThread(lambda: [m.id for m in good.models.list()])
        self.assertIn("claude-sonnet-4", models)
        self.assertEqual(d.fake.requests, [])

    async def test_sdk_error_after_stream_started(self) -> None:
        d = await self.start_warm(idle_timeout=scaled(3.0))
        client = self.client(d)
        d.fake.default = Reply(text="some words then nothing", chunk=5, hang_after=1)
        received: list[str] = []

        def stream() -> None:
            for chunk in client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)

        with self.assertRaises(openai.APIError) as caught:
            await deferToThread(stream)
        self.assertIn("--idle-timeout", caught.exception.message)
        self.assertEqual(received, ["some "])
