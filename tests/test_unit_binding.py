"""
Unit tests for binding generic processes late: the control requests and
history lines (pure), the process's control channel, the binder against a
scripted CLI, the demand-following pool, sessions kept by worth, and
continuation that tolerates trimmed whitespace.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.binder import BindFailed, bind
from claudeproxy.engine.binding import (
    can_bind,
    generic_argv,
    history_lines,
    history_write_max,
    initialize_request,
    model_request,
    settings_request,
    switch_requests,
    switchable,
    user_turns,
)
from claudeproxy.engine.continuity import Continuation, continues
from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.pool import PUSHED_OUT_HOLD, REFILL_DELAY, STARTING_AT_MOST, ProcessManager
from claudeproxy.engine.poolsettings import CLISetup, PoolLimits
from claudeproxy.engine.process import READY_REQUEST, WARM_UP, WARM_UP_REQUEST, CLIProcess, SpawnKey
from claudeproxy.engine.sessions import LiveSessions, Session
from claudeproxy.engine.tools import spec
from claudeproxy.engine.turn import TurnState, digest_text
from claudeproxy.engine.warm import Demand, generic_target, memory_cap
from tests.fakes import FakeSpawner, FakeTransport, RecordingKiller, RecordingSink

TOOL = spec("get_weather", "The weather.", {"type": "object", "properties": {"city": {"type": "string"}}})


def user(text: str) -> Message:
    return Message("user", [text_block(text)])


def assistant(text: str) -> Message:
    return Message("assistant", [text_block(text)])


def sent(transport: FakeTransport) -> list[dict[str, Any]]:
    return [json.loads(line) for chunk in transport.written for line in chunk.splitlines() if line.strip()]


def answer(proc: CLIProcess, request_id: str, response: Optional[dict[str, Any]] = None, error: str = "") -> None:
    body: dict[str, Any] = {"subtype": "error", "request_id": request_id, "error": error}
    if not error:
        body = {"subtype": "success", "request_id": request_id, "response": response or {}}
    proc.outReceived(json.dumps({"type": "control_response", "response": body}).encode() + b"\n")


def line(proc: CLIProcess, obj: dict[str, Any]) -> None:
    proc.outReceived(json.dumps(obj).encode() + b"\n")


class BindingRequestTests(SynchronousTestCase):
    def test_initialize_replace_mode(self) -> None:
        self.assertEqual(initialize_request(SpawnKey("sonnet")), {"subtype": "initialize", "systemPrompt": ""})
        key = SpawnKey("sonnet", "Be brief.", tools=(TOOL,), json_schema='{"type":"object"}')
        self.assertEqual(
            initialize_request(key),
            {
                "subtype": "initialize",
                "systemPrompt": "Be brief.",
                "jsonSchema": {"type": "object"},
                "sdkMcpServers": ["cp"],
            },
        )

    def test_initialize_append_mode(self) -> None:
        key = SpawnKey("sonnet", "Also this.", "append")
        self.assertEqual(initialize_request(key), {"subtype": "initialize", "appendSystemPrompt": "Also this."})

    def test_settings_and_model(self) -> None:
        self.assertIsNone(settings_request(SpawnKey("sonnet")))
        self.assertEqual(
            settings_request(SpawnKey("sonnet", effort="low", max_tokens=1000)),
            {
                "subtype": "apply_flag_settings",
                "settings": {"effortLevel": "low", "env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "1000"}},
            },
        )
        self.assertIsNone(model_request(SpawnKey("sonnet"), "sonnet"))
        self.assertEqual(model_request(SpawnKey("haiku"), "sonnet"), {"subtype": "set_model", "model": "haiku"})

    def test_what_stays_fixed_at_spawn(self) -> None:
        self.assertTrue(can_bind(SpawnKey("sonnet", "S", tools=(TOOL,), effort="high")))
        self.assertTrue(can_bind(SpawnKey("sonnet", web_search=True)))
        self.assertFalse(can_bind(SpawnKey("sonnet", extra=("--verbose",))))
        argv = generic_argv("claude", "sonnet", ("--setting-sources", ""))
        self.assertNotIn("--system-prompt", argv)
        self.assertEqual(argv[argv.index("--tools") + 1], "")
        self.assertEqual(argv[argv.index("--allowedTools") + 1], "mcp__cp")
        web = generic_argv("claude", "sonnet", (), web_search=True)
        self.assertEqual(web[web.index("--tools") + 1], "WebSearch")
        self.assertEqual(web[web.index("--allowedTools") + 1], "WebSearch,mcp__cp")

    def test_history_lines(self) -> None:
        history = (
            user("a"),
            Message("assistant", [text_block("b"), {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]),
            Message("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]),
            assistant("c"),
        )
        lines = history_lines(history, "sonnet", "/w", "2.1.197", "now")
        self.assertEqual([(x["type"], x.get("shouldQuery")) for x in lines], [("user", False), ("assistant", None)] * 2)
        self.assertEqual(lines[1]["message"]["content"][1]["name"], "mcp__cp__f")
        self.assertEqual(lines[1]["message"]["stop_reason"], "tool_use")
        self.assertEqual(user_turns(history), 2)

    def test_switchable(self) -> None:
        """
        A process bound to other settings serves a request by switching
        only its model, and its effort when it has none yet.
        """
        base = SpawnKey("haiku", "S", tools=(TOOL,))
        self.assertTrue(switchable(base, attrs.evolve(base, model="sonnet")))
        self.assertTrue(switchable(base, attrs.evolve(base, model="sonnet", effort="high")))
        self.assertEqual(
            switch_requests(base, attrs.evolve(base, model="sonnet", effort="high")),
            [
                {"subtype": "set_model", "model": "sonnet"},
                {"subtype": "apply_flag_settings", "settings": {"effortLevel": "high"}},
            ],
        )
        low = attrs.evolve(base, effort="low")
        self.assertFalse(switchable(low, base), "an effort given at spawn outranks the settings")
        self.assertFalse(switchable(low, attrs.evolve(base, effort="high")))
        self.assertTrue(switchable(low, attrs.evolve(low, model="opus")))
        self.assertFalse(switchable(base, base))
        for other in (
            attrs.evolve(base, system="T"),
            attrs.evolve(base, tools=()),
            attrs.evolve(base, max_tokens=100),
            attrs.evolve(base, json_schema="{}"),
            attrs.evolve(base, web_search=True),
            attrs.evolve(base, system_mode="append"),
        ):
            self.assertFalse(switchable(base, attrs.evolve(other, model="sonnet")), other)

    def test_history_write_max_by_version(self) -> None:
        self.assertGreater(history_write_max((2, 1, 197)), history_write_max((2, 1, 332)))


class ControlChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.proc = CLIProcess(RecordingKiller())
        self.transport = FakeTransport(7)
        self.proc.makeConnection(self.transport)

    def test_readiness_probe_binds_nothing(self) -> None:
        self.proc.ask_ready()
        self.assertEqual(sent(self.transport)[0]["request"], {"subtype": "get_binary_version"})
        answer(self.proc, READY_REQUEST, {"version": "2.1.197"})
        self.assertTrue(self.proc.ready)

    def test_generic_process_warmed_up_before_ready(self) -> None:
        """
        A generic process is ready once it has also applied settings it
        already has (the CLI's first apply_flag_settings is the slow one);
        a refused warm-up still leaves it ready.
        """
        for refused in ("", "no such thing"):
            proc = CLIProcess(RecordingKiller())
            transport = FakeTransport(7)
            proc.makeConnection(transport)
            proc.ask_ready(warm_up=True)
            answer(proc, READY_REQUEST)
            self.assertFalse(proc.ready)
            self.assertEqual(sent(transport)[-1]["request"], WARM_UP)
            answer(proc, WARM_UP_REQUEST, error=refused)
            self.assertTrue(proc.ready)
            self.assertIsNone(proc.control_error)

    def test_probe_refused(self) -> None:
        self.proc.ask_ready()
        answer(self.proc, READY_REQUEST, error="unknown subtype")
        self.assertFalse(self.proc.ready)
        self.assertEqual(self.proc.control_error, "unknown subtype")

    def test_control_answer_and_error(self) -> None:
        got: list[Any] = []
        self.proc.control({"subtype": "set_model", "model": "haiku"}).addBoth(got.append)
        rid = sent(self.transport)[-1]["request_id"]
        answer(self.proc, rid, {"model": "claude-haiku"})
        self.assertEqual(got, [{"model": "claude-haiku"}])
        self.proc.control({"subtype": "nope"}).addErrback(lambda f: got.append(f.getErrorMessage()))
        answer(self.proc, sent(self.transport)[-1]["request_id"], error="no such thing")
        self.assertEqual(got[-1], "no such thing")

    def test_cli_requests_refused_without_handler(self) -> None:
        line(self.proc, {"type": "control_request", "request_id": "r1", "request": {"subtype": "can_use_tool"}})
        (reply,) = sent(self.transport)
        self.assertEqual(reply["response"]["subtype"], "error")
        self.assertEqual(reply["response"]["request_id"], "r1")

    def test_local_echo_is_not_a_turn(self) -> None:
        sink = RecordingSink()
        self.proc.attach(sink)
        echo = {
            "type": "user",
            "message": {"role": "user", "content": "<local-command-stdout>Set model</local-command-stdout>"},
        }
        line(self.proc, echo)
        self.assertEqual((sink.lines, self.proc.local_echoes), ([], 1))


class ScriptedCLI:
    """
    Answers a bound process's control requests as the CLI does:
    C{initialize} (with the tool server's handshake first, as 2.1.332),
    C{set_model} with the 2.1.197 echo, history lines with their
    C{result}.
    """

    def __init__(self, proc: CLIProcess, transport: FakeTransport, handshake: bool = False, echo: bool = False) -> None:
        self.proc = proc
        self.transport = transport
        self.handshake = handshake
        self.echo = echo
        self.seen = 0

    def step(self) -> None:
        """
        Answer everything written since the last step.
        """
        lines = sent(self.transport)
        new, self.seen = lines[self.seen :], len(lines)
        for obj in new:
            if obj["type"] == "control_request":
                request = obj["request"]
                if request["subtype"] == "initialize" and self.handshake and "sdkMcpServers" in request:
                    for n, method in enumerate(["initialize", "notifications/initialized", "tools/list"]):
                        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
                        if method != "notifications/initialized":
                            message["id"] = n
                        line(
                            self.proc,
                            {
                                "type": "control_request",
                                "request_id": "m%d" % (n,),
                                "request": {"subtype": "mcp_message", "server_name": "cp", "message": message},
                            },
                        )
                if request["subtype"] == "set_model" and self.echo:
                    line(
                        self.proc,
                        {
                            "type": "user",
                            "message": {"role": "user", "content": "<local-command-stdout>x</local-command-stdout>"},
                        },
                    )
                answer(self.proc, obj["request_id"])
            elif obj["type"] == "user" and (obj.get("shouldQuery") is False or obj["message"]["content"] == "/clear"):
                line(self.proc, {"type": "result", "subtype": "success", "num_turns": 0, "is_error": False})


class BinderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.proc = CLIProcess(RecordingKiller())
        self.transport = FakeTransport(7)
        self.proc.makeConnection(self.transport)

    def bind(
        self, cli: ScriptedCLI, key: SpawnKey, history: tuple[Message, ...] = (), clear: bool = False
    ) -> list[Any]:
        out: list[Any] = []
        d = Deferred.fromCoroutine(bind(self.clock, self.proc, key, "sonnet", history, "/w", "2.1.197", clear=clear))
        d.addBoth(out.append)
        for _ in range(20):
            cli.step()
        return out

    def test_everything_in_order(self) -> None:
        cli = ScriptedCLI(self.proc, self.transport, handshake=True, echo=True)
        key = SpawnKey("haiku", "S", effort="low", tools=(TOOL,))
        out = self.bind(cli, key, (user("q"), assistant("a")))
        self.assertEqual(out, [None])
        kinds = [
            (o["type"], o.get("request", {}).get("subtype") or o.get("subtype") or o.get("response", {}).get("subtype"))
            for o in sent(self.transport)
        ]
        self.assertEqual(
            kinds,
            [
                ("control_request", "initialize"),
                ("control_response", "success"),
                ("control_response", "success"),
                ("control_response", "success"),
                ("control_request", "set_model"),
                # the echo of set_model is hidden from upstream
                ("system", "compact_boundary"),
                ("control_request", "apply_flag_settings"),
                ("user", None),
                ("assistant", None),
            ],
        )
        tools_list = sent(self.transport)[3]["response"]["response"]["mcp_response"]["result"]["tools"]
        self.assertEqual([t["name"] for t in tools_list], ["get_weather"])

    def test_clear_keeps_the_settings(self) -> None:
        """
        A one-shot's process, already bound to the request's settings, is
        cleared: C{/clear}, waited for, then a boundary that keeps the
        command from upstream; no control request, then the history.
        """
        cli = ScriptedCLI(self.proc, self.transport)
        key = SpawnKey("haiku", "S", effort="low", tools=(TOOL,))
        self.assertEqual(self.bind(cli, key, (user("q"), assistant("a")), clear=True), [None])
        lines = sent(self.transport)
        self.assertEqual(
            [(o["type"], o.get("subtype")) for o in lines],
            [("user", None), ("system", "compact_boundary"), ("user", None), ("assistant", None)],
        )
        self.assertEqual(lines[0]["message"]["content"], "/clear")
        self.assertFalse(lines[2]["shouldQuery"])

    def test_clear_and_switch(self) -> None:
        """
        A process bound to another model is cleared, then switched:
        C{set_model} (its 2.1.197 echo hidden by a boundary) and the
        effort, before the history.
        """
        cli = ScriptedCLI(self.proc, self.transport, echo=True)
        key = SpawnKey("sonnet", "S", effort="low")
        out: list[Any] = []
        d = Deferred.fromCoroutine(
            bind(
                self.clock,
                self.proc,
                key,
                "sonnet",
                (user("q"), assistant("a")),
                "/w",
                "2.1.197",
                clear=True,
                switch_from=SpawnKey("haiku", "S"),
            )
        )
        d.addBoth(out.append)
        for _ in range(20):
            cli.step()
        self.assertEqual(out, [None])
        lines = sent(self.transport)
        self.assertEqual(
            [(o["type"], o.get("request", {}).get("subtype") or o.get("subtype")) for o in lines],
            [
                ("user", None),
                ("system", "compact_boundary"),
                ("control_request", "set_model"),
                ("system", "compact_boundary"),
                ("control_request", "apply_flag_settings"),
                ("user", None),
                ("assistant", None),
            ],
        )
        self.assertEqual(lines[2]["request"]["model"], "sonnet")
        self.assertEqual(lines[4]["request"]["settings"], {"effortLevel": "low"})

    def test_clear_that_runs_a_turn_fails(self) -> None:
        out: list[Any] = []
        d = Deferred.fromCoroutine(
            bind(self.clock, self.proc, SpawnKey("sonnet"), "sonnet", (), "/w", "2.1.197", clear=True)
        )
        d.addErrback(lambda f: out.append(f.trap(BindFailed)))
        line(self.proc, {"type": "result", "subtype": "success", "num_turns": 1, "is_error": False})
        self.assertEqual(out, [BindFailed])

    def test_no_boundary_without_echo(self) -> None:
        cli = ScriptedCLI(self.proc, self.transport)
        self.assertEqual(self.bind(cli, SpawnKey("haiku")), [None])
        self.assertNotIn("system", [o["type"] for o in sent(self.transport)])

    def test_refused_initialize_fails_the_binding(self) -> None:
        out: list[Any] = []
        d = Deferred.fromCoroutine(bind(self.clock, self.proc, SpawnKey("sonnet"), "sonnet", (), "/w", "2.1.197"))
        d.addErrback(lambda f: out.append(f.trap(BindFailed)))
        answer(self.proc, sent(self.transport)[0]["request_id"], error="unknown")
        self.assertEqual(out, [BindFailed])

    def test_silent_cli_times_out(self) -> None:
        out: list[Any] = []
        d = Deferred.fromCoroutine(bind(self.clock, self.proc, SpawnKey("sonnet"), "sonnet", (), "/w", "2.1.197"))
        d.addErrback(lambda f: out.append(f.trap(BindFailed)))
        self.clock.advance(30)
        self.assertEqual(out, [BindFailed])


class DemandTests(SynchronousTestCase):
    def test_peak_ages_out(self) -> None:
        demand = Demand(window=100)
        for _ in range(5):
            demand.begin(0)
        for _ in range(5):
            demand.end()
        demand.begin(50)
        self.assertEqual(demand.peak(60), 5)
        self.assertEqual(demand.peak(120), 1)
        demand.end()
        self.assertEqual(demand.peak(200), 0)

    def test_one_after_another_faster_than_a_start(self) -> None:
        """
        Requests one at a time, but closer together than a process takes
        to start, need as many processes as came within a start.
        """
        demand = Demand(window=100)
        for t in (0.0, 0.3, 0.6, 0.9):
            demand.begin(t, span=1.0)
            demand.end()
        self.assertEqual(demand.peak(1.0), 4)
        demand.begin(5.0, span=1.0)
        self.assertEqual(demand.in_flight, 1)

    def test_a_miss_grows_the_peak_at_once(self) -> None:
        demand = Demand(window=100)
        demand.begin(0.0)
        demand.end()
        demand.short(0.5)
        demand.short(0.6)
        self.assertEqual(demand.peak(1.0), 3)

    def test_target(self) -> None:
        self.assertEqual(generic_target(0, 8), 2)
        self.assertEqual(generic_target(1, 8), 2)
        self.assertEqual(generic_target(8, 8), 8)
        self.assertEqual(generic_target(3, 8), 4)
        self.assertEqual(generic_target(5, 1), 1)
        self.assertEqual(generic_target(5, 0), 0)

    def test_memory_cap(self) -> None:
        self.assertEqual(memory_cap(24 * 1024**3), 20)
        self.assertEqual(memory_cap(8 * 1024**3), 6)
        self.assertEqual(memory_cap(512 * 1024**2), 1)


class GenericPoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.make()

    def make(self, max_sessions: int = 0, max_starting: int = 8) -> None:
        self.clock = Clock()
        self.spawner = FakeSpawner()
        self.claude = self.mktemp()
        with open(self.claude, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(self.claude, 0o755)
        self.m = ProcessManager(
            self.clock,
            CLISetup(
                self.claude,
                workdir=os.path.dirname(os.path.abspath(self.claude)),
                default_key=SpawnKey("sonnet"),
                binding=True,
            ),
            self.spawner,
            PoolLimits(warm=8, warm_cap=20, max_sessions=max_sessions, max_starting=max_starting),
            RecordingKiller(),
        )
        self.m.start()
        self.clock.advance(0)

    def ready_all(self) -> None:
        for proc in self.spawner.procs:
            if not proc.ready and not proc.is_ended:
                answer(proc, READY_REQUEST)
                if not proc.ready:
                    answer(proc, WARM_UP_REQUEST)

    def test_starts_paced(self) -> None:
        """
        At most C{max_starting} warm processes start at once: the next
        starts when one is ready, so starts do not slow each other or the
        turns being served.
        """
        self.make(max_starting=1)
        self.assertEqual(len(self.spawner.procs), 1)
        self.ready_all()
        self.clock.advance(0)
        self.assertEqual(len(self.spawner.procs), 2)
        self.ready_all()
        self.clock.advance(0)
        self.assertEqual(len(self.spawner.procs), 2)
        self.assertEqual(self.m.pool.ready_generic(), 2)
        # a burst takes both: one replacement starts at a time
        for _ in range(2):
            self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("hi")]))
        self.clock.advance(REFILL_DELAY)
        self.assertEqual(len(self.spawner.procs), 3)
        self.ready_all()
        self.clock.advance(0)
        self.assertEqual(len(self.spawner.procs), 4)

    def test_a_start_that_never_ends_holds_up_no_other(self) -> None:
        """
        A warm process that never says it is ready (a CLI that ignores the
        probe) holds up the next start only for C{STARTING_AT_MOST}.
        """
        self.make(max_starting=1)
        self.clock.advance(STARTING_AT_MOST - 1)
        self.assertEqual(len(self.spawner.procs), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.spawner.procs), 2)

    def test_a_cleared_process_is_not_a_start(self) -> None:
        """
        A conversation's process kept cleared for reuse never answered the
        readiness probe (it was started for its request): it does not hold
        up the pool's starts.
        """
        self.make(max_sessions=1, max_starting=1)
        self.ready_all()
        self.clock.advance(0)
        self.ready_all()
        key = SpawnKey("sonnet", "S")
        leases = [self.m.acquire(key, Conversation(None, [user("c%d" % i)])) for i in range(2)]
        self.assertEqual([lease.source for lease in leases], ["warm", "warm"])
        cold = self.m.acquire(key, Conversation(None, [user("cold")]))
        self.assertEqual(cold.source, "cold")
        self.assertFalse(cold.proc.ready)
        self.m.release(cold, Continuation((user("cold"), assistant("r"), user("more")), "d1"))
        self.m.release(leases[0], Continuation((user("c0"), assistant("r"), user("more")), "d2"))
        (entry,) = self.m.pool.cleared
        self.assertIs(entry.proc, cold.proc)
        before = len(self.spawner.procs)
        self.clock.advance(REFILL_DELAY)
        self.assertEqual(len(self.spawner.procs), before + 1)

    def test_any_key_takes_a_generic_process(self) -> None:
        self.assertEqual(len(self.m.pool.generic), 2)
        self.ready_all()
        for key in (SpawnKey("haiku", "S"), SpawnKey("sonnet", None, tools=(TOOL,), json_schema="{}")):
            lease = self.m.acquire(key, Conversation(None, [user("hi")]))
            self.assertEqual(lease.source, "warm")
            assert lease.bind is not None
            self.assertEqual(lease.bind.model, "sonnet")
        self.assertEqual(self.m.stats.bound, 2)

    def test_history_within_the_limit_is_written(self) -> None:
        self.ready_all()
        messages = [user("a"), assistant("b"), user("c")]
        lease = self.m.acquire(SpawnKey("sonnet"), Conversation(None, messages))
        self.assertEqual(lease.source, "written")
        assert lease.bind is not None
        self.assertEqual(len(lease.bind.history), 2)
        self.m.history_write_max = 0
        lease = self.m.acquire(SpawnKey("sonnet"), Conversation(None, messages))
        self.assertEqual(lease.source, "cold")
        self.assertIn("--resume", self.spawner.calls[-1][2])

    def test_one_shot_reused_when_none_is_ready(self) -> None:
        """
        A new conversation that finds no started process ready takes the
        process of a one-shot with the same settings (a task nobody
        continued), cleared, instead of waiting for a start; never a
        conversation the user is in, nor one with other settings.
        """
        self.make(max_sessions=8)
        key = SpawnKey("sonnet", "S")
        self.ready_all()
        leases = [self.m.acquire(key, Conversation(None, [user("t%d" % i)])) for i in range(2)]
        self.m.release(leases[0], Continuation((user("t0"),), "d0"))
        self.m.release(leases[1], Continuation((user("t1"), assistant("r1"), user("more")), "d1"))
        other = self.m.acquire(SpawnKey("sonnet", "other"), Conversation(None, [user("o")]))
        self.m.release(other, Continuation((user("o"),), "d2"))
        self.assertEqual(self.m.pool.ready_generic(), 0)
        lease = self.m.acquire(key, Conversation(None, [user("new")]))
        self.assertEqual((lease.source, lease.proc), ("reused", leases[0].proc))
        assert lease.bind is not None
        self.assertTrue(lease.bind.clear)
        self.assertEqual(len(self.m.sessions), 2)
        # the only one-shot with these settings is gone: a started one
        lease = self.m.acquire(key, Conversation(None, [user("newer")]))
        self.assertIn(lease.source, ("starting", "cold"))
        self.assertEqual(self.m.describe()["warm"]["generic"]["reused"], 1)

    def test_another_model_switched_only_when_it_is_going(self) -> None:
        """
        A one-shot of another model is never taken while it is live (its
        user may go on with it, with another model too); when it is the
        session this request's reply would push out, it is taken, cleared
        and switched.  An effort given at spawn is never switched.
        """
        self.make(max_sessions=2)
        key = SpawnKey("sonnet", "S")
        self.ready_all()
        first = [(SpawnKey("haiku", "S"), "h"), (SpawnKey("opus", "S", effort="low"), "o")]
        taken = []
        for k, text in first:
            lease = self.m.acquire(k, Conversation(None, [user(text)]))
            self.ready_all()
            taken.append(lease)
        for (_, text), lease in zip(first, taken, strict=True):
            self.m.release(lease, Continuation((user(text),), "d" + text))
            self.clock.advance(1)
        haiku = taken[0]
        while self.m.pool.ready_generic():
            self.m.acquire(SpawnKey("sonnet", "busy"))
        lease = self.m.acquire(key, Conversation(None, [user("new")]))
        self.assertEqual((lease.source, lease.proc), ("reused", haiku.proc))
        assert lease.bind is not None
        self.assertEqual((lease.bind.clear, lease.bind.switch_from), (True, SpawnKey("haiku", "S")))
        self.m.release(lease, Continuation((user("new"), assistant("r"), user("more")), "dn"))
        # the next out has an effort given at spawn: a started process
        lease = self.m.acquire(key, Conversation(None, [user("newer")]))
        self.assertIn(lease.source, ("starting", "cold"))
        self.assertEqual(self.m.describe()["warm"]["generic"]["switched"], 1)
        # with room for more, a live one-shot of another model stays
        self.make(max_sessions=8)
        self.ready_all()
        other = self.m.acquire(SpawnKey("haiku", "S"), Conversation(None, [user("h")]))
        self.m.release(other, Continuation((user("h"),), "dh"))
        while self.m.pool.ready_generic():
            self.m.acquire(SpawnKey("sonnet", "busy"))
        lease = self.m.acquire(key, Conversation(None, [user("new")]))
        self.assertNotEqual(lease.proc, other.proc)

    def test_session_about_to_go_reused_when_none_is_ready(self) -> None:
        """
        With C{max_sessions} sessions kept and no process ready, a new
        conversation takes the process of the session its own reply would
        push out, if it has the same settings: cleared (~15-30 ms) instead
        of waiting for a start.  Never one with other settings.
        """
        self.make(max_sessions=2)
        key, other = SpawnKey("sonnet", "S"), SpawnKey("sonnet", "other")
        self.ready_all()
        a = self.m.acquire(key, Conversation(None, [user("a")]))
        b = self.m.acquire(other, Conversation(None, [user("b")]))
        self.m.release(a, Continuation((user("a"), assistant("r"), user("more")), "d1"))
        self.clock.advance(1)
        self.m.release(b, Continuation((user("b"), assistant("r"), user("more")), "d2"))
        self.assertEqual(self.m.pool.ready_generic(), 0)
        # the next out is a's: other settings get a started process
        lease = self.m.acquire(other, Conversation(None, [user("c")]))
        self.assertIn(lease.source, ("starting", "cold"))
        lease = self.m.acquire(key, Conversation(None, [user("d")]))
        self.assertEqual((lease.source, lease.proc), ("reused", a.proc))
        assert lease.bind is not None
        self.assertTrue(lease.bind.clear)
        self.assertEqual([s.key for s in self.m.sessions], [other])

    def test_conversation_pushed_out_is_cleared_for_reuse(self) -> None:
        """
        A conversation pushed out by newer ones (--max-sessions) keeps its
        process: it keeps its conversation for C{PUSHED_OUT_HOLD} seconds, then
        is cleared and waits for a new conversation with its settings,
        which it serves before any generic process.
        """
        self.make(max_sessions=1)
        key = SpawnKey("sonnet", "S")
        self.ready_all()
        first = self.m.acquire(key, Conversation(None, [user("a")]))
        self.m.release(first, Continuation((user("a"), assistant("b"), user("c")), "d1"))
        second = self.m.acquire(SpawnKey("sonnet", "other"), Conversation(None, [user("x")]))
        self.m.release(second, Continuation((user("x"), assistant("y"), user("z")), "d2"))
        self.assertFalse(first.proc.killed)
        self.assertEqual(self.m.stats.recycled, 1)
        (entry,) = self.m.pool.cleared
        self.assertIsNotNone(entry.held)
        self.clock.advance(PUSHED_OUT_HOLD)
        self.assertTrue(entry.clearing)
        self.assertIsNone(entry.held)
        lines = sent(self.spawner.transports[self.spawner.procs.index(first.proc)])
        self.assertEqual(lines[-1]["message"]["content"], "/clear")
        # not lent while clearing
        self.assertNotEqual(self.m.acquire(key, Conversation(None, [user("n")])).source, "reused")
        line(first.proc, {"type": "result", "subtype": "success", "num_turns": 0, "is_error": False})
        self.assertFalse(entry.clearing)
        self.assertEqual(sent(self.spawner.transports[self.spawner.procs.index(first.proc)])[-1]["type"], "system")
        lease = self.m.acquire(key, Conversation(None, [user("new")]))
        self.assertEqual((lease.source, lease.proc), ("reused", first.proc))
        assert lease.bind is not None
        self.assertTrue(lease.bind.bound)
        self.assertEqual(self.m.describe()["warm"]["generic"]["recycled"], 1)

    def test_pushed_out_goes_on_for_a_moment(self) -> None:
        """
        A one-shot just answered, pushed out at once (every other session
        is a conversation), goes on as a live session when its next turn
        comes within C{PUSHED_OUT_HOLD}: nothing cleared, nothing written.  A
        new conversation that takes such a process clears it first.
        """
        self.make(max_sessions=1)
        key = SpawnKey("sonnet", "S")
        self.ready_all()
        convo = self.m.acquire(key, Conversation(None, [user("a")]))
        self.m.release(convo, Continuation((user("a"), assistant("b"), user("c")), digest_text("d")))
        fresh = self.m.acquire(key, Conversation(None, [user("new")]))
        self.m.release(fresh, Continuation((user("new"),), digest_text("Answer.")))
        self.assertEqual([s.proc for s in self.m.sessions], [convo.proc], "a one-shot goes first")
        self.clock.advance(PUSHED_OUT_HOLD / 2)
        lease = self.m.acquire(key, Conversation(None, [user("new"), assistant("Answer."), user("more")]))
        self.assertEqual((lease.source, lease.proc, lease.bind), ("session", fresh.proc, None))
        self.m.release(lease, Continuation((user("new"), assistant("Answer."), user("more")), "d3"))
        # the conversation pushed out now is taken by a new one: cleared first
        (entry,) = self.m.pool.cleared
        self.assertIs(entry.proc, convo.proc)
        while self.m.pool.ready_generic():
            self.m.acquire(SpawnKey("sonnet", "busy"))
        lease = self.m.acquire(key, Conversation(None, [user("newest")]))
        self.assertEqual((lease.source, lease.proc), ("reused", convo.proc))
        assert lease.bind is not None
        self.assertEqual((lease.bind.clear, lease.bind.bound), (True, False))
        self.clock.advance(PUSHED_OUT_HOLD)
        self.assertNotIn("/clear", json.dumps(sent(self.spawner.transports[self.spawner.procs.index(convo.proc)])))

    def test_cleared_processes_make_room_for_generic_ones(self) -> None:
        """
        At the process limit, a cleared process (it serves only its own
        settings) makes room for a generic one before anything else.
        """
        self.make(max_sessions=1)
        self.ready_all()
        first = self.m.acquire(SpawnKey("sonnet", "A"), Conversation(None, [user("a")]))
        self.m.release(first, Continuation((user("a"), assistant("b"), user("c")), "d1"))
        second = self.m.acquire(SpawnKey("sonnet", "B"), Conversation(None, [user("x")]))
        self.m.release(second, Continuation((user("x"), assistant("y"), user("z")), "d2"))
        self.assertEqual(len(self.m.pool.cleared), 1)
        self.m.max_processes = self.m._alive()
        self.assertTrue(self.m._room_for_warm())
        self.assertEqual(self.m.pool.cleared, [])
        self.assertTrue(first.proc.killed)
        self.assertFalse(second.proc.killed)

    def test_clear_refused_ends_the_process(self) -> None:
        self.make(max_sessions=1)
        self.ready_all()
        first = self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("a")]))
        self.m.release(first, Continuation((user("a"), assistant("b"), user("c")), "d1"))
        second = self.m.acquire(SpawnKey("haiku"), Conversation(None, [user("x")]))
        self.m.release(second, Continuation((user("x"), assistant("y"), user("z")), "d2"))
        self.clock.advance(PUSHED_OUT_HOLD)
        line(first.proc, {"type": "result", "subtype": "success", "num_turns": 1, "is_error": False})
        self.assertEqual(self.m.pool.cleared, [])
        self.assertTrue(first.proc.killed)
        self.flushLoggedErrors()

    def test_ready_process_before_reuse(self) -> None:
        self.make(max_sessions=8)
        key = SpawnKey("sonnet", "S")
        self.ready_all()
        first = self.m.acquire(key, Conversation(None, [user("t")]))
        self.m.release(first, Continuation((user("t"),), "d0"))
        self.assertGreater(self.m.pool.ready_generic(), 0)
        lease = self.m.acquire(key, Conversation(None, [user("new")]))
        self.assertEqual(lease.source, "warm")

    def test_pool_follows_the_peak_and_shrinks(self) -> None:
        self.ready_all()
        leases = [self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("%d" % i)])) for i in range(5)]
        for lease in leases:
            self.m.release(lease)
        self.clock.advance(1)
        # five at once, three of them finding none ready: the peak plus
        # one, and one more for having been short
        self.assertEqual(len(self.m.pool.generic), 7)
        # quiet: the peak ages out, then the whole pool goes
        for _ in range(11):
            self.clock.advance(60)
        self.assertLessEqual(len(self.m.pool.generic), 2)
        self.clock.advance(600)
        self.assertEqual(len(self.m.pool.generic), 0)

    def test_web_search_gets_generic_processes_of_its_own(self) -> None:
        """
        The WebSearch tool is fixed at spawn: requests with a hosted web
        search (Codex sends one with every request) take generic processes
        started with it, kept once such requests come; others never do.
        """
        self.ready_all()
        web = SpawnKey("sonnet", "Codex", web_search=True)
        lease = self.m.acquire(web, Conversation(None, [user("x")]))
        self.assertEqual((lease.source, lease.bind), ("cold", None))
        self.m.release(lease)
        self.clock.advance(0)
        kept = len(self.m.pool.generics(True))
        self.assertGreaterEqual(kept, 1)
        self.assertIn("WebSearch", self.spawner.calls[-1][2])
        self.ready_all()
        plain = [self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("p")])) for _ in range(2)]
        self.assertEqual(len(self.m.pool.generics(True)), kept)
        lease = self.m.acquire(web, Conversation(None, [user("a"), assistant("b"), user("c")]))
        self.assertEqual(lease.source, "written")
        self.assertEqual(len(self.m.pool.generics(True)), kept - 1)
        self.assertTrue(all(p.source == "warm" for p in plain))

    def test_a_cli_without_the_control_requests_falls_back(self) -> None:
        for proc in self.spawner.procs:
            answer(proc, READY_REQUEST, error="unknown subtype get_binary_version")
        lease = self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("x")]))
        self.assertEqual(lease.source, "cold")
        self.assertEqual(self.m.mode, "keyed")
        self.assertIn("get_binary_version", self.m.binding_off or "")

    def test_a_refused_setting_keeps_binding_on(self) -> None:
        self.ready_all()
        lease = self.m.acquire(SpawnKey("nonsense"), Conversation(None, [user("x")]))
        self.m.bind_failed(lease, "the CLI refused set_model: no such model", "set_model")
        self.assertEqual(self.m.mode, "generic")
        self.m.bind_failed(lease, "the CLI refused initialize: unknown", "initialize")
        self.assertEqual(self.m.mode, "keyed")

    def test_old_cli_falls_back(self) -> None:
        self.m.cli_known("2.1.100 (Claude Code)")
        self.assertEqual((self.m.mode, self.m.cli_version), ("keyed", "2.1.100"))

    def test_version_recorded(self) -> None:
        self.m.cli_known("2.1.332 (Claude Code)")
        self.assertEqual((self.m.mode, self.m.cli_version, self.m.history_write_max), ("generic", "2.1.332", 10))

    def test_session_files_carry_the_installed_version(self) -> None:
        """
        A history loaded from a session file says it was written by the
        CLI that is installed, not by the oldest one tested.
        """
        self.m.cli_known("2.1.332 (Claude Code)")
        self.m.history_write_max = 0
        self.m.acquire(SpawnKey("sonnet"), Conversation(None, [user("a"), assistant("b"), user("c")]))
        args = self.spawner.calls[-1][2]
        with open(args[args.index("--resume") + 1]) as f:
            rows = [json.loads(line) for line in f]
        self.assertEqual({row["version"] for row in rows}, {"2.1.332"})


class SessionWorthTests(SynchronousTestCase):
    def test_one_shot_goes_first(self) -> None:
        clock = Clock()
        ended: list[str] = []
        sessions = LiveSessions(clock, 2, 300, lambda s, why: ended.append(s.held.messages[0].blocks[0]["text"]))

        def keep(*texts: str) -> None:
            messages = tuple(user(t) if i % 2 == 0 else assistant(t) for i, t in enumerate(texts))
            sessions.keep(Session(CLIProcess(RecordingKiller()), SpawnKey("sonnet"), Continuation(messages, "d")))
            clock.advance(1)

        keep("conversation", "reply", "more")
        keep("title task")
        keep("tags task")
        self.assertEqual(ended, ["title task"])
        keep("another", "reply", "more")
        self.assertEqual(ended, ["title task", "tags task"])
        keep("third", "reply", "more")
        self.assertEqual(ended[-1], "conversation")


class TrimmedContinuationTests(SynchronousTestCase):
    def test_trailing_whitespace_trimmed_by_the_client(self) -> None:
        state = TurnState(model="sonnet")
        for piece in ("Hello", " there.", "\n", "  "):
            state._add_text(piece)
        finished = state.finished_so_far(stop_reason="end_turn", usage={})
        self.assertEqual(finished.reply_digest(), digest_text("Hello there.\n  "))
        self.assertEqual(finished.trimmed_reply_digest(), digest_text("Hello there."))
        held = Continuation((user("hi"),), finished.reply_digest(), finished.trimmed_reply_digest())
        self.assertTrue(continues((user("hi"), assistant("Hello there.")), held))
        self.assertTrue(continues((user("hi"), assistant("Hello there.\n  ")), held))
        self.assertFalse(continues((user("hi"), assistant("Hello there")), held))
