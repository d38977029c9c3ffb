"""
The request's log line says how it was served, its first token, what was
streamed and why it ended, whether or not its turn finished.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.errors import ProxyError, timeout
from claudeproxy.engine.streaming import Outcome
from claudeproxy.engine.told import Told
from claudeproxy.engine.turn import Finished, TurnState, Usage, WebSearch
from claudeproxy.web.accounting import Progress, RequestRecord, end_reason
from tests.fakes import LogLines
from tests.test_unit_routes import RoutesTestCase


def finished(stop_reason: str = "end_turn") -> Finished:
    return Finished(text="Hi.", reasoning="", model="claude-sonnet-5", stop_reason=stop_reason, usage=Usage(3, 5))


class EndReasonTests(SynchronousTestCase):
    def test_reasons(self) -> None:
        self.assertEqual(end_reason(200, None, Outcome(200, 5.0, finished(), clean=True)), "done")
        self.assertEqual(end_reason(200, None, Outcome(200, 5.0, finished("stop_sequence"))), "stopped")
        self.assertEqual(end_reason(499, "client_gone", None), "client_gone")
        self.assertEqual(end_reason(504, "timeout", Outcome(504, None, None, timeout("x"))), "timeout")
        self.assertEqual(end_reason(503, "shutting_down", None), "shutting_down")
        self.assertEqual(end_reason(503, "upstream_overloaded", Outcome(503, None)), "error")


class ProgressTests(SynchronousTestCase):
    def test_first_piece_and_count(self) -> None:
        progress = Progress()
        progress.attempt(10.0, TurnState(model="sonnet"))
        progress.piece(10.25)
        progress.piece(10.5)
        self.assertEqual((progress.first_token_ms, progress.pieces, progress.tokens_out()), (250.0, 2, 0))


class Heard:
    """
    A hook and an output both, writing down what they are told in order.
    """

    needs_text = False

    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    def served(self, source: str) -> None:
        self.heard.append(("served", source))

    def attempt(self, state: TurnState) -> None:
        self.heard.append(("attempt", state.model))

    def answering(self, model: str) -> None:
        self.heard.append(("answering", model))

    def named(self, model: str) -> None:
        self.heard.append(("named", model))

    def piece(self) -> None:
        self.heard.append(("piece", None))

    def text(self, text: str) -> None:
        self.heard.append(("text", text))

    def reasoning(self, text: str) -> None:
        self.heard.append(("reasoning", text))

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self.heard.append(("tool_call_start", name))

    def tool_call_delta(self, index: int, arguments: str) -> None:
        self.heard.append(("tool_call_delta", arguments))

    def web_search(self, search: WebSearch) -> None:
        self.heard.append(("web_search", search))

    def finished(self, finished: Finished) -> None:
        self.heard.append(("finished", finished.model))

    def failed(self, error: ProxyError) -> None:
        self.heard.append(("failed", error.code))


class ToldTests(SynchronousTestCase):
    def test_model_told_once_before_the_first_output_and_named_as_asked(self) -> None:
        output, hook = Heard(), Heard()
        state = TurnState(model="claude-sonnet-5")
        told = Told(output, hook, state, "gpt-4o")
        told.text("Hi")
        told.tool_call_delta(0, "{}")
        told.finished(finished())
        self.assertEqual(hook.heard, [("answering", "claude-sonnet-5"), ("piece", None), ("piece", None)])
        self.assertEqual(
            output.heard, [("named", "gpt-4o"), ("text", "Hi"), ("tool_call_delta", "{}"), ("finished", "gpt-4o")]
        )
        self.assertFalse(told.needs_text)

    def test_a_failure_before_any_output_names_the_model(self) -> None:
        output, hook = Heard(), Heard()
        Told(output, hook, TurnState(model="claude-sonnet-5"), "sonnet").failed(timeout("x"))
        self.assertEqual(hook.heard, [("answering", "claude-sonnet-5")])
        self.assertEqual(output.heard, [("named", "sonnet"), ("failed", "timeout")])


class LogLineTests(RoutesTestCase):
    def fields(self, **kw: Any) -> dict[str, str]:
        self.build()
        log = LogLines()
        accounting = self.daemon.proxy.accounting
        accounting.log = Logger(observer=log)
        accounting.account(RequestRecord("chat", "rid1", begun=0.0, total_ms=0.0, model="sonnet", stream=True, **kw))
        (line,) = log.lines
        return dict(re.findall(r"(\w+)=(\S+)", line))

    def test_client_gone_says_what_was_done(self) -> None:
        progress = Progress(served="warm", first_token_ms=3900.0, pieces=23)
        fields = self.fields(status=499, outcome=None, seen=progress.seen(), error_code="client_gone")
        self.assertEqual(
            {k: fields[k] for k in ("status", "served", "first_token_ms", "pieces", "ended")},
            {"status": "499", "served": "warm", "first_token_ms": "3900", "pieces": "23", "ended": "client_gone"},
        )

    def test_timeout_and_error(self) -> None:
        outcome = Outcome(504, 120.0, None, timeout("x"), served="cold")
        fields = self.fields(status=504, outcome=outcome, seen=Progress(pieces=4).seen())
        self.assertEqual((fields["served"], fields["ended"], fields["pieces"]), ("cold", "timeout", "4"))
        fields = self.fields(status=503, outcome=Outcome(503, None), error_code="upstream_overloaded")
        self.assertEqual((fields["ended"], fields["error"]), ("error", "upstream_overloaded"))
