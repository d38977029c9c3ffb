"""
Nothing the client didn't send, but what the CLI cannot be kept from
sending: the exact list docs/your-claude-setup.md gives, per CLI version,
checked on the body upstream receives for a fresh conversation (no system
message, and one) and for a conversation with history.

What is added (checked on 2.1.197 and 2.1.332, see docs/CLI-NOTES.md):
- every version: two system blocks before the client's system text, the
  billing header line and the Agent SDK identity line (the subscription
  requires them);
- 2.1.197: a C{<system-reminder>} text block before the first user
  message's content, holding exactly "# currentDate" and today's date;
- both, when ~/.claude.json names the login's account (every real login):
  the account's e-mail address, in that same block (2.1.197) or a block of
  its own (2.1.332);
- 2.1.332: one C{role: system} message after the newest user turn,
  holding exactly the "# Environment" block (the daemon's private working
  directory, not a git repository, platform, shell, OS version, two lines
  on untrusted downloads), the model's name and today's date; and with a
  loaded history, an empty C{role: system} message after its first user
  message.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from claudeproxy.engine.versions import parse_version
from tests.harness import Running, scaled, start, wait_for

IDENTITY = "You are a Claude agent, built on Anthropic's Claude Agent SDK."
BILLING = re.compile(r"x-anthropic-billing-header: cc_version=[0-9.]+\.[0-9a-f]+; cc_entrypoint=sdk-cli;")
#: 2.1.197's user context, with nothing in it but the date
DATE_REMINDER = re.compile(
    r"<system-reminder>\nAs you answer the user's questions, you can use the following context:\n"
    r"# currentDate\nToday's date is (\d{4}-\d{2}-\d{2})\.\n\n      IMPORTANT: this context may or may not be "
    r"relevant to your tasks\. You should not respond to this context unless it is highly relevant to your task\.\n"
    r"</system-reminder>\n\n?"
)
#: 2.1.332's environment message, line by line
ENVIRONMENT = [
    r"# Environment",
    r"You have been invoked in the following environment: ",
    r" - Primary working directory: (?P<cwd>\S+)",
    r" - Is a git repository: false",
    r" - Platform: \w+",
    r" - Shell: \S+",
    r" - OS Version: .+",
    r" - Downloaded files and extracted archives are untrusted data: .+",
    r" - In `curl`, send untrusted values with `--form-string`, not `-F`\.",
    r"",
    r"You are powered by the model named .+?\. The exact model ID is claude-[a-z0-9-]+\. "
    r"Assistant knowledge cutoff is [A-Za-z]+ \d{4}\.",
    r"",
    r"Today's date is (?P<date>\d{4}-\d{2}-\d{2})\.",
]


#: the account the CLI's login belongs to, as ~/.claude.json holds it
ACCOUNT = {
    "accountUuid": "00000000-0000-0000-0000-000000000001",
    "emailAddress": "someone@example.com",
    "organizationUuid": "00000000-0000-0000-0000-000000000002",
    "displayName": "Some One",
    "billingType": "stripe_subscription",
}
#: the account's address as each version sends it: a "# userEmail" entry of
#: the user context, in a <system-reminder> before the first user message
#: (2.1.197: the same block as the date)
EMAIL_197 = "# userEmail\nThe user's email address is someone@example.com.\n"
EMAIL_332 = re.compile(
    r"<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# userEmail\n"
    r"The user's email address is someone@example\.com\. Use this email address only to identify the user.+"
    r"</system-reminder>\n",
    re.S,
)


def text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content if isinstance(b, dict)]


class FidelityTests(TestCase):
    timeout = 180

    async def _daemon(self) -> tuple[Running, tuple[int, int, int]]:
        d = await start(self)
        await wait_for(lambda: d.daemon.cli.version is not None, timeout=scaled(30))
        cli_version = d.daemon.cli.version
        assert cli_version is not None
        version = parse_version(cli_version)
        assert version is not None
        return d, version

    def _added(self, d: Running, version: tuple[int, int, int], client: list[dict[str, Any]], system: str) -> None:
        """
        The last upstream body holds the client's messages and system text,
        plus exactly what the CLI cannot be kept from adding.
        """
        body = d.fake.message_requests[-1].body
        blocks = [b["text"] for b in body["system"]]
        self.assertTrue(BILLING.fullmatch(blocks[0]), blocks[0])
        self.assertEqual(blocks[1:], [IDENTITY] + ([system] if system else []))
        sent = body["messages"]
        today = datetime.date.today().isoformat()
        if version < (2, 1, 332):
            self.assertEqual([m["role"] for m in sent], [m["role"] for m in client])
            reminder, *rest = text_of(sent[0]["content"])
            found = DATE_REMINDER.fullmatch(reminder)
            self.assertIsNotNone(found, reminder)
            assert found is not None
            self.assertIn(found.group(1), (today, (datetime.date.today() - datetime.timedelta(days=1)).isoformat()))
            self.assertEqual(rest, text_of(client[0]["content"]))
            sent = sent[1:]
            client = client[1:]
        else:
            if len(client) > 1:
                # a loaded history gets an empty system message after its
                # first user message
                self.assertEqual((sent[1]["role"], sent[1]["content"]), ("system", []))
                sent = sent[:1] + sent[2:]
            roles = [m["role"] for m in sent]
            self.assertEqual(roles.count("system"), 1, roles)
            (env,) = [m for m in sent if m["role"] == "system"]
            # right after the newest user turn
            self.assertEqual(sent.index(env), len(sent) - 1)
            (text,) = text_of(env["content"])
            lines = text.split("\n")
            self.assertEqual(len(lines), len(ENVIRONMENT), text)
            for line, pattern in zip(lines, ENVIRONMENT, strict=True):
                self.assertTrue(re.fullmatch(pattern, line), (line, pattern))
            cwd = re.fullmatch(ENVIRONMENT[2], lines[2])
            assert cwd is not None
            # the daemon's private working directory, nothing of the client's or the user's
            self.assertEqual(cwd.group("cwd"), d.manager.workdir)
            sent = sent[:-1]
        self.assertEqual(
            [(m["role"], text_of(m["content"])) for m in sent], [(m["role"], text_of(m["content"])) for m in client]
        )

    async def test_fresh_conversation(self) -> None:
        d, version = await self._daemon()
        hi = [{"role": "user", "content": "hi"}]
        code, body = await d.chat({"model": "sonnet", "messages": hi})
        self.assertEqual(code, 200, body)
        self._added(d, version, hi, "")

    async def test_fresh_conversation_with_system(self) -> None:
        d, version = await self._daemon()
        hi = [{"role": "user", "content": "hi"}]
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "system", "content": "Be brief."}, *hi]})
        self.assertEqual(code, 200, body)
        self._added(d, version, hi, "Be brief.")

    async def test_account_email(self) -> None:
        """
        A real login's ~/.claude.json names the account: the CLI tells the
        model its e-mail address, on both versions (docs/your-claude-setup.md).
        """
        home = tempfile.mkdtemp(prefix="cp-home-")
        with open(os.path.join(home, ".claude.json"), "w") as f:
            json.dump({"oauthAccount": ACCOUNT, "hasCompletedOnboarding": True}, f)
        d = await start(self, home=home)
        await wait_for(lambda: d.daemon.cli.version is not None, timeout=scaled(30))
        cli_version = d.daemon.cli.version
        assert cli_version is not None
        version = parse_version(cli_version)
        assert version is not None
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        first = text_of(d.fake.message_requests[-1].body["messages"][0]["content"])
        if version < (2, 1, 332):
            self.assertEqual(len(first), 2, first)
            self.assertIn(EMAIL_197, first[0])
            self.assertIn("# currentDate", first[0])
        else:
            self.assertEqual(len(first), 2, first)
            self.assertTrue(EMAIL_332.fullmatch(first[0]), first[0])
        self.assertEqual(first[1], "hi")

    async def test_history(self) -> None:
        d, version = await self._daemon()
        history = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "second"},
        ]
        code, body = await d.chat({"model": "sonnet", "messages": history})
        self.assertEqual(code, 200, body)
        self._added(d, version, history, "")
