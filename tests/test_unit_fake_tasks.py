"""
The fake upstream answers a chat UI's task prompts with the JSON they ask
for, so titles, tags and follow-ups can be tested end to end.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.fakeanthropic import TASK_ANSWERS, task_answer
from tests.openwebui_tasks import TASKS, filled


def body(text: str, reminder: bool = False) -> dict[str, Any]:
    blocks = [{"type": "text", "text": text}]
    if reminder:
        blocks.insert(0, {"type": "text", "text": "<system-reminder>\n# currentDate\n</system-reminder>\n"})
    return {"messages": [{"role": "user", "content": blocks}]}


class TaskAnswerTests(SynchronousTestCase):
    def test_open_webui_tasks(self) -> None:
        for key, template in TASKS.items():
            for reminder in (False, True):
                answer = task_answer(body(filled(template), reminder))
                assert answer is not None
                self.assertEqual(json.loads(answer), {key: TASK_ANSWERS[key]}, key)

    def test_unknown_key_keeps_the_examples_type(self) -> None:
        prompt = (
            '### Task:\nDo it.\n### Output:\nStrictly return in JSON format:\n{\n  "answer": "x",\n  "list": ["a"]\n}'
        )
        self.assertEqual(json.loads(task_answer(body(prompt)) or ""), {"answer": "fake", "list": ["fake"]})

    def test_plain_title(self) -> None:
        prompt = "### Task:\nGenerate a title.\n### Output:\nReturn ONLY the title text, nothing else."
        self.assertEqual(task_answer(body(prompt)), TASK_ANSWERS["title"])

    def test_other_requests(self) -> None:
        self.assertIsNone(task_answer(body("hi")))
        self.assertIsNone(task_answer(body("Tell me about ### Task: and JSON format: {}")))
        self.assertIsNone(task_answer({"messages": []}))
