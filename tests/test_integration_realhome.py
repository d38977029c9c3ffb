"""
On a real user's machine the model sees only what the client sent: with a
HOME that holds what a Claude Code user has (tests/realhome.py), none of
it reaches upstream and none of its hooks run, on every protocol, with the
client's own functions too; the login still works from the credentials
file; and the opt-in lets the user's settings in, but not the rest.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import anthropic
import openai
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests import realhome
from tests.fakeanthropic import Reply, ToolUse
from tests.harness import FAKECLIS, Running, fast_script, scaled, sleep, start
from tests.test_integration_tools import WEATHER


async def start_at_home(test: TestCase, **overrides: Any) -> tuple[Running, str]:
    home = realhome.make(tempfile.mkdtemp(prefix="cp-realhome-"))
    workdir = tempfile.mkdtemp(prefix="cp-work-")
    realhome.add_memory(home, workdir)
    d = await start(test, home=home, workdir=workdir, **overrides)
    return d, home


class IsolationTests(TestCase):
    timeout = 120

    def assertNothingOfTheUser(self, d: Running, home: str) -> None:
        self.assertTrue(d.fake.message_requests)
        for r in d.fake.message_requests:
            self.assertEqual(realhome.markers_in(r.body), [], "the user's set-up reached upstream")
        self.assertEqual(realhome.hooks_ran(home), [], "the user's hooks ran")

    def _openai(self, d: Running) -> openai.OpenAI:
        client = openai.OpenAI(base_url=d.url + "/v1", api_key="unused", max_retries=0, timeout=scaled(60))
        self.addCleanup(client.close)
        return client

    async def test_chat_completions_with_a_tool_loop(self) -> None:
        """
        Streamed, with the client's function called and answered (the
        user's PreToolUse and PostToolUse hooks would run for it).
        """
        d, home = await start_at_home(self)
        d.fake.push(
            Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("mcp__cp__get_weather", {"city": "Bern"}),)),
            Reply(text="Sunny in Bern."),
        )
        client = self._openai(d)

        def loop() -> str:
            messages: list[Any] = [{"role": "user", "content": "Weather in Bern?"}]
            first = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER])
            call = (first.choices[0].message.tool_calls or [])[0]
            messages += [
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "22 C, sunny"},
            ]
            chunks = client.chat.completions.create(model="sonnet", messages=messages, tools=[WEATHER], stream=True)
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        self.assertEqual(await deferToThread(loop), "Sunny in Bern.")
        self.assertEqual(len(d.fake.message_requests), 2)
        self.assertNothingOfTheUser(d, home)

    async def test_messages(self) -> None:
        d, home = await start_at_home(self)
        d.fake.default = Reply(text="Hello.")
        client = anthropic.Anthropic(base_url=d.url, api_key="unused", max_retries=0, timeout=scaled(60))
        self.addCleanup(client.close)

        def call() -> str:
            with client.messages.stream(
                model="claude-sonnet-5", max_tokens=200, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                return "".join(stream.text_stream)

        self.assertEqual(await deferToThread(call), "Hello.")
        self.assertNothingOfTheUser(d, home)

    async def test_responses(self) -> None:
        d, home = await start_at_home(self)
        d.fake.default = Reply(text="Hello.")
        client = self._openai(d)
        response = await deferToThread(lambda: client.responses.create(model="sonnet", input="hi"))
        self.assertEqual(response.output_text, "Hello.")
        self.assertNothingOfTheUser(d, home)

    async def test_warm_process_and_live_conversation(self) -> None:
        """
        A process started ahead, and the second turn of a live
        conversation: still nothing of the user's.
        """
        d, home = await start_at_home(self, warm=1, max_sessions=1)
        d.fake.default = Reply(text="Noted.")
        client = self._openai(d)

        def two_turns() -> None:
            messages: list[Any] = [{"role": "user", "content": "one"}]
            first = client.chat.completions.create(model="sonnet", messages=messages)
            messages += [{"role": "assistant", "content": first.choices[0].message.content}]
            messages += [{"role": "user", "content": "two"}]
            client.chat.completions.create(model="sonnet", messages=messages)

        await deferToThread(two_turns)
        self.assertEqual(len(d.fake.message_requests), 2)
        self.assertNothingOfTheUser(d, home)

    async def test_health_says_what_was_found(self) -> None:
        d, home = await start_at_home(self)
        resp = await d.get("/health")
        setup = json.loads(await resp.text())["claude_setup"]
        self.assertEqual(setup["config_dir"], os.path.join(home, ".claude"))
        self.assertFalse(setup["settings_applied"])
        found = setup["found"]
        self.assertEqual(found["claude_md"], 3)
        self.assertEqual(found["hooks"], len(realhome.HOOK_EVENTS) + 1, "the user's and the plugin's")
        self.assertEqual(found["output_style"], "Explanatory")
        self.assertEqual(found["plugins"], 1)
        self.assertEqual(found["memory"], 1)
        self.assertIn("3 CLAUDE.md files", setup["summary"])
        self.assertIn("7 hooks", setup["summary"])
        self.assertIn("output style Explanatory", setup["summary"])
        self.assertTrue(setup["summary"].endswith("not applied to API requests"), setup["summary"])

    async def test_login_from_the_credentials_file(self) -> None:
        """
        No CLAUDE_CODE_OAUTH_TOKEN: the login the CLI keeps in
        ~/.claude/.credentials.json is still sent, with every settings
        source off.
        """
        home = realhome.make(tempfile.mkdtemp(prefix="cp-realhome-"))
        credentials = {
            "claudeAiOauth": {
                "accessToken": "sk-ant-oat01-from-the-file",
                "refreshToken": "sk-ant-ort01-unused",
                "expiresAt": int((time.time() + 86400) * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
            }
        }
        with open(os.path.join(home, ".claude", ".credentials.json"), "w") as f:
            json.dump(credentials, f)
        d = await start(self, home=home, oauth_token=False)
        d.fake.default = Reply(text="Hello.")
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        self.assertEqual(d.fake.message_requests[0].headers.get("authorization"), "Bearer sk-ant-oat01-from-the-file")
        self.assertNothingOfTheUser(d, home)

    async def test_opt_in_lets_the_settings_in_and_nothing_else(self) -> None:
        """
        --use-claude-settings: the settings' env applies (here its
        CLAUDE_CODE_MAX_OUTPUT_TOKENS), CLAUDE.md, hooks, output style and
        memory still do not.
        """
        d, home = await start_at_home(self, use_claude_settings=True)
        d.fake.default = Reply(text="Hello.")
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        (request,) = d.fake.message_requests
        self.assertEqual(
            realhome.markers_in(request.body), ["settings env (max_tokens %d)" % (realhome.ENV_MAX_OUTPUT_TOKENS,)]
        )
        self.assertEqual(realhome.hooks_ran(home), [])
        setup = json.loads(await (await d.get("/health")).text())["claude_setup"]
        self.assertTrue(setup["settings_applied"])
        self.assertIn("your settings apply (--use-claude-settings)", setup["summary"])


class PrintModeLoginTests(TestCase):
    timeout = 60

    async def test_health_warns_when_print_mode_refuses_the_login(self) -> None:
        """
        A CLI that says it is logged in but answers every -p run "Not
        logged in": after the first such request, /health says why.
        """
        bare = fast_script(os.path.join(FAKECLIS, "bare.py"), self.mktemp())
        d = await start(self, claude=bare)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual((code, body["error"]["code"]), (401, "cli_not_logged_in"))

        async def warning() -> Any:
            return json.loads(await (await d.get("/health")).text())["cli"].get("login_warning")

        for _ in range(int(scaled(100))):
            if await warning():
                break
            await sleep(0.1)
        text = await warning()
        self.assertIsNotNone(text)
        self.assertIn("refuses the subscription login in -p mode", text)
