"""
Serving one turn of a conversation, whatever protocol asked for it: choose
a process (warm, live session, parked tool wait or cold), write the turn to
its stdin, resume pending tool calls, and give the process back.

Nothing here knows HTTP: the caller passes the output the turn renders to,
and the consumer (if any) that back-pressure pauses.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Protocol

import attrs
from twisted.internet.interfaces import IConsumer, IReactorTime

from ..config import Config
from .binder import BindFailed, bind
from .continuity import Continuation, assistant_message, call_list, calls_digest, without_transient
from .conversation import Conversation, turn_blocks, user_line
from .errors import ProxyError
from .history import check_tool_pairs, history_tools
from .ids import ToolIds
from .limits import merge_limits
from .pool import Lease, ProcessManager
from .process import SpawnKey
from .spec import TurnSpec
from .streaming import Outcome, Retry, Timeouts, TurnOutput, TurnRun
from .tools import mcp_content
from .turn import Finished, TurnState, WebSearch

SHUTTING_DOWN = ProxyError(503, "claudeproxy is shutting down; retry in a moment", "server_error", "shutting_down")

#: the longest reply whose text is kept to start a process on the
#: conversation ahead of the client's next request
KEEP_FOR_NEXT = 1 << 20

#: makes the protocol's output for one attempt at a turn
OutputMaker = Callable[[TurnSpec, TurnState, str, int], TurnOutput]


class ClientHook(Protocol):
    """
    What the engine tells the client of a request while its turn runs (in
    HTTP: response headers), and the request's progress as it goes, which
    its record keeps even when the turn never ends.
    """

    def served(self, source: str) -> None:
        """
        Where the process serving the attempt came from (L{Lease.source}),
        before any output.
        """

    def attempt(self, state: TurnState) -> None:
        """
        An attempt at the turn begins, C{state} its state.
        """

    def answering(self, model: str) -> None:
        """
        The model that answers the attempt, before its first output.
        """

    def piece(self) -> None:
        """
        A piece of output (text, reasoning, a tool call's start or delta,
        a search) went to the client.
        """


class Unwatched:
    """
    A L{ClientHook} told nothing.
    """

    def served(self, source: str) -> None:
        pass

    def attempt(self, state: TurnState) -> None:
        pass

    def answering(self, model: str) -> None:
        pass

    def piece(self) -> None:
        pass


class Told:
    """
    A protocol's output as the engine drives it: the hook hears of each
    piece and, before the first output, of the model answering; the
    finished turn names the model as the client asked for it
    (OpenAI-compatible servers echo the requested id; a different one makes
    clients such as OpenClaw report a rerouted model).
    """

    def __init__(self, output: TurnOutput, hook: ClientHook, state: TurnState, requested: str) -> None:
        self._output = output
        self._hook = hook
        self._state = state
        self._requested = requested
        self._answering = False
        self.needs_text = output.needs_text

    def _first(self) -> None:
        if not self._answering:
            self._answering = True
            self._hook.answering(self._state.model)

    def text(self, text: str) -> None:
        self._first()
        self._hook.piece()
        self._output.text(text)

    def reasoning(self, text: str) -> None:
        self._first()
        self._hook.piece()
        self._output.reasoning(text)

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self._first()
        self._hook.piece()
        self._output.tool_call_start(index, call_id, name)

    def tool_call_delta(self, index: int, arguments: str) -> None:
        self._hook.piece()
        self._output.tool_call_delta(index, arguments)

    def web_search(self, search: WebSearch) -> None:
        self._first()
        self._hook.piece()
        self._output.web_search(search)

    def finished(self, finished: Finished) -> None:
        self._first()
        self._output.finished(attrs.evolve(finished, model=self._requested))

    def failed(self, error: ProxyError) -> None:
        self._first()
        self._output.failed(error)


def continuation(conversation: Conversation, outcome: Outcome) -> Optional[Continuation]:
    """
    The conversation a process holds after a clean reply that the client
    saw whole (the request's messages, then the reply's text, by digest),
    or None when the process must not be reused.
    """
    finished = outcome.finished
    if (
        not outcome.clean
        or finished is None
        or finished.stop_reason != "end_turn"
        or finished.structured
        or not finished.reply_length
    ):
        return None
    digest = finished.reply_digest()
    trimmed = finished.trimmed_reply_digest()
    return Continuation(conversation.messages, digest, trimmed if trimmed != digest else None)


def end_cause(outcome: Outcome) -> str:
    """
    Why a request's CLI process is ended, for the metrics.
    """
    if outcome.retry:
        return "died_idle"
    if outcome.error is not None:
        return "timeout" if outcome.error.status == 504 else "error"
    if not outcome.clean:
        return "cut"
    return "done"


def spawn_key(spec: TurnSpec, config: Config) -> SpawnKey:
    """
    The settings a process must have been started with to serve C{spec}.
    """
    return SpawnKey(
        spec.cli_model,
        spec.conversation.system,
        config.system_prompt_mode,
        spec.effort,
        tools=spec.tools,
        json_schema=spec.json_schema,
        max_tokens=spec.max_tokens,
        web_search=spec.web_search,
    )


class TurnServer:
    """
    Runs turns on the process manager's CLI processes.  Every running turn
    is in L{runs} until it ends; L{quota} is the last subscription
    rate-limit state a CLI reported.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        manager: ProcessManager,
        wallclock: Callable[[], float],
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.manager = manager
        self.wallclock = wallclock
        self.runs: set[TurnRun] = set()
        #: the last rate_limit_info the CLI reported, with when
        self.quota: Optional[dict[str, Any]] = None
        #: the subscription's limit windows, merged from every rate_limit_info seen
        self.limits: dict[str, Any] = {}
        self.closing = False
        self.ids = ToolIds()

    def prepared(self, spec: TurnSpec) -> TurnSpec:
        """
        C{spec} as the engine serves it: tool ids the daemon's own where the
        client rewrote them, the API's rules on tool blocks checked (a 400
        names what breaks them), and a history with tool blocks given tools
        even when the request declares none (the API refuses it otherwise).
        """
        conversation = self.ids.canonical(spec.conversation)
        check_tool_pairs(conversation.messages)
        tools = spec.tools
        if not tools and conversation.history:
            tools = history_tools(conversation.messages)
        if conversation is spec.conversation and tools is spec.tools:
            return spec
        return attrs.evolve(spec, conversation=conversation, tools=tools)

    async def serve(
        self,
        rid: str,
        spec: TurnSpec,
        make_output: OutputMaker,
        consumer: Optional[IConsumer] = None,
        hook: ClientHook = Unwatched(),
    ) -> Outcome:
        """
        Serve one turn of C{spec} and fire with how it ended.  A streamed
        turn registers itself as C{consumer}'s push producer while it runs.
        A reused process that died before its turn is retried on another.
        C{hook} is told what the client is told as the turn goes.
        """
        spec = self.prepared(spec)
        key = spawn_key(spec, self.config)
        compactions = 0
        generic = True
        while True:
            if self.closing:
                raise SHUTTING_DOWN
            lease = self.manager.acquire(key, spec.conversation, generic)
            if lease.bind is not None:
                try:
                    await self._bind(lease, spec)
                except BindFailed as e:
                    # served by a process started for it instead
                    self.manager.bind_failed(lease, str(e), e.refused)
                    self.manager.release(lease, None, "bind_failed")
                    generic = False
                    continue
                except BaseException:
                    self.manager.release(lease, None, "client_gone")
                    raise
            hook.served(lease.source)
            outcome: Optional[Outcome] = None
            state = TurnState(model=spec.cli_model)
            try:
                outcome = await self._attempt(lease, rid, spec, state, make_output, consumer, hook, compactions == 0)
            finally:
                self._give_back(lease, spec.conversation, outcome, state)
            if outcome.compacted:
                compactions += 1
            if outcome.retry:
                continue
            return attrs.evolve(outcome, served=lease.source, model=state.model, rate_limit=state.rate_limit)

    async def _bind(self, lease: Lease, spec: TurnSpec) -> None:
        """
        Give a generic process the request's settings and history.
        """
        assert lease.bind is not None
        manager = self.manager
        await bind(
            self.reactor,
            lease.proc,
            lease.key,
            lease.bind.model,
            lease.bind.history,
            os.path.realpath(manager.workdir),
            manager.cli_version,
            manager.clock,
            lease.bind.clear,
            lease.bind.bound,
        )

    async def _attempt(
        self,
        lease: Lease,
        rid: str,
        spec: TurnSpec,
        state: TurnState,
        make_output: OutputMaker,
        consumer: Optional[IConsumer],
        hook: ClientHook,
        retry_compaction: bool = True,
    ) -> Outcome:
        hook.attempt(state)
        output = Told(make_output(spec, state, rid, int(self.wallclock())), hook, state, spec.model)
        state.keep_text = output.needs_text
        state.keep_upto = KEEP_FOR_NEXT
        run = TurnRun(
            self.reactor,
            lease.proc,
            state,
            output,
            Timeouts(self.config.idle_timeout, self.config.request_timeout),
            spec.policy,
            Retry(reused=lease.source != "cold", compaction=retry_compaction),
            on_first_token=self.manager.first_token,
        )
        producing = consumer is not None and spec.stream
        if producing:
            assert consumer is not None
            consumer.registerProducer(run, True)
        self.runs.add(run)
        try:
            if lease.source == "tools":
                done = run.start()
                self._resume_tools(lease, run, spec.conversation)
            else:
                # the process holds the history: only the last turn is new
                done = run.start(user_line(turn_blocks(lease.turn or spec.conversation.last_turn)))
            return await done
        finally:
            self.runs.discard(run)
            if producing:
                assert consumer is not None
                if getattr(consumer, "producer", run) is run:
                    consumer.unregisterProducer()
            if lease.proc.bridge is not None:
                lease.proc.bridge.on_call = None
            if state.rate_limit is not None:
                self.quota = dict(state.rate_limit, observed_at=int(self.wallclock()))
                self.limits = merge_limits(self.limits, state.rate_limit, self.wallclock())

    def _resume_tools(self, lease: Lease, run: TurnRun, conversation: Conversation) -> None:
        """
        Answer the process's pending MCP calls with the client's tool
        results; the CLI then carries on, and its output goes to C{run}.
        """
        bridge = lease.proc.bridge
        wait = lease.tool_wait
        assert bridge is not None and wait is not None
        held = list(wait.held)
        if held:

            def on_call(call_id: str) -> None:
                for i, call in enumerate(held):
                    if call.id == call_id:
                        run.hand_over(call, tuple(held[i + 1 :]))
                        return

            bridge.on_call = on_call
        for message in conversation.last_turn:
            for block in message.blocks:
                if block.get("type") != "tool_result":
                    continue
                bridge.answer(
                    str(block.get("tool_use_id")),
                    {"content": mcp_content(block.get("content")), "isError": bool(block.get("is_error"))},
                )

    def _give_back(
        self, lease: Lease, conversation: Conversation, outcome: Optional[Outcome], state: TurnState
    ) -> None:
        """
        Keep the process for what comes next, or end it; and where the
        client is known to send a different history next (transient context
        dropped), start a process on that history now.
        """
        finished = outcome.finished if outcome is not None else None
        if outcome is None:
            self.manager.release(lease, None, "client_gone")
            return
        if finished is not None and finished.tool_calls and outcome.clean:
            for call in finished.tool_calls + outcome.held:
                self.ids.issued(call.id)
            holds = Continuation(
                conversation.messages, calls_digest(finished.reply_digest(), call_list(finished.tool_calls))
            )
            following = without_transient(conversation)
            also = Continuation(following, holds.reply_digest) if following is not None and not outcome.held else None
            self.manager.hold_for_tools(lease, frozenset(c.id for c in finished.tool_calls), outcome.held, holds, also)
            return
        keep = continuation(conversation, outcome)
        following = without_transient(conversation) if keep is not None else None
        if following is not None:
            text = state.reply_text()
            self.manager.release(lease, None, "transient")
            if text is not None:
                self.manager.prepare(lease.key, following + (assistant_message(text),))
            return
        self.manager.release(lease, keep, end_cause(outcome))

    def shutdown(self) -> None:
        """
        Refuse new turns and end every running one with an error.
        """
        self.closing = True
        for run in list(self.runs):
            run.abort(SHUTTING_DOWN)
