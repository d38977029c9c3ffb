"""
Serving one turn of a conversation, whatever protocol asked for it.  A
request's turn goes forward: its spec, prepared (L{TurnServer.prepared}),
with where its output goes (L{Asked}) -> a process for it (warm, live
session, parked tool wait or cold; bound to it when generic) -> the turn
run on that process (L{TurnRun}: the turn written to its stdin, or its
pending tool calls resumed) -> the protocol's output.  Then the process is
given back, kept for what comes next or ended.

Nothing here knows HTTP: the caller passes the output the turn renders to,
and the consumer (if any) that back-pressure pauses.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

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
from .streaming import Outcome, Retry, Timeouts, TurnRun
from .told import ClientHook, ProtocolOutput, Told, Unwatched
from .tools import mcp_content
from .turn import TurnState

SHUTTING_DOWN = ProxyError(503, "claudeproxy is shutting down; retry in a moment", "server_error", "shutting_down")

#: the longest reply whose text is kept to start a process on the
#: conversation ahead of the client's next request
KEEP_FOR_NEXT = 1 << 20

#: makes the protocol's output for one attempt at a turn
OutputMaker = Callable[[TurnSpec, TurnState, str, int], ProtocolOutput]


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
    settings = spec.settings
    return SpawnKey(
        spec.cli_model,
        spec.conversation.system,
        config.system_prompt_mode,
        settings.effort,
        tools=settings.tools.specs,
        json_schema=settings.json_schema,
        max_tokens=settings.max_tokens,
        web_search=settings.tools.web_search,
    )


@attrs.frozen
class Asked:
    """
    One request's turn as the engine serves it: its id, its spec (as
    L{TurnServer.prepared} made it), the settings of the processes that can
    serve it, and where its output goes (the protocol's output, the
    consumer back-pressure pauses, the hook).
    """

    rid: str
    spec: TurnSpec
    key: SpawnKey
    make_output: OutputMaker
    consumer: Optional[IConsumer] = None
    hook: ClientHook = Unwatched()


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
        settings = spec.settings
        tools = settings.tools.specs
        if not tools and conversation.history:
            tools = history_tools(conversation.messages)
        if conversation is spec.conversation and tools is settings.tools.specs:
            return spec
        offered = attrs.evolve(settings.tools, specs=tools)
        return attrs.evolve(spec, conversation=conversation, settings=attrs.evolve(settings, tools=offered))

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
        asked = Asked(rid, spec, spawn_key(spec, self.config), make_output, consumer, hook)
        compactions = 0
        generic = True
        while True:
            lease = await self._lease(asked, generic)
            if lease is None:
                # binding failed: served by a process started for it instead
                generic = False
                continue
            outcome = await self._turn(asked, lease, retry_compaction=compactions == 0)
            if outcome.compacted:
                compactions += 1
            if not outcome.retry:
                return outcome

    async def _lease(self, asked: Asked, generic: bool) -> Optional[Lease]:
        """
        A process for C{asked}, bound to it if it is generic; None when
        binding failed (a process started for it serves it then).
        """
        if self.closing:
            raise SHUTTING_DOWN
        lease = self.manager.acquire(asked.key, asked.spec.conversation, generic)
        if lease.bind is not None:
            try:
                await self._bind(lease, asked.spec)
            except BindFailed as e:
                self.manager.bind_failed(lease, str(e), e.refused)
                self.manager.release(lease, None, "bind_failed")
                return None
            except BaseException:
                self.manager.release(lease, None, "client_gone")
                raise
        asked.hook.served(lease.source)
        return lease

    async def _turn(self, asked: Asked, lease: Lease, retry_compaction: bool) -> Outcome:
        """
        One attempt at the turn on C{lease}'s process; the process is then
        kept for what comes next, or ended.
        """
        outcome: Optional[Outcome] = None
        state = TurnState(model=asked.spec.cli_model)
        try:
            outcome = await self._attempt(asked, lease, state, retry_compaction)
        finally:
            self._give_back(lease, asked.spec.conversation, outcome, state)
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
            lease.bind.switch_from,
        )

    async def _attempt(self, asked: Asked, lease: Lease, state: TurnState, retry_compaction: bool) -> Outcome:
        """
        Write the turn to the process (or resume its pending tool calls)
        and run it to its end, its output rendered by the protocol.
        """
        spec, hook, consumer = asked.spec, asked.hook, asked.consumer
        hook.attempt(state)
        output = Told(asked.make_output(spec, state, asked.rid, int(self.wallclock())), hook, state, spec.model)
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
