"""
Unit tests for L{claudeproxy.pool} (admission and the process manager, with
a fake spawner and killer) and L{claudeproxy.streaming.TurnRun} (with a
L{Clock}, a fake process and a recording output).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.pool import Limiter, ProcessManager
from claudeproxy.engine.poolsettings import CLISetup, PoolLimits
from claudeproxy.engine.process import CLIProcess, SpawnKey, build_argv
from claudeproxy.engine.streaming import Outcome, Retry, Timeouts, TurnPolicy, TurnRun
from claudeproxy.engine.turn import Finished, TurnState
from tests.fakes import FakeSpawner, RecordingKiller, RecordingOutput, RecordingSink

# -- fakes ---------------------------------------------------------------------


class FakeProc:
    """
    What L{TurnRun} uses of a L{CLIProcess}.
    """

    def __init__(self) -> None:
        self.sink: Any = None
        self.attached: list[Any] = []
        self.written: list[bytes] = []
        self.is_ended = False
        self.exit_status: Optional[int] = None
        self.stderr_tail = ""
        self.pauses = 0
        self.resumes = 0

    def attach(self, sink: Any) -> None:
        self.sink = sink
        self.attached.append(sink)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        self.resumes += 1


def process_done() -> Failure:
    return Failure(ProcessDone(0))


def process_killed() -> Failure:
    return Failure(ProcessTerminated(exitCode=None, signal=9))


# -- stream-json lines ---------------------------------------------------------------


def ev(event: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stream_event", "event": event}


INIT = {"type": "system", "subtype": "init", "model": "claude-sonnet-5", "session_id": "s"}
MESSAGE_START = ev(
    {
        "type": "message_start",
        "message": {"id": "msg_1", "model": "claude-sonnet-5", "usage": {"input_tokens": 9, "output_tokens": 1}},
    }
)


def delta(text: str) -> dict[str, Any]:
    return ev({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})


def result(text: str = "", stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": text,
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 9, "output_tokens": 4, "cache_read_input_tokens": 0},
        "modelUsage": {"claude-sonnet-5": {}},
    }


def error_result(status: int, text: str) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "api_error_status": status,
        "result": text,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


# -- Limiter -----------------------------------------------------------------------


class LimiterTests(SynchronousTestCase):
    def test_acquire_within_limit(self) -> None:
        limiter = Limiter(2, 1)
        self.assertIsNone(self.successResultOf(limiter.acquire()))
        self.assertIsNone(self.successResultOf(limiter.acquire()))
        self.assertEqual((limiter.running, limiter.queued), (2, 0))

    def test_queue_then_429(self) -> None:
        limiter = Limiter(1, 2)
        self.successResultOf(limiter.acquire())
        first = limiter.acquire()
        second = limiter.acquire()
        self.assertNoResult(first)
        self.assertNoResult(second)
        self.assertEqual(limiter.queued, 2)
        e = self.assertRaises(ProxyError, limiter.acquire)
        self.assertEqual((e.status, e.type, e.code), (429, "rate_limit_error", "queue_full"))
        self.assertEqual(e.retry_after, 1)
        self.assertEqual(e.headers(), {"Retry-After": "1"})
        self.assertIn("--max-concurrent", e.message)
        self.assertEqual(limiter.queued, 2)

    def test_no_queue(self) -> None:
        limiter = Limiter(1, 0)
        self.successResultOf(limiter.acquire())
        self.assertEqual(self.assertRaises(ProxyError, limiter.acquire).status, 429)

    def test_release_hands_slot_to_next_in_order(self) -> None:
        limiter = Limiter(1, 5)
        self.successResultOf(limiter.acquire())
        a, b = limiter.acquire(), limiter.acquire()
        limiter.release()
        self.successResultOf(a)
        self.assertNoResult(b)
        self.assertEqual((limiter.running, limiter.queued), (1, 1))
        limiter.release()
        self.successResultOf(b)
        limiter.release()
        self.assertEqual((limiter.running, limiter.queued), (0, 0))

    def test_queued_request_goes_first(self) -> None:
        limiter = Limiter(1, 5)
        self.successResultOf(limiter.acquire())
        waiting = limiter.acquire()
        limiter.release()
        self.successResultOf(waiting)
        late = limiter.acquire()
        self.assertNoResult(late)

    def test_cancel_removes_from_queue(self) -> None:
        limiter = Limiter(1, 1)
        self.successResultOf(limiter.acquire())
        waiting = limiter.acquire()
        waiting.cancel()
        self.failureResultOf(waiting, CancelledError)
        self.assertEqual(limiter.queued, 0)
        # the queue has room again, and releasing does not wake the cancelled one
        again = limiter.acquire()
        limiter.release()
        self.successResultOf(again)
        self.assertEqual(limiter.running, 1)

    def test_close_errbacks_waiters(self) -> None:
        limiter = Limiter(1, 3)
        self.successResultOf(limiter.acquire())
        waiting = [limiter.acquire(), limiter.acquire()]
        error = ProxyError(503, "shutting down")
        limiter.close(error)
        for d in waiting:
            self.assertIs(self.failureResultOf(d, ProxyError).value, error)
        self.assertEqual(limiter.queued, 0)


# -- ProcessManager ------------------------------------------------------------------


class ProcessManagerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.spawner = FakeSpawner()
        self.killer = RecordingKiller()
        self.claude = self.mktemp()
        with open(self.claude, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(self.claude, 0o755)
        self.workdir = os.path.dirname(os.path.abspath(self.claude))
        self.env = {"PATH": "/usr/bin", "CLAUDE_CODE_MAX_RETRIES": "2"}

    def manager(self, claude: Optional[str] = "default", reason: str = "", **kw: Any) -> ProcessManager:
        return ProcessManager(
            self.clock,
            CLISetup(self.claude if claude == "default" else claude, reason, self.env, self.workdir),
            kw.pop("spawner", self.spawner),
            PoolLimits(**kw),
            self.killer,
        )

    def test_acquire_spawns(self) -> None:
        m = self.manager()
        key = SpawnKey("opus", "Be brief.", "replace", "high")
        lease = m.acquire(key)
        self.assertEqual(len(self.spawner.calls), 1)
        proto, executable, args, env, path = self.spawner.calls[0]
        self.assertIs(proto, lease.proc)
        self.assertIsInstance(lease.proc, CLIProcess)
        self.assertEqual(executable, self.claude)
        self.assertEqual(args, build_argv(self.claude, key))
        self.assertEqual(env, self.env)
        self.assertEqual(path, self.workdir)
        self.assertEqual(lease.key, key)
        self.assertEqual(lease.source, "cold")
        self.assertEqual(m.spawned, 1)
        self.assertEqual(m.live, {lease.proc})

    def test_each_acquire_spawns_its_own(self) -> None:
        m = self.manager()
        a = m.acquire(SpawnKey("sonnet"))
        b = m.acquire(SpawnKey("sonnet"))
        self.assertIsNot(a.proc, b.proc)
        self.assertEqual(m.spawned, 2)

    def test_cli_missing(self) -> None:
        m = self.manager(None, "`claude` was not found on PATH (/nowhere)")
        e = self.assertRaises(ProxyError, m.acquire, SpawnKey("sonnet"))
        self.assertEqual((e.status, e.code), (503, "cli_unavailable"))
        self.assertIn("/nowhere", e.message)
        self.assertIn("npm install", e.message)
        self.assertEqual(self.spawner.calls, [])

    def test_cli_missing_default_reason(self) -> None:
        e = self.assertRaises(ProxyError, self.manager(None).acquire, SpawnKey("sonnet"))
        self.assertIn("not found on PATH", e.message)

    def test_cli_not_executable(self) -> None:
        os.chmod(self.claude, 0o644)
        m = self.manager()
        e = self.assertRaises(ProxyError, m.check_cli)
        self.assertEqual(e.status, 503)
        self.assertIn(self.claude, e.message)
        self.assertEqual(self.assertRaises(ProxyError, m.acquire, SpawnKey("sonnet")).status, 503)

    def test_spawn_os_error(self) -> None:
        m = self.manager(spawner=FakeSpawner(OSError(2, "No such file")))
        e = self.assertRaises(ProxyError, m.acquire, SpawnKey("sonnet"))
        self.assertEqual(e.status, 503)
        self.assertIn("No such file", e.message)
        self.assertEqual(m.live, set())

    def test_release_kills(self) -> None:
        m = self.manager()
        lease = m.acquire(SpawnKey("sonnet"))
        m.release(lease)
        self.assertEqual(self.killer.calls, [1001])
        self.assertTrue(lease.proc.killed)
        self.assertIn(lease.proc, m.live, "live until reaped")
        lease.proc.processEnded(process_killed())
        self.assertEqual(m.live, set())
        self.assertEqual(self.killer.calls, [1001])

    def test_release_detaches(self) -> None:
        m = self.manager()
        lease = m.acquire(SpawnKey("sonnet"))
        sink = RecordingSink()
        lease.proc.attach(sink)
        m.release(lease)
        lease.proc.outReceived(b'{"type":"late"}\n')
        self.assertEqual(sink.lines, [])

    def test_process_exit_leaves_live(self) -> None:
        m = self.manager()
        lease = m.acquire(SpawnKey("sonnet"))
        lease.proc.processEnded(process_done())
        self.assertEqual(m.live, set())

    def test_shutdown(self) -> None:
        m = self.manager()
        leases = [m.acquire(SpawnKey("sonnet")), m.acquire(SpawnKey("haiku"))]
        d = m.shutdown()
        self.assertEqual(sorted(self.killer.calls), [1001, 1002])
        self.assertNoResult(d)
        leases[0].proc.processEnded(process_killed())
        self.assertNoResult(d)
        leases[1].proc.processEnded(process_killed())
        self.successResultOf(d)
        self.assertEqual(m.live, set())
        self.assertEqual(sorted(self.killer.calls), [1001, 1002])

    def test_shutdown_with_nothing_running(self) -> None:
        self.successResultOf(self.manager().shutdown())

    def test_acquire_after_shutdown(self) -> None:
        m = self.manager()
        m.shutdown()
        e = self.assertRaises(ProxyError, m.acquire, SpawnKey("sonnet"))
        self.assertEqual((e.status, e.code), (503, "shutting_down"))
        self.assertEqual(self.spawner.calls, [])

    def test_describe(self) -> None:
        m = self.manager()
        m.acquire(SpawnKey("sonnet"))
        described = m.describe()
        self.assertEqual(described["live_processes"], 1)
        self.assertEqual(described["spawned"], 1)


# -- TurnRun -------------------------------------------------------------------------


class TurnRunTests(SynchronousTestCase):
    idle = 10.0
    total = 100.0

    def setUp(self) -> None:
        self.clock = Clock()
        self.proc = FakeProc()
        self.output = RecordingOutput()

    def run_turn(self, stops: tuple[str, ...] = (), reused: bool = False) -> tuple[TurnRun, Deferred[Outcome]]:
        run = TurnRun(
            self.clock,
            self.proc,  # type: ignore[arg-type]
            TurnState(model="sonnet"),
            self.output,
            Timeouts(self.idle, self.total),
            TurnPolicy(stops=stops),
            Retry(reused=reused),
        )
        d = run.start(b'{"type":"user"}\n')
        return run, d

    def feed(self, run: TurnRun, *lines: dict[str, Any]) -> None:
        for line in lines:
            run.cli_line(line)

    def test_start_attaches_and_writes(self) -> None:
        run, d = self.run_turn()
        self.assertIs(self.proc.sink, run)
        self.assertEqual(self.proc.written, [b'{"type":"user"}\n'])
        self.assertNoResult(d)

    def test_text_and_finish(self) -> None:
        run, d = self.run_turn()
        self.clock.advance(0.25)
        self.feed(run, INIT, MESSAGE_START, delta("Hello"), delta(", world"))
        self.assertEqual(self.output.of("text"), ["Hello", ", world"])
        self.assertNoResult(d)
        self.feed(run, result("Hello, world"))
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 200)
        self.assertTrue(outcome.clean)
        self.assertIsNone(outcome.error)
        self.assertEqual(outcome.first_token_ms, 250.0)
        assert outcome.finished is not None
        self.assertEqual(outcome.finished.text, "Hello, world")
        self.assertEqual(outcome.finished.model, "claude-sonnet-5")
        self.assertEqual(self.output.of("finished"), [outcome.finished])
        self.assertEqual(self.output.of("failed"), [])
        self.assertIsNone(self.proc.sink, "detached at the end")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_lines_after_end_ignored(self) -> None:
        run, d = self.run_turn()
        self.feed(run, result(""), delta("late"))
        self.successResultOf(d)
        self.assertEqual(self.output.of("text"), [])
        self.assertEqual(len(self.output.of("finished")), 1)

    def test_upstream_error(self) -> None:
        run, d = self.run_turn()
        self.feed(run, INIT, error_result(529, "API Error: 529 Overloaded"))
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 503)
        self.assertEqual([e.status for e in self.output.of("failed")], [503])
        self.assertEqual(self.output.of("finished"), [])

    def test_idle_timeout(self) -> None:
        run, d = self.run_turn()
        self.clock.advance(self.idle - 1)
        self.feed(run, INIT)
        self.clock.advance(self.idle - 1)
        self.assertNoResult(d)
        self.clock.advance(1)
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 504)
        [error] = self.output.of("failed")
        self.assertEqual((error.status, error.code), (504, "timeout"))
        self.assertIn("--idle-timeout", error.message)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timer_suspended_while_paused(self) -> None:
        run, d = self.run_turn()
        run.pauseProducing()
        self.assertEqual(self.proc.pauses, 1)
        self.clock.advance(self.idle * 5)
        self.assertNoResult(d)
        run.resumeProducing()
        self.assertEqual(self.proc.resumes, 1)
        self.clock.advance(self.idle - 1)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.assertEqual(self.successResultOf(d).status, 504)

    def test_lines_while_paused_do_not_rearm(self) -> None:
        run, d = self.run_turn()
        run.pauseProducing()
        self.feed(run, INIT)
        self.clock.advance(self.idle * 2)
        self.assertNoResult(d)
        run.resumeProducing()
        self.clock.advance(self.idle)
        self.assertEqual(self.successResultOf(d).status, 504)

    def test_pause_resume_idempotent(self) -> None:
        run, d = self.run_turn()
        run.pauseProducing()
        run.pauseProducing()
        run.resumeProducing()
        run.resumeProducing()
        self.assertEqual((self.proc.pauses, self.proc.resumes), (1, 1))

    def test_end_while_paused_resumes_process(self) -> None:
        run, d = self.run_turn()
        run.pauseProducing()
        self.feed(run, result(""))
        self.successResultOf(d)
        self.assertEqual(self.proc.resumes, 1)
        run.resumeProducing()
        run.pauseProducing()
        self.assertEqual((self.proc.pauses, self.proc.resumes), (1, 1))

    def test_request_timeout(self) -> None:
        run, d = self.run_turn()
        for _ in range(int(self.total // (self.idle / 2)) - 1):
            self.clock.advance(self.idle / 2)
            self.feed(run, delta("."))
        self.assertNoResult(d)
        self.clock.advance(self.idle / 2)
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 504)
        [error] = self.output.of("failed")
        self.assertIn("--request-timeout", error.message)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_request_timeout_while_paused(self) -> None:
        run, d = self.run_turn()
        run.pauseProducing()
        self.clock.advance(self.total)
        self.assertEqual(self.successResultOf(d).status, 504)

    def test_stop_sequence(self) -> None:
        run, d = self.run_turn(stops=("STOP",))
        self.feed(run, INIT, MESSAGE_START, delta("one two ST"))
        self.assertEqual(self.output.texts(), "one two ")
        self.feed(run, delta("OP three"))
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 200)
        self.assertFalse(outcome.clean)
        assert outcome.finished is not None
        self.assertEqual(outcome.finished.stop_reason, "stop_sequence")
        self.assertEqual(self.output.texts(), "one two ")
        self.assertEqual(len(self.output.of("finished")), 1)
        # the CLI goes on; nothing more reaches the output
        self.feed(run, delta("four"), result("one two STOP three four"))
        self.assertEqual(self.output.texts(), "one two ")
        self.assertEqual(len(self.output.of("finished")), 1)

    def test_held_stop_prefix_flushed_at_end(self) -> None:
        run, d = self.run_turn(stops=("STOP",))
        self.feed(run, INIT, MESSAGE_START, delta("ends with ST"), result("ends with ST"))
        self.assertEqual(self.output.texts(), "ends with ST")
        self.assertEqual(self.successResultOf(d).status, 200)

    def test_cli_exited_before_result(self) -> None:
        run, d = self.run_turn()
        self.feed(run, INIT, MESSAGE_START, delta("part"))
        run.cli_exited(1, "TypeError: boom\n")
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 502)
        [error] = self.output.of("failed")
        self.assertEqual((error.status, error.code), (502, "cli_error"))
        self.assertIn("status 1", error.message)
        self.assertIn("TypeError: boom", error.message)

    def test_process_already_ended_at_start(self) -> None:
        self.proc.is_ended = True
        self.proc.exit_status = 1
        self.proc.stderr_tail = "dead"
        run, d = self.run_turn()
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 502)
        self.assertIn("dead", self.output.of("failed")[0].message)

    def test_reused_process_died_before_any_line_retries(self) -> None:
        run, d = self.run_turn(reused=True)
        run.cli_exited(0, "")
        outcome = self.successResultOf(d)
        self.assertTrue(outcome.retry)
        self.assertEqual(self.output.events, [])

    def test_reused_process_died_after_a_line_fails(self) -> None:
        run, d = self.run_turn(reused=True)
        self.feed(run, MESSAGE_START)
        run.cli_exited(1, "")
        self.assertEqual(self.successResultOf(d).status, 502)

    def test_garbage(self) -> None:
        run, d = self.run_turn()
        self.proc.stderr_tail = "warning: x"
        run.cli_garbage(b"Segmentation fault (core dumped)")
        outcome = self.successResultOf(d)
        self.assertEqual(outcome.status, 502)
        [error] = self.output.of("failed")
        self.assertIn("Segmentation fault", error.message)
        self.assertIn("warning: x", error.message)

    def test_cancel_ends_quietly(self) -> None:
        run, d = self.run_turn()
        self.feed(run, INIT, MESSAGE_START, delta("hi"))
        events = list(self.output.events)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.output.events, events)
        self.assertIsNone(self.proc.sink)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(self.total * 2)
        run.cli_line(delta("late"))
        run.cli_exited(0, "")
        self.assertEqual(self.output.events, events)

    def test_stop_producing_cancels(self) -> None:
        run, d = self.run_turn()
        run.stopProducing()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.output.events, [])

    def test_abort(self) -> None:
        run, d = self.run_turn()
        error = ProxyError(503, "claudeproxy is shutting down", "server_error", "shutting_down")
        run.abort(error)
        self.assertEqual(self.output.of("failed"), [error])
        self.assertEqual(self.successResultOf(d).status, 503)
        run.abort(error)
        self.assertEqual(len(self.output.of("failed")), 1)

    def test_reasoning_flows(self) -> None:
        run, d = self.run_turn()
        self.feed(
            run,
            MESSAGE_START,
            ev({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        )
        self.assertEqual(self.output.of("reasoning"), ["hm"])

    def test_output_error_does_not_hang(self) -> None:
        class Broken(RecordingOutput):
            def finished(self, finished: Finished) -> None:
                raise RuntimeError("render failed")

        self.output = Broken()
        run, d = self.run_turn()
        self.feed(run, result(""))
        self.assertEqual(self.successResultOf(d).status, 200)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
