"""
One login across many CLIs, through the real CLI with a stored login
(~/.claude/.credentials.json, no CLAUDE_CODE_OAUTH_TOKEN) and a fake of
Anthropic's account hosts (tests/fakeaccount.py: the OAuth token endpoint
and the account API, reached through HTTPS_PROXY with NODE_EXTRA_CA_CERTS);
the fake upstream accepts only the access tokens the fake account issued
and has not seen expire.
"""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakeaccount import FakeAccount
from tests.harness import reactor, scaled, sleep, start, wait_for
from tests.test_integration_limits import get_json


async def with_account(test: TestCase, lifetime: float, **overrides: Any) -> tuple[Any, FakeAccount]:
    account = FakeAccount(reactor)
    proxy = account.listen()
    test.addCleanup(account.stop)
    home = tempfile.mkdtemp(prefix="cp-home-")
    account.write_credentials(home, lifetime)
    env = account.env(proxy)
    # the CLI fetches the plan's usage only when nonessential traffic is allowed
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = ""
    d = await start(test, home=home, oauth_token=False, extra_env=env, **overrides)
    d.fake.check_auth = account.valid
    return d, account


class LoginTests(TestCase):
    timeout = 300

    async def test_usage_from_the_real_cli(self) -> None:
        """
        The usage check at start, answered by the real CLI from the account
        API (through its stored login): the windows before any request.
        """
        d, account = await with_account(self, 3600, usage_check=300.0)
        await wait_for(lambda: d.proxy.usage_report is not None, timeout=30)
        report = d.proxy.usage_report
        self.assertEqual(report.error, None, report)
        figures = await deferToThread(get_json, d.url + "/v1/usage")
        windows = figures["limits"]["windows"]
        self.assertEqual(windows["seven_day"]["utilization"], 0.64)
        self.assertEqual(figures["limits"]["overage"]["extra_usage"]["monthly_limit"], 5000)
        self.assertIn("/api/oauth/usage", [s.path for s in account.seen])
        # /health names the login and when its access token expires
        health = await deferToThread(get_json, d.url + "/health")
        stored = health["login"]["stored"]
        self.assertTrue(stored["refreshable"])
        self.assertLess(abs(stored["expires_at"] - account.access["at-1"]), 1)
        self.assertGreater(stored["expires_in"], 3000)
        from tests.test_integration_usage import limits_in_browser

        seen = await deferToThread(limits_in_browser, d.url)
        self.assertEqual(seen["errors"], [])
        self.assertTrue(seen["token"].startswith("access token expires "), seen)
        self.assertIn("64% used", seen["windows"]["seven_day"])
        self.assertEqual([r.path for r in d.fake.requests if r.path.startswith(b"/v1/messages")], [])

    async def test_access_token_expiry_under_load(self) -> None:
        """
        24 requests at once, each on a CLI of its own, after the stored
        access token expired: the CLIs take the refresh lock in the config
        directory in turn, one refreshes (the token endpoint rotates the
        refresh token, so a second refresh with the old one would be
        invalid_grant, and the CLI would then wipe the stored login), the
        others read the new token; every request is answered.
        """
        n = 24
        d, account = await with_account(
            self, 2.0, max_concurrent=n, max_queued=n, max_cli_processes=n + 2, request_timeout=scaled(240)
        )
        # the access token has expired before any CLI starts
        await sleep(2.5)
        self.assertFalse(account.valid("Bearer at-1"))
        results = await DeferredList(
            [
                Deferred.fromCoroutine(
                    d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi %d" % (i,)}]})
                )
                for i in range(n)
            ],
            consumeErrors=True,
        )
        codes = [r[1][0] if r[0] else repr(r[1]) for r in results]
        failures = [r[1][1] for r in results if r[0] and r[1][0] != 200]
        self.assertEqual(codes, [200] * n, (failures[:3], account.refreshes, account.refused))
        self.assertEqual(account.refused, [])
        self.assertEqual(len(account.refreshes), 1, account.refreshes)
        # no request reached upstream with a dead token
        self.assertEqual(d.fake.unauthorized, 0)

    async def test_login_lost_then_back(self) -> None:
        """
        The login is revoked mid-run (the refresh is refused): requests get
        a 401 in their protocol's shape naming the fix; once the user logs
        in again (a new stored login), the daemon serves again without a
        restart.
        """
        import anthropic
        import openai

        d, account = await with_account(self, 3600, warm=1)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        # the login is revoked, and the access token expires
        account.revoked = True
        account.access = {k: 0.0 for k in account.access}

        def refused() -> tuple[Any, Any]:
            oai = openai.OpenAI(base_url=d.url + "/v1", api_key="k", timeout=scaled(60), max_retries=0)
            ant = anthropic.Anthropic(base_url=d.url, api_key="k", timeout=scaled(60), max_retries=0)
            with self.assertRaises(openai.AuthenticationError) as chat:
                oai.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "again"}])
            with self.assertRaises(anthropic.AuthenticationError) as messages:
                ant.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "again"}])
            return chat.exception, messages.exception

        chat, messages = await deferToThread(refused)
        self.assertEqual(chat.code, "cli_not_logged_in")
        for e in (chat, messages):
            self.assertIn("run `claude` in a terminal and log in (/login)", e.message)
        self.assertEqual(messages.body["error"]["type"], "authentication_error")
        health = await deferToThread(get_json, d.url + "/health")
        self.assertEqual(health["login"]["logged_in"], False)
        self.assertIn("/login", health["login"]["fix"])
        stored = health["login"]["stored"]
        if (d.daemon.cli.version or "").startswith("2.1.197"):
            # 2.1.197 answers the upstream 401 "Failed to authenticate" without trying a refresh (the
            # stored token had not expired by its expiresAt): the stored login stays as it was
            self.assertEqual((account.refused, stored["has_access_token"]), ([], True))
        else:
            # 2.1.332 forces a refresh on the 401; refused (invalid_grant), it wipes the stored login,
            # for every CLI of this config directory
            self.assertEqual(
                (account.refused, stored["has_access_token"], stored["refreshable"]), (["rt-0"], False, False)
            )
        # the user logs in again
        account.revoked = False
        account.write_credentials(d.env["HOME"], 3600)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "back"}]})
        self.assertEqual(code, 200, body)
        health = await deferToThread(get_json, d.url + "/health")
        self.assertEqual(health["login"]["logged_in"], True)

    async def test_usage_check_refreshes_ahead_of_expiry(self) -> None:
        """
        The stored access token expires in 5 minutes and 10 seconds: the
        check at start leaves it (the CLI refreshes only within 5
        minutes), the next check comes when it enters that window, and its
        CLI refreshes it, alone, before any request needs it.
        """
        d, account = await with_account(self, 310.0, usage_check=3600.0)
        await wait_for(lambda: d.daemon.usage_checker.checks >= 1 and d.proxy.usage_report is not None, timeout=30)
        self.assertEqual(account.refreshes, [])
        checker = d.daemon.usage_checker
        await wait_for(lambda: checker.checks >= 2 and checker.running is None, timeout=40)
        self.assertEqual((account.refreshes, account.refused), (["rt-0"], []))
        # the check's CLI exited by itself, after saving the new login
        health = await deferToThread(get_json, d.url + "/health")
        self.assertGreater(health["login"]["stored"]["expires_in"], 3000)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        self.assertEqual(len(account.refreshes), 1)

    async def test_access_token_expiry_while_cli_processes_live(self) -> None:
        """
        24 conversations, each kept on a live CLI process; the stored access
        token then enters the CLIs' refresh window and the upstream stops
        taking it: the
        24 follow-ups, at once on those same processes, each need a fresh
        token.  One refresh, every follow-up answered.
        """
        n = 24
        # valid past the CLIs' 5-minute refresh window while the 24 start (scaled: the machine's load)
        d, account = await with_account(
            self,
            300.0 + scaled(30.0),
            max_concurrent=n,
            max_queued=n,
            max_cli_processes=n + 2,
            max_sessions=n,
            session_ttl=600.0,
            request_timeout=scaled(240),
        )

        def first(i: int) -> dict[str, Any]:
            return {"model": "sonnet", "messages": [{"role": "user", "content": "conversation %d" % (i,)}]}

        answers = await DeferredList([Deferred.fromCoroutine(d.chat(first(i))) for i in range(n)], consumeErrors=True)
        self.assertEqual([a[1][0] if a[0] else repr(a[1]) for a in answers], [200] * n)
        self.assertEqual(account.refreshes, [], "the first round took too long: the token entered the window")
        # the token enters the CLIs' 5-minute refresh window, and the upstream takes it no more
        await sleep(max(0.0, account.access["at-1"] - reactor.seconds() - 300.0) + 1.0)
        account.access["at-1"] = 0.0

        def follow_up(i: int, reply: str) -> dict[str, Any]:
            messages = first(i)["messages"] + [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": "and then?"},
            ]
            return {"model": "sonnet", "messages": messages}

        resps = await DeferredList(
            [
                Deferred.fromCoroutine(
                    d.post("/v1/chat/completions", follow_up(i, answers[i][1][1]["choices"][0]["message"]["content"]))
                )
                for i in range(n)
            ],
            consumeErrors=True,
        )
        codes = [r[1].code if r[0] else repr(r[1]) for r in resps]
        served = [r[1].headers.getRawHeaders(b"x-claudeproxy-served", [b"?"])[0].decode() for r in resps if r[0]]
        self.assertEqual(codes, [200] * n, (account.refreshes, account.refused, served))
        # the follow-ups ran on the processes that held the conversations
        self.assertEqual(served.count("session"), n, served)
        self.assertEqual((len(account.refreshes), account.refused), (1, []))
        self.assertEqual(d.fake.unauthorized, 0)
