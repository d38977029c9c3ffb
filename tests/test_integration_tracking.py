"""
Every CLI process is tracked, a resumed tool call's included: the real CLI
against the fake upstream, killed mid-way through a resumed turn, and
/health's count of live processes against what really runs.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply
from tests.harness import Running, left_running, start_settled, wait_for
from tests.test_integration_tools import WEATHER, calls

SLOW = Reply(text="".join("word%03d " % i for i in range(200)), chunk=8, delay=0.1)


async def health(d: Running) -> Any:
    resp = await d.get("/health")
    return json.loads(await resp.content())


async def call_weather(d: Running) -> list[Any]:
    """
    The first turn of a tool loop: the model calls get_weather and the
    process is parked; the messages to send the result with.
    """
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
    assert code == 200, body
    message = body["choices"][0]["message"]
    await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
    call = message["tool_calls"][0]
    return messages + [message, {"role": "tool", "tool_call_id": call["id"], "content": "22 C"}]


class ResumedToolTurnTests(TestCase):
    timeout = 60

    async def test_cli_killed_mid_resumed_turn_gives_502_at_once(self) -> None:
        d = await start_settled(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), SLOW)
        messages = await call_weather(d)
        (pid,) = d.spawned
        answer = Deferred.fromCoroutine(d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]}))
        # the resumed turn is streaming from upstream into the daemon
        await wait_for(lambda: any(run.got_line and run.state.text_length for run in d.proxy.runs), timeout=15)
        self.assertEqual(d.manager.stats.tool_hits, 1)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        code, body = await answer
        took = time.monotonic() - killed_at
        self.assertEqual(code, 502, body)
        self.assertEqual(body["error"]["code"], "cli_error")
        self.assertLess(took, 1.0)
        await wait_for(lambda: not d.manager.live, timeout=1)
        self.assertEqual((await health(d))["pool"]["live_processes"], 0)
        self.assertEqual(sum(d.manager.exits.values()), 1)

    async def test_live_count_matches_children_after_resumed_turn(self) -> None:
        d = await start_settled(self)
        d.fake.push(calls(("get_weather", {"city": "Paris"})), Reply(text="Sunny."))
        messages = await call_weather(d)
        self.assertEqual((await health(d))["pool"]["live_processes"], len(left_running(d.spawned)))
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual((code, body["choices"][0]["message"]["content"]), (200, "Sunny."))
        self.assertEqual(d.manager.stats.tool_hits, 1)
        # the process that served the resumed turn is ended and counted out
        await wait_for(lambda: not left_running(d.spawned), timeout=5)
        await wait_for(lambda: not d.manager.live, timeout=2)
        self.assertEqual((await health(d))["pool"]["live_processes"], 0)
        resp = await d.get("/metrics")
        metrics = (await resp.content()).decode()
        live = [line for line in metrics.splitlines() if line.startswith("claudeproxy_cli_processes ")]
        self.assertTrue(live, metrics)
        self.assertEqual(float(live[0].split()[-1]), 0.0)
