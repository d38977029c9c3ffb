"""
Unit tests for L{claudeproxy.turn.TurnState}: stream-json lines in, output
events out.  Line shapes follow what the CLI prints (see CLI-NOTES.md).
"""

from __future__ import annotations

from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.turn import Failed, Finished, Output, ReasoningOut, TextOut, TurnState, Usage
from claudeproxy.protocols.openai import finish_reason

MODEL = "claude-sonnet-5"


def init(model: str = MODEL) -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "cwd": "/tmp/x",
        "session_id": "5b3c1f0e-0000-4000-8000-000000000000",
        "tools": [],
        "mcp_servers": [],
        "model": model,
        "permissionMode": "default",
        "apiKeySource": "none",
    }


def event(ev: dict[str, Any]) -> dict[str, Any]:
    return {"type": "stream_event", "event": ev, "session_id": "s", "parent_tool_use_id": None, "uuid": "u"}


def message_start(mid: str = "msg_1", model: str = MODEL, input_tokens: int = 12) -> dict[str, Any]:
    return event(
        {
            "type": "message_start",
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }
    )


def block_start(index: int = 0, kind: str = "text") -> dict[str, Any]:
    block: dict[str, Any] = {"type": kind, "text": ""} if kind == "text" else {"type": kind, "thinking": ""}
    return event({"type": "content_block_start", "index": index, "content_block": block})


def text_delta(text: str, index: int = 0) -> dict[str, Any]:
    return event({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})


def thinking_delta(text: str, index: int = 0) -> dict[str, Any]:
    return event({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}})


