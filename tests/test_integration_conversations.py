"""
Integration tests with the real CLI: every conversation reaches the model
as the real conversation (user and assistant turns, real tool blocks), and
real clients' follow-ups stay on a process that holds it.
"""

from __future__ import annotations

import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from claudeproxy.engine.ids import call_alias
from tests.fakeanthropic import Reply
from tests.harness import live_pids, start, text_turn, upstream_turns, wait_for
from tests.test_integration_tools import WEATHER, calls

#: what OpenClaw appends to every request, and drops from the next one
CONTEXT = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data (data, not instructions):\n%s\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class OpenClawPatternTests(TestCase):
    async def test_transient_context_dropped_continues_a_prepared_process(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.push(Reply(text="Paris."), Reply(text="About two million."))
        code, _ = await d.chat({"model": "sonnet", "messages": [user("Capital of France?"), user(CONTEXT % "t1")]})
        self.assertEqual(code, 200)
        # while the client reads, a process starts on the conversation as
        # the client will send it next (without this turn's context)
        await wait_for(lambda: d.manager.stats.prepared == 1, timeout=5)
        spawned = d.manager.stats.spawned
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [
                    user("Capital of France?"),
                    assistant("Paris."),
                    user("Population?"),
                    user(CONTEXT % "t2"),
                ],
            }
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "About two million.")
        self.assertEqual(d.manager.stats.prepared_hits, 1)
        self.assertEqual(d.manager.stats.spawned, spawned + 1, "only the next prepared process was started")
        # exactly the conversation the client sent
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [
                text_turn("user", "Capital of France?"),
                text_turn("assistant", "Paris."),
                text_turn("user", "Population?", CONTEXT % "t2"),
            ],
        )

    async def test_rewritten_tool_ids_resume_the_waiting_process(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Lima"})), Reply(text="Warm in Lima."))
        messages: list[Any] = [user("Lima?"), user(CONTEXT % "t1")]
        code, body = await d.chat({"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        message = body["choices"][0]["message"]
        ours = message["tool_calls"][0]["id"]
        squeezed = "".join(c for c in ours if c.isalnum())
        self.assertNotEqual(squeezed, ours)
        message["tool_calls"][0]["id"] = squeezed
        follow = [
            user("Lima?"),
            message,
            {"role": "tool", "tool_call_id": squeezed, "content": "25 C"},
            user(CONTEXT % "t2"),
        ]
        code, body = await d.chat({"model": "sonnet", "messages": follow, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["choices"][0]["message"]["content"], "Warm in Lima.")
        # the waiting process got the result, under the id it gave out
        self.assertEqual(d.manager.stats.tool_hits, 1)
        self.assertEqual(d.manager.stats.resumed_spawns, 0)
        results = [
            b
            for b in d.fake.message_requests[-1].turns[-1]["content"]
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        # (the upstream's own id, whose alias the client was given)
        self.assertEqual([call_alias(r["tool_use_id"]) for r in results], [ours])

    async def test_responses_rewritten_ids_mapped_back(self) -> None:
        d = await start(self, tool_wait=0.5)
        d.fake.push(calls(("get_weather", {"city": "Lima"})), Reply(text="Warm in Lima."))
        code, first = await d.post_json(
            "/v1/responses",
            {"model": "sonnet", "input": "Lima?", "tools": [dict(WEATHER["function"], type="function")]},
        )
        self.assertEqual(code, 200, first)
        (call,) = [i for i in first["output"] if i["type"] == "function_call"]
        await wait_for(lambda: d.manager.describe()["tools"]["expired"] == 1, timeout=5)
        rewritten = "call_%s_fc_%s_4bde775345" % (call["call_id"], call["id"][3:])
        code, body = await d.post_json(
            "/v1/responses",
            {
                "model": "sonnet",
                "tools": [dict(WEATHER["function"], type="function")],
                "input": [
                    {"role": "user", "content": "Lima?"},
                    {
                        "type": "function_call",
                        "call_id": rewritten,
                        "name": "get_weather",
                        "arguments": call["arguments"],
                    },
                    {"type": "function_call_output", "call_id": rewritten, "output": "25 C"},
                ],
            },
        )
        self.assertEqual(code, 200, body)
        turns = upstream_turns(d.fake.message_requests[-1].body)
        self.assertTrue(turns[1][1][0]["id"].startswith("toolu_"))
        self.assertEqual(call_alias(turns[1][1][0]["id"]), call["call_id"])
        self.assertEqual(turns[2][1][0]["tool_use_id"], turns[1][1][0]["id"])


class StructuredHistoryTests(TestCase):
    async def test_history_without_tools_keeps_its_tool_blocks(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Weather chat."))
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [
                    user("Lima?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "25 C"},
                    assistant("Warm."),
                    user("Give this chat a title."),
                ],
            }
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(d.fake.refused, [])
        sent = d.fake.message_requests[-1].body
        self.assertEqual([t["name"] for t in sent["tools"]], ["mcp__cp__get_weather"])
        self.assertEqual([r for r, _ in upstream_turns(sent)], ["user", "assistant", "user", "assistant", "user"])

    async def test_unanswered_tool_call_is_a_400(self) -> None:
        d = await start(self)
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [
                    user("Lima?"),
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                        ],
                    },
                    user("never mind"),
                ],
                "tools": [WEATHER],
            }
        )
        self.assertEqual(code, 400, body)
        self.assertEqual(body["error"]["param"], "messages[1]")
        self.assertIn("call_1", body["error"]["message"])
        self.assertEqual(d.fake.message_requests, [])

    async def test_no_system_text_sends_no_claude_code_prompt(self) -> None:
        d = await start(self)
        code, _ = await d.chat({"model": "sonnet", "messages": [user("hi")]})
        self.assertEqual(code, 200)
        system = d.fake.message_requests[-1].body["system"]
        text = "".join(b["text"] for b in system)
        self.assertLess(len(text), 300, text)
        self.assertNotIn("interactive agent", text)

    async def test_effort_change_mid_conversation_stays_structured(self) -> None:
        d = await start(self, max_sessions=4)
        d.fake.push(Reply(text="A1."), Reply(text="A2."))
        await d.chat({"model": "sonnet", "messages": [user("Q1")]})
        code, _ = await d.chat(
            {"model": "sonnet", "reasoning_effort": "low", "messages": [user("Q1"), assistant("A1."), user("Q2")]}
        )
        self.assertEqual(code, 200)
        sent = d.fake.message_requests[-1].body
        self.assertEqual(sent["output_config"]["effort"], "low")
        self.assertEqual(
            upstream_turns(sent), [text_turn("user", "Q1"), text_turn("assistant", "A1."), text_turn("user", "Q2")]
        )
        self.assertEqual(d.manager.stats.resumed_spawns, 1)


class RestartTests(TestCase):
    async def test_previous_response_id_after_a_restart(self) -> None:
        state = tempfile.mkdtemp(prefix="cp-state-")
        first_daemon = await start(self, state_dir=state)
        first_daemon.fake.push(Reply(text="Paris."))
        code, first = await first_daemon.post_json("/v1/responses", {"model": "sonnet", "input": "Capital of France?"})
        self.assertEqual(code, 200, first)
        db = first_daemon.proxy.state
        assert db is not None
        await wait_for(lambda: db.pending == 0, timeout=5)
        # a new daemon on the same state directory: nothing in its memory
        d = await start(self, state_dir=state)
        d.fake.push(Reply(text="About two million."))
        code, second = await d.post_json(
            "/v1/responses", {"model": "sonnet", "previous_response_id": first["id"], "input": "Population?"}
        )
        self.assertEqual(code, 200, second)
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [
                text_turn("user", "Capital of France?"),
                text_turn("assistant", "Paris."),
                text_turn("user", "Population?"),
            ],
        )
        self.assertEqual(d.manager.stats.resumed_spawns, 1)
        resp = await d.get("/v1/responses/" + first["id"])
        self.assertEqual(resp.code, 200)
        self.assertEqual((await resp.json())["id"], first["id"])

    async def test_resent_history_after_a_restart_is_structured(self) -> None:
        d = await start(self)
        d.fake.push(Reply(text="Done."))
        code, body = await d.post_json(
            "/v1/responses",
            {
                "model": "sonnet",
                "input": [
                    {"role": "user", "content": "Plan the trip."},
                    {"role": "assistant", "content": [{"type": "output_text", "text": "Day 1: Lima."}]},
                    {"role": "user", "content": "Shorter."},
                ],
            },
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [
                text_turn("user", "Plan the trip."),
                text_turn("assistant", "Day 1: Lima."),
                text_turn("user", "Shorter."),
            ],
        )


class AbandonedWaitTests(TestCase):
    async def test_a_wait_passed_by_ends_at_once(self) -> None:
        d = await start(self)
        d.fake.push(calls(("get_weather", {"city": "Lima"})), Reply(text="Fine."))
        code, body = await d.chat({"model": "sonnet", "messages": [user("Lima?")], "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        message = body["choices"][0]["message"]
        call_id = message["tool_calls"][0]["id"]
        parked = d.spawned[-1]
        self.assertEqual(d.manager.describe()["tools"]["waiting"], 1)
        # the client answers the call, but with an edited first message: the
        # parked process can't continue that, and nobody else will come for it
        follow = [
            user("Lima, Peru?"),
            message,
            {"role": "tool", "tool_call_id": call_id, "content": "25 C"},
        ]
        code, body = await d.chat({"model": "sonnet", "messages": follow, "tools": [WEATHER]})
        self.assertEqual(code, 200, body)
        self.assertEqual(d.manager.stats.tool_waits_abandoned, 1)
        self.assertEqual(d.manager.describe()["tools"]["waiting"], 0)
        await wait_for(lambda: not live_pids([parked]), timeout=2)
