"""
Unit tests for the engine's conversation: turns, the session file that
loads earlier turns, the API's rules on tool blocks, tool ids as clients
send them back, transient context, and the stream-json user line.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.continuity import without_transient
from claudeproxy.engine.conversation import Block, Conversation, Message, text_block, user_line
from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.history import check_tool_pairs, session_file_text, session_rows
from claudeproxy.engine.ids import ToolIds, call_alias, safe_id

IMAGE: Block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def user(*texts: str) -> Message:
    return Message("user", [text_block(t) for t in texts])


def assistant(*texts: str) -> Message:
    return Message("assistant", [text_block(t) for t in texts])


def texts(blocks: list[Block]) -> str:
    return "".join(b["text"] for b in blocks if b["type"] == "text")


class ConversationTests(SynchronousTestCase):
    def test_single_user(self) -> None:
        conv = Conversation(None, [user("hi")])
        self.assertEqual(conv.history, ())
        self.assertEqual(conv.last_turn, (user("hi"),))

    def test_history_and_last_turn(self) -> None:
        msgs = [user("a"), assistant("b"), user("c"), user("d")]
        conv = Conversation("sys", msgs)
        self.assertEqual(conv.history, (user("a"), assistant("b")))
        self.assertEqual(conv.last_turn, (user("c"), user("d")))
        self.assertEqual(conv.history + conv.last_turn, conv.messages)

    def test_ends_with_assistant(self) -> None:
        conv = Conversation(None, [user("a"), assistant("b")])
        self.assertEqual(conv.last_turn, ())
        self.assertEqual(conv.history, conv.messages)

    def test_all_user(self) -> None:
        conv = Conversation(None, [user("a"), user("b")])
        self.assertEqual(conv.history, ())
        self.assertEqual(len(conv.last_turn), 2)

    def test_frozen_and_comparable(self) -> None:
        a = Conversation("s", [user("x")])
        b = Conversation("s", (user("x"),))
        self.assertEqual(a, b)
        self.assertIsInstance(a.messages, tuple)
        self.assertIsInstance(a.messages[0].blocks, tuple)


class HistoryTests(SynchronousTestCase):
    """
    The earlier turns as a session file the CLI resumes: real turns, the
    API's rules checked first.
    """

    def rows(self, *messages: Message) -> list[dict[str, Any]]:
        ids = iter("u%d" % i for i in range(100))
        return session_rows(messages, "sonnet", "/w", "2.1.197", "2026-01-01T00:00:00.000Z", lambda: next(ids))

    def test_rows_chain_and_shape(self) -> None:
        rows = self.rows(user("a"), assistant("b"), Message("user", [text_block("c"), IMAGE]), assistant("d"))
        self.assertEqual([r["type"] for r in rows], ["user", "assistant", "user", "assistant"])
        self.assertEqual([r["parentUuid"] for r in rows], [None, "u1", "u2", "u3"])
        self.assertEqual({r["sessionId"] for r in rows}, {"u0"})
        self.assertEqual(rows[0]["message"], {"role": "user", "content": [text_block("a")]})
        self.assertEqual(rows[2]["message"]["content"], [text_block("c"), IMAGE])
        ids = [r["message"]["id"] for r in rows if r["type"] == "assistant"]
        self.assertEqual(len(set(ids)), 2, "every assistant message has an id of its own")
        self.assertEqual(rows[1]["message"]["content"], [text_block("b")])

    def test_consecutive_messages_merged(self) -> None:
        rows = self.rows(user("a"), user("b"), assistant("c"))
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[0]["message"]["content"], [text_block("a"), text_block("b")])

    def test_tool_names_as_the_cli_offers_them(self) -> None:
        call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold"}
        rows = self.rows(user("a"), Message("assistant", [call]), Message("user", [result]), assistant("ok"))
        self.assertEqual(rows[1]["message"]["content"][0]["name"], "mcp__cp__get_weather")
        self.assertEqual(rows[1]["message"]["stop_reason"], "tool_use")
        self.assertEqual(rows[2]["message"]["content"], [result])

    def test_cache_control_and_unsigned_thinking_left_out(self) -> None:
        marked = dict(text_block("a"), cache_control={"type": "ephemeral"})
        thinking = {"type": "thinking", "thinking": "hmm", "signature": ""}
        signed = {"type": "thinking", "thinking": "hmm", "signature": "abc"}
        rows = self.rows(Message("user", [marked]), Message("assistant", [thinking, signed, text_block("b")]))
        self.assertEqual(rows[0]["message"]["content"], [text_block("a")])
        self.assertEqual(rows[1]["message"]["content"], [signed, text_block("b")])

    def test_message_with_nothing_left_refused(self) -> None:
        thinking = {"type": "thinking", "thinking": "hmm", "signature": ""}
        with self.assertRaises(ProxyError) as e:
            self.rows(user("a"), Message("assistant", [thinking]))
        self.assertEqual(e.exception.status, 400)

    def test_file_is_json_lines(self) -> None:
        text = session_file_text(self.rows(user("a\nb"), assistant("c")))
        self.assertEqual(text.count(b"\n"), 2)


class ToolPairTests(SynchronousTestCase):
    call = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "x"}

    def refused(self, *messages: Message) -> ProxyError:
        with self.assertRaises(ProxyError) as e:
            check_tool_pairs(messages)
        self.assertEqual(e.exception.status, 400)
        return e.exception

    def test_answered(self) -> None:
        check_tool_pairs((user("a"), Message("assistant", [self.call]), Message("user", [self.result])))
        # the results may be followed by text, and split over messages
        check_tool_pairs((user("a"), Message("assistant", [self.call]), Message("user", [self.result]), user("more")))

    def test_unanswered(self) -> None:
        e = self.refused(user("a"), Message("assistant", [self.call]), user("b"))
        self.assertEqual(e.param, "messages[1]")
        self.assertIn("t1", e.message)

    def test_result_after_text(self) -> None:
        self.refused(user("a"), Message("assistant", [self.call]), Message("user", [text_block("x"), self.result]))

    def test_stray_result(self) -> None:
        e = self.refused(user("a"), Message("user", [self.result]))
        self.assertIn("answer no tool call", e.message)


class ToolIdTests(SynchronousTestCase):
    def conv(self, tool_id: str) -> Conversation:
        call = {"type": "tool_use", "id": tool_id, "name": "f", "input": {}}
        result = {"type": "tool_result", "tool_use_id": tool_id, "content": "x"}
        return Conversation(None, [user("a"), Message("assistant", [call]), Message("user", [result])])

    def ids_of(self, conv: Conversation) -> list[str]:
        return [str(b.get("id") or b.get("tool_use_id")) for m in conv.messages[1:] for b in m.blocks]

    def test_rewrites_mapped_back(self) -> None:
        ids = ToolIds()
        ids.issued("toolu_01Ab_x")
        self.assertEqual(self.ids_of(ids.canonical(self.conv("toolu01Abx"))), ["toolu_01Ab_x"] * 2)
        self.assertEqual(
            self.ids_of(ids.canonical(self.conv("call_toolu_01Ab_x_fc_abc123_9f8e"))), ["toolu_01Ab_x"] * 2
        )
        self.assertEqual(self.ids_of(ids.canonical(self.conv("toolu_01Ab_x"))), ["toolu_01Ab_x"] * 2)

    def test_ambiguous_rewrite_not_mapped(self) -> None:
        ids = ToolIds()
        ids.issued("toolu_1a")
        ids.issued("toolu1_a")
        self.assertEqual(self.ids_of(ids.canonical(self.conv("toolu1a"))), ["toolu1a"] * 2)

    def test_foreign_ids(self) -> None:
        ids = ToolIds()
        self.assertEqual(self.ids_of(ids.canonical(self.conv("call_abc"))), ["call_abc"] * 2)
        fixed = self.ids_of(ids.canonical(self.conv("call.abc|1")))
        self.assertEqual(fixed[0], fixed[1])
        self.assertRegex(fixed[0], r"^[a-zA-Z0-9_-]+$")
        self.assertEqual(safe_id("call.abc|1"), fixed[0])

    def test_bounded(self) -> None:
        ids = ToolIds(size=2)
        for i in range(5):
            ids.issued("toolu_%d" % i)
        self.assertIsNone(ids.ours("toolu_0"))
        self.assertIsNone(ids.ours(call_alias("toolu_0")))
        self.assertEqual(ids.ours("toolu4"), "toolu_4")
        self.assertEqual(ids.ours(call_alias("toolu_4")), "toolu_4")

    def test_openai_shape(self) -> None:
        """
        OpenAI's own shape: call_ and 24 letters and digits, 29 in all, the
        same for the same upstream id; agno keeps such ids as they are.
        """
        alias = call_alias("toolu_01A09q90qw90lq917835lq9")
        self.assertRegex(alias, r"^call_[A-Za-z0-9]{24}$")
        self.assertEqual(len(alias), 29)
        self.assertEqual(alias, call_alias("toolu_01A09q90qw90lq917835lq9"))
        self.assertNotEqual(alias, call_alias("toolu_01A09q90qw90lq917835lq8"))
        # a client's own call_ id is kept
        self.assertEqual(call_alias("call_abc"), "call_abc")

    def test_aliases_mapped_back(self) -> None:
        """
        The alias, and the forms clients rewrite it to (OpenClaw's letters
        and digits only, and its call_<id>_fc_<item>_<hash> on Responses),
        are the upstream id again.
        """
        ids = ToolIds()
        ids.issued("toolu_01Ab_x")
        alias = call_alias("toolu_01Ab_x")
        self.assertEqual(self.ids_of(ids.canonical(self.conv(alias))), ["toolu_01Ab_x"] * 2)
        self.assertEqual(self.ids_of(ids.canonical(self.conv(alias.replace("_", "")))), ["toolu_01Ab_x"] * 2)
        for rewritten in ("%s_fc_abc123_9f8e" % alias, "call_%s_fc_abc123_9f8e" % alias, "call_%s_fc_x" % alias[5:]):
            self.assertEqual(self.ids_of(ids.canonical(self.conv(rewritten))), ["toolu_01Ab_x"] * 2, rewritten)
        # agno's single rewrite of an id it does not like is not ours
        self.assertIsNone(ids.ours("call_00000000000000000000000000000000000"))


class TransientTests(SynchronousTestCase):
    context = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nnow: 12:00\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"

    def test_trailing_message_dropped(self) -> None:
        conv = Conversation(None, [user("a"), assistant("b"), user("c"), user(self.context)])
        self.assertEqual(without_transient(conv), (user("a"), assistant("b"), user("c")))

    def test_trailing_block_dropped(self) -> None:
        conv = Conversation(None, [user("a"), Message("user", [text_block("c"), text_block(self.context)])])
        self.assertEqual(without_transient(conv), (user("a"), user("c")))

    def test_none(self) -> None:
        self.assertIsNone(without_transient(Conversation(None, [user("a"), user("b")])))
        self.assertIsNone(without_transient(Conversation(None, [user(self.context)])))


class UserLineTests(SynchronousTestCase):
    def test_shape(self) -> None:
        line = user_line([text_block("hi ☃"), IMAGE])
        self.assertTrue(line.endswith(b"\n"))
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(
            json.loads(line),
            {"type": "user", "message": {"role": "user", "content": [text_block("hi ☃"), IMAGE]}},
        )
        # non-ASCII is escaped, so even a lone surrogate goes through as sent
        line.decode("ascii")
        lone = user_line([text_block("a\ud800b")])
        self.assertEqual(json.loads(lone)["message"]["content"][0]["text"], "a\ud800b")

    def test_newlines_in_text_escaped(self) -> None:
        line = user_line([text_block("a\nb\r\nc")])
        self.assertEqual(line.count(b"\n"), 1)
        self.assertEqual(json.loads(line)["message"]["content"][0]["text"], "a\nb\r\nc")

    def test_compact(self) -> None:
        self.assertNotIn(b", ", user_line([text_block("x")]))
        self.assertNotIn(b'": ', user_line([text_block("x")]))
