"""
Unit tests for how the process manager serves a conversation's history:
loaded from a session file, continued by a process started ahead, or by a
parked tool call; passed-by waits ended.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.error import ProcessDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.continuity import CONTINUE_AFTER_RESULTS
from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.pool import STALE_WAIT, Continuation, ProcessManager, assistant_digest
from claudeproxy.engine.poolsettings import CLISetup, PoolLimits
from claudeproxy.engine.process import READY_REQUEST, SpawnKey
from claudeproxy.web.metrics import Metrics
from tests.fakes import FakeSpawner, RecordingKiller

KEY = SpawnKey("sonnet", "S")
CONTEXT = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nx\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"
CALL = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


def user(text: str) -> Message:
    return Message("user", [text_block(text)])


def assistant(text: str) -> Message:
    return Message("assistant", [text_block(text)])


def ready(proc: Any) -> None:
    """
    The CLI's answer to the readiness probe, as the real one prints it.
    """
    answer = {"type": "control_response", "response": {"subtype": "success", "request_id": READY_REQUEST}}
    proc.outReceived(json.dumps(answer).encode() + b"\n")
    assert proc.ready


class ManagerCase(SynchronousTestCase):
    """
    A process manager on a fake spawner, a clock and an executable stand-in
    for the CLI.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.spawner = FakeSpawner()
        self.killer = RecordingKiller()
        self.claude = self.mktemp()
        with open(self.claude, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(self.claude, 0o755)
        self.workdir = os.path.dirname(os.path.abspath(self.claude))

    def manager(self, **kw: Any) -> ProcessManager:
        # starts are not paced here (GenericPoolTests test the pacing): the
        # same on any machine
        kw.setdefault("max_starting", 8)
        return ProcessManager(
            self.clock,
            CLISetup(self.claude, env={"PATH": "/usr/bin"}, workdir=self.workdir),
            self.spawner,
            PoolLimits(**kw),
            self.killer,
        )


class ContinuityTests(ManagerCase):
    def setUp(self) -> None:
        super().setUp()
        self.m = self.manager(max_sessions=4)

    def resume_file(self, n: int = -1) -> str:
        args = self.spawner.calls[n][2]
        return args[args.index("--resume") + 1]

    def rows(self, path: str) -> list[dict[str, Any]]:
        with open(path) as f:
            return [json.loads(line) for line in f]

    def end(self, proc: Any) -> None:
        proc.processEnded(Failure(ProcessDone(0)))

    def test_history_loaded_from_a_session_file(self) -> None:
        conv = Conversation("S", [user("a"), assistant("b"), user("c")])
        lease = self.m.acquire(KEY, conv)
        self.assertEqual((lease.source, lease.turn), ("cold", None))
        path = self.resume_file()
        self.assertEqual(os.path.dirname(path), self.workdir)
        self.assertEqual([r["message"]["content"] for r in self.rows(path)], [[text_block("a")], [text_block("b")]])
        self.assertEqual(self.m.stats.resumed_spawns, 1)
        self.end(lease.proc)
        self.assertFalse(os.path.exists(path), "the file goes with its process")

    def test_no_history_no_file(self) -> None:
        self.m.acquire(KEY, Conversation("S", [user("a")]))
        self.assertNotIn("--resume", self.spawner.calls[0][2])

    def test_results_go_in_the_file(self) -> None:
        conv = Conversation("S", [user("a"), Message("assistant", [CALL]), Message("user", [RESULT])])
        lease = self.m.acquire(KEY, conv)
        rows = self.rows(self.resume_file())
        self.assertEqual([r["type"] for r in rows], ["user", "assistant", "user"])
        self.assertEqual(rows[2]["message"]["content"], [RESULT])
        self.assertEqual(lease.turn, (user(CONTINUE_AFTER_RESULTS),))
        # text after the results is the turn written
        conv = Conversation(
            "S", [user("a"), Message("assistant", [CALL]), Message("user", [RESULT, text_block("more")])]
        )
        self.assertEqual(self.m.acquire(KEY, conv).turn, (user("more"),))

    def test_prepared_process_continues_the_conversation(self) -> None:
        self.m.prepare(KEY, (user("a"), assistant("b")))
        self.m.prepare(KEY, (user("a"), assistant("b")))
        self.assertEqual(len(self.spawner.calls), 1, "one process per conversation")
        prepared = self.spawner.procs[0]
        lease = self.m.acquire(KEY, Conversation("S", [user("a"), assistant("b"), user("c")]))
        self.assertIs(lease.proc, prepared)
        self.assertEqual(lease.source, "resumed")
        self.assertEqual(self.m.stats.prepared_hits, 1)
        # another key does not take it
        self.m.prepare(KEY, (user("x"), assistant("y")))
        other = self.m.acquire(SpawnKey("opus", "S"), Conversation("S", [user("x"), assistant("y"), user("z")]))
        self.assertEqual(other.source, "cold")

    def test_parked_call_matches_without_the_transient_context(self) -> None:
        first = Conversation("S", [user("a"), user(CONTEXT)])
        lease = self.m.acquire(KEY, first)
        call_message = Message("assistant", [CALL])
        digest = assistant_digest(call_message)
        assert digest is not None
        self.m.hold_for_tools(
            lease, frozenset({"toolu_1"}), (), Continuation(first.messages, digest), Continuation((user("a"),), digest)
        )
        follow = Conversation("S", [user("a"), call_message, Message("user", [RESULT]), user(CONTEXT)])
        again = self.m.acquire(KEY, follow)
        self.assertIs(again.proc, lease.proc)
        self.assertEqual(again.source, "tools")

    def test_passed_by_wait_ends(self) -> None:
        lease = self.m.acquire(KEY, Conversation("S", [user("a")]))
        digest = assistant_digest(Message("assistant", [CALL]))
        assert digest is not None
        self.m.hold_for_tools(lease, frozenset({"toolu_1"}), (), Continuation((user("a"),), digest))
        edited = Conversation("S", [user("A!"), Message("assistant", [CALL]), Message("user", [RESULT])])
        other = self.m.acquire(KEY, edited)
        self.assertIsNot(other.proc, lease.proc)
        self.assertTrue(lease.proc.killed)
        self.assertEqual(self.m.stats.tool_waits_abandoned, 1)


class WarmSizingTests(ManagerCase):
    def test_busy_key_gets_the_spare_budget(self) -> None:
        m = self.manager(warm=4)
        hot, cold = SpawnKey("sonnet", "hot"), SpawnKey("sonnet", "cold")
        m._note(cold)
        for _ in range(9):
            self.clock.advance(1)
            m._note(hot)
        self.assertEqual(m.targets(), {hot: 3, cold: 1})
        # one key alone has the whole budget
        self.clock.advance(601)
        m._note(hot)
        self.assertEqual(m.targets(), {hot: 4})

    def test_side_requests_learned_and_kept_warm(self) -> None:
        """
        A client's title and tags requests beside its main ones (their own
        system prompt, no tools) are kept warm from what the pool has seen,
        within the budget: a burst of main + title + tags, or a pair of
        main requests, finds a process for each.
        """
        m = self.manager(warm=4)
        main = SpawnKey("sonnet")
        title, tags = SpawnKey("sonnet", "Generate a title."), SpawnKey("sonnet", "Generate tags.")
        for _ in range(3):
            self.clock.advance(5)
            for key in (main, main, title, tags):
                m._note(key)
        self.assertEqual(m.targets(), {main: 2, title: 1, tags: 1})
        m._refill()
        for proc in self.spawner.procs:
            ready(proc)
        leases = [m.acquire(k) for k in (main, main, title, tags)]
        self.assertEqual([lease.source for lease in leases], ["warm"] * 4)

    def test_readiness(self) -> None:
        """
        A warm process is asked to say when it has started; one taken
        before its answer is served C{starting} (and counted), one after
        C{warm}; a ready one is taken before an older one still starting.
        """
        m = self.manager(warm=2)
        key = SpawnKey("sonnet")
        m._note(key)
        m._refill()
        first, second = self.spawner.procs
        for proc in (first, second):
            probe = json.loads(self.spawner.transports[self.spawner.procs.index(proc)].written[0])
            self.assertEqual(probe["type"], "control_request")
            self.assertEqual(probe["request"], {"subtype": "get_binary_version"})
        ready(second)
        lease = m.acquire(key)
        self.assertEqual((lease.proc, lease.source), (second, "warm"))
        lease = m.acquire(key)
        self.assertEqual((lease.proc, lease.source), (first, "starting"))
        self.assertEqual((m.stats.warm_hits, m.stats.starting_hits), (2, 1))
        self.assertEqual(m.describe()["warm"]["starting"], 1)

    def test_last_ready_process_replaced_at_the_first_token(self) -> None:
        """
        Taking the last ready process starts its replacement once the
        turn's first token is out, not at once: a CLI starting (~0.7 s of
        a core) would slow the turn's first token.
        """
        m = self.manager(warm=1)
        key = SpawnKey("sonnet")
        m._note(key)
        m._refill()
        ready(self.spawner.procs[0])
        m.acquire(key)
        self.clock.advance(0.5)
        self.assertEqual(len(self.spawner.procs), 1)
        m.first_token()
        self.clock.advance(0)
        self.assertEqual(len(self.spawner.procs), 2)
        # a turn that never gets a first token: after a moment anyway
        ready(self.spawner.procs[1])
        m.acquire(key)
        self.clock.advance(1.0)
        self.assertEqual(len(self.spawner.procs), 3)

    def test_hits_and_misses_per_key(self) -> None:
        m = self.manager(warm=2)
        key = SpawnKey("sonnet", "S")
        m.acquire(key)
        m._note(key)
        m._refill()
        m.acquire(key)
        described = m.describe()["warm"]["keys"]
        self.assertEqual([(k["model"], k["hits"], k["misses"]) for k in described], [("sonnet", 1, 1)])

    def test_keys_differing_only_in_max_tokens_stay_apart(self) -> None:
        """
        A chat request and a Messages request (which always sets max_tokens)
        for the same model: two keys in /health, two series in /metrics.
        """
        m = self.manager(warm=2)
        chat, messages = SpawnKey("sonnet"), SpawnKey("sonnet", max_tokens=256)
        m.acquire(chat)
        m.acquire(messages)
        m._refill()
        m.acquire(chat)
        described = m.describe()["warm"]["keys"]
        self.assertEqual({k["max_tokens"]: (k["hits"], k["misses"]) for k in described}, {None: (1, 1), 256: (0, 1)})
        self.assertEqual(len({k["key"] for k in described}), 2)
        live = {"in_flight": 0, "queued": 0, "pool": m.describe(), "exits": {}}
        text = Metrics(lambda: live).render().decode()
        series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith("claudeproxy_warm_pool_key")]
        self.assertEqual(len(series), 4, text)
        self.assertEqual(len(set(series)), 4, "no series appears twice")
        self.assertIn('max_tokens="256"', text)

    def test_budget_ends_the_oldest_idle_or_parked(self) -> None:
        m = self.manager(max_sessions=4, max_processes=2)
        key = SpawnKey("sonnet", "S")
        first = m.acquire(key, Conversation("S", [user("a")]))
        m.release(first, Continuation((user("a"),), "d1"))
        self.clock.advance(1)
        second = m.acquire(key, Conversation("S", [user("b")]))
        m.release(second, Continuation((user("b"),), "d2"))
        self.assertEqual(m.session_count, 2)
        third = m.acquire(key, Conversation("S", [user("c")]))
        self.assertTrue(first.proc.killed, "the oldest kept conversation made room")
        self.assertFalse(second.proc.killed)
        self.assertEqual(m.describe()["budget_evicted"], 1)
        self.assertEqual(third.source, "cold")

    def test_warm_processes_never_push_out_a_conversation(self) -> None:
        m = self.manager(warm=2, max_sessions=4, max_processes=1)
        key = SpawnKey("sonnet", "S")
        messages = (user("a"), assistant("b"), user("c"))
        lease = m.acquire(key, Conversation("S", messages))
        m.release(lease, Continuation(messages, "d"))
        m._note(key)
        m._refill()
        self.assertEqual(m.idle_count, 0)
        self.assertFalse(lease.proc.killed)

    def test_a_warm_process_takes_the_place_of_a_one_shot(self) -> None:
        """
        At the process limit, a one-shot session (a title task) makes room
        for a warm process once nobody has continued it for a few seconds
        (a new conversation's second turn may be on its way); so does a
        tool call parked 30 s without the client coming back.
        """
        m = self.manager(warm=2, max_sessions=4, max_processes=1)
        key = SpawnKey("sonnet", "S")
        lease = m.acquire(key, Conversation("S", [user("a title task")]))
        m.release(lease, Continuation((user("a title task"),), "d"))
        m._note(key)
        m._refill()
        self.assertFalse(lease.proc.killed)
        self.clock.advance(STALE_WAIT)
        self.assertTrue(lease.proc.killed)
        self.assertEqual((m.idle_count, m.session_count), (1, 0))
        m = self.manager(warm=2, max_sessions=4, max_processes=1)
        lease = m.acquire(key, Conversation("S", [user("call a tool")]))
        m.hold_for_tools(lease, frozenset({"toolu_1"}))
        m._note(key)
        m._refill()
        self.assertEqual(m.idle_count, 0)
        self.clock.advance(31)
        m._refill()
        self.assertTrue(lease.proc.killed)
        self.assertEqual(m.idle_count, 1)
