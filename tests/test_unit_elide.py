"""
Unit tests for reading a huge reply in bounded memory: the eliding scanner
and line buffer (L{claudeproxy.lines}), which huge lines L{CLIProcess}
elides, L{TurnState} without its text, and live sessions recognised by the
digest of their reply (L{claudeproxy.pool}).
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.lines import Elided, LineBuffer, StringElider, head_fields
from claudeproxy.engine.pool import Continuation, ProcessManager, continues
from claudeproxy.engine.poolsettings import CLISetup, PoolLimits
from claudeproxy.engine.process import ELIDED, CLIProcess, SpawnKey
from claudeproxy.engine.serve import continuation
from claudeproxy.engine.streaming import Outcome
from claudeproxy.engine.turn import Finished, TextOut, TurnState, digest_text
from tests.fakes import FakeSpawner, RecordingKiller, RecordingSink
from tests.test_unit_turn import (
    assistant,
    block_start,
    emitted_text,
    feed_all,
    init,
    message_start,
    streamed_turn,
    text,
    text_delta,
)
from tests.test_unit_turn import (
    result as result_line,
)

LIMIT = 16


def raw_len(s: str, ensure_ascii: bool) -> int:
    """
    How many bytes C{s} takes inside its JSON quotes.
    """
    return len(json.dumps(s, ensure_ascii=ensure_ascii).encode("utf-8")) - 2


def elided_copy(value: Any, limit: int, ensure_ascii: bool) -> Any:
    """
    C{value} with every string value longer than C{limit} raw bytes
    emptied (what the elider should make of it).
    """
    if isinstance(value, str):
        return "" if raw_len(value, ensure_ascii) > limit else value
    if isinstance(value, list):
        return [elided_copy(v, limit, ensure_ascii) for v in value]
    if isinstance(value, dict):
        return {k: elided_copy(v, limit, ensure_ascii) for k, v in value.items()}
    return value


TRICKY: dict[str, Any] = {
    "type": "assistant",
    "message": {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": 'quote " and back\\slash, long enough to go'},
            {"type": "text", "text": "ends in backslashes \\\\\\"},
            {"type": "text", "text": "\\"},
            {"type": "text", "text": '\\"'},
            {"type": "text", "text": "é ü 😀 Ω — unicode past the limit"},
            {"type": "text", "text": "😀😀"},
            {"type": "text", "text": "line\nbreak\ttab\r\u0001 ctrl and more text"},
            {"type": "tool_use", "input": {"nested": {"deep": ["short", "x" * 40, {"k": '"' * 20}]}}},
        ],
        "usage": {"input_tokens": 11, "output_tokens": 5},
        "stop_reason": "end_turn",
        "empty": "",
        "flags": [True, False, None, 1.5, -3],
    },
    "session_id": "s",
}


class StringEliderTests(SynchronousTestCase):
    def elide(self, pieces: list[bytes], limit: int = LIMIT) -> Elided:
        elider = StringElider(limit)
        for piece in pieces:
            elider.feed(piece)
        return elider.finish()

    def check_every_split(self, obj: Any, ensure_ascii: bool) -> None:
        line = json.dumps(obj, ensure_ascii=ensure_ascii, separators=(",", ":")).encode("utf-8")
        want = elided_copy(obj, LIMIT, ensure_ascii)
        self.assertNotEqual(want, obj, "the test line has no long strings")
        whole = self.elide([line])
        self.assertEqual(json.loads(whole), want)
        for i in range(len(line) + 1):
            got = self.elide([line[:i], line[i:]])
            self.assertEqual(bytes(got), bytes(whole), "split at %d" % (i,))
        # one byte at a time: every escape and quote split from its neighbours
        got = self.elide([line[i : i + 1] for i in range(len(line))])
        self.assertEqual(bytes(got), bytes(whole))
        # and in three pieces, around every pair of boundaries in a window
        for i in range(0, len(line), 7):
            for j in range(i, min(len(line), i + 12)):
                got = self.elide([line[:i], line[i:j], line[j:]])
                self.assertEqual(bytes(got), bytes(whole), "split at %d, %d" % (i, j))

    def test_tricky_line_raw_utf8(self) -> None:
        self.check_every_split(TRICKY, ensure_ascii=False)

    def test_tricky_line_ascii_escapes(self) -> None:
        self.check_every_split(TRICKY, ensure_ascii=True)

    def test_long_dropped_short_kept(self) -> None:
        line = b'{"a":"%s","b":"%s","c":"%s"}' % (b"x" * LIMIT, b"y" * (LIMIT + 1), b"z")
        got = self.elide([line])
        self.assertEqual(json.loads(got), {"a": "x" * LIMIT, "b": "", "c": "z"})
        self.assertEqual(got.dropped, LIMIT + 1)

    def test_escaped_quote_at_limit(self) -> None:
        # the escape that crosses the limit is dropped whole with the string
        s = "a" * (LIMIT - 1) + '"' + "b"
        line = json.dumps({"s": s, "t": "ok"}).encode()
        self.assertEqual(json.loads(self.elide([line])), {"s": "", "t": "ok"})

    def test_huge_string_in_pieces(self) -> None:
        text = ('x\\"y\\\\' * 50000).encode()
        pieces = [b'{"type":"result","result":"'] + [text[i : i + 8192] for i in range(0, len(text), 8192)]
        pieces.append(b'","usage":{"output_tokens":7},"stop_reason":"end_turn"}')
        got = self.elide(pieces, 64 * 1024)
        self.assertEqual(
            json.loads(got),
            {"type": "result", "result": "", "usage": {"output_tokens": 7}, "stop_reason": "end_turn"},
        )
        self.assertEqual(got.dropped, len(text))
        self.assertLess(len(got), 200)


class HeadFieldsTests(SynchronousTestCase):
    def test_paths(self) -> None:
        head = (
            b'{"type":"assistant","message":{"model":"m","id":"msg_9","content":[{"type":"text","id":"no","text":"abc'
        )
        fields = head_fields(head)
        self.assertEqual(fields[("type",)], "assistant")
        self.assertEqual(fields[("message", "id")], "msg_9")
        self.assertEqual(fields[("message", "model")], "m")
        self.assertNotIn(("message", "content", "type"), fields)
        self.assertEqual(len([k for k in fields if k[-1] == "id"]), 1)

    def test_order_and_literals(self) -> None:
        head = b' { "is_error" : false , "n": 3, "deep": {"a": {"b": "c"}}, "type": "result", "result": "cut off'
        fields = head_fields(head)
        self.assertEqual(fields[("type",)], "result")
        self.assertIs(fields[("is_error",)], False)
        self.assertEqual(fields[("n",)], 3)
        self.assertNotIn(("deep", "a", "b"), fields)
        self.assertNotIn(("result",), fields)

    def test_escaped_key_text_is_not_a_key(self) -> None:
        head = b'{"type":"assistant","message":{"content":[{"text":"\\"id\\":\\"msg_x\\""}],"id":"msg_2"'
        self.assertEqual(head_fields(head)[("message", "id")], "msg_2")


class LineBufferElideTests(SynchronousTestCase):
    def test_elided_when_allowed(self) -> None:
        heads: list[bytes] = []

        def decide(head: bytes) -> bool:
            heads.append(head)
            return True

        buf = LineBuffer(elide=decide, elide_after=64, long_string=32)
        line = json.dumps({"type": "result", "result": "r" * 1000, "usage": {"output_tokens": 3}}).encode()
        out: list[bytes] = []
        for i in range(0, len(line), 10):
            out.extend(buf.feed(line[i : i + 10]))
        self.assertEqual(out, [])
        self.assertEqual(len(heads), 1)
        self.assertTrue(line.startswith(heads[0]) and len(heads[0]) > 64)
        out = buf.feed(b"\r\n" + b'{"type":"next"}\n')
        elided = out[0]
        assert isinstance(elided, Elided), elided
        self.assertEqual(json.loads(elided), {"type": "result", "result": "", "usage": {"output_tokens": 3}})
        self.assertEqual(elided.dropped, 1000)
        self.assertEqual(out[1], b'{"type":"next"}')
        self.assertNotIsInstance(out[1], Elided)

    def test_whole_when_refused(self) -> None:
        asked: list[bytes] = []

        def refuse(head: bytes) -> bool:
            asked.append(head)
            return False

        buf = LineBuffer(elide=refuse, elide_after=64, long_string=32)
        line = json.dumps({"type": "stream_event", "text": "t" * 1000}).encode()
        out: list[bytes] = []
        for i in range(0, len(line), 10):
            out.extend(buf.feed(line[i : i + 10]))
        out.extend(buf.feed(b"\n"))
        self.assertEqual(out, [line])
        self.assertNotIsInstance(out[0], Elided)
        self.assertEqual(len(asked), 1, "asked once per line")
        # the next long line is asked about again
        buf.feed(line)
        buf.feed(b"\n")
        self.assertEqual(len(asked), 2)

    def test_short_lines_not_asked(self) -> None:
        buf = LineBuffer(elide=lambda head: self.fail("asked"), elide_after=64)
        self.assertEqual(buf.feed(b"x" * 60 + b"\n"), [b"x" * 60])


# -- the process and the turn ------------------------------------------------------


class Sink(RecordingSink):
    """
    A sink that allows elision unless told not to, and fails the test on
    garbage (an elided line must still parse).
    """

    def __init__(self, allow: bool = True) -> None:
        super().__init__(allow)

    def cli_garbage(self, line: bytes) -> None:
        raise AssertionError("garbage: %r" % (line[:100],))


def feed_in_chunks(proc: CLIProcess, data: bytes, chunk: int = 8192) -> None:
    for i in range(0, len(data), chunk):
        proc.outReceived(data[i : i + chunk])


def line_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


BIG = 'The-quick-brown-fox\\"é😀\n' * 40000


class ProcessElideTests(SynchronousTestCase):
    def test_assistant_and_result_elided(self) -> None:
        proc = CLIProcess(lambda pid: None)
        sink = Sink()
        proc.attach(sink)
        feed_in_chunks(
            proc, line_bytes(assistant([text(BIG)], mid="msg_7")) + line_bytes(result_line(BIG, is_error=False))
        )
        self.assertEqual(sink.asked, [("assistant", "msg_7"), ("result", None)])
        first, second = sink.lines
        self.assertEqual(first["message"]["content"], [{"type": "text", "text": ""}])
        self.assertEqual(first["message"]["usage"], {"input_tokens": 12, "output_tokens": 5})
        self.assertEqual(first["message"]["id"], "msg_7")
        self.assertGreater(first[ELIDED], len(BIG))
        self.assertEqual(second["result"], "")
        self.assertEqual(second["usage"]["cache_read_input_tokens"], 100)
        self.assertIn("modelUsage", second)

    def test_not_elided_when_the_sink_needs_it(self) -> None:
        proc = CLIProcess(lambda pid: None)
        sink = Sink(allow=False)
        proc.attach(sink)
        feed_in_chunks(proc, line_bytes(assistant([text(BIG)], mid="msg_7")))
        self.assertEqual(sink.lines[0]["message"]["content"][0]["text"], BIG)
        self.assertNotIn(ELIDED, sink.lines[0])

    def test_stream_events_and_errors_never_elided(self) -> None:
        proc = CLIProcess(lambda pid: None)
        sink = Sink()
        proc.attach(sink)
        error = dict(result_line(BIG), is_error=True)
        feed_in_chunks(proc, line_bytes(text_delta(BIG)) + line_bytes(error))
        self.assertEqual(sink.asked, [])
        self.assertEqual(sink.lines[0]["event"]["delta"]["text"], BIG)
        self.assertEqual(sink.lines[1]["result"], BIG)

    def test_no_sink_no_elide(self) -> None:
        proc = CLIProcess(lambda pid: None)
        feed_in_chunks(proc, line_bytes(result_line(BIG)))
        sink = Sink()
        proc.attach(sink)
        proc.outReceived(line_bytes(result_line("x")))
        self.assertEqual(sink.asked, [])
        self.assertEqual(sink.lines[0]["result"], "x")


class TurnWithoutTextTests(SynchronousTestCase):
    def test_finished_has_digest_not_text(self) -> None:
        pieces = ("Hello, ", "wörld ", "😀.")
        kept = TurnState(model="sonnet")
        lean = TurnState(model="sonnet", keep_text=False)
        outs_kept = feed_all(kept, streamed_turn(*pieces))
        outs_lean = feed_all(lean, streamed_turn(*pieces))
        self.assertEqual(emitted_text(outs_lean), "".join(pieces))
        a, b = outs_kept[-1], outs_lean[-1]
        assert isinstance(a, Finished) and isinstance(b, Finished)
        self.assertEqual(a.text, "".join(pieces))
        self.assertEqual(b.text, "")
        self.assertEqual(lean.text, [])
        self.assertEqual(b.text_digest, digest_text("".join(pieces)))
        self.assertEqual(b.reply_digest(), a.reply_digest())
        self.assertEqual((b.reply_length, a.reply_length), (len("".join(pieces)),) * 2)
        self.assertEqual(b.usage, a.usage)

    def test_prefix_after_a_cut_stream(self) -> None:
        state = TurnState(model="sonnet", keep_text=False)
        outs = feed_all(
            state,
            [
                init(),
                message_start("msg_1"),
                block_start(),
                text_delta("The quick "),
                text_delta("brøwn"),
                assistant([text("The quick brøwn fox jumps.")], mid="msg_2", stop_reason="end_turn"),
                result_line("The quick brøwn fox jumps."),
            ],
        )
        self.assertEqual(
            [o for o in outs if isinstance(o, TextOut)],
            [TextOut("The quick "), TextOut("brøwn"), TextOut(" fox jumps.")],
        )
        finished = outs[-1]
        assert isinstance(finished, Finished)
        self.assertEqual(finished.reply_digest(), digest_text("The quick brøwn fox jumps."))

    def test_text_streamed(self) -> None:
        state = TurnState(model="sonnet")
        feed_all(state, [message_start("msg_1"), block_start(), text_delta("x")])
        self.assertTrue(state.text_streamed("msg_1"))
        self.assertFalse(state.text_streamed("msg_2"))


# -- live sessions by digest ------------------------------------------------------


def user(t: str) -> Message:
    return Message("user", [text_block(t)])


def reply(*texts: str) -> Message:
    return Message("assistant", [text_block(t) for t in texts])


class ContinuesTests(SynchronousTestCase):
    held = Continuation((user("Q"),), digest_text("Answer."))

    def test_matches(self) -> None:
        self.assertTrue(continues((user("Q"), reply("Answer.")), self.held))
        self.assertTrue(continues((user("Q"), reply("Ans", "wer.")), self.held), "text blocks are joined")

    def test_mismatches(self) -> None:
        self.assertFalse(continues((user("Q"), reply("Answer!")), self.held))
        self.assertFalse(continues((user("Q2"), reply("Answer.")), self.held))
        self.assertFalse(continues((user("Q"),), self.held))
        self.assertFalse(continues((user("Q"), user("Answer.")), self.held))
        self.assertFalse(continues((user("X"), user("Q"), reply("Answer.")), self.held))
        with_tool = Message("assistant", [text_block("Answer."), {"type": "tool_use", "id": "t", "input": {}}])
        self.assertFalse(continues((user("Q"), with_tool), self.held))

    def test_continuation_from_a_lean_turn(self) -> None:
        state = TurnState(model="sonnet", keep_text=False)
        finished = feed_all(state, streamed_turn("Ans", "wer."))[-1]
        assert isinstance(finished, Finished)
        conversation = Conversation(None, (user("Q"),))
        held = continuation(conversation, Outcome(200, None, finished, clean=True))
        self.assertEqual(held, self.held)
        self.assertIsNone(continuation(conversation, Outcome(200, None, finished, clean=False)))
        empty = feed_all(TurnState(model="sonnet", keep_text=False), streamed_turn())[-1]
        assert isinstance(empty, Finished)
        self.assertIsNone(continuation(conversation, Outcome(200, None, empty, clean=True)))


class SessionByDigestTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.spawner = FakeSpawner()
        claude = self.mktemp()
        with open(claude, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        os.chmod(claude, 0o755)
        self.manager = ProcessManager(
            self.clock,
            CLISetup(claude, workdir=os.path.dirname(os.path.abspath(claude))),
            self.spawner,
            PoolLimits(max_sessions=4),
            RecordingKiller(),
        )

    def test_follow_up_finds_the_session(self) -> None:
        key = SpawnKey("sonnet")
        first = Conversation(None, (user("Q"),))
        lease = self.manager.acquire(key, first)
        self.manager.release(lease, Continuation(first.messages, digest_text("Answer.")))
        self.assertEqual(self.manager.session_count, 1)
        wrong = Conversation(None, (user("Q"), reply("Other."), user("Q2")))
        self.assertEqual(self.manager.acquire(key, wrong).source, "cold")
        self.assertEqual(self.manager.session_count, 1)
        right = Conversation(None, (user("Q"), reply("Answer."), user("Q2")))
        self.assertEqual(self.manager.acquire(SpawnKey("opus"), right).source, "cold")
        again = self.manager.acquire(key, right)
        self.assertEqual(again.source, "session")
        self.assertIs(again.proc, lease.proc)
        self.assertEqual(self.manager.session_count, 0)
