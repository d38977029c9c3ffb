"""
Warm processes and live conversations, with the real CLI.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from claudeproxy.engine.process import SpawnKey
from tests.fakeanthropic import Reply
from tests.harness import Running, live_pids, start, streamed_text, text_turn, upstream_turns, wait_for

SONNET = SpawnKey("sonnet", None, "replace")


def idle_pids(d: Running) -> list[int]:
    return [e.proc.pid for e in d.manager.pool.all()]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class WarmPoolTests(TestCase):
    timeout = 60

    async def test_hit_needs_no_spawn_and_is_replaced(self) -> None:
        d = await start(self, warm=1)
        await wait_for(lambda: d.manager.idle_count == 1)
        warm_pid = idle_pids(d)[0]
        spawned = d.manager.stats.spawned
        d.fake.default = Reply(text="from a warm process")
        code, body = await d.chat({"model": "sonnet", "messages": [user("hi")]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "from a warm process")
        self.assertEqual((d.manager.stats.warm_hits, d.manager.stats.warm_misses), (1, 0))
        # the request used the warm process; a replacement started after it
        self.assertIn(warm_pid, d.spawned[:spawned])
        await wait_for(lambda: d.manager.idle_count == 1)
        self.assertNotIn(warm_pid, idle_pids(d))
        code, health = await self._health(d)
        self.assertEqual(health["pool"]["warm"]["hits"], 1)
        self.assertEqual(health["pool"]["mode"], "generic")
        self.assertEqual(health["pool"]["warm"]["generic"]["idle"], 1)
        self.assertEqual(health["pool"]["warm"]["generic"]["bound"], 1)

    async def test_keyed_mode_reports_its_keys(self) -> None:
        """
        With late binding off, each warm process is started for one key,
        and /health shows the keys.
        """
        d = await start(self, warm=1, late_binding=False)
        await wait_for(lambda: d.manager.idle_count == 1)
        code, body = await d.chat({"model": "sonnet", "messages": [user("hi")]})
        self.assertEqual(code, 200, body)
        await wait_for(lambda: d.manager.idle_count == 1)
        code, health = await self._health(d)
        self.assertEqual(health["pool"]["mode"], "keyed")
        (idle,) = health["pool"]["warm"]["idle"]
        self.assertRegex(idle.pop("key"), "^[0-9a-f]{12}$")
        self.assertEqual(
            idle,
            {
                "model": "sonnet",
                "system_prompt": False,
                "effort": None,
                "tools": 0,
                "max_tokens": None,
                "json_schema": False,
                "web_search": False,
                "count": 1,
            },
        )

    async def test_readiness_is_known(self) -> None:
        """
        A warm process says when it has finished starting (the control
        protocol's initialize, answered by the real CLI once it is up): a
        request on it then is served C{warm}; one that takes it before is
        served C{starting}, and /health and /metrics count it.
        """
        d = await start(self, warm=1)
        await wait_for(lambda: d.manager.idle_count == 1)
        # taken at once: still starting
        resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": [user("early")]})
        self.assertEqual(resp.code, 200, await resp.text())
        self.assertEqual(resp.headers.getRawHeaders("x-claudeproxy-served"), ["starting"])
        await wait_for(lambda: d.manager.idle_count == 1 and all(e.proc.ready for e in d.manager.pool.generic))
        code, health = await self._health(d)
        self.assertEqual((health["pool"]["warm"]["ready"], health["pool"]["warm"]["starting"]), (1, 1))
        resp = await d.post("/v1/chat/completions", {"model": "sonnet", "messages": [user("later")]})
        body = await resp.json()
        self.assertEqual(resp.headers.getRawHeaders("x-claudeproxy-served"), ["warm"])
        # the probe's answer is not part of the turn
        self.assertEqual(body["choices"][0]["message"]["content"], d.fake.default.text)
        metrics = (await (await d.get("/metrics")).text()).splitlines()
        self.assertIn('claudeproxy_warm_pool_total{result="starting"} 1.0', metrics)
        self.assertIn('claudeproxy_warm_pool_total{result="hit"} 1.0', metrics)

    async def _health(self, d: Running) -> tuple[int, Any]:
        resp = await d.get("/health")
        return resp.code, await resp.json()

    async def test_miss_then_learned_key(self) -> None:
        d = await start(self, warm=1, late_binding=False)
        await wait_for(lambda: d.manager.idle_count == 1)
        body = {"model": "haiku", "messages": [{"role": "system", "content": "Be brief."}, user("hi")]}
        code, _ = await d.chat(body)
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.stats.warm_misses, 1)
        # the pool now keeps the key just used warm, in place of the default
        key = SpawnKey("haiku", "Be brief.", "replace")
        await wait_for(lambda: len(d.manager.pool.keyed.get(key, [])) == 1 and d.manager.idle_count == 1)
        code, _ = await d.chat(body)
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.stats.warm_hits, 1)
        sent = d.fake.message_requests[-1].body
        self.assertIn("Be brief.", "".join(b["text"] for b in sent["system"]))

    async def test_idle_processes_expire(self) -> None:
        d = await start(self, warm=2, warm_ttl=1.0)
        await wait_for(lambda: d.manager.idle_count == 2)
        pids = idle_pids(d)
        await wait_for(lambda: d.manager.idle_count == 0 and not live_pids(pids), timeout=5)
        self.assertGreaterEqual(d.manager.stats.warm_expired, 1)

    async def test_dead_warm_process_is_replaced_not_used(self) -> None:
        d = await start(self, warm=1)
        await wait_for(lambda: d.manager.idle_count == 1)
        (pid,) = idle_pids(d)
        os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: d.manager.stats.warm_died == 1)
        await wait_for(lambda: d.manager.idle_count == 1, timeout=10)
        self.assertNotEqual(idle_pids(d), [pid])
        code, body = await d.chat({"model": "sonnet", "messages": [user("hi")]})
        self.assertEqual(code, 200, body)
        self.assertEqual(d.manager.stats.warm_hits, 1)

    async def test_warm_zero_spawns_per_request(self) -> None:
        d = await start(self, warm=0)
        code, _ = await d.chat({"model": "sonnet", "messages": [user("hi")]})
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.idle_count, 0)
        self.assertEqual(d.manager.stats.spawned, 1)

    async def test_shutdown_ends_pool_and_sessions(self) -> None:
        d = await start(self, warm=2, max_sessions=2)
        await wait_for(lambda: d.manager.idle_count == 2)
        code, _ = await d.chat({"model": "opus", "messages": [user("keep me")]})
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.session_count, 1)
        await wait_for(lambda: d.manager.idle_count == 2)
        pids = list(d.spawned)
        self.assertTrue(live_pids(pids))
        await d.daemon.core.stopService()
        self.assertEqual(live_pids(pids), [])
        self.assertEqual((d.manager.idle_count, d.manager.session_count), (0, 0))


class SessionTests(TestCase):
    timeout = 60

    async def test_follow_up_continues_the_same_process(self) -> None:
        d = await start(self, max_sessions=2)
        d.fake.push(Reply(text="Paris."), Reply(text="About 2 million.", cache_read=40))
        first = [{"role": "system", "content": "Answer briefly."}, user("Capital of France?")]
        code, body = await d.chat({"model": "sonnet", "messages": first})
        self.assertEqual(body["choices"][0]["message"]["content"], "Paris.")
        self.assertEqual(d.manager.session_count, 1)
        spawned = d.manager.stats.spawned
        code, items, _ = await d.chat_stream(
            {
                "model": "sonnet",
                "messages": [*first, assistant("Paris."), user("Population?")],
                "stream_options": {"include_usage": True},
            }
        )
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items), "About 2 million.")
        self.assertEqual(items[-2]["usage"]["prompt_tokens_details"]["cached_tokens"], 40)
        self.assertEqual(d.manager.stats.spawned, spawned)
        self.assertEqual(d.manager.stats.session_hits, 1)
        # upstream saw the earlier turns as real messages, not a transcript
        # (CLI 2.1.332 adds its own mid-conversation system messages)
        sent = d.fake.message_requests[-1].turns
        self.assertEqual([m["role"] for m in sent], ["user", "assistant", "user"])
        self.assertEqual(sent[1]["content"][0]["text"], "Paris.")
        self.assertIn("Population?", "".join(b.get("text", "") for b in sent[2]["content"]))
        self.assertNotIn("conversation_history", str(sent))
        # and the third turn continues it again
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [
                    *first,
                    assistant("Paris."),
                    user("Population?"),
                    assistant("About 2 million."),
                    user("Thanks"),
                ],
            }
        )
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.stats.session_hits, 2)
        self.assertEqual(d.manager.stats.spawned, spawned)

    async def test_edited_history_and_regenerate_start_fresh(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.default = Reply(text="Answer one.")
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Q1")]})
        spawned = d.manager.stats.spawned
        # edited assistant turn
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Q1"), assistant("Something else."), user("Q2")]})
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.stats.session_hits, 0)
        # a fresh conversation: a new process, or the one-shot's process
        # with its conversation cleared
        self.assertEqual(d.manager.stats.spawned + d.manager.stats.reused, spawned + 1)
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [text_turn("user", "Q1"), text_turn("assistant", "Something else."), text_turn("user", "Q2")],
        )
        # regenerate: the same request again
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Q1")]})
        self.assertEqual(d.manager.stats.session_hits, 0)
        # another system prompt
        code, _ = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "system", "content": "new"}, user("Q1"), assistant("Answer one."), user("Q2")],
            }
        )
        self.assertEqual(d.manager.stats.session_hits, 0)
        # another model
        code, _ = await d.chat({"model": "haiku", "messages": [user("Q1"), assistant("Answer one."), user("Q2")]})
        self.assertEqual(d.manager.stats.session_hits, 0)
        # the matching follow-up still finds its session
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Q1"), assistant("Answer one."), user("Q2")]})
        self.assertEqual(d.manager.stats.session_hits, 1)

    async def test_session_expires(self) -> None:
        d = await start(self, max_sessions=2, session_ttl=0.5)
        d.fake.default = Reply(text="A.")
        await d.chat({"model": "sonnet", "messages": [user("Q")]})
        pid = d.spawned[-1]
        await wait_for(lambda: d.manager.session_count == 0 and not live_pids([pid]), timeout=5)
        self.assertEqual(d.manager.stats.session_expired, 1)
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Q"), assistant("A."), user("Q2")]})
        self.assertEqual(code, 200)
        self.assertEqual(d.manager.stats.session_hits, 0)

    async def test_least_recently_used_is_evicted(self) -> None:
        d = await start(self, max_sessions=1)
        d.fake.default = Reply(text="A.")
        await d.chat({"model": "sonnet", "messages": [user("first conversation")]})
        pid_a = d.spawned[-1]
        # (other settings: a one-shot with the same ones would be reused)
        await d.chat({"model": "sonnet", "messages": [{"role": "system", "content": "B"}, user("second conversation")]})
        await wait_for(lambda: not live_pids([pid_a]))
        self.assertEqual(d.manager.stats.session_evicted, 1)
        await d.chat({"model": "sonnet", "messages": [user("first conversation"), assistant("A."), user("more")]})
        self.assertEqual(d.manager.stats.session_hits, 0)
        await d.chat(
            {
                "model": "sonnet",
                "messages": [user("first conversation"), assistant("A."), user("more"), assistant("A."), user("x")],
            }
        )
        self.assertEqual(d.manager.stats.session_hits, 1)

    async def test_never_two_requests_on_one_process(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.default = Reply(text="A.", delay=0.05, chunk=1)
        await d.chat({"model": "sonnet", "messages": [user("Q")]})
        follow = {"model": "sonnet", "messages": [user("Q"), assistant("A."), user("again")]}
        results = await gatherResults([Deferred.fromCoroutine(d.chat(follow)) for _ in range(2)])
        self.assertEqual([r[0] for r in results], [200, 200])
        self.assertEqual([r[1]["choices"][0]["message"]["content"] for r in results], ["A.", "A."])
        self.assertEqual(d.manager.stats.session_hits, 1)
        # the first request had no history to look for
        self.assertEqual(d.manager.stats.session_misses, 1)

    async def test_reply_cut_by_stop_is_not_kept(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.default = Reply(text="one two three")
        code, body = await d.chat({"model": "sonnet", "messages": [user("count")], "stop": ["two"]})
        self.assertEqual(body["choices"][0]["message"]["content"], "one ")
        self.assertEqual(d.manager.session_count, 0)