def signature_delta(index: int = 0) -> dict[str, Any]:
    return event(
        {"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "sig"}}
    )


def block_stop(index: int = 0) -> dict[str, Any]:
    return event({"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str = "end_turn", output_tokens: int = 5) -> dict[str, Any]:
    return event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
    )


def message_stop() -> dict[str, Any]:
    return event({"type": "message_stop"})


def assistant(
    content: list[dict[str, Any]],
    mid: str = "msg_1",
    model: str = MODEL,
    stop_reason: Optional[str] = None,
    usage: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": 12, "output_tokens": 5},
        },
        "parent_tool_use_id": None,
        "session_id": "s",
        "uuid": "u2",
    }


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def rate_limit_event(status: str = "allowed", resets_at: Optional[int] = None) -> dict[str, Any]:
    info: dict[str, Any] = {"status": status, "rateLimitType": "five_hour"}
    if resets_at is not None:
        info["resetsAt"] = resets_at
    return {"type": "rate_limit_event", "rate_limit_info": info, "uuid": "u", "session_id": "s"}


def result(
    text_: str = "",
    stop_reason: Optional[str] = "end_turn",
    usage: Optional[dict[str, Any]] = None,
    model_usage: Optional[dict[str, Any]] = None,
    **extra: Any,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 1234,
        "duration_api_ms": 1200,
        "num_turns": 1,
        "result": text_,
        "stop_reason": stop_reason,
        "session_id": "s",
        "total_cost_usd": 0.001,
        "usage": usage
        if usage is not None
        else {
            "input_tokens": 12,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 100,
            "output_tokens": 5,
        },
        "modelUsage": model_usage if model_usage is not None else {MODEL: {"inputTokens": 12, "outputTokens": 5}},
    }
    line.update(extra)
    return line


def feed_all(state: TurnState, lines: list[dict[str, Any]], now: float = 0.0) -> list[Output]:
    out: list[Output] = []
    for line in lines:
        out.extend(state.feed(line, now))
    return out


def emitted_text(outs: list[Output]) -> str:
    return "".join(o.text for o in outs if isinstance(o, TextOut))


def streamed_turn(*pieces: str, mid: str = "msg_1", stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    whole = "".join(pieces)
    return [
        init(),
        message_start(mid),
        block_start(),
        *[text_delta(p) for p in pieces],
        block_stop(),
        assistant([text(whole)], mid=mid),
        message_delta(stop_reason),
        message_stop(),
        rate_limit_event(),
        result(whole, stop_reason=stop_reason),
    ]


class StreamingTests(SynchronousTestCase):
    def test_deltas_emitted_once_in_order(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(state, streamed_turn("Hel", "lo, ", "world."))
        self.assertEqual(
            [o for o in outs if isinstance(o, TextOut)], [TextOut("Hel"), TextOut("lo, "), TextOut("world.")]
        )
        self.assertIsInstance(outs[-1], Finished)
        self.assertEqual(len([o for o in outs if isinstance(o, Finished)]), 1)
        self.assertTrue(state.done)

    def test_each_delta_returned_by_its_own_feed(self) -> None:
        state = TurnState(model="sonnet")
        feed_all(state, [init(), message_start(), block_start()])
        self.assertEqual(state.feed(text_delta("a")), [TextOut("a")])
        self.assertEqual(state.feed(text_delta("b")), [TextOut("b")])
        self.assertEqual(state.feed(block_stop()), [])
        self.assertEqual(state.feed(assistant([text("ab")])), [])

    def test_assistant_after_deltas_not_duplicated(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(state, streamed_turn("one", "two"))
        self.assertEqual(emitted_text(outs), "onetwo")
        finished = outs[-1]
        assert isinstance(finished, Finished)
        self.assertEqual(finished.text, "onetwo")

    def test_empty_deltas_ignored(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(state, [message_start(), text_delta(""), signature_delta()])
        self.assertEqual(outs, [])

    def test_thinking(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                init(),
                message_start(),
                block_start(0, "thinking"),
                thinking_delta("Let me "),
                thinking_delta("think."),
                signature_delta(),
                block_stop(0),
                assistant([{"type": "thinking", "thinking": "Let me think.", "signature": "sig"}]),
                block_start(1),
                text_delta("Answer", 1),
                block_stop(1),
                assistant([text("Answer")]),
                message_delta(),
                message_stop(),
                result("Answer"),
            ],
        )
        self.assertEqual(
            outs[:3], [ReasoningOut("Let me "), ReasoningOut("think."), TextOut("Answer")], "no duplicates"
        )
        finished = outs[-1]
        assert isinstance(finished, Finished)
        self.assertEqual(finished.reasoning, "Let me think.")
        self.assertEqual(finished.text, "Answer")

    def test_unknown_lines_ignored(self) -> None:
        state = TurnState(model="sonnet")
        for line in (
            {"type": "system", "subtype": "status", "status": "requesting"},
            {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 2, "retry_delay_ms": 500},
            {"type": "user", "message": {"role": "user", "content": []}},
            {"type": "something_new"},
            {},
            event({"type": "ping"}),
            {"type": "stream_event", "event": "not a mapping"},
        ):
            self.assertEqual(state.feed(line), [])
        self.assertEqual(state.model, "sonnet")
        self.assertFalse(state.done)


class FallbackTests(SynchronousTestCase):
    """
    When the upstream stream breaks, the CLI re-requests without streaming:
    the reply arrives only in an C{assistant} line with a new message id.
    """

    def test_no_deltas_at_all(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [init(), assistant([text("whole reply")], mid="msg_2", stop_reason="end_turn"), result("whole reply")],
        )
        self.assertEqual(outs[0], TextOut("whole reply"))
        finished = outs[-1]
        assert isinstance(finished, Finished)
        self.assertEqual(finished.text, "whole reply")

    def test_remainder_after_streamed_prefix(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                init(),
                message_start("msg_1"),
                block_start(),
                text_delta("The quick "),
                text_delta("brown"),
                # the stream is cut: no message_stop; the CLI retries without streaming
                assistant([text("The quick brown fox jumps.")], mid="msg_2", stop_reason="end_turn"),
                result("The quick brown fox jumps."),
            ],
        )
        self.assertEqual(
            [o for o in outs if isinstance(o, TextOut)],
            [TextOut("The quick "), TextOut("brown"), TextOut(" fox jumps.")],
        )
        finished = outs[-1]
        assert isinstance(finished, Finished)
        self.assertEqual(finished.text, "The quick brown fox jumps.")

    def test_retry_stream_after_interrupted_stream(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                message_start("msg_1"),
                text_delta("Partial"),
                message_start("msg_2"),
                assistant([text("Partial answer, complete.")], mid="msg_2"),
            ],
        )
        self.assertEqual(emitted_text(outs), "Partial answer, complete.")

    def test_non_prefix_emits_whole_text(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                message_start("msg_1"),
                text_delta("Something else"),
                assistant([text("A different reply.")], mid="msg_2"),
            ],
        )
        self.assertEqual(outs, [TextOut("Something else"), TextOut("A different reply.")])

    def test_exact_prefix_emits_nothing_more(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(state, [message_start("msg_1"), text_delta("Done."), assistant([text("Done.")], mid="msg_2")])
        self.assertEqual(outs, [TextOut("Done.")])

    def test_cut_stream_closed_by_the_cli_then_retried(self) -> None:
        # CLI 2.1.332: after a broken stream it sends its own message_stop
        # (no message_delta), then the non-streamed retry under a new id
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                message_start("msg_1"),
                text_delta("The whole re"),
                message_stop(),
                assistant([text("The whole reply.")], mid="msg_2"),
            ],
        )
        self.assertEqual(outs, [TextOut("The whole re"), TextOut("ply.")])

    def test_completed_message_then_new_message_whole(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                message_start("msg_1"),
                text_delta("First"),
                message_stop(),
                assistant([text("First")], mid="msg_1"),
                assistant([text("First and second")], mid="msg_2"),
            ],
        )
        self.assertEqual(outs, [TextOut("First"), TextOut("First and second")])

    def test_fallback_thinking(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(state, [assistant([{"type": "thinking", "thinking": "hmm"}, text("ok")], mid="m9")])
        self.assertEqual(outs, [ReasoningOut("hmm"), TextOut("ok")])

    def test_synthetic_ignored(self) -> None:
        state = TurnState(model="sonnet")
        outs = feed_all(
            state,
            [
                init(),
                assistant(
                    [text("API Error: 500 internal")],
                    mid="synthetic-1",
                    model="<synthetic>",
                    usage={"input_tokens": 0, "output_tokens": 0},
                ),
            ],
        )
        self.assertEqual(outs, [])
        self.assertEqual(state.model, MODEL)
        self.assertEqual(state.text, [])

    def test_non_mapping_blocks_skipped(self) -> None:
        state = TurnState(model="sonnet")
        outs = state.feed(assistant(["junk", text("ok")], mid="m"))  # type: ignore[list-item]
        self.assertEqual(outs, [TextOut("ok")])


class ResultTests(SynchronousTestCase):
    def finish(self, lines: list[dict[str, Any]], model: str = "sonnet") -> Finished:
        state = TurnState(model=model)
        outs = feed_all(state, lines)
        finished = outs[-1]
        assert isinstance(finished, Finished), outs
        return finished

    def test_usage_from_result(self) -> None:
        finished = self.finish(streamed_turn("hi"))
        self.assertEqual(
            finished.usage,
            Usage(input_tokens=12, output_tokens=5, cache_read_tokens=100, cache_creation_tokens=3),
        )
        self.assertEqual(finished.usage.prompt_tokens, 115)
        self.assertEqual(finished.usage.total_tokens, 120)

    def test_usage_falls_back_to_message_usage(self) -> None:
        finished = self.finish(
            [
                message_start(),
                text_delta("hi"),
                assistant(
                    [text("hi")],
                    usage={
                        "input_tokens": 7,
                        "output_tokens": 2,
                        "cache_read_input_tokens": 40,
                        "cache_creation_input_tokens": 1,
                    },
                ),
                result("hi", usage={"input_tokens": 0, "output_tokens": 0}),
            ]
        )
        self.assertEqual(finished.usage, Usage(7, 2, 40, 1))

    def test_usage_missing_everywhere(self) -> None:
        finished = self.finish([result("", usage={})])
        self.assertEqual(finished.usage, Usage())

    def test_usage_garbage_values_zero(self) -> None:
        self.assertEqual(
            Usage.from_anthropic({"input_tokens": "3", "output_tokens": -1, "cache_read_input_tokens": None}), Usage()
        )
        self.assertEqual(Usage.from_anthropic(None), Usage())

    def test_finish_reason_mapping(self) -> None:
        for stop, expected in (
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("pause_turn", "stop"),
            ("refusal", "content_filter"),
            ("never_heard_of_it", "stop"),
        ):
            finished = self.finish(streamed_turn("x", stop_reason=stop))
            self.assertEqual(finished.stop_reason, stop)
            self.assertEqual(finish_reason(finished), expected, stop)

    def test_stop_reason_from_stream_when_result_has_none(self) -> None:
        finished = self.finish(
            [
                message_start(),
                text_delta("x"),
                message_delta("max_tokens"),
                message_stop(),
                result("x", stop_reason=None),
            ]
        )
        self.assertEqual(finished.stop_reason, "max_tokens")
        self.assertEqual(finish_reason(finished), "length")

    def test_no_stop_reason_means_stop(self) -> None:
        finished = self.finish([result("", stop_reason=None)])
        self.assertIsNone(finished.stop_reason)
        self.assertEqual(finish_reason(finished), "stop")

    def test_model_from_init(self) -> None:
        state = TurnState(model="sonnet")
        state.feed(init("claude-sonnet-5"))
        self.assertEqual(state.model, "claude-sonnet-5")

    def test_model_from_message_start(self) -> None:
        state = TurnState(model="opus")
        state.feed(message_start(model="claude-opus-4-8"))
        self.assertEqual(state.model, "claude-opus-4-8")
        state.feed(message_start(mid="m2", model="<synthetic>"))
        self.assertEqual(state.model, "claude-opus-4-8")

    def test_model_from_model_usage(self) -> None:
        finished = self.finish([init("haiku"), result("", model_usage={"claude-haiku-4-5-20251001": {}})])
        self.assertEqual(finished.model, "claude-haiku-4-5-20251001")

    def test_model_usage_with_several_models_ignored(self) -> None:
        finished = self.finish([init("claude-sonnet-5"), result("", model_usage={"a": {}, "b": {}})])
        self.assertEqual(finished.model, "claude-sonnet-5")

    def test_model_usage_synthetic_ignored(self) -> None:
        finished = self.finish([init("claude-sonnet-5"), result("", model_usage={"<synthetic>": {}})])
        self.assertEqual(finished.model, "claude-sonnet-5")

    def test_model_stays_requested_without_reports(self) -> None:
        finished = self.finish([result("", model_usage={})], model="sonnet")
        self.assertEqual(finished.model, "sonnet")

    def test_result_carried(self) -> None:
        line = result("x")
        finished = self.finish([line])
        self.assertEqual(finished.result, line)


class ErrorTests(SynchronousTestCase):
    def fail_with(self, lines: list[dict[str, Any]], now: float = 0.0) -> Failed:
        state = TurnState(model="sonnet")
        outs = feed_all(state, lines, now)
        self.assertTrue(state.done)
        failed = outs[-1]
        assert isinstance(failed, Failed), outs
        return failed

    def error_result(self, status: Optional[int], message: str) -> dict[str, Any]:
        return result(
            message,
            stop_reason="stop_sequence",
            usage={"input_tokens": 0, "output_tokens": 0},
            is_error=True,
            api_error_status=status,
        )

    def test_server_error(self) -> None:
        failed = self.fail_with(
            [
                init(),
                assistant([text("API Error: 500 boom")], mid="x", model="<synthetic>"),
                self.error_result(500, "API Error: 500 boom"),
            ]
        )
        self.assertEqual(failed.error.status, 502)
        self.assertIn("500 boom", failed.error.message)

    def test_rate_limited_with_reset(self) -> None:
        failed = self.fail_with(
            [
                init(),
                rate_limit_event("rejected", resets_at=1_700_000_090),
                assistant([text("API Error: 429 limit")], mid="x", model="<synthetic>"),
                self.error_result(429, "API Error: 429 limit"),
            ],
            now=1_700_000_000.0,
        )
        self.assertEqual(failed.error.status, 429)
        self.assertEqual(failed.error.retry_after, 90)
        self.assertEqual(failed.error.headers(), {"Retry-After": "90", "x-should-retry": "false"})

    def test_rate_limit_event_recorded(self) -> None:
        state = TurnState(model="sonnet")
        state.feed(rate_limit_event("allowed"))
        self.assertEqual(state.rate_limit, {"status": "allowed", "rateLimitType": "five_hour"})
        state.feed({"type": "rate_limit_event", "rate_limit_info": "junk"})
        self.assertEqual(state.rate_limit, {"status": "allowed", "rateLimitType": "five_hour"})

    def test_not_logged_in(self) -> None:
        failed = self.fail_with([self.error_result(None, "Not logged in · Please run /login")])
        self.assertEqual(failed.error.status, 401)

    def test_usage_so_far(self) -> None:
        state = TurnState(model="sonnet")
        feed_all(state, [message_start(input_tokens=30), text_delta("x"), message_delta(output_tokens=9)])
        self.assertEqual(state.usage_so_far(), Usage(input_tokens=30, output_tokens=9))
