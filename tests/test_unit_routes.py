"""
Unit tests for the HTTP routes: the daemon built by
L{claudeproxy.service.build} on a memory reactor, with a fake spawner whose
L{CLIProcess} protocols the tests feed stream-json by hand, queried through
L{treq.testing.StubTreq} (and, where the site's request class matters, an
in-memory agent on the daemon's own L{Site}).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, cast

import treq
from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse
from twisted.web.server import Site
from zope.interface import implementer

from claudeproxy.config import Config
from claudeproxy.engine.errors import INSTALL_HINT
from claudeproxy.engine.versions import NEWEST_TESTED, OLDEST_TESTED
from claudeproxy.service import Daemon, build
from tests.fakes import FakeSpawner, RecordingKiller

URL = "http://127.0.0.1:3456"
MODEL = "claude-sonnet-5"

# -- fakes -------------------------------------------------------------------------


@implementer(IBodyProducer)
class BytesProducer:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _SiteEndpoint:
    def __init__(self, site: Site, pumps: list[iosim.IOPump]) -> None:
        self.site = site
        self.pumps = pumps

    def connect(self, factory: Factory) -> Deferred[Protocol]:
        server_addr = IPv4Address("TCP", "127.0.0.1", 3456)
        client_addr = IPv4Address("TCP", "127.0.0.1", 40000 + len(self.pumps))
        server = self.site.buildProtocol(client_addr)
        client = factory.buildProtocol(server_addr)
        assert server is not None and client is not None
        server_transport = iosim.FakeTransport(server, isServer=True, hostAddress=server_addr, peerAddress=client_addr)
        client_transport = iosim.FakeTransport(client, isServer=False, hostAddress=client_addr, peerAddress=server_addr)
        self.pumps.append(iosim.connect(server, server_transport, client, client_transport, greet=False))
        return succeed(cast(Protocol, client))


class _SiteEndpointFactory:
    def __init__(self, site: Site, pumps: list[iosim.IOPump]) -> None:
        self.site = site
        self.pumps = pumps

    def endpointForURI(self, uri: Any) -> _SiteEndpoint:
        return _SiteEndpoint(self.site, self.pumps)


class SiteClient:
    """
    An HTTP client connected in memory to a whole L{Site} (its request
    class included), unlike L{StubTreq}, which wraps only a resource.
    """

    def __init__(self, site: Site) -> None:
        self.pumps: list[iosim.IOPump] = []
        reactor = MemoryReactorClock()
        agent = Agent.usingEndpointFactory(
            reactor, _SiteEndpointFactory(site, self.pumps), pool=HTTPConnectionPool(reactor, persistent=False)
        )
        self.agent = agent
        self.http = HTTPClient(agent, data_to_body_producer=BytesProducer)

    def flush(self) -> None:
        for _ in range(3):
            for pump in list(self.pumps):
                pump.flush()


# -- stream-json -------------------------------------------------------------------


def line(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def reply_lines(text: str, pieces: int = 3) -> bytes:
    step = max(1, len(text) // pieces)
    parts = [text[i : i + step] for i in range(0, len(text), step)]
    out: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "model": MODEL, "session_id": "s", "tools": []},
        {
            "type": "stream_event",
            "event": {
                "type": "message_start",
                "message": {"id": "msg_1", "model": MODEL, "usage": {"input_tokens": 11, "output_tokens": 1}},
            },
        },
        {
            "type": "stream_event",
            "event": {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        },
        *[
            {
                "type": "stream_event",
                "event": {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}},
            }
            for p in parts
        ],
        {"type": "stream_event", "event": {"type": "content_block_stop", "index": 0}},
        {"type": "assistant", "message": {"id": "msg_1", "model": MODEL, "content": [{"type": "text", "text": text}]}},
        {
            "type": "stream_event",
            "event": {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}},
        },
        {"type": "stream_event", "event": {"type": "message_stop"}},
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": text,
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 11,
                "output_tokens": 6,
                "cache_read_input_tokens": 50,
                "cache_creation_input_tokens": 0,
            },
            "modelUsage": {MODEL: {}},
        },
    ]
    return b"".join(line(o) for o in out)


def chat_body(stream: bool = False, **extra: Any) -> bytes:
    body: dict[str, Any] = {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    body.update(extra)
    return json.dumps(body).encode()


# -- tests ---------------------------------------------------------------------------


class RoutesTestCase(SynchronousTestCase):
    def build(self, claude: Optional[str] = "default", **config: Any) -> Daemon:
        if claude == "default":
            claude = os.path.abspath(self.mktemp())
            with open(claude, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(claude, 0o755)
        config.setdefault("warm", 0)
        config.setdefault("max_sessions", 0)
        self.reactor = MemoryReactorClock()
        self.spawner = FakeSpawner(first_pid=2000)
        self.killer = RecordingKiller()
        self.daemon = build(
            self.reactor,
            Config(claude=claude, **config),
            {"PATH": "/usr/bin", "ANTHROPIC_API_KEY": "sk-should-go"},
            spawner=self.spawner,
            killer=self.killer,
        )
        self.stub = StubTreq(self.daemon.site.resource)
        return self.daemon

    def request(
        self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[dict[str, str]] = None
    ) -> Deferred[IResponse]:
        d: Deferred[IResponse] = cast(Any, self.stub).request(method, URL + path, data=body, headers=headers or {})
        self.stub.flush()
        return d

    def answer(self, d: Deferred[IResponse]) -> tuple[IResponse, bytes]:
        self.stub.flush()
        response = self.successResultOf(d)
        content = treq.content(response)
        self.stub.flush()
        return response, self.successResultOf(content)

    def json_answer(self, d: Deferred[IResponse]) -> tuple[int, Any, IResponse]:
        response, content = self.answer(d)
        return response.code, json.loads(content), response

    def assertOpenAIError(self, body: Any, code: Optional[str] = None) -> None:
        self.assertEqual(set(body), {"error"})
        self.assertEqual(set(body["error"]), {"message", "type", "param", "code"})
        self.assertIsInstance(body["error"]["message"], str)
        if code is not None:
            self.assertEqual(body["error"]["code"], code)


class InfoRouteTests(RoutesTestCase):
    def test_health(self) -> None:
        self.build(max_concurrent=3, max_queued=5)
        code, body, response = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(body["status"], "ok")
        self.assertIsInstance(body["version"], str)
        self.assertEqual(body["cli"]["path"], self.daemon.manager.claude)
        self.assertNotIn("error", body["cli"])
        self.assertEqual(
            body["requests"], {"in_flight": 0, "queued": 0, "max_concurrent": 3, "max_queued": 5, "served": 0}
        )
        self.assertIsInstance(body["pool"], dict)

    def test_health_warns_of_untested_cli(self) -> None:
        self.build()
        self.daemon.cli.version = "%s (Claude Code)" % (OLDEST_TESTED,)
        code, body, _ = self.json_answer(self.request("GET", "/health"))
        self.assertNotIn("warning", body["cli"])
        self.assertEqual(body["cli"]["tested"], {"oldest": OLDEST_TESTED, "newest": NEWEST_TESTED})
        self.daemon.cli.version = "99.0.0 (Claude Code)"
        code, body, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(body["status"], "ok")
        self.assertIn("99.0.0, newer than the newest tested (%s)" % (NEWEST_TESTED,), body["cli"]["warning"])
        self.assertIn(OLDEST_TESTED, body["cli"]["warning"])

    def test_health_degraded_without_cli(self) -> None:
        self.build(None, claude_missing_reason="`claude` was not found on PATH")
        code, body, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "degraded")
        self.assertIsNone(body["cli"]["path"])
        self.assertIn("not found on PATH", body["cli"]["error"])

    def test_models(self) -> None:
        self.build(model_aliases=(("gpt-4o", "sonnet"),))
        code, body, _ = self.json_answer(self.request("GET", "/v1/models"))
        self.assertEqual(code, 200)
        self.assertEqual(body["object"], "list")
        ids = [m["id"] for m in body["data"]]
        self.assertEqual(ids, ["claude-sonnet-4", "claude-opus-4", "claude-haiku-4", "gpt-4o"])
        for m in body["data"]:
            self.assertEqual(m["object"], "model")
            self.assertEqual(m["owned_by"], "anthropic")

    def test_model(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/claude-sonnet-4"))
        self.assertEqual(code, 200)
        self.assertEqual(body["id"], "claude-sonnet-4")
        self.assertEqual(body["object"], "model")

    def test_model_not_found(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("GET", "/v1/models/gpt-4o"))
        self.assertEqual(code, 404)
        self.assertOpenAIError(body, "model_not_found")
        self.assertEqual(body["error"]["param"], "model")

    def test_unknown_path(self) -> None:
        self.build()
        code, body, response = self.json_answer(self.request("GET", "/v2/nothing"))
        self.assertEqual(code, 404)
        self.assertOpenAIError(body, "unknown_url")
        self.assertIn("/v2/nothing", body["error"]["message"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])

    def test_wrong_method(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("GET", "/v1/chat/completions"))
        self.assertEqual(code, 405)
        self.assertOpenAIError(body, "method_not_allowed")
        code, body, _ = self.json_answer(self.request("POST", "/v1/models", b"{}"))
        self.assertEqual(code, 405)
        self.assertOpenAIError(body, "method_not_allowed")


class AuthTests(RoutesTestCase):
    def setUp(self) -> None:
        self.build(api_key="s3cret")

    def test_missing_key(self) -> None:
        for path in ("/v1/models", "/v1/models/sonnet"):
            code, body, _ = self.json_answer(self.request("GET", path))
            self.assertEqual(code, 401, path)
            self.assertOpenAIError(body, "invalid_api_key")
            self.assertIn("Authorization: Bearer", body["error"]["message"])

    def test_wrong_key(self) -> None:
        for header in ("Bearer nope", "s3cret", "Basic s3cret", "Bearer s3cret2"):
            code, body, _ = self.json_answer(self.request("GET", "/v1/models", headers={"Authorization": header}))
            self.assertEqual(code, 401, header)
            self.assertOpenAIError(body, "invalid_api_key")

    def test_right_key(self) -> None:
        for header in ("Bearer s3cret", "bearer s3cret"):
            code, body, _ = self.json_answer(self.request("GET", "/v1/models", headers={"Authorization": header}))
            self.assertEqual(code, 200, header)

    def test_chat_needs_key(self) -> None:
        code, body, _ = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body()))
        self.assertEqual(code, 401)
        self.assertOpenAIError(body, "invalid_api_key")
        self.assertEqual(self.spawner.calls, [])

    def test_health_open(self) -> None:
        code, body, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "ok")


class BodyTests(RoutesTestCase):
    def test_invalid_json(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("POST", "/v1/chat/completions", b"{nope"))
        self.assertEqual(code, 400)
        self.assertOpenAIError(body, "invalid_json")
        self.assertEqual(self.spawner.calls, [])

    def test_bad_field_named(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body(n=3)))
        self.assertEqual(code, 400)
        self.assertEqual(body["error"]["param"], "n")

    def test_unknown_model(self) -> None:
        self.build()
        code, body, _ = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body(model="gpt-4o")))
        self.assertEqual(code, 404)
        self.assertOpenAIError(body, "model_not_found")

    def test_cli_missing(self) -> None:
        self.build(None, claude_missing_reason="`claude` was not found on PATH (/usr/bin)")
        code, body, _ = self.json_answer(self.request("POST", "/v1/chat/completions", chat_body()))
        self.assertEqual(code, 503)
        self.assertOpenAIError(body, "cli_unavailable")
        self.assertIn(INSTALL_HINT, body["error"]["message"])
        self.assertEqual(self.spawner.calls, [])

    def test_too_large(self) -> None:
        daemon = self.build(max_body=64)
        client = SiteClient(daemon.site)
        d = client.http.post(URL + "/v1/chat/completions", data=chat_body(padding="x" * 200))
        client.flush()
        response = self.successResultOf(d)
        content = treq.content(response)
        client.flush()
        body = json.loads(self.successResultOf(content))
        self.assertEqual(response.code, 413)
        self.assertOpenAIError(body, "request_too_large")
        self.assertIn("64", body["error"]["message"])
        self.assertEqual(self.spawner.calls, [])

    def test_too_large_chunked(self) -> None:
        daemon = self.build(max_body=64)
        client = SiteClient(daemon.site)
        producer = BytesProducer(chat_body(padding="x" * 200))
        producer.length = UNKNOWN_LENGTH  # type: ignore[assignment]
        d = client.agent.request(b"POST", (URL + "/v1/chat/completions").encode(), None, producer)
        client.flush()
        response = self.successResultOf(d)
        content = treq.content(response)
        client.flush()
        self.assertEqual(response.code, 413)
        self.assertOpenAIError(json.loads(self.successResultOf(content)), "request_too_large")
        self.assertEqual(self.spawner.calls, [])

    def test_under_limit_accepted(self) -> None:
        daemon = self.build(max_body=4096)
        client = SiteClient(daemon.site)
        d = client.http.post(URL + "/v1/chat/completions", data=chat_body())
        client.flush()
        self.assertEqual(len(self.spawner.calls), 1)
        self.spawner.procs[0].outReceived(reply_lines("ok"))
        client.flush()
        response = self.successResultOf(d)
        content = treq.content(response)
        client.flush()
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(self.successResultOf(content))["choices"][0]["message"]["content"], "ok")


class UpstreamRetriesTests(RoutesTestCase):
    """
    The CLI retries upstream (--upstream-retries) only once its version is
    known to honour upstream's x-should-retry: false.
    """

    def spawned_retries(self) -> str:
        d = self.request("POST", "/v1/chat/completions", chat_body())
        env = self.spawner.calls[-1][3]
        self.spawner.procs[-1].outReceived(reply_lines("Hi."))
        self.json_answer(d)
        return str(env["CLAUDE_CODE_MAX_RETRIES"])

    def test_by_version(self) -> None:
        self.build(upstream_retries=3)
        self.assertEqual(self.spawned_retries(), "0")
        self.daemon.cli.read("2.1.332 (Claude Code)\n")
        self.assertEqual(self.daemon.cli.version, "2.1.332 (Claude Code)")
        self.assertEqual(self.spawned_retries(), "3")
        self.daemon.cli.read("2.1.197 (Claude Code)\n")
        self.assertEqual(self.spawned_retries(), "0")


class ChatTests(RoutesTestCase):
    def test_non_stream(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body())
        self.assertNoResult(d)
        [(_, executable, args, env, path)] = self.spawner.calls
        self.assertEqual(executable, self.daemon.manager.claude)
        self.assertEqual(args[args.index("--model") + 1], "sonnet")
        self.assertNotIn("ANTHROPIC_API_KEY", env)
        # the CLI's version is not known yet: no retries by the CLI (cli_retries)
        self.assertEqual(env["CLAUDE_CODE_MAX_RETRIES"], "0")
        stdin = b"".join(self.spawner.transports[0].written)
        self.assertEqual(
            json.loads(stdin),
            {"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "hi"}]}},
        )
        proc = self.spawner.procs[0]
        data = reply_lines("Hello there, friend.")
        # arbitrary byte boundaries
        for i in range(0, len(data), 37):
            proc.outReceived(data[i : i + 37])
        code, body, response = self.json_answer(d)
        self.assertEqual(code, 200)
        self.assertTrue(response.headers.getRawHeaders("x-request-id")[0].startswith("chatcmpl-"))
        self.assertEqual(body["id"], response.headers.getRawHeaders("x-request-id")[0])
        self.assertEqual(body["object"], "chat.completion")
        # the id the client asked for; the model that answered in a header
        self.assertEqual(body["model"], "sonnet")
        self.assertEqual(response.headers.getRawHeaders("x-claudeproxy-model"), [MODEL])
        self.assertEqual(body["choices"][0]["message"]["content"], "Hello there, friend.")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(body["usage"]["prompt_tokens"], 61)
        self.assertEqual(body["usage"]["completion_tokens"], 6)
        self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 50)
        self.assertEqual(self.killer.calls, [2001], "the process is ended after the request")
        code, health, _ = self.json_answer(self.request("GET", "/health"))
        self.assertEqual(health["requests"]["served"], 1)
        self.assertEqual(health["requests"]["in_flight"], 0)
        self.assertEqual(health["models"], {"sonnet": MODEL})

    def test_stream(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body(True, stream_options={"include_usage": True}))
        self.spawner.procs[0].outReceived(reply_lines("Streaming in pieces."))
        response, content = self.answer(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type")[0].split(";")[0], "text/event-stream")
        events = [e for e in content.decode("utf-8").split("\n\n") if e]
        self.assertTrue(all(e.startswith("data: ") for e in events), events)
        self.assertEqual(events[-1], "data: [DONE]")
        items = [json.loads(e[len("data: ") :]) for e in events[:-1]]
        self.assertEqual(items[0]["choices"][0]["delta"], {"role": "assistant", "content": ""})
        text = "".join(i["choices"][0]["delta"].get("content", "") for i in items if i["choices"])
        self.assertEqual(text, "Streaming in pieces.")
        finals = [i["choices"][0]["finish_reason"] for i in items if i["choices"] and i["choices"][0]["finish_reason"]]
        self.assertEqual(finals, ["stop"])
        self.assertEqual(items[-1]["choices"], [])
        self.assertEqual(items[-1]["usage"]["completion_tokens"], 6)
        for i in items:
            self.assertEqual(i["object"], "chat.completion.chunk")
            self.assertEqual(i["model"], "sonnet")
        self.assertEqual(response.headers.getRawHeaders("x-claudeproxy-model"), [MODEL])

    def test_stream_error_before_output_gets_status(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body(True))
        err = {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": 401,
            "result": "Failed to authenticate. API Error: 401",
        }
        self.spawner.procs[0].outReceived(line(err))
        code, body, _ = self.json_answer(d)
        self.assertEqual(code, 401)
        self.assertOpenAIError(body, "cli_not_logged_in")

    def test_stream_error_after_output_is_an_event(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body(True))
        data = reply_lines("partial answer")
        cut = data.index(b'"content_block_stop"')
        cut = data.rindex(b"\n", 0, cut) + 1
        proc = self.spawner.procs[0]
        proc.outReceived(data[:cut])
        err = {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": 500,
            "result": "API Error: 500 internal",
        }
        proc.outReceived(line(err))
        response, content = self.answer(d)
        self.assertEqual(response.code, 200)
        events = [e for e in content.decode("utf-8").split("\n\n") if e]
        self.assertEqual(events[-1], "data: [DONE]")
        error = json.loads(events[-2][len("data: ") :])
        self.assertOpenAIError(error, "upstream_error")
        text = "".join(
            json.loads(e[len("data: ") :])["choices"][0]["delta"].get("content", "")
            for e in events[:-2]
            if "choices" in e
        )
        self.assertEqual(text, "partial answer")

    def test_queue_full(self) -> None:
        self.build(max_concurrent=1, max_queued=0)
        first = self.request("POST", "/v1/chat/completions", chat_body())
        self.assertNoResult(first)
        second = self.request("POST", "/v1/chat/completions", chat_body())
        code, body, response = self.json_answer(second)
        self.assertEqual(code, 429)
        self.assertOpenAIError(body, "queue_full")
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        self.assertEqual(len(self.spawner.calls), 1)
        self.spawner.procs[0].outReceived(reply_lines("first"))
        code, body, _ = self.json_answer(first)
        self.assertEqual(code, 200)
        self.assertEqual(body["choices"][0]["message"]["content"], "first")

    def test_queued_request_runs_after_first(self) -> None:
        self.build(max_concurrent=1, max_queued=1)
        first = self.request("POST", "/v1/chat/completions", chat_body())
        second = self.request("POST", "/v1/chat/completions", chat_body())
        self.assertEqual(len(self.spawner.calls), 1)
        self.spawner.procs[0].outReceived(reply_lines("one"))
        self.assertEqual(self.json_answer(first)[0], 200)
        self.assertEqual(len(self.spawner.calls), 2)
        self.spawner.procs[1].outReceived(reply_lines("two"))
        code, body, _ = self.json_answer(second)
        self.assertEqual(body["choices"][0]["message"]["content"], "two")

    def test_cli_exits_before_result(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body())
        proc = self.spawner.procs[0]
        proc.outReceived(line({"type": "system", "subtype": "init", "model": MODEL}))
        proc.errReceived(b"Error: something broke inside the CLI\n")
        proc.processEnded(Failure(ProcessTerminated(exitCode=1)))
        code, body, _ = self.json_answer(d)
        self.assertEqual(code, 502)
        self.assertOpenAIError(body, "cli_error")
        self.assertIn("something broke inside the CLI", body["error"]["message"])

    def test_cli_exits_cleanly_without_result(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body())
        self.spawner.procs[0].processEnded(Failure(ProcessDone(0)))
        code, body, _ = self.json_answer(d)
        self.assertEqual(code, 502)
        self.assertIn("status 0", body["error"]["message"])

    def test_garbage_output(self) -> None:
        self.build()
        d = self.request("POST", "/v1/chat/completions", chat_body())
        self.spawner.procs[0].outReceived(b"this is not json\n")
        code, body, _ = self.json_answer(d)
        self.assertEqual(code, 502)
        self.assertIn("not stream-json", body["error"]["message"])

    def test_system_prompt_and_effort_reach_argv(self) -> None:
        self.build(system_prompt_mode="append")
        body = chat_body(
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            reasoning_effort="minimal",
            model="claude-opus-4",
        )
        d = self.request("POST", "/v1/chat/completions", body)
        [(_, _, args, _, _)] = self.spawner.calls
        self.assertEqual(args[args.index("--model") + 1], "opus")
        self.assertEqual(args[args.index("--append-system-prompt") + 1], "Be brief.")
        self.assertEqual(args[args.index("--effort") + 1], "low")
        self.spawner.procs[0].outReceived(reply_lines("ok"))
        self.assertEqual(self.json_answer(d)[0], 200)
