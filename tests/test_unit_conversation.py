"""
Unit tests for L{claudeproxy.conversation}: turns, the transcript of earlier
turns, and the stream-json user line.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.conversation import (
    HISTORY_OPEN,
    Block,
    Conversation,
    Message,
    stdin_blocks,
    text_block,
    transcript_blocks,
    user_line,
)

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


class TranscriptTests(SynchronousTestCase):
    def test_empty_history(self) -> None:
        self.assertEqual(transcript_blocks(()), [])

    def test_order_and_delimiters(self) -> None:
        blocks = transcript_blocks((user("first question"), assistant("first answer"), user("second")))
        self.assertEqual(len(blocks), 1, "adjacent text is merged into one block")
        text = blocks[0]["text"]
        self.assertTrue(text.startswith(HISTORY_OPEN))
        opened = text.index("<conversation_history>")
        closed = text.index("</conversation_history>")
        positions = [
            text.index("<user>\nfirst question\n</user>"),
            text.index("<assistant>\nfirst answer\n</assistant>"),
            text.index("<user>\nsecond\n</user>"),
        ]
        self.assertEqual(positions, sorted(positions))
        self.assertTrue(opened < positions[0] and positions[-1] < closed)

    def test_multiple_blocks_in_a_message_merged(self) -> None:
        blocks = transcript_blocks((Message("user", [text_block("one "), text_block("two")]), assistant("x")))
        self.assertEqual(len(blocks), 1)
        self.assertIn("<user>\none two\n</user>", blocks[0]["text"])

    def test_images_kept_in_place(self) -> None:
        history = (Message("user", [text_block("look: "), IMAGE, text_block(" what is it?")]), assistant("a cat"))
        blocks = transcript_blocks(history)
        self.assertEqual([b["type"] for b in blocks], ["text", "image", "text"])
        self.assertEqual(blocks[1], IMAGE)
        self.assertTrue(blocks[0]["text"].endswith("<user>\nlook: "))
        self.assertTrue(blocks[2]["text"].startswith(" what is it?\n</user>"))
        self.assertIn("<assistant>\na cat\n</assistant>", blocks[2]["text"])

    def test_images_copied_not_shared(self) -> None:
        image = dict(IMAGE)
        blocks = transcript_blocks((Message("user", [image]), assistant("x")))
        blocks[1]["extra"] = True
        self.assertNotIn("extra", image)

    def test_two_adjacent_images(self) -> None:
        blocks = transcript_blocks((Message("user", [IMAGE, IMAGE]), assistant("x")))
        self.assertEqual([b["type"] for b in blocks], ["text", "image", "image", "text"])

    def test_tool_use_rendering(self) -> None:
        history = (
            user("weather?"),
            Message(
                "assistant",
                [
                    text_block("checking"),
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Zürich"}},
                ],
            ),
        )
        text = texts(transcript_blocks(history))
        self.assertIn('checking<tool_call id="call_1" name="weather">{"city": "Zürich"}</tool_call>', text)

    def test_tool_result_rendering(self) -> None:
        history = (
            Message(
                "user",
                [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [text_block("rain")]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "snow", "is_error": True},
                ],
            ),
            assistant("ok"),
        )
        text = texts(transcript_blocks(history))
        self.assertIn('<tool_result id="call_1">rain</tool_result>', text)
        self.assertIn('<tool_result id="call_2" is_error="true">snow</tool_result>', text)

    def test_tool_result_with_image(self) -> None:
        history = (
            Message("user", [{"type": "tool_result", "tool_use_id": "c", "content": [text_block("see"), IMAGE]}]),
            assistant("ok"),
        )
        blocks = transcript_blocks(history)
        self.assertEqual([b["type"] for b in blocks], ["text", "image", "text"])
        self.assertTrue(blocks[0]["text"].endswith('<tool_result id="c">see'))
        self.assertTrue(blocks[2]["text"].startswith("</tool_result>"))

    def test_thinking_dropped(self) -> None:
        history = (user("q"), Message("assistant", [{"type": "thinking", "thinking": "secret"}, text_block("a")]))
        text = texts(transcript_blocks(history))
        self.assertNotIn("secret", text)
        self.assertIn("<assistant>\na\n</assistant>", text)

    def test_unknown_block_as_json(self) -> None:
        odd = {"type": "document", "title": "t"}
        text = texts(transcript_blocks((Message("user", [odd]), assistant("x"))))
        self.assertIn(json.dumps(odd), text)


class StdinTests(SynchronousTestCase):
    def test_single_turn_is_passed_as_is(self) -> None:
        conv = Conversation("sys", [Message("user", [text_block("hi"), IMAGE])])
        self.assertEqual(stdin_blocks(conv), [text_block("hi"), IMAGE])

    def test_history_then_last_turn(self) -> None:
        conv = Conversation(None, [user("a"), assistant("b"), user("c"), user("d")])
        blocks = stdin_blocks(conv)
        self.assertEqual(blocks[-2:], [text_block("c"), text_block("d")])
        self.assertEqual(blocks[:-2], transcript_blocks((user("a"), assistant("b"))))
        self.assertNotIn("<user>\nc", texts(blocks[:-2]))

    def test_system_not_in_stdin(self) -> None:
        conv = Conversation("SYSTEM TEXT", [user("a"), assistant("b"), user("c")])
        self.assertNotIn("SYSTEM TEXT", texts(stdin_blocks(conv)))

    def test_blocks_are_copies(self) -> None:
        block = text_block("hi")
        conv = Conversation(None, [Message("user", [block])])
        stdin_blocks(conv)[0]["text"] = "changed"
        self.assertEqual(block["text"], "hi")


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
