"""
Chat completions end to end: the real CLI against the fake Anthropic API.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply
from tests.harness import start, streamed_text, text_turn, tiny_png, upstream_turns


class ChatTests(TestCase):
    timeout = 60

    async def test_non_stream_text(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="Hello there, friend.", input_tokens=21, output_tokens=5, cache_read=100)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200, body)
        self.assertEqual(body["object"], "chat.completion")
        self.assertEqual(body["choices"][0]["message"]["content"], "Hello there, friend.")
        self.assertEqual(body["choices"][0]["finish_reason"], "stop")
        self.assertEqual(body["model"], "sonnet", "the id the client asked for")
        self.assertEqual(body["usage"]["completion_tokens"], 5)
        self.assertEqual(body["usage"]["prompt_tokens"], 121)
        self.assertEqual(body["usage"]["prompt_tokens_details"]["cached_tokens"], 100)

    async def test_stream_text(self) -> None:
        d = await start(self)
        d.fake.default = Reply(text="Streaming works in small pieces.", chunk=4)
        code, items, resp = await d.chat_stream(
            {
                "model": "sonnet",
                "messages": [{"role": "user", "content": "hi"}],
                "stream_options": {"include_usage": True},
            }
        )
        self.assertEqual(code, 200)
        self.assertEqual(resp.headers.getRawHeaders("content-type")[0].split(";")[0], "text/event-stream")
        self.assertEqual(items[-1], "[DONE]")
        self.assertEqual(items[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertEqual(streamed_text(items), "Streaming works in small pieces.")
        self.assertGreater(len([i for i in items if isinstance(i, dict) and i.get("choices")]), 5)
        finals = [i for i in items if isinstance(i, dict) and i.get("choices") and i["choices"][0]["finish_reason"]]
        self.assertEqual([f["choices"][0]["finish_reason"] for f in finals], ["stop"])
        usage = items[-2]
        self.assertEqual(usage["choices"], [])
        self.assertEqual(usage["usage"]["completion_tokens"], 7)

    async def test_system_prompt_replaces_claude_code_prompt(self) -> None:
        d = await start(self)
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [
                    {"role": "system", "content": "You are a pirate."},
                    {"role": "developer", "content": "Answer in one line."},
                    {"role": "user", "content": "hi"},
                ],
            }
        )
        self.assertEqual(code, 200, body)
        sent = d.fake.message_requests[-1].body
        system = "\n".join(b["text"] for b in sent["system"])
        self.assertIn("You are a pirate.\n\nAnswer in one line.", system)
        self.assertNotIn("Claude Code", system.replace("cc_entrypoint", ""))
        self.assertLess(len(system), 1000)
        self.assertEqual(sent["tools"], [])

    async def test_system_prompt_append_mode(self) -> None:
        d = await start(self, system_prompt_mode="append")
        code, body = await d.chat(
            {
                "model": "sonnet",
                "messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "hi"}],
            }
        )
        self.assertEqual(code, 200, body)
        sent = d.fake.message_requests[-1].body
        system = "\n".join(b["text"] for b in sent["system"])
        self.assertIn("You are a pirate.", system)
        # the CLI's own prompt is kept (4.7k characters on 2.1.332 with the
        # user's set-up and auto memory out, 5k+ on 2.1.197)
        self.assertIn("You are Claude Code", system)
        self.assertGreater(len(system), 3000)

    async def test_multi_turn_order_and_image(self) -> None:
        d = await start(self)
        png = base64.b64encode(tiny_png()).decode()
        code, body = await d.chat(
            {
                "model": "claude-sonnet-4",
                "messages": [
                    {"role": "user", "content": "first question"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "second question"},
                    {"role": "assistant", "content": "second answer"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is in this picture?"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + png}},
                        ],
                    },
                ],
            }
        )
        self.assertEqual(code, 200, body)
        # the history reaches the model as real turns, the image in place
        self.assertEqual(
            upstream_turns(d.fake.message_requests[-1].body),
            [
                text_turn("user", "first question"),
                text_turn("assistant", "first answer"),
                text_turn("user", "second question"),
                text_turn("assistant", "second answer"),
                (
                    "user",
                    [
                        {"type": "text", "text": "what is in this picture?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    ],
                ),
            ],
        )

    async def test_thinking_becomes_reasoning_content(self) -> None:
        d = await start(self)
        d.fake.default = Reply(thinking="Let me weigh this carefully.", text="Yes.")
        code, items, _ = await d.chat_stream({"model": "opus", "messages": [{"role": "user", "content": "think"}]})
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items, "reasoning_content"), "Let me weigh this carefully.")
        self.assertEqual(streamed_text(items), "Yes.")
        code, body = await d.chat({"model": "opus", "messages": [{"role": "user", "content": "think"}]})
        self.assertEqual(body["choices"][0]["message"]["reasoning_content"], "Let me weigh this carefully.")
        self.assertEqual(body["choices"][0]["message"]["content"], "Yes.")

    async def test_one_mib_reply_intact(self) -> None:
        d = await start(self)
        text = "".join("line %06d of a long reply\n" % i for i in range(40000))[: 1024 * 1024]
        d.fake.default = Reply(text=text, chunk=4096)
        code, body = await d.chat({"model": "sonnet", "messages": [{"role": "user", "content": "long"}]})
        self.assertEqual(code, 200)
        self.assertEqual(body["choices"][0]["message"]["content"], text)
        code, items, _ = await d.chat_stream({"model": "sonnet", "messages": [{"role": "user", "content": "long"}]})
        self.assertEqual(streamed_text(items), text)

    async def test_stream_cut_fallback(self) -> None:
        d = await start(self)
        text = "The whole reply arrives even though the stream broke."
        d.fake.push(Reply(text=text, cut_after=2, chunk=6), Reply(text=text))
        code, items, _ = await d.chat_stream({"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(code, 200)
        self.assertEqual(streamed_text(items), text)
        self.assertEqual(items[-1], "[DONE]")
        self.assertEqual(len(d.fake.message_requests), 2)
        self.assertFalse(d.fake.message_requests[1].body.get("stream"))
