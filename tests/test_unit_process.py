"""
Unit tests for L{claudeproxy.process}: the CLI's argv and environment, and
L{CLIProcess} driven by hand with a fake transport (no real process).
"""

from __future__ import annotations

import json
from typing import Optional

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.process import CLIProcess, SpawnKey, build_argv, build_env
from tests.fakes import FakeTransport, RecordingKiller, RecordingSink

BASE_ARGV = [
    "/opt/claude",
    "-p",
    "--input-format",
    "stream-json",
    "--output-format",
    "stream-json",
    "--verbose",
    "--include-partial-messages",
    "--model",
    "sonnet",
    "--tools",
    "",
    "--no-session-persistence",
    "--strict-mcp-config",
    # the user's own Claude Code set-up stays out
    "--setting-sources",
    "",
]


def done() -> Failure:
    return Failure(ProcessDone(0))


def terminated(exit_code: Optional[int] = 1, signal: Optional[int] = None) -> Failure:
    return Failure(ProcessTerminated(exitCode=exit_code, signal=signal))


class ArgvTests(SynchronousTestCase):
    def test_plain(self) -> None:
        # no system text: none of Claude Code's own prompt either
        self.assertEqual(build_argv("/opt/claude", SpawnKey("sonnet")), BASE_ARGV + ["--system-prompt", ""])

    def test_model(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("claude-opus-4-8"))
        self.assertEqual(argv[argv.index("--model") + 1], "claude-opus-4-8")

    def test_replace_system_prompt(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", "You are a pirate.", "replace"))
        self.assertEqual(argv, BASE_ARGV + ["--system-prompt", "You are a pirate."])
        self.assertNotIn("--append-system-prompt", argv)

    def test_append_system_prompt(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", "Be brief.", "append"))
        self.assertEqual(argv, BASE_ARGV + ["--append-system-prompt", "Be brief."])
        self.assertNotIn("--system-prompt", argv)

    def test_no_system_replace_sends_none(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", None, "replace"))
        self.assertEqual(argv[-2:], ["--system-prompt", ""])
        self.assertNotIn("--append-system-prompt", argv)

    def test_no_system_append_keeps_claude_code_prompt(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", None, "append"))
        self.assertNotIn("--system-prompt", argv)
        self.assertNotIn("--append-system-prompt", argv)

    def test_resume(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", "S"), resume="/p/session-1.jsonl")
        self.assertEqual(argv[-2:], ["--resume", "/p/session-1.jsonl"])

    def test_empty_system_is_still_passed(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", ""))
        self.assertEqual(argv[-2:], ["--system-prompt", ""])

    def test_effort(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", "S", "replace", "high"))
        self.assertEqual(argv, BASE_ARGV + ["--system-prompt", "S", "--effort", "high"])

    def test_extra_last(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet", None, "replace", "low", ("--debug",)))
        self.assertEqual(argv, BASE_ARGV + ["--system-prompt", "", "--effort", "low", "--debug"])

    def test_system_prompt_is_one_argument(self) -> None:
        text = "line one\nline two --model opus"
        argv = build_argv("/opt/claude", SpawnKey("sonnet", text))
        self.assertEqual(argv.count("--model"), 1)
        self.assertEqual(argv[-1], text)

    def test_spawn_key_equality(self) -> None:
        self.assertEqual(SpawnKey("sonnet", "s"), SpawnKey("sonnet", "s", "replace", None))
        self.assertNotEqual(SpawnKey("sonnet", "s"), SpawnKey("sonnet", "s", "append"))
        self.assertEqual(len({SpawnKey("a"), SpawnKey("a"), SpawnKey("b")}), 2)


class EnvTests(SynchronousTestCase):
    base = {"PATH": "/usr/bin", "HOME": "/home/u", "ANTHROPIC_API_KEY": "sk-ant-secret"}

    def test_api_key_removed(self) -> None:
        env = build_env(self.base, keep_api_key=False, upstream_retries=2)
        self.assertNotIn("ANTHROPIC_API_KEY", env)
        self.assertEqual(env["PATH"], "/usr/bin")
        self.assertEqual(env["HOME"], "/home/u")

    def test_api_key_kept(self) -> None:
        env = build_env(self.base, keep_api_key=True, upstream_retries=2)
        self.assertEqual(env["ANTHROPIC_API_KEY"], "sk-ant-secret")

    def test_no_api_key_to_remove(self) -> None:
        env = build_env({"PATH": "/bin"}, keep_api_key=False, upstream_retries=0)
        self.assertEqual(env["PATH"], "/bin")

    def test_retries(self) -> None:
        self.assertEqual(build_env({}, False, 0)["CLAUDE_CODE_MAX_RETRIES"], "0")
        self.assertEqual(build_env({}, False, 7)["CLAUDE_CODE_MAX_RETRIES"], "7")
        self.assertEqual(build_env({"CLAUDE_CODE_MAX_RETRIES": "10"}, False, 3)["CLAUDE_CODE_MAX_RETRIES"], "3")

    def test_base_untouched(self) -> None:
        base = dict(self.base)
        build_env(base, False, 1)
        self.assertEqual(base, self.base)


class CLIProcessTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.killer = RecordingKiller()
        self.proc = CLIProcess(self.killer)
        self.transport = FakeTransport(4242)
        self.proc.makeConnection(self.transport)
        self.sink = RecordingSink()
        self.proc.attach(self.sink)

    def test_pid(self) -> None:
        self.assertEqual(self.proc.pid, 4242)

    def test_lines_parsed(self) -> None:
        self.proc.outReceived(b'{"type":"system","subtype":"init","model":"m"}\n{"type":"x"}\n')
        self.assertEqual(self.sink.lines, [{"type": "system", "subtype": "init", "model": "m"}, {"type": "x"}])
        self.assertEqual(self.proc.init, {"type": "system", "subtype": "init", "model": "m"})

    def test_split_at_every_boundary(self) -> None:
        lines = [{"type": "a", "n": i, "text": "é☃" * i} for i in range(5)]
        data = b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in lines)
        for cut in range(1, len(data)):
            proc = CLIProcess(RecordingKiller())
            proc.makeConnection(FakeTransport())
            sink = RecordingSink()
            proc.attach(sink)
            proc.outReceived(data[:cut])
            proc.outReceived(data[cut:])
            self.assertEqual(sink.lines, lines, cut)
            self.assertEqual(sink.garbage, [])

    def test_irregular_chunks(self) -> None:
        lines = [{"type": "stream_event", "i": i} for i in range(50)]
        data = b"".join(json.dumps(x).encode() + b"\r\n" for x in lines)
        sizes = [1, 7, 3, 64, 2, 500, 13]
        i = 0
        k = 0
        while i < len(data):
            n = sizes[k % len(sizes)]
            self.proc.outReceived(data[i : i + n])
            i += n
            k += 1
        self.assertEqual(self.sink.lines, lines)

    def test_one_mebibyte_line(self) -> None:
        text = "y" * (1024 * 1024)
        line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}).encode()
        data = line + b"\n"
        for i in range(0, len(data), 4093):
            self.proc.outReceived(data[i : i + 4093])
        self.assertEqual(len(self.sink.lines), 1)
        self.assertEqual(self.sink.lines[0]["message"]["content"][0]["text"], text)

    def test_blank_lines_skipped(self) -> None:
        self.proc.outReceived(b'\n  \n{"type":"a"}\n\n')
        self.assertEqual(self.sink.lines, [{"type": "a"}])
        self.assertEqual(self.sink.garbage, [])

    def test_garbage(self) -> None:
        self.proc.outReceived(b'{"type":"a"}\nSegmentation fault\n{"type":"b"}\n')
        self.assertEqual(self.sink.lines, [{"type": "a"}])
        self.assertEqual(self.sink.garbage, [b"Segmentation fault"])
        self.proc.outReceived(b'{"type":"c"}\n')
        self.assertEqual(self.sink.lines, [{"type": "a"}], "nothing is read after garbage")

    def test_json_but_not_object_is_garbage(self) -> None:
        self.proc.outReceived(b"[1,2]\n")
        self.assertEqual(self.sink.garbage, [b"[1,2]"])

    def test_garbage_without_sink_ignored(self) -> None:
        self.proc.attach(None)
        self.proc.outReceived(b"npm WARN something\n")
        self.proc.attach(self.sink)
        self.proc.outReceived(b'{"type":"a"}\n')
        self.assertEqual(self.sink.lines, [{"type": "a"}])
        self.assertEqual(self.sink.garbage, [])

    def test_lines_without_sink_dropped(self) -> None:
        self.proc.attach(None)
        self.proc.outReceived(b'{"type":"system","subtype":"init","model":"m"}\n')
        self.assertEqual(self.proc.init, {"type": "system", "subtype": "init", "model": "m"})
        self.proc.attach(self.sink)
        self.assertEqual(self.sink.lines, [])

    def test_write_and_send(self) -> None:
        self.proc.write(b"raw\n")
        self.proc.send({"type": "user", "message": {"content": "é"}})
        self.assertEqual(self.transport.written[0], b"raw\n")
        self.assertEqual(self.transport.written[1], '{"type":"user","message":{"content":"é"}}\n'.encode())

    def test_empty_write_not_passed_on(self) -> None:
        # Twisted's ProcessWriter.write(b"") stops watching stdin for good
        self.proc.write(b"")
        self.assertEqual(self.transport.written, [])

    def test_write_after_end_dropped(self) -> None:
        self.proc.processEnded(done())
        self.proc.write(b"late\n")
        self.assertEqual(self.transport.written, [])

    def test_stderr_tail(self) -> None:
        self.proc.errReceived(b"first ")
        self.proc.errReceived(b"second")
        self.assertEqual(self.proc.stderr_tail, "first second")
        self.proc.errReceived(b"z" * 100000)
        self.assertEqual(len(self.proc.stderr_tail), 4096)

    def test_process_ended_cleanly(self) -> None:
        self.proc.errReceived(b"bye\n")
        self.proc.processEnded(done())
        self.assertEqual(self.sink.exits, [(0, "bye\n")])
        self.assertTrue(self.proc.is_ended)
        self.assertEqual(self.proc.exit_status, 0)
        self.assertEqual(self.successResultOf(self.proc.ended), 0)
        self.assertEqual(self.killer.calls, [4242], "whatever it left in its group is killed")
        self.assertFalse(self.proc.killed)

    def test_process_ended_with_status(self) -> None:
        self.proc.processEnded(terminated(1))
        self.assertEqual(self.sink.exits, [(1, "")])
        self.assertEqual(self.successResultOf(self.proc.ended), 1)

    def test_process_ended_by_signal(self) -> None:
        self.proc.processEnded(terminated(None, 9))
        self.assertEqual(self.proc.exit_status, -9)
        self.assertEqual(self.sink.exits, [(-9, "")])

    def test_sink_detached_after_exit(self) -> None:
        self.proc.processEnded(done())
        self.proc.outReceived(b'{"type":"late"}\n')
        self.assertEqual(self.sink.lines, [])
        self.assertEqual(len(self.sink.exits), 1)

    def test_kill_then_end_kills_once(self) -> None:
        self.proc.kill()
        self.assertTrue(self.proc.killed)
        self.assertEqual(self.killer.calls, [4242])
        self.proc.kill()
        self.proc.processEnded(terminated(None, 9))
        self.assertEqual(self.killer.calls, [4242])
        self.assertEqual(self.sink.exits, [(-9, "")])

    def test_end_then_kill_kills_once(self) -> None:
        self.proc.processEnded(done())
        self.proc.kill()
        self.assertEqual(self.killer.calls, [4242])
        self.assertTrue(self.proc.killed)

    def test_no_pid_no_kill(self) -> None:
        killer = RecordingKiller()
        proc = CLIProcess(killer)
        proc.makeConnection(FakeTransport(pid=None))
        proc.kill()
        proc.processEnded(done())
        self.assertEqual(killer.calls, [])

    def test_sink_error_still_fires_ended(self) -> None:
        class Broken(RecordingSink):
            def cli_exited(self, status: Optional[int], stderr_tail: str) -> None:
                raise RuntimeError("boom")

        self.proc.attach(Broken())
        self.proc.processEnded(done())
        self.assertEqual(self.successResultOf(self.proc.ended), 0)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_pause_resume_once_each(self) -> None:
        self.proc.pause()
        self.proc.pause()
        self.assertEqual((self.transport.pauses, self.transport.resumes), (1, 0))
        self.proc.resume()
        self.proc.resume()
        self.assertEqual((self.transport.pauses, self.transport.resumes), (1, 1))

    def test_resume_without_pause_does_nothing(self) -> None:
        self.proc.resume()
        self.assertEqual(self.transport.resumes, 0)

    def test_pause_after_end_does_nothing(self) -> None:
        self.proc.processEnded(done())
        self.proc.pause()
        self.assertEqual(self.transport.pauses, 0)
