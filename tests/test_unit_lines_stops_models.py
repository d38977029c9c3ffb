"""
Unit tests for L{claudeproxy.lines}, L{claudeproxy.stops} and
L{claudeproxy.models}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine import models
from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.lines import LineBuffer, LineTooLong
from claudeproxy.engine.stops import StopScanner


class LineBufferTests(SynchronousTestCase):
    def test_whole_lines(self) -> None:
        buf = LineBuffer()
        self.assertEqual(buf.feed(b"a\nbb\n"), [b"a", b"bb"])
        self.assertEqual(buf.pending(), b"")

    def test_split_across_feeds(self) -> None:
        buf = LineBuffer()
        self.assertEqual(buf.feed(b'{"type":'), [])
        self.assertEqual(buf.pending(), b'{"type":')
        self.assertEqual(buf.feed(b'"x"'), [])
        self.assertEqual(buf.feed(b'}\n{"ty'), [b'{"type":"x"}'])
        self.assertEqual(buf.pending(), b'{"ty')
        self.assertEqual(buf.feed(b'pe":"y"}\n'), [b'{"type":"y"}'])
        self.assertEqual(buf.pending(), b"")

    def test_byte_at_a_time(self) -> None:
        buf = LineBuffer()
        data = b"one\ntwo\r\nthree\n"
        out: list[bytes] = []
        for i in range(len(data)):
            out.extend(buf.feed(data[i : i + 1]))
        self.assertEqual(out, [b"one", b"two", b"three"])

    def test_crlf(self) -> None:
        buf = LineBuffer()
        self.assertEqual(buf.feed(b"a\r\nb\r"), [b"a"])
        self.assertEqual(buf.feed(b"\n"), [b"b"])

    def test_empty_lines(self) -> None:
        self.assertEqual(LineBuffer().feed(b"\n\na\n"), [b"", b"", b"a"])

    def test_newline_only_feed_ends_pending(self) -> None:
        buf = LineBuffer()
        buf.feed(b"abc")
        self.assertEqual(buf.feed(b"\n"), [b"abc"])

    def test_empty_feed(self) -> None:
        buf = LineBuffer()
        self.assertEqual(buf.feed(b""), [])
        buf.feed(b"x")
        self.assertEqual(buf.feed(b""), [])
        self.assertEqual(buf.pending(), b"x")

    def test_lines_far_over_16k(self) -> None:
        buf = LineBuffer()
        big = b"x" * (3 * 1024 * 1024)
        out: list[bytes] = []
        for i in range(0, len(big), 65536):
            out.extend(buf.feed(big[i : i + 65536]))
        out.extend(buf.feed(b"\nsmall\n"))
        self.assertEqual(len(out), 2)
        self.assertEqual(len(out[0]), len(big))
        self.assertEqual(out[0], big)
        self.assertEqual(out[1], b"small")

    def test_line_too_long(self) -> None:
        buf = LineBuffer(max_line=10)
        self.assertEqual(buf.feed(b"12345"), [])
        self.assertRaises(LineTooLong, buf.feed, b"678901")
        # the buffer starts over
        self.assertEqual(buf.pending(), b"")
        self.assertEqual(buf.feed(b"ok\n"), [b"ok"])

    def test_line_at_limit_is_fine(self) -> None:
        buf = LineBuffer(max_line=10)
        self.assertEqual(buf.feed(b"1234567890"), [])
        self.assertEqual(buf.feed(b"\n"), [b"1234567890"])

    def test_long_complete_line_in_one_feed(self) -> None:
        buf = LineBuffer(max_line=10)
        self.assertEqual(buf.feed(b"x" * 50 + b"\n"), [b"x" * 50])


class StopScannerTests(SynchronousTestCase):
    def test_no_stops_passthrough(self) -> None:
        s = StopScanner(())
        self.assertEqual(s.feed("abc"), "abc")
        self.assertEqual(s.flush(), "")
        self.assertFalse(s.stopped)

    def test_empty_stops_ignored(self) -> None:
        s = StopScanner(("",))
        self.assertEqual(s.feed("abc"), "abc")

    def test_stop_in_one_chunk(self) -> None:
        s = StopScanner(("END",))
        self.assertEqual(s.feed("hello END world"), "hello ")
        self.assertTrue(s.stopped)
        self.assertEqual(s.feed("more"), "")
        self.assertEqual(s.flush(), "")

    def test_stop_split_across_chunks(self) -> None:
        s = StopScanner(("STOP",))
        out = [s.feed("abc S"), s.feed("T"), s.feed("OP def")]
        self.assertEqual(out, ["abc ", "", ""])
        self.assertTrue(s.stopped)

    def test_stop_at_start(self) -> None:
        s = StopScanner(("\n\n",))
        self.assertEqual(s.feed("\n"), "")
        self.assertEqual(s.feed("\nrest"), "")
        self.assertTrue(s.stopped)

    def test_held_prefix_released(self) -> None:
        s = StopScanner(("STOP",))
        self.assertEqual(s.feed("abc ST"), "abc ")
        self.assertEqual(s.feed("ART"), "START")
        self.assertFalse(s.stopped)

    def test_held_prefix_released_on_flush(self) -> None:
        s = StopScanner(("STOP",))
        self.assertEqual(s.feed("abc STO"), "abc ")
        self.assertEqual(s.flush(), "STO")
        self.assertEqual(s.flush(), "")

    def test_multiple_stops_earliest_wins(self) -> None:
        s = StopScanner(("world", "lo"))
        self.assertEqual(s.feed("hello world"), "hel")
        s = StopScanner(("zzz", "b"))
        self.assertEqual(s.feed("aaab zzz"), "aaa")

    def test_multiple_stops_longest_partial_held(self) -> None:
        s = StopScanner(("xy", "abcd"))
        self.assertEqual(s.feed("1abc"), "1")
        self.assertEqual(s.feed("x"), "abc")
        self.assertEqual(s.feed("y"), "")
        self.assertTrue(s.stopped)

    def test_repeated_prefix(self) -> None:
        s = StopScanner(("aab",))
        self.assertEqual(s.feed("a"), "")
        self.assertEqual(s.feed("a"), "")
        self.assertEqual(s.feed("a"), "a")
        self.assertEqual(s.feed("b"), "")
        self.assertTrue(s.stopped)

    def test_char_by_char_equals_whole(self) -> None:
        text = "The answer is 42.\nObservation: done"
        s = StopScanner(("Observation:", "\n\n"))
        out = "".join(s.feed(c) for c in text) + s.flush()
        self.assertEqual(out, "The answer is 42.\n")

    def test_no_match_everything_out(self) -> None:
        text = "nothing to see here, S, ST, STO"
        s = StopScanner(("STOP",))
        out = "".join(s.feed(c) for c in text) + s.flush()
        self.assertEqual(out, text)

    def test_result_independent_of_chunking(self) -> None:
        # "c" is complete (after "xabc") before "abcd" is, so the text
        # stops at "xab" however it arrives
        stops = ("abcd", "c")
        whole = StopScanner(stops)
        by_char = StopScanner(stops)
        self.assertEqual("".join(by_char.feed(c) for c in "xabcd"), "xab")
        self.assertEqual(whole.feed("xabcd"), "xab")


class ModelTests(SynchronousTestCase):
    def test_resolve_families(self) -> None:
        self.assertEqual(models.resolve("claude-opus-4", ()), "opus")
        self.assertEqual(models.resolve("claude-sonnet-4", ()), "sonnet")
        self.assertEqual(models.resolve("claude-haiku-4", ()), "haiku")

    def test_resolve_cli_aliases(self) -> None:
        for name in ("opus", "sonnet", "haiku"):
            self.assertEqual(models.resolve(name, ()), name)

    def test_resolve_full_ids(self) -> None:
        self.assertEqual(models.resolve("claude-sonnet-5", ()), "claude-sonnet-5")
        self.assertEqual(models.resolve("claude-haiku-4-5-20251001", ()), "claude-haiku-4-5-20251001")

    def test_resolve_configured_alias(self) -> None:
        aliases = (("gpt-4o", "sonnet"), ("gpt-4", "claude-opus-4"), ("big", "claude-opus-4-8"))
        self.assertEqual(models.resolve("gpt-4o", aliases), "sonnet")
        self.assertEqual(models.resolve("gpt-4", aliases), "opus")
        self.assertEqual(models.resolve("big", aliases), "claude-opus-4-8")

    def test_alias_shadows_builtin(self) -> None:
        self.assertEqual(models.resolve("sonnet", (("sonnet", "haiku"),)), "haiku")

    def test_resolve_not_string(self) -> None:
        for bad in (None, 3, "", ["sonnet"]):
            e = self.assertRaises(ProxyError, models.resolve, bad, ())
            self.assertEqual((e.status, e.param, e.code), (400, "model", "invalid_model"))

    def test_resolve_unknown(self) -> None:
        for bad in ("gpt-4o", "claude-", "Claude-sonnet-4", "o1"):
            e = self.assertRaises(ProxyError, models.resolve, bad, (("mine", "opus"),))
            self.assertEqual((e.status, e.param, e.code), (404, "model", "model_not_found"))
            self.assertEqual(e.type, "invalid_request_error")
            self.assertIn(repr(bad), e.message)
            self.assertIn("claude-opus-4, claude-sonnet-4, claude-haiku-4, opus, sonnet, haiku, mine", e.message)

    def test_list_models(self) -> None:
        listed = models.list_models((("gpt-4o", "sonnet"),))
        self.assertEqual(listed["object"], "list")
        ids = [m["id"] for m in listed["data"]]
        self.assertEqual(ids, ["claude-sonnet-4", "claude-opus-4", "claude-haiku-4", "gpt-4o"])
        for m in listed["data"]:
            self.assertEqual(m, {"id": m["id"], "object": "model", "created": models.CREATED, "owned_by": "anthropic"})

    def test_default_listed_first_and_once(self) -> None:
        """
        C{--default-model} is listed first; a family id meaning the same
        model is not listed again.
        """
        self.assertEqual(models.listed_ids((), None, "opus"), ["opus", "claude-sonnet-4", "claude-haiku-4"])
        self.assertEqual(
            models.listed_ids((), None, "claude-haiku-4"), ["claude-haiku-4", "claude-sonnet-4", "claude-opus-4"]
        )
        self.assertEqual(
            models.listed_ids((("big", "opus"),), None, "big"),
            ["big", "claude-sonnet-4", "claude-haiku-4"],
        )
        self.assertEqual(
            models.listed_ids((), None, "claude-opus-4-8"),
            ["claude-opus-4-8", "claude-sonnet-4", "claude-opus-4", "claude-haiku-4"],
        )

    def test_get_model_known(self) -> None:
        for name in ("claude-opus-4", "sonnet", "claude-sonnet-5"):
            self.assertEqual(models.get_model(name, ())["id"], name)
        self.assertEqual(models.get_model("gpt-4o", iter([("gpt-4o", "sonnet")]))["object"], "model")

    def test_get_model_unknown(self) -> None:
        e = self.assertRaises(ProxyError, models.get_model, "gpt-4o", ())
        self.assertEqual((e.status, e.code, e.param), (404, "model_not_found", "model"))
        e = self.assertRaises(ProxyError, models.get_model, "claude-", ())
        self.assertEqual(e.status, 404)
