"""
Unit tests for the dashboard's routes: /v1/usage, the page, the login
cookie (accepted by the dashboard only), and the Guard's same-origin rule.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, cast

from claudeproxy.web.dashboard.login import LoginState, from_auth_status, has_auth_status
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
        self.assertIs(proxy.cli_login.logged_in, False)
        proxy.login_seen(200, None)
        self.assertIs(proxy.cli_login.logged_in, True)
