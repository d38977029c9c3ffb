"""
One turn of one CLI process, driven to its end.

L{TurnRun} is the process's sink (it receives stream-json lines) and the
HTTP response's push producer: when the client's socket is full, Twisted
pauses it and it stops reading the CLI's stdout; when the socket drains,
reading resumes.  It applies the idle and total timeouts and stop
sequences, and hands protocol-neutral output to a L{TurnOutput} that
renders one protocol.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from .conversation import text_block, user_line
from .errors import ProxyError, cli_failed, context_length_exceeded, timeout
from .process import CLIProcess
from .spec import TurnPolicy
from .stops import StopScanner
from .tools import ToolCall
from .turn import (
    Compacting,
    Failed,
    Finished,
    ReasoningOut,
    StructuredDelta,
    TextOut,
    ToolCallDelta,
    ToolCallStart,
    TurnState,
    WebSearch,
    digest_text,
)


class TurnOutput(Protocol):
    """
    Renders a turn in one protocol onto one HTTP response.

    @ivar needs_text: the output needs the reply's text whole at the end
        (a streamed reply nobody needs whole afterwards is not kept).
    """

    needs_text: bool

    def text(self, text: str) -> None: ...

    def reasoning(self, text: str) -> None: ...

    def tool_call_start(self, index: int, call_id: str, name: str) -> None: ...

    def tool_call_delta(self, index: int, arguments: str) -> None: ...

    def web_search(self, search: WebSearch) -> None:
        """
        The model ran a web search (its results are in the turn's text;
        the finished turn lists every search again).
        """
        ...

    def finished(self, finished: Finished) -> None: ...

    def failed(self, error: ProxyError) -> None: ...


class WholeReply:
    """
    The base of an output that answers once, at the end: it gathers the
    reply's text and has no use for reasoning or tool-call deltas (the
    finished turn carries the calls whole).
    """

    needs_text = True

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.status = 200

    def text(self, text: str) -> None:
        self.parts.append(text)

    def reasoning(self, text: str) -> None:
        pass

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        pass

    def tool_call_delta(self, index: int, arguments: str) -> None:
        pass

    def web_search(self, search: WebSearch) -> None:
        pass

    def named(self, model: str) -> None:
        """
        The model the reply names: the finished turn names it.
        """


#: the turn written when C{tool_choice} requires a call and the model
#: answered in text (the CLI has no way to pass C{tool_choice} upstream; it
#: enforces C{--json-schema} the same way, with one more user turn)
ENFORCE_TOOL = (
    "Your reply must call one of the available tools: the request requires a tool call "
    "(tool_choice). Call the appropriate tool now, without further text."
)


#: a streamed structured output the model began again (the CLI refused
#: the first for its schema) after part of the first went out
STRUCTURED_RETRIED = ProxyError(
    502,
    "The model's structured output did not match the requested schema and it wrote another; "
    "part of the first was already streamed",
    "server_error",
    "structured_output_retried",
)


@attrs.frozen
class Outcome:
    """
    How a turn ended, for the request log and the process layer.
    """

    status: int
    first_token_ms: Optional[float]
    finished: Optional[Finished] = None
    error: Optional[ProxyError] = None
    clean: bool = False
    retry: bool = False
    #: the CLI began compacting the conversation: the turn was not served
    #: from its summary (the process is ended)
    compacted: bool = False
    #: tool calls of the same message not handed to the client yet
    held: tuple[ToolCall, ...] = ()
    #: how the turn was served: C{warm}, C{cold}, C{session}, C{resumed}
    #: (a process started ahead on this conversation) or C{tools}
    served: str = "-"
    #: the model the CLI reported serving the turn (its init line), and the
    #: rate-limit state it reported during the turn
    model: str = ""
    rate_limit: Optional[Mapping[str, Any]] = None


@attrs.frozen
class Timeouts:
    """
    How long a turn may go without output from the CLI (C{idle}) and take
    in all (C{total}), in seconds.
    """

    idle: float
    total: float


@attrs.frozen
class Retry:
    """
    When a turn ends for a retry on another process, the client having seen
    nothing: C{reused}, the process was kept from before, and dying before
    its first line means it died idle; C{compaction}, the CLI began
    compacting (once: if the fresh process compacts too, the turn fails).
    """

    reused: bool = False
    compaction: bool = True


@implementer(IPushProducer)
class TurnRun:
    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        proc: CLIProcess,
        state: TurnState,
        output: TurnOutput,
        timeouts: Timeouts,
        policy: TurnPolicy = TurnPolicy(),
        retry: Retry = Retry(),
        on_first_token: Optional[Callable[[], None]] = None,
    ) -> None:
        #: told once, when the first token goes to the client
        self.on_first_token = on_first_token
        self.policy = policy
        self.retry = retry
        self.timeouts = timeouts
        #: the pieces of structured output streamed, and of which attempt
        self._json_pieces: list[str] = []
        self._json_attempt = 0
        #: with a required tool call, what the model wrote before calling
        #: one (C{("text" | "reasoning", piece)}): it reaches the client
        #: only with the call, and never if the answer is refused
        self._held: list[tuple[str, str]] = []
        self.reactor = reactor
        #: the model was already asked once more for the required call
        self.enforced = False
        self.got_line = False
        self.proc = proc
        self.state = state
        self.output = output
        self.stops = StopScanner(policy.stops)
        self.done: Deferred[Outcome] = Deferred(self._cancelled)
        self.started_at = reactor.seconds()
        self.first_token_at: Optional[float] = None
        self.paused = False
        self.ended = False
        self._idle: Optional[IDelayedCall] = None
        self._total: Optional[IDelayedCall] = None

    # -- starting --------------------------------------------------------------

    def start(self, line: bytes = b"") -> Deferred[Outcome]:
        """
        Take the process's output from now on and write C{line} (a user
        turn) to its stdin; with no line (a resumed tool call, whose input
        goes through the MCP bridge) nothing is written.
        """
        self.proc.attach(self)
        self._total = self.reactor.callLater(self.timeouts.total, self._total_expired)
        self._arm_idle()
        if line:
            self.proc.write(line)
        if self.proc.is_ended:
            self.cli_exited(self.proc.exit_status, self.proc.stderr_tail)
        return self.done

    # -- timers ----------------------------------------------------------------

    def _arm_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.timeouts.idle)
        elif not self.ended:
            self._idle = self.reactor.callLater(self.timeouts.idle, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _idle_expired(self) -> None:
        self._idle = None
        self._fail(
            timeout("No output from the Claude Code CLI for %g seconds (--idle-timeout)" % (self.timeouts.idle,))
        )

    def _total_expired(self) -> None:
        self._total = None
        self._fail(timeout("The request took longer than %g seconds (--request-timeout)" % (self.timeouts.total,)))

    def _stop_timers(self) -> None:
        self._disarm_idle()
        if self._total is not None and self._total.active():
            self._total.cancel()
        self._total = None

    # -- ProcessSink -------------------------------------------------------------

    def cli_line(self, line: Mapping[str, Any]) -> None:
        if self.ended:
            return
        self.got_line = True
        if not self.paused:
            self._arm_idle()
        try:
            outs = self.state.feed(line, self.reactor.seconds())
        except Exception:
            self.log.failure("reading a CLI line")
            self._fail(cli_failed("claudeproxy could not read the CLI's output", self.proc.stderr_tail))
            return
        for out in outs:
            if self.ended:
                return
            if isinstance(out, TextOut):
                if not self.policy.json_mode:
                    self._text(out.text)
            elif isinstance(out, ReasoningOut):
                if self.policy.require_tool:
                    self._held.append(("reasoning", out.text))
                else:
                    self._first_token()
                    self.output.reasoning(out.text)
            elif isinstance(out, StructuredDelta):
                if self.policy.json_mode and self.policy.stream:
                    self._structured_piece(out)
            elif isinstance(out, ToolCallStart):
                if self.policy.parallel_tool_calls or out.index == 0:
                    self._release_held()
                    self._first_token()
                    self.output.tool_call_start(out.index, out.id, out.name)
            elif isinstance(out, ToolCallDelta):
                if self.policy.parallel_tool_calls or out.index == 0:
                    self.output.tool_call_delta(out.index, out.arguments)
            elif isinstance(out, WebSearch):
                self._first_token()
                self.output.web_search(out)
            elif isinstance(out, Finished):
                self._turn_finished(out)
            elif isinstance(out, Failed):
                self._fail(out.error)
            elif isinstance(out, Compacting):
                self._compacting(out)

    def _turn_finished(self, out: Finished) -> None:
        """
        The CLI finished the model's answer.
        """
        rest = self.stops.flush()
        if rest:
            self._emit_text(rest)
        if out.tool_calls:
            self._release_held()
        held: tuple[ToolCall, ...] = ()
        if not self.policy.parallel_tool_calls and len(out.tool_calls) > 1:
            held = out.tool_calls[1:]
            out = attrs.evolve(out, tool_calls=out.tool_calls[:1])
        if self.policy.json_mode and not out.tool_calls:
            if not out.structured:
                self._fail(
                    ProxyError(
                        502,
                        "The model did not produce JSON matching the requested schema",
                        "server_error",
                        "structured_output_missing",
                    )
                )
                return
            structured = self._structured_text(out)
            if structured is None:
                return
            out = structured
        if self.policy.require_tool and not out.tool_calls:
            # the answer is refused: what it said never reaches
            # the client, nor counts as what the process holds
            self._held = []
            self.state.discard_text()
        if self.policy.require_tool and not out.tool_calls and not self.enforced and not self.proc.is_ended:
            # ask once more, on the same process, for the call
            self.enforced = True
            self.state.done = False
            self.state.stop_reason = None
            self.proc.write(user_line([text_block(ENFORCE_TOOL)]))
            return
        if self.policy.require_tool and not out.tool_calls:
            self._fail(
                ProxyError(
                    502,
                    "tool_choice required a tool call, but the model answered without calling one, "
                    "also when asked once more",
                    "server_error",
                    "tool_choice_not_followed",
                )
            )
            return
        self._finish(out, clean=True, held=held)

    def _compacting(self, out: Compacting) -> None:
        """
        Never serve a turn from the CLI's own summary: end the process at
        once (its compaction request is cut).  If the client has seen
        nothing yet, the request is served again on a fresh process holding
        the client's real history; otherwise it ends with an error.
        """
        self.log.warn(
            "the Claude Code CLI began compacting the conversation ({subtype}) although compaction is off; "
            "its process is ended and the turn is not served from a summary",
            subtype=out.subtype,
        )
        self.proc.kill("compacted")
        if self.first_token_at is None and self.retry.compaction:
            self._end()
            self.done.callback(Outcome(0, None, retry=True, compacted=True))
            return
        if self.first_token_at is None:
            # a fresh process on the client's own history compacts too: the
            # conversation is over what the CLI will take
            error = context_length_exceeded("prompt is too long")
            assert error is not None
            self._fail(error)
            return
        self._fail(
            ProxyError(
                502,
                "The Claude Code CLI began compacting the conversation in the middle of this reply; "
                "the reply is cut rather than continued from a summary",
                "server_error",
                "cli_compacted",
            )
        )

    def _emit_text(self, text: str) -> None:
        if self.policy.require_tool:
            self._held.append(("text", text))
            return
        self._first_token()
        self.output.text(text)

    def _release_held(self) -> None:
        """
        The model called a tool: what it wrote before the call in this
        answer goes out first (text before a call is part of the turn).
        """
        held, self._held = self._held, []
        for kind, piece in held:
            self._first_token()
            if kind == "text":
                self.output.text(piece)
            else:
                self.output.reasoning(piece)

    def _structured_piece(self, out: StructuredDelta) -> None:
        if self._json_pieces and out.attempt != self._json_attempt:
            # the CLI refused the first JSON (its schema) and the model
            # writes another: the client has part of the first already
            self._fail(STRUCTURED_RETRIED)
            return
        self._json_attempt = out.attempt
        self._json_pieces.append(out.json)
        self._first_token()
        self.output.text(out.json)

    def _structured_text(self, out: Finished) -> Optional[Finished]:
        """
        The finished structured reply, its JSON sent: the rest of it when
        it was streamed (the reply's text is then exactly the pieces the
        client got), else all of it.  None when the turn failed.
        """
        if not self._json_pieces:
            self._first_token()
            self.output.text(out.text)
            return out
        streamed = "".join(self._json_pieces)
        try:
            same = json.loads(streamed) == json.loads(out.text)
        except ValueError:
            same = False
        if not same:
            self._fail(STRUCTURED_RETRIED)
            return None
        return attrs.evolve(out, text=streamed, text_digest=digest_text(streamed), text_length=len(streamed))

    def _text(self, text: str) -> None:
        emit = self.stops.feed(text)
        if emit:
            self._emit_text(emit)
        if self.stops.stopped and not self.ended:
            self._release_held()
            self._finish(
                self.state.finished_so_far(
                    stop_reason="stop_sequence",
                    usage=self.state.usage_so_far(),
                    stop_sequence=self.stops.matched,
                ),
                clean=False,
            )

    def _first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = self.reactor.seconds()
            if self.on_first_token is not None:
                self.on_first_token()

    def may_elide(self, kind: str, message_id: Optional[str]) -> bool:
        """
        The CLI's complete C{assistant} message need not be read whole when
        its text came as deltas; nor the C{result} line, whose C{result}
        repeats the text (except in JSON mode, where it is the answer).
        """
        if self.ended:
            return False
        if kind == "assistant":
            return message_id is not None and self.state.text_streamed(message_id)
        if kind == "result":
            return not self.policy.json_mode
        return False

    def cli_garbage(self, line: bytes) -> None:
        excerpt = line[:300].decode("utf-8", "replace")
        self._fail(
            cli_failed(
                "The Claude Code CLI printed output that is not stream-json: %r" % (excerpt,), self.proc.stderr_tail
            )
        )

    def cli_exited(self, status: Optional[int], stderr_tail: str) -> None:
        if self.ended:
            return
        if self.retry.reused and not self.got_line:
            # a kept process died before this turn reached it: the request
            # has seen nothing and is served again by a new process
            self._end()
            self.done.callback(Outcome(0, None, retry=True))
            return
        self._fail(
            cli_failed(
                "The Claude Code CLI exited (status %s) before it finished answering" % (status,),
                stderr_tail,
            )
        )

    # -- ending ----------------------------------------------------------------

    def _end(self) -> None:
        self.ended = True
        self._stop_timers()
        self.proc.attach(None)
        if self.paused:
            self.paused = False
            self.proc.resume()

    def _ms(self) -> Optional[float]:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started_at) * 1000.0

    def _finish(self, finished: Finished, clean: bool, held: tuple[ToolCall, ...] = ()) -> None:
        if self.ended:
            return
        self._end()
        try:
            self.output.finished(finished)
        except Exception:
            self.log.failure("rendering a finished turn")
        self.done.callback(Outcome(200, self._ms(), finished, None, clean, held=held))

    def hand_over(self, call: ToolCall, rest: tuple[ToolCall, ...]) -> None:
        """
        The CLI moved on to a call the client has not been given yet
        (C{parallel_tool_calls: false}): end this turn with it.
        """
        if self.ended:
            return
        self._release_held()
        self._first_token()
        self.output.tool_call_start(0, call.id, call.name)
        self.output.tool_call_delta(0, call.arguments)
        finished = Finished(
            text="",
            reasoning="",
            model=self.state.model,
            stop_reason="tool_use",
            usage=self.state.usage_so_far(),
            tool_calls=(call,),
        )
        self._finish(finished, clean=True, held=rest)

    def _fail(self, error: ProxyError) -> None:
        if self.ended:
            return
        self._end()
        try:
            self.output.failed(error)
        except Exception:
            self.log.failure("rendering a failed turn")
        self.done.callback(Outcome(error.status, self._ms(), None, error, False))

    def abort(self, error: ProxyError) -> None:
        """
        End the turn with C{error} (the daemon is shutting down).
        """
        self._fail(error)

    def _cancelled(self, d: Deferred[Outcome]) -> None:
        # the client went away: end quietly, touching nothing of the request
        if not self.ended:
            self._end()

    # -- IPushProducer ---------------------------------------------------------

    def pauseProducing(self) -> None:
        if self.ended or self.paused:
            return
        self.paused = True
        self._disarm_idle()
        self.proc.pause()

    def resumeProducing(self) -> None:
        if self.ended or not self.paused:
            return
        self.paused = False
        self.proc.resume()
        self._arm_idle()

    def stopProducing(self) -> None:
        if not self.ended:
            self.done.cancel()


__all__ = ["TurnRun", "TurnOutput", "TurnPolicy", "Timeouts", "Retry", "Outcome", "CancelledError"]
