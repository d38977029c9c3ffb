"""
Unit tests for the dashboard's routes: /v1/usage, the page, the login
cookie (accepted by the dashboard only), and the Guard's same-origin rule.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, cast

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from claudeproxy.web.dashboard.login import CHECK_TIMEOUT, LoginState, from_auth_status, has_auth_status
from tests.test_unit_routes import URL, RoutesTestCase, chat_body, reply_lines

ORIGIN = "http://127.0.0.1:3456"


class NoRedirects(RoutesTestCase):
    def request(self, method: str, path: str, body: Any = None, headers: Any = None) -> Any:
        d = cast(Any, self.stub).request(method, URL + path, data=body, headers=headers or {}, allow_redirects=False)
        self.stub.flush()
        return d


class OpenDashboardTests(NoRedirects):
    def setUp(self) -> None:
        self.build(state_dir=tempfile.mkdtemp(prefix="cp-state-"), watchdog=False)

    def test_usage_json(self) -> None:
        d = self.request("POST", "/v1/chat/completions", chat_body())
        self.spawner.procs[0].outReceived(reply_lines("Hello."))
        self.assertEqual(self.json_answer(d)[0], 200)
        code, body, response = self.json_answer(self.request("GET", "/v1/usage"))
        self.assertEqual(code, 200)
        self.assertEqual(body["object"], "usage")
        self.assertEqual(body["live"]["served"], 1)
        self.assertEqual(body["live"]["in_flight"], 0)
        self.assertEqual(body["cli"]["login"]["logged_in"], True)
        day = body["history"]["windows"]["day"]
        self.assertEqual(day["clients"]["-"]["requests"], 1)
        self.assertEqual(day["clients"]["-"]["output_tokens"], 6)
        self.assertEqual(body["history"]["recent"][0]["model_served"], "claude-sonnet-5")
        self.assertEqual(set(body["history"]["windows"]), {"day", "week", "month"})

    def test_page(self) -> None:
        response, content = self.answer(self.request("GET", "/"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"])
        [csp] = response.headers.getRawHeaders("content-security-policy")
        self.assertIn("frame-ancestors 'none'", csp)
        self.assertIn("default-src 'none'", csp)
        nonce = csp.split("'nonce-")[1].split("'")[0]
        html = content.decode()
        self.assertIn('<script nonce="%s">' % (nonce,), html)
        self.assertIn('id="chart-requests"', html)
        self.assertNotIn("http://", html.replace("http://www.w3.org/2000/svg", ""))
        self.assertNotIn("https://", html)

    def test_no_state_dir(self) -> None:
        self.build(watchdog=False)
        code, body, _ = self.json_answer(self.request("GET", "/v1/usage"))
        self.assertEqual(code, 200)
        self.assertIsNone(body["history"])

    def test_same_origin_post_allowed_foreign_refused(self) -> None:
        response, _ = self.answer(
            self.request("POST", "/login", b"key=", headers={"Origin": ORIGIN, "Host": "127.0.0.1:3456"})
        )
        self.assertEqual(response.code, 303)
        for origin in ("http://localhost:8080", "http://127.0.0.1:3457", "null"):
            code, body, _ = self.json_answer(
                self.request("GET", "/v1/usage", headers={"Origin": origin, "Host": "127.0.0.1:3456"})
            )
            self.assertEqual(code, 403, origin)
            self.assertEqual(body["error"]["code"], "origin_not_allowed")
        # the same-origin rule is the dashboard's only: the API still refuses
        code, body, _ = self.json_answer(
            self.request(
                "POST", "/v1/chat/completions", chat_body(), headers={"Origin": ORIGIN, "Host": "127.0.0.1:3456"}
            )
        )
        self.assertEqual(code, 403)


class KeyedDashboardTests(NoRedirects):
    def setUp(self) -> None:
        self.build(
            state_dir=tempfile.mkdtemp(prefix="cp-state-"),
            api_keys=(("agent", "k-agent"), ("editor", "k-editor")),
            watchdog=False,
        )

    def login(self, key: str) -> Any:
        response, content = self.answer(
            self.request(
                "POST", "/login", ("key=" + key).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
            )
        )
        return response, content

    def test_login_form_without_key(self) -> None:
        response, content = self.answer(self.request("GET", "/"))
        self.assertEqual(response.code, 200)
        self.assertIn(b'action="/login"', content)
        self.assertNotIn(b"chart-requests", content)
        code, body, _ = self.json_answer(self.request("GET", "/v1/usage"))
        self.assertEqual(code, 401)

    def test_wrong_key(self) -> None:
        response, content = self.login("nope")
        self.assertEqual(response.code, 200)
        self.assertIn(b"not one of", content)
        self.assertIsNone(response.headers.getRawHeaders("set-cookie"))

    def test_cookie_flow(self) -> None:
        response, _ = self.login("k-editor")
        self.assertEqual(response.code, 303)
        [cookie] = response.headers.getRawHeaders("set-cookie")
        self.assertIn("HttpOnly", cookie)
        self.assertIn("samesite=strict", cookie.lower())
        self.assertIn("Path=/", cookie)
        self.assertNotIn("k-editor", cookie)
        pair = cookie.split(";")[0]
        code, body, _ = self.json_answer(self.request("GET", "/v1/usage", headers={"Cookie": pair}))
        self.assertEqual(code, 200)
        self.assertEqual(body["you"], "editor")
        self.assertEqual(body["clients"], ["agent", "editor"])
        self.assertNotIn("k-agent", json.dumps(body))
        response, content = self.answer(self.request("GET", "/", headers={"Cookie": pair}))
        self.assertIn(b"chart-requests", content)
        self.assertNotIn(b"k-editor", content)
        # the cookie is no API key
        for method, path, body_bytes in (("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat_body())):
            code, err, _ = self.json_answer(self.request(method, path, body_bytes, headers={"Cookie": pair}))
            self.assertEqual(code, 401, path)
        # logged out: the cookie is dead
        response, _ = self.answer(self.request("POST", "/logout", b"", headers={"Cookie": pair}))
        self.assertEqual(response.code, 303)
        code, _, _ = self.json_answer(self.request("GET", "/v1/usage", headers={"Cookie": pair}))
        self.assertEqual(code, 401)

    def test_key_header_works_for_usage(self) -> None:
        code, body, _ = self.json_answer(self.request("GET", "/v1/usage", headers={"Authorization": "Bearer k-agent"}))
        self.assertEqual(code, 200)
        self.assertEqual(body["you"], "agent")


class LoginStateTests(NoRedirects):
    def test_auth_status(self) -> None:
        self.assertTrue(has_auth_status("2.1.197 (Claude Code)"))
        self.assertFalse(has_auth_status("1.0.3 (Claude Code)"))
        self.assertFalse(has_auth_status(None))
        state = from_auth_status(b'{\n "loggedIn": true, "authMethod": "oauth_token"\n}', 5.0)
        self.assertEqual(state, LoginState(True, "oauth_token", "auth status", 5.0))
        self.assertIsNone(from_auth_status(b"garbage", 5.0).logged_in)
        # a claude.ai login names its plan (subscriptionType; planTier on 2.1.332)
        state = from_auth_status(
            b'{"loggedIn": true, "authMethod": "claude.ai", "subscriptionType": "max", "planTier": "max_20x"}', 5.0
        )
        self.assertEqual((state.subscription, state.plan_tier), ("max", "max_20x"))

    def test_requests_update_it(self) -> None:
        self.build(watchdog=False)
        proxy = self.daemon.proxy
        proxy.login_seen(401, "cli_not_logged_in")
        self.assertIs(proxy.login.state.logged_in, False)
        proxy.login_seen(200, None)
        self.assertIs(proxy.login.state.logged_in, True)

    def test_print_mode_check_waits_for_the_version(self) -> None:
        """
        A "not logged in" answer before the CLI's version is known starts
        no process; once it is known, C{auth status} runs, then the
        offline C{-p} probe (stdin closed), and a refusal reaches /health.
        """
        self.build(watchdog=False)
        reactor = ProcessReactor()
        proxy = self.daemon.proxy
        proxy.login.reactor = reactor
        proxy.login_seen(401, "cli_not_logged_in")
        self.assertEqual(reactor.spawned, [])
        self.daemon.cli.version = "2.1.197 (Claude Code)"
        proxy.cli_version_known()
        self.assertEqual(len(reactor.spawned), 1)
        auth = reactor.spawned[0]
        self.assertEqual(auth.args[1:], ["auth", "status", "--json"])
        self.assertTrue(auth.transport.stdin_closed)
        self.assertEqual(len(proxy.background), 1)
        auth.end(b'{"loggedIn": true, "authMethod": "claude.ai"}\n')
        self.assertEqual(len(reactor.spawned), 2)
        run = reactor.spawned[1]
        self.assertIn("-p", run.args)
        self.assertEqual(run.env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:1")
        self.assertTrue(run.transport.stdin_closed)
        run.end(b'{"type":"result","is_error":true,"result":"Not logged in \\u00b7 Please run /login"}\n')
        self.assertEqual(proxy.background, set())
        code, body, _ = self.json_answer(self.request("GET", "/health"))
        self.assertIn("refuses the subscription login in -p mode", body["cli"]["login_warning"])
        # asked once only
        proxy.login_seen(401, "cli_not_logged_in")
        self.assertEqual(len(reactor.spawned), 2)

    def checking(self) -> tuple[Any, ProcessReactor]:
        """
        A daemon whose CLI is known and whose login check is under way, on
        a reactor that records the check's process.
        """
        self.build(watchdog=False)
        reactor = ProcessReactor()
        proxy = self.daemon.proxy
        proxy.login.reactor = reactor
        self.daemon.cli.version = "2.1.197 (Claude Code)"
        proxy.login_seen(401, "cli_not_logged_in")
        return proxy, reactor

    def test_a_check_that_hangs_is_killed(self) -> None:
        proxy, reactor = self.checking()
        reactor.advance(CHECK_TIMEOUT)
        self.assertEqual(reactor.spawned[0].transport.signals, ["KILL"])

    def test_stopping_ends_the_checks(self) -> None:
        """
        A daemon stopping ends the login check under way (its answer no
        longer matters), keeps it as background work until it has ended,
        and starts no other.
        """
        proxy, reactor = self.checking()
        proxy.shutdown()
        auth = reactor.spawned[0]
        self.assertEqual(auth.transport.signals, ["KILL"])
        self.assertEqual(len(proxy.background), 1)
        auth.protocol.processEnded(Failure(ProcessTerminated(signal=9)))
        self.assertEqual(proxy.background, set())
        self.assertEqual(len(reactor.spawned), 1)


class _Transport:
    def __init__(self) -> None:
        self.stdin_closed = False
        self.signals: list[str] = []

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def signalProcess(self, signal: str) -> None:
        self.signals.append(signal)


class _Spawned:
    def __init__(self, protocol: Any, args: list[str], env: dict[str, str]) -> None:
        self.protocol = protocol
        self.args = args
        self.env = env
        self.transport = _Transport()
        protocol.makeConnection(self.transport)

    def end(self, out: bytes, code: int = 0) -> None:
        self.protocol.outReceived(out)
        self.protocol.processEnded(Failure(ProcessDone(code) if code == 0 else ProcessTerminated(code)))


class ProcessReactor(MemoryReactorClock):
    """
    A memory reactor that records the processes it is asked to start.
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[_Spawned] = []

    def spawnProcess(self, protocol: Any, executable: str, args: Any, env: Any = None, path: Any = None) -> Any:
        spawned = _Spawned(protocol, list(args), dict(env or {}))
        self.spawned.append(spawned)
        return spawned.transport
