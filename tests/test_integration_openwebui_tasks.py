"""
Open WebUI's task requests (title, tags, follow-ups) through the daemon and
the real CLI, as Open WebUI sends them: one user message, not streamed,
with the official openai SDK (Open WebUI's title request carries
C{max_tokens: 1000}); the reply is the JSON the page parses.
"""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import ChatCompletionMessageParam
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import TASK_ANSWERS, Reply
from tests.harness import scaled, start
from tests.openwebui_tasks import TASKS, filled


class OpenWebUITaskTests(TestCase):
    timeout = 180

    async def test_title_tags_follow_ups(self) -> None:
        d = await start(self)
        # the conversation's own reply is queued; task prompts do not take it
        d.fake.push(Reply(text="Paris."))
        client = openai.OpenAI(base_url=d.url + "/v1", api_key="unused", timeout=scaled(60))
        self.addCleanup(client.close)

        def ask(messages: list[ChatCompletionMessageParam], **kw: Any) -> str:
            reply = client.chat.completions.create(model="claude-sonnet-4", messages=messages, **kw)
            return reply.choices[0].message.content or ""

        answer = await deferToThread(ask, [{"role": "user", "content": "What is the capital of France?"}])
        self.assertEqual(answer, "Paris.")
        for key, template in TASKS.items():
            extra = {"max_tokens": 1000} if key == "title" else {}
            text = await deferToThread(ask, [{"role": "user", "content": filled(template)}], **extra)
            self.assertEqual(json.loads(text), {key: TASK_ANSWERS[key]}, key)
        self.assertEqual(d.fake.task_requests, 3)
