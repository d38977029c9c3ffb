"""
Operations: /metrics, browser safety (Host and Origin), request ids and the
JSON log format.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger
from twisted.trial.unittest import SynchronousTestCase, TestCase

from claudeproxy import _tap
from claudeproxy.web.guard import host_allowed, host_name
from tests.fakeanthropic import Reply
from tests.harness import start, wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


class MetricsTests(TestCase):
    timeout = 60

    async def test_metrics_parse_and_count(self) -> None:
        d = await start(self, max_sessions=1)
        d.fake.default = Reply(text="hi", input_tokens=10, output_tokens=4, cache_read=6)
        await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]})
        await d.chat({"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]})
        resp = await d.get("/metrics")
        self.assertEqual(resp.code, 200)
        self.assertTrue(resp.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
        got = samples(await resp.text())
        self.assertEqual(
            got[("claudeproxy_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))], 1
        )
        self.assertEqual(
            got[("claudeproxy_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "404")))], 1
        )
        self.assertEqual(got[("claudeproxy_tokens_total", (("kind", "input"),))], 16)
        self.assertEqual(got[("claudeproxy_tokens_total", (("kind", "output"),))], 4)
        self.assertEqual(got[("claudeproxy_tokens_total", (("kind", "cached"),))], 6)
        self.assertEqual(got[("claudeproxy_request_seconds_count", (("endpoint", "/v1/chat/completions"),))], 2)
        self.assertEqual(got[("claudeproxy_first_token_seconds_count", (("endpoint", "/v1/chat/completions"),))], 1)
        self.assertEqual(got[("claudeproxy_live_sessions", ())], 1)
        self.assertEqual(got[("claudeproxy_warm_pool_total", (("result", "miss"),))], 1)
        self.assertIn(("claudeproxy_requests_in_flight", ()), got)
        self.assertIn(("claudeproxy_requests_queued", ()), got)
        # a second conversation evicts the first (--max-sessions 1): its CLI
        # exit is counted by cause
        # (with other settings: a one-shot with the same ones is reused)
        await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "system", "content": "B"}, {"role": "user", "content": "another"}],
            }
        )
        await wait_for(lambda: d.manager.exits.get("evicted") == 1)
        resp = await d.get("/metrics")
        got = samples(await resp.text())
        self.assertEqual(got[("claudeproxy_cli_exits_total", (("cause", "evicted"),))], 1)


class BrowserSafetyTests(TestCase):
    timeout = 60

    async def test_rebinding_host_is_refused(self) -> None:
        d = await start(self)
        body = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
        resp = await d.post("/v1/chat/completions", body, {"Host": "attacker.example:3456"})
        self.assertEqual(resp.code, 403)
        self.assertEqual((await resp.json())["error"]["code"], "host_not_allowed")
        self.assertEqual(d.manager.stats.spawned, 0)
        for host in ("localhost:3456", "127.0.0.1", "[::1]:3456"):
            resp = await d.get("/health", {"Host": host})
            self.assertEqual(resp.code, 200, host)
            await resp.content()

    async def test_allowed_host(self) -> None:
        d = await start(self, allowed_hosts=("proxy.internal",))
        resp = await d.get("/health", {"Host": "proxy.internal:8080"})
        self.assertEqual(resp.code, 200)
        await resp.content()

    async def test_cross_origin_request_never_reaches_the_cli(self) -> None:
        d = await start(self)
        body = {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
        # a "simple" cross-origin POST a page can make without a preflight
        resp = await d.post(
            "/v1/chat/completions",
            json.dumps(body).encode(),
            {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        )
        self.assertEqual(resp.code, 403)
        self.assertEqual((await resp.json())["error"]["code"], "origin_not_allowed")
        self.assertIsNone(resp.headers.getRawHeaders("access-control-allow-origin"))
        self.assertEqual(d.manager.stats.spawned, 0)
        self.assertEqual(d.fake.message_requests, [])

    async def test_listed_origin_gets_cors(self) -> None:
        d = await start(self, cors_origins=("http://localhost:8080",))
        resp = await d.pool_request(
            "OPTIONS",
            "/v1/chat/completions",
            {"Origin": "http://localhost:8080", "Access-Control-Request-Method": "POST"},
        )
        self.assertEqual(resp.code, 204)
        self.assertEqual(resp.headers.getRawHeaders("access-control-allow-origin"), ["http://localhost:8080"])
        self.assertIn("authorization", resp.headers.getRawHeaders("access-control-allow-headers")[0])
        code, body = await d.chat(
            {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}, {"Origin": "http://localhost:8080"}
        )
        self.assertEqual(code, 200, body)
        resp = await d.get("/health", {"Origin": "http://localhost:9999"})
        self.assertEqual(resp.code, 403)
        await resp.content()


class RequestIdTests(TestCase):
    timeout = 60

    async def test_request_id_header(self) -> None:
        d = await start(self)
        resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": [{"role": "user", "content": "x"}]})
        body = await resp.json()
        (rid,) = resp.headers.getRawHeaders("x-request-id")
        self.assertEqual(rid, body["id"])


class HostNameTests(SynchronousTestCase):
    def test_names(self) -> None:
        self.assertEqual(host_name("LocalHost:3456"), "localhost")
        self.assertEqual(host_name("[::1]:3456"), "[::1]")
        self.assertTrue(host_allowed("127.0.0.1:1", frozenset()))
        self.assertTrue(host_allowed("app.localhost", frozenset()))
        self.assertTrue(host_allowed(None, frozenset()))
        self.assertFalse(host_allowed("localhost.evil.com", frozenset()))
        self.assertFalse(host_allowed("192.168.1.5:3456", frozenset()))


class JsonLogTests(SynchronousTestCase):
    def test_log_format_json_installs_the_json_observer(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        options = _tap.Options()
        options.parseOptions(["--log-format", "json", "--claude", "/nonexistent"])
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        service: Any = _tap.makeService(options, reactor=MemoryReactorClock(), env={"PATH": "/usr/bin"})
        application = Application("claudeproxy")
        service.setServiceParent(application)
        observer = application.getComponent(ILogObserver, None)
        self.assertIsNotNone(observer)
        # twistd logs through it: every event is one JSON object a line
        Logger(namespace="t", observer=observer).info("served {n} requests", n=3)
        (line,) = out.getvalue().strip("\x1e\n").splitlines()
        event = json.loads(line.strip("\x1e"))
        self.assertEqual((event["log_format"], event["n"]), ("served {n} requests", 3))

    def test_text_is_default(self) -> None:
        from twisted.internet.testing import MemoryReactorClock

        options = _tap.Options()
        options.parseOptions(["--claude", "/nonexistent"])
        service: Any = _tap.makeService(options, reactor=MemoryReactorClock(), env={"PATH": "/usr/bin"})
        application = Application("claudeproxy")
        service.setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))
