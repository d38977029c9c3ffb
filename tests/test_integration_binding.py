"""
Every request on a running process: generic warm processes bound to each
request's settings and history when it arrives, with the real CLI.  Each
test asserts what the client sees (x-claudeproxy-served, the answer) and
what went upstream, against a daemon that starts a process per key
(C{late_binding=False}) where the two must agree.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from twisted.internet.defer import Deferred, gatherResults
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply, ToolUse
from tests.harness import Running, scaled, start, upstream_turns, wait_for
from tests.test_integration_tools import WEATHER


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def history(exchanges: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(exchanges):
        out += [user("question %d" % (i,)), assistant("answer %d" % (i,))]
    return out


async def ready(d: Running, n: int = 1) -> None:
    """
    Wait until C{n} generic processes have finished starting.
    """
    await wait_for(lambda: d.manager.pool.ready_generic() >= n, timeout=scaled(30))


async def served_chat(d: Running, body: dict[str, Any]) -> tuple[str, Any]:
    resp = await d.post("/v1/chat/completions", body)
    text = await resp.text()
    assert resp.code == 200, text
    (served,) = resp.headers.getRawHeaders("x-claudeproxy-served")
    return served, json.loads(text)


def system_text(body: dict[str, Any]) -> list[str]:
    """
    The system blocks upstream, without the billing header (its suffix
    varies with the first user message).
    """
    return [b["text"] for b in body.get("system") or [] if not b["text"].startswith("x-anthropic-billing-header")]


def shape(body: dict[str, Any]) -> dict[str, Any]:
    """
    What a request carried upstream that binding must not change.
    """
    return {
        "model": body.get("model"),
        "system": system_text(body),
        "tools": sorted(t.get("name") for t in body.get("tools") or []),
        "tool_schemas": sorted(json.dumps(t.get("input_schema"), sort_keys=True) for t in body.get("tools") or []),
        "max_tokens": body.get("max_tokens"),
        "output_config": body.get("output_config"),
        "turns": upstream_turns(body),
    }


#: requests that are each the first of their kind
KINDS: list[tuple[str, dict[str, Any]]] = [
    ("system prompt", {"messages": [{"role": "system", "content": "Answer like a pirate."}, user("hi")]}),
    ("tools", {"messages": [user("weather in Bern?")], "tools": [WEATHER]}),
    (
        "json schema",
        {
            "messages": [user("a colour")],
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "colour",
                    "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                },
            },
        },
    ),
    ("another model", {"model": "haiku", "messages": [user("hi from haiku")]}),
    ("effort", {"reasoning_effort": "low", "messages": [user("think a little")]}),
    ("max tokens", {"max_tokens": 1000, "messages": [user("### Task: a title")]}),
    ("5-exchange history", {"messages": history(5) + [user("and now?")]}),
]


class FirstOfItsKindTests(TestCase):
    timeout = 240

    async def test_each_served_by_a_running_process_as_a_fresh_one_would(self) -> None:
        """
        Requests that are each the first of their kind (a new system
        prompt, tools, a schema, another model, an effort, an output
        limit, a history no process holds) are served by a generic process
        that was already running, and upstream sees exactly what a process
        started for the request sends.
        """
        bound = await start(self, warm=2)
        keyed = await start(self, warm=0, late_binding=False)
        for what, body in KINDS:
            body = dict({"model": "sonnet"}, **body)
            if "response_format" in body:
                for d in (bound, keyed):
                    d.fake.push(
                        Reply(
                            text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", {"name": "red"}),)
                        )
                    )
            await ready(bound, 2)
            served, answer = await served_chat(bound, body)
            self.assertIn(served, ("warm", "written"), what)
            cold, _ = await served_chat(keyed, body)
            self.assertEqual(cold, "cold", what)
            self.assertEqual(
                shape(bound.fake.message_requests[-1].body), shape(keyed.fake.message_requests[-1].body), what
            )
        self.assertEqual(bound.manager.stats.bind_failed, 0)
        self.assertEqual(bound.manager.stats.written, 1)
        health = await (await bound.get("/health")).json()
        self.assertEqual(health["pool"]["mode"], "generic")
        self.assertEqual(health["pool"]["warm"]["generic"]["bound"], len(KINDS))


class ToolsOverControlTests(TestCase):
    timeout = 120

    async def test_tool_loop_parks_and_resumes_on_the_bound_process(self) -> None:
        """
        A generic process gets the client's tools over the control channel;
        its call is parked until the client's result comes back, and the
        follow-up resumes it (served C{tools}); parallel calls reach the
        client together.
        """
        d = await start(self, warm=2)
        await ready(d)
        d.fake.push(
            Reply(
                text="",
                stop_reason="tool_use",
                tool_uses=(
                    ToolUse("mcp__cp__get_weather", {"city": "Bern"}),
                    ToolUse("mcp__cp__get_weather", {"city": "Rome"}),
                ),
            ),
            Reply(text="Sunny in Bern, rainy in Rome."),
        )
        messages: list[dict[str, Any]] = [user("weather in Bern and Rome?")]
        served, body = await served_chat(d, {"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(served, "warm")
        message = body["choices"][0]["message"]
        calls = message["tool_calls"]
        self.assertEqual([json.loads(c["function"]["arguments"]) for c in calls], [{"city": "Bern"}, {"city": "Rome"}])
        offered = d.fake.message_requests[0].body["tools"]
        self.assertEqual([t["name"] for t in offered], ["mcp__cp__get_weather"])
        await wait_for(lambda: d.manager.describe()["tools"]["waiting"] == 1)
        messages += [
            message,
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
            {"role": "tool", "tool_call_id": calls[1]["id"], "content": "rainy"},
        ]
        served, body = await served_chat(d, {"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(served, "tools")
        self.assertEqual(body["choices"][0]["message"]["content"], "Sunny in Bern, rainy in Rome.")
        last = d.fake.message_requests[-1].body
        results = [
            b
            for m in last["messages"]
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        ]
        self.assertEqual(
            [r["content"] if isinstance(r["content"], str) else r["content"][0]["text"] for r in results],
            ["sunny", "rainy"],
        )

    async def test_tool_results_history_written(self) -> None:
        """
        A history ending in tool results that no process holds is written
        into a running process: the results go up as the client sent
        them, with nothing of the daemon's between them and the reply.
        """
        d = await start(self, warm=2)
        await ready(d)
        messages: list[dict[str, Any]] = [
            user("weather in Bern?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        served, body = await served_chat(d, {"model": "sonnet", "messages": messages, "tools": [WEATHER]})
        self.assertEqual(served, "written")
        turns = upstream_turns(d.fake.message_requests[-1].body)
        self.assertEqual([role for role, _ in turns], ["user", "assistant", "user"])
        self.assertEqual(turns[-1][1][0]["type"], "tool_result")


class OpenWebUIPatternTests(TestCase):
    timeout = 180

    async def _chat(
        self, d: Running, messages: list[dict[str, Any]], stream: bool = True, **extra: Any
    ) -> tuple[str, str]:
        body: dict[str, Any] = dict({"model": "sonnet", "messages": messages}, **extra)
        if stream:
            body["stream"] = True
        resp = await d.post("/v1/chat/completions", body)
        raw = await resp.text()
        assert resp.code == 200, raw
        (served,) = resp.headers.getRawHeaders("x-claudeproxy-served")
        if stream:
            text = "".join(
                (json.loads(line[6:])["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                for line in raw.splitlines()
                if line.startswith("data: {")
            )
        else:
            text = json.loads(raw)["choices"][0]["message"]["content"]
        return served, text

    async def test_main_and_title_then_two_chats_in_turn(self) -> None:
        """
        Each new chat's first message goes out with its title request
        beside it (non-streamed, its own max_tokens): both are served by
        running processes.  Going back to the first chat continues it
        live, although its reply ended in whitespace that the client
        trimmed.
        """
        d = await start(self, warm=4, max_sessions=8)
        d.fake.default = Reply(text="A reply that ends in a newline.\n")
        await ready(d, 2)
        served: list[str] = []
        chats: list[list[dict[str, Any]]] = []
        for n in range(2):
            first = [user("chat %d, first message" % (n,))]
            title = [user('### Task:\nGenerate a concise title for chat %d.\nJSON format: { "title": ... }' % (n,))]
            main, side = await gatherResults(
                [
                    Deferred.fromCoroutine(self._chat(d, first)),
                    Deferred.fromCoroutine(self._chat(d, title, stream=False, max_tokens=1000)),
                ]
            )
            served += [main[0], side[0]]
            # the client trims the reply's trailing whitespace
            chats.append(first + [assistant(main[1].rstrip())])
            await ready(d, 2)
        for n in (0, 1, 0):
            chats[n].append(user("chat %d, next message" % (n,)))
            how, text = await self._chat(d, chats[n])
            served.append(how)
            chats[n].append(assistant(text.rstrip()))
        self.assertEqual(served[:4], [s for s in served[:4] if s in ("warm", "written")], served)
        self.assertEqual(served[4:], ["session", "session", "session"], served)


class BurstTests(TestCase):
    timeout = 240

    async def test_second_burst_served_warm(self) -> None:
        """
        A burst of 8 new conversations grows the pool to the peak (plus
        one, within --warm); the same burst a little later is served
        entirely by running processes.
        """
        d = await start(self, warm=9, max_concurrent=8)
        await ready(d, 2)

        async def burst(tag: str) -> list[str]:
            replies = await gatherResults(
                [
                    Deferred.fromCoroutine(served_chat(d, {"model": "sonnet", "messages": [user("%s %d" % (tag, i))]}))
                    for i in range(8)
                ]
            )
            return [served for served, _ in replies]

        first = await burst("first")
        self.assertGreaterEqual(d.manager.demand.peak(d.manager.reactor.seconds()), 8)
        await ready(d, 9)
        second = await burst("second")
        self.assertEqual(second, ["warm"] * 8, (first, second))


class SessionWorthTests(TestCase):
    timeout = 120

    async def test_one_shots_do_not_push_out_a_conversation(self) -> None:
        """
        With room for two live sessions, a conversation the user is in
        stays live while one-shot task requests come and go; a
        conversation pushed out anyway comes back written into a running
        process (one pushed out, cleared).
        """
        d = await start(self, warm=2, max_sessions=2)
        await ready(d, 2)
        convo = [user("hello")]
        _, body = await served_chat(d, {"model": "sonnet", "messages": convo})
        convo += [assistant(body["choices"][0]["message"]["content"]), user("go on")]
        served, body = await served_chat(d, {"model": "sonnet", "messages": convo})
        self.assertEqual(served, "session")
        convo += [assistant(body["choices"][0]["message"]["content"])]
        for i in range(4):
            await ready(d)
            await served_chat(d, {"model": "sonnet", "messages": [user("### Task: tags %d" % (i,))]})
        convo.append(user("still here"))
        served, body = await served_chat(d, {"model": "sonnet", "messages": convo})
        self.assertEqual(served, "session")
        # two more conversations of two turns push it out: it comes back
        # on a running process, with its history written
        others: list[list[dict[str, Any]]] = []
        for i in range(2):
            other = [user("other %d" % (i,))]
            await ready(d)
            _, b = await served_chat(d, {"model": "sonnet", "messages": other})
            other += [assistant(b["choices"][0]["message"]["content"]), user("more")]
            await served_chat(d, {"model": "sonnet", "messages": other})
            others.append(other)
        convo += [assistant(body["choices"][0]["message"]["content"]), user("back again")]
        await ready(d)
        served, _ = await served_chat(d, {"model": "sonnet", "messages": convo})
        # on a running process: its own, pushed out a moment ago and still
        # holding it (session), or with its history written into one pushed
        # out and cleared (reused) or a generic one (written)
        self.assertIn(served, ("session", "reused", "written"))
        sent: Optional[dict[str, Any]] = d.fake.message_requests[-1].body
        assert sent is not None
        self.assertEqual(len(upstream_turns(sent)), len(convo))


class WebSearchTests(TestCase):
    timeout = 180

    async def test_codex_requests_served_by_generic_processes_with_web_search(self) -> None:
        """
        Codex declares a hosted web search in every request; the WebSearch
        tool is fixed at spawn, so such requests get generic processes of
        their own, started with it: once Codex is seen, its next requests
        (and the one with its history) are served by running processes,
        and upstream sees what a process started for the request sends.
        """
        from tests.test_integration_clients import ALIAS, events, fixture, post, search_turn

        bound = await start(self, warm=4, model_aliases=ALIAS)
        keyed = await start(self, warm=0, model_aliases=ALIAS, late_binding=False)
        request = fixture("codex-responses")[0]
        served: list[str] = []
        for d in (bound, keyed, bound, keyed):
            d.fake.push(*search_turn())
            if d is bound and served:
                await wait_for(lambda: bound.manager.pool.ready_generic(True) >= 1, timeout=scaled(30))
            resp, raw = await post(d, request)
            self.assertEqual(resp.code, 200, raw[:300])
            self.assertEqual([i["type"] for i in events(raw)[-1]["response"]["output"]], ["web_search_call", "message"])
            served.append(resp.headers.getRawHeaders("x-claudeproxy-served")[0])
        self.assertEqual(served, ["cold", "cold", "warm", "cold"])
        for n in (0, 1):
            got, want = bound.fake.message_requests[2 + n].body, keyed.fake.message_requests[2 + n].body
            self.assertEqual(shape(got), shape(want))


class ReuseTests(TestCase):
    timeout = 180

    async def test_one_shot_cleared_for_a_new_conversation(self) -> None:
        """
        With no started process ready, a new conversation takes the
        process of a one-shot with the same settings (a task nobody
        continued), its conversation cleared: served C{reused}, and
        upstream sees exactly what a fresh process sends (the same
        system prompt and tools, none of the one-shot, none of the
        clearing).  The new conversation then goes on live.
        """
        d = await start(self, warm=0, max_sessions=8)
        keyed = await start(self, warm=0, late_binding=False)
        system = {"role": "system", "content": "Answer like a pirate."}
        body: dict[str, Any] = {"model": "haiku", "reasoning_effort": "low", "max_tokens": 900, "tools": [WEATHER]}
        served, _ = await served_chat(d, dict(body, messages=[system, user("a one-shot task")]))
        self.assertEqual(served, "cold")
        await wait_for(lambda: len(d.manager.sessions) == 1)
        messages = [system, user("a new conversation")]
        served, answer = await served_chat(d, dict(body, messages=messages))
        self.assertEqual(served, "reused")
        cold, _ = await served_chat(keyed, dict(body, messages=messages))
        self.assertEqual(cold, "cold")
        self.assertEqual(shape(d.fake.message_requests[-1].body), shape(keyed.fake.message_requests[-1].body))
        sent = json.dumps(d.fake.message_requests[-1].body["messages"])
        for gone in ("one-shot", "/clear", "local-command"):
            self.assertNotIn(gone, sent)
        messages += [assistant(answer["choices"][0]["message"]["content"]), user("and then?")]
        served, _ = await served_chat(d, dict(body, messages=messages))
        self.assertEqual(served, "session")
        self.assertEqual(d.manager.stats.reused, 1)
        self.assertEqual(d.manager.stats.bind_failed, 0)

    async def test_one_shot_of_another_model_switched(self) -> None:
        """
        With no started process ready, the session a new conversation's
        reply would push out, a one-shot with another model and no
        effort, is cleared and switched (C{set_model}, the effort): served
        C{reused}, and upstream sees what a fresh process sends, without
        the one-shot, the clearing or the switch.
        """
        d = await start(self, warm=0, max_sessions=1)
        keyed = await start(self, warm=0, late_binding=False)
        system = {"role": "system", "content": "Answer like a pirate."}
        one_shot = {"model": "haiku", "tools": [WEATHER], "messages": [system, user("a one-shot task")]}
        served, _ = await served_chat(d, one_shot)
        self.assertEqual(served, "cold")
        await wait_for(lambda: len(d.manager.sessions) == 1)
        body: dict[str, Any] = {"model": "sonnet", "reasoning_effort": "low", "tools": [WEATHER]}
        messages = [system, user("a new conversation")]
        served, answer = await served_chat(d, dict(body, messages=messages))
        self.assertEqual(served, "reused")
        self.assertEqual((d.manager.stats.switched, d.manager.stats.bind_failed), (1, 0))
        cold, _ = await served_chat(keyed, dict(body, messages=messages))
        self.assertEqual(cold, "cold")
        self.assertEqual(shape(d.fake.message_requests[-1].body), shape(keyed.fake.message_requests[-1].body))
        sent = json.dumps(d.fake.message_requests[-1].body["messages"])
        for gone in ("one-shot", "/clear", "local-command", "Set model"):
            self.assertNotIn(gone, sent)
        messages += [assistant(answer["choices"][0]["message"]["content"]), user("and then?")]
        served, _ = await served_chat(d, dict(body, messages=messages))
        self.assertEqual(served, "session")
        self.assertEqual(
            shape(d.fake.message_requests[-1].body)["model"], shape(keyed.fake.message_requests[-1].body)["model"]
        )

    async def test_conversation_pushed_out_is_cleared_for_reuse(self) -> None:
        """
        A conversation pushed out by newer ones (--max-sessions) keeps its
        process, cleared: the next new conversation with its settings is
        served by it (C{reused}), and upstream sees only the new one.
        """
        d = await start(self, warm=1, max_sessions=1)
        keyed = await start(self, warm=0, late_binding=False)
        first = [{"role": "system", "content": "S1"}, user("first conversation")]
        served, answer = await served_chat(d, {"model": "sonnet", "messages": first})
        first += [assistant(answer["choices"][0]["message"]["content"]), user("first, turn two")]
        served, _ = await served_chat(d, {"model": "sonnet", "messages": first})
        self.assertEqual(served, "session")
        # another conversation of two turns pushes it out
        other = [{"role": "system", "content": "S2"}, user("other")]
        _, answer = await served_chat(d, {"model": "sonnet", "messages": other})
        other += [assistant(answer["choices"][0]["message"]["content"]), user("other, turn two")]
        await served_chat(d, {"model": "sonnet", "messages": other})

        def cleared() -> list[Any]:
            return [e for e in d.manager.pool.cleared if e.key.system == "S1" and not e.clearing]

        await wait_for(lambda: len(cleared()) == 1)
        fresh = [{"role": "system", "content": "S1"}, user("a new conversation")]
        served, _ = await served_chat(d, {"model": "sonnet", "messages": fresh})
        self.assertEqual(served, "reused")
        await served_chat(keyed, {"model": "sonnet", "messages": fresh})
        self.assertEqual(shape(d.fake.message_requests[-1].body), shape(keyed.fake.message_requests[-1].body))
        self.assertNotIn("first", json.dumps(d.fake.message_requests[-1].body["messages"]))
