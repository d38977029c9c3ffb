"""
The process manager: hands out CLI processes and takes them back.

Every CLI process the daemon starts goes through L{ProcessManager}, so one
place knows them all: for shutdown, for /health, and for the warm pool,
live sessions and parked tool waits that reuse them.  Each of those is a
class of its own:

- admission (how many requests run): L{claudeproxy.engine.admission.Limiter};
- the warm pool, generic and keyed: L{claudeproxy.engine.warm.WarmPool};
- live sessions: L{claudeproxy.engine.sessions.LiveSessions};
- parked tool waits: L{claudeproxy.engine.toolwaits.ToolWaits};
- continuation digests: L{claudeproxy.engine.continuity}.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
import uuid
from collections import OrderedDict, deque
from typing import Any, Deque, Optional, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from .admission import Limiter
from .binder import clear_conversation
from .binding import BINDING_SINCE, can_bind, generic_argv, history_write_max, user_turns
from .continuity import (
    Continuation,
    HistoryDigest,
    assistant_digest,
    calls_digest,
    continues,
    resume_split,
)
from .conversation import Conversation, Message
from .errors import ProxyError, cli_missing
from .held import cancel
from .history import session_file_text, session_rows
from .poolsettings import CLISetup, PoolLimits
from .process import (
    SYSTEM_ARG_MAX,
    CLIProcess,
    Killer,
    Spawner,
    SpawnKey,
    build_argv,
    kill_group,
    system_file,
)
from .sessions import LiveSessions, Session
from .tools import ToolCall, ToolSpec
from .toolwaits import ToolWait, ToolWaits
from .versions import parse_version
from .warm import Demand, Idle, WarmPool, generic_target, keyed_targets, memory_cap, start_slots

__all__ = [
    "Continuation",
    "Lease",
    "Limiter",
    "ProcessManager",
    "ToolWait",
    "assistant_digest",
    "calls_digest",
    "continues",
]

#: how long after a request took a warm process its replacement starts, at
#: the latest (it starts at once when the request ends)
REFILL_DELAY = 1.0
#: a parked tool call not resumed for this long makes room for a warm
#: process when the daemon is at its process limit (seconds); a late
#: follow-up then has its history written into a running process
STALE_WAIT = 5.0
#: a warm process not ready this long after its spawn no longer holds up
#: the next one's start (seconds; a start takes 0.5-3 s on a busy machine)
STARTING_AT_MOST = 10.0
#: how long a conversation pushed out still holds it before it is cleared
#: (a new chat's first exchange is pushed out first; a client that goes on
#: at once finds it): long enough for a follow-up sent straight after the
#: reply, short enough that back-to-back new conversations find processes
#: already cleared (a clear costs ~15-30 ms when the request must wait)
PUSHED_OUT_HOLD = 1.0


def _other(bound: SpawnKey, wanted: SpawnKey) -> Optional[SpawnKey]:
    """
    C{bound}, when a process bound to it must be switched to serve
    C{wanted}.
    """
    return None if bound == wanted else bound


@attrs.frozen
class Bind:
    """
    What a generic process is told before the turn: it was started with
    C{model}, and gets the request's settings and C{history}.  With
    C{clear}, the process is a one-shot session already bound to the
    request's settings: its conversation is cleared instead.
    """

    model: str
    history: tuple[Message, ...] = ()
    clear: bool = False
    #: already bound to the request's settings, holding no conversation:
    #: only the history is written
    bound: bool = False
    #: with C{clear} or C{bound}: the settings the process is bound to,
    #: when they differ from the request's in what is switched late (its
    #: model and effort, L{switchable})
    switch_from: Optional[SpawnKey] = None


@attrs.frozen
class Lease:
    """
    A process lent to one request.  C{source} says where it came from:
    C{"session"} (a live conversation), C{"resumed"} (started ahead on the
    conversation the client was expected to send next), C{"tools"} (waiting
    for these tool results), C{"warm"} (started ahead, waiting on stdin),
    C{"written"} (started ahead, the request's history written into it as
    real turns), C{"reused"} (a process bound to the same settings whose
    conversation was cleared: a conversation's pushed out by newer ones,
    or a one-shot's when no started process was ready), C{"starting"} (started ahead, but not done starting when
    taken) or C{"cold"} (spawned now, with the request's history loaded
    from a session file when it has one).  Whatever the source, the process
    holds the request's history once bound (C{bind}: a generic process,
    bound when the request arrives) and only its last turn is written.
    """

    proc: CLIProcess
    key: SpawnKey
    source: str
    tool_wait: Optional[ToolWait] = None
    #: the turn to write, when not the conversation's last turn
    turn: Optional[tuple[Message, ...]] = None
    bind: Optional[Bind] = None
    #: counted in the demand for fresh processes until released
    fresh: bool = False


class BridgeMaker(Protocol):
    def register(self, tools: tuple[ToolSpec, ...]) -> Any: ...

    def unregister(self, bridge: Any) -> None: ...

    def config_for(self, bridge: Any) -> str: ...


@functools.lru_cache(maxsize=256)
def key_id(key: SpawnKey) -> str:
    """
    A short stable name for C{key}: two keys that differ in anything (the
    system text, the tools, C{max_tokens}...) have different names, so
    /health and /metrics never show two keys as one.
    """
    return hashlib.sha256(repr(key).encode("utf-8", "replace")).hexdigest()[:12]


def key_view(key: SpawnKey) -> dict[str, Any]:
    """
    What /health shows of a key: its name and the settings a reader can
    tell keys apart by.
    """
    return {
        "key": key_id(key),
        "model": key.model,
        "system_prompt": key.system is not None,
        "effort": key.effort,
        "tools": len(key.tools),
        "max_tokens": key.max_tokens,
        "json_schema": key.json_schema is not None,
        "web_search": key.web_search,
    }


@attrs.define
class PoolStats:
    spawned: int = 0
    warm_hits: int = 0
    #: warm hits on a process that had not finished starting
    starting_hits: int = 0
    warm_misses: int = 0
    warm_died: int = 0
    warm_expired: int = 0
    #: requests served by a generic process bound when they arrived, and
    #: those of them whose history was written into it
    bound: int = 0
    written: int = 0
    #: processes lent with their conversation cleared (reused)
    reused: int = 0
    #: reused processes switched to another model or effort first
    switched: int = 0
    #: conversations pushed out whose processes were kept, cleared
    recycled: int = 0
    bind_failed: int = 0
    session_hits: int = 0
    session_misses: int = 0
    session_expired: int = 0
    session_evicted: int = 0
    tool_hits: int = 0
    tool_waits_expired: int = 0
    tool_waits_abandoned: int = 0
    resumed_spawns: int = 0
    budget_evicted: int = 0
    prepared: int = 0
    prepared_hits: int = 0


class ProcessManager:
    """
    Hands out CLI processes and takes them back.  One process serves one
    request at a time.

    Warm pool: processes already started and waiting on stdin.  With
    C{binding} on, generic ones (bound to a request's settings and history
    when it arrives), as many as demand calls for within C{warm}; keyed
    ones (started with one key's settings) for what cannot be bound late,
    or for every key when C{binding} is off.  A replacement starts in the
    background.

    Live conversations: after a clean reply the process is kept with its
    conversation (at most C{max_sessions}, one-shots pushed out first, each
    for C{session_ttl} seconds).  A request whose messages are exactly that
    conversation plus new user turn(s), with the same key, gets it back and
    only the new turn is written.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        cli: CLISetup,
        spawner: Spawner,
        limits: PoolLimits = PoolLimits(),
        killer: Killer = kill_group,
        bridges: Optional[BridgeMaker] = None,
        clock: Any = time.time,
    ) -> None:
        self.reactor = reactor
        self.settings = cli.settings
        self.max_processes = limits.max_processes
        #: the CLI's version, as session files carry it (L{cli_known})
        self.cli_version = "2.1.197"
        self.clock = clock
        self.claude = cli.claude
        self.claude_missing_reason = cli.missing_reason
        self.env = dict(cli.env)
        self.workdir = cli.workdir
        self.spawner = spawner
        self.killer = killer
        self.warm = limits.warm
        self.warm_cap = memory_cap() if limits.warm_cap is None else limits.warm_cap
        self.max_starting = limits.max_starting or start_slots()
        self.warm_ttl = warm_ttl = limits.warm_ttl
        self.session_ttl = limits.session_ttl
        self.max_sessions = limits.max_sessions
        self.default_key = cli.default_key
        self.bridges = bridges
        self.tool_wait = limits.tool_wait
        self.max_tool_waits = limits.max_tool_waits
        self.binding = cli.binding
        #: why binding is off, when the CLI turned out to lack it
        self.binding_off: Optional[str] = None
        self.history_write_max = limits.history_write_max
        self.live: set[CLIProcess] = set()
        #: CLI processes ended, by cause
        self.exits: dict[str, int] = {}
        self.stats = PoolStats()
        self.closing = False
        self.pool = WarmPool(reactor, warm_ttl, self._idle_expired)
        self.sessions = LiveSessions(reactor, limits.max_sessions, limits.session_ttl, self._session_ended)
        self.tool_waits = ToolWaits(reactor, limits.max_tool_waits, limits.tool_wait, self._tool_wait_ended)
        self.demand = Demand(max(warm_ttl, 60.0))
        #: the same for requests with a hosted web search, which take
        #: generic processes started with the WebSearch tool
        self.web_demand = Demand(max(warm_ttl, 60.0))
        #: when a request with a hosted web search last came
        self._web_at: Optional[float] = None
        self._recent: OrderedDict[SpawnKey, float] = OrderedDict()
        #: when each recent key's requests came (the last 64), for sizing
        self._arrivals: dict[SpawnKey, Deque[float]] = {}
        #: warm hits and misses of each key
        self.key_stats: dict[SpawnKey, list[int]] = {}
        self._refill_call: Optional[IDelayedCall] = None
        #: a warm process was taken and none ready is left: refill at the
        #: turn's first token
        self._refill_soon = False
        self._backoff = 0.0
        #: when the daemon started, or a request last asked for a process
        self._active_at: Optional[float] = None
        #: how long a warm process takes to become ready (seconds, a
        #: moving average of the recent ones)
        self.start_time = 1.0

    @property
    def spawned(self) -> int:
        return self.stats.spawned

    @property
    def mode(self) -> str:
        """
        C{"generic"} (warm processes bound when a request arrives) or
        C{"keyed"} (each started with one request's settings).
        """
        return "generic" if self.binding else "keyed"

    @property
    def generic_model(self) -> str:
        """
        The model generic processes are started with.
        """
        return self.default_key.model if self.default_key is not None else "sonnet"

    def _bindable(self, key: SpawnKey) -> bool:
        return self.binding and can_bind(key)

    # -- the CLI itself --------------------------------------------------------

    def check_cli(self) -> None:
        """
        Raise the 503 a request gets when the CLI cannot be started.
        """
        if self.claude is None:
            raise cli_missing(self.claude_missing_reason or "`claude` was not found on PATH")
        if not os.access(self.claude, os.X_OK):
            raise cli_missing("%s is missing or not executable" % (self.claude,))

    def _session_file(self, key: SpawnKey, history: tuple[Message, ...]) -> str:
        """
        A session file in the private directory holding C{history}, for the
        CLI's C{--resume}; removed when the process ends.
        """
        rows = session_rows(
            history,
            key.model,
            os.path.realpath(self.workdir),
            self.cli_version,
            time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.clock())),
        )
        path = os.path.join(self.workdir, "session-%s.jsonl" % (uuid.uuid4().hex,))
        with open(path, "wb") as f:
            f.write(session_file_text(rows))
        return path

    def _spawn(self, key: SpawnKey, history: tuple[Message, ...] = ()) -> CLIProcess:
        self.check_cli()
        assert self.claude is not None
        resume = self._session_file(key, history) if history else None
        try:
            proc = self._spawn_with(key, resume)
        except BaseException:
            if resume is not None:
                _remove(resume)
            raise
        if resume is not None:
            self.stats.resumed_spawns += 1
            proc.ended.addBoth(_removing, resume)
        return proc

    def _spawn_with(self, key: SpawnKey, resume: Optional[str]) -> CLIProcess:
        assert self.claude is not None
        proc = CLIProcess(self.killer)
        mcp_config = None
        if key.tools:
            if self.bridges is None:
                raise ProxyError(500, "this daemon cannot serve tools", "server_error", "tools_unavailable")
            proc.bridge = self.bridges.register(key.tools)
            mcp_config = self.bridges.config_for(proc.bridge)
        try:
            env = dict(self.env, **key.env()) if key.env() else self.env
            path = None
            if key.system is not None and len(key.system.encode("utf-8")) > SYSTEM_ARG_MAX:
                path = system_file(self.workdir, key.system)
            argv = build_argv(self.claude, key, mcp_config, path, resume, self.settings)
            self.spawner(proc, self.claude, argv, env, self.workdir)
        except OSError as e:
            if proc.bridge is not None and self.bridges is not None:
                self.bridges.unregister(proc.bridge)
            raise cli_missing("starting %s failed: %s" % (self.claude, e))
        return self._started(proc)

    def _spawn_generic(self, web: bool = False) -> CLIProcess:
        self.check_cli()
        assert self.claude is not None
        proc = CLIProcess(self.killer)
        try:
            argv = generic_argv(self.claude, self.generic_model, self.settings, web)
            self.spawner(proc, self.claude, argv, self.env, self.workdir)
        except OSError as e:
            raise cli_missing("starting %s failed: %s" % (self.claude, e))
        return self._started(proc)

    def _started(self, proc: CLIProcess) -> CLIProcess:
        self.stats.spawned += 1
        self.live.add(proc)
        proc.ended.addBoth(self._gone, proc)
        return proc

    def _gone(self, result: Any, proc: CLIProcess) -> Any:
        self.live.discard(proc)
        if proc.kill_cause is not None:
            cause = proc.kill_cause
        else:
            cause = "exited" if proc.exit_status == 0 else "crashed"
        self.exits[cause] = self.exits.get(cause, 0) + 1
        if proc.bridge is not None:
            if self.bridges is not None and proc.control_handler is None:
                self.bridges.unregister(proc.bridge)
            else:
                proc.bridge.close()
        self.tool_waits.discard(proc)
        entry = self.pool.find(proc)
        if entry is not None:
            self.pool.remove(entry)
            if not proc.killed:
                # it died while waiting: note it, back off, replace it
                self.stats.warm_died += 1
                young = self.reactor.seconds() - entry.born < 10.0
                self._backoff = min(60.0, max(1.0, self._backoff * 2)) if young else 0.0
                self.log.warn("a warm CLI process ({pid}) died while idle; replacing it", pid=proc.pid)
                self._schedule_refill()
        self.sessions.discard(proc)
        return result

    # -- lending ---------------------------------------------------------------

    def acquire(self, key: SpawnKey, conversation: Optional[Conversation] = None, generic: bool = True) -> Lease:
        """
        A process for C{key} that holds (or, once bound, will hold)
        C{conversation}'s history: the one waiting for exactly these tool
        results, a live or prepared conversation that it continues, else a
        warm one (its history written into it, within
        C{history_write_max} user turns), else a new one, with the history
        loaded from a session file.
        """
        if self.closing:
            raise ProxyError(503, "claudeproxy is shutting down", "server_error", "shutting_down")
        self.check_cli()
        self._active_at = self.reactor.seconds()
        bindable = generic and self._bindable(key)
        if not bindable:
            self._note(key)
        if conversation is not None and len(self.tool_waits):
            wait = self.tool_waits.take(key, conversation)
            if wait is not None:
                self.stats.tool_hits += 1
                return Lease(wait.proc, key, "tools", wait)
            self.tool_waits.end_abandoned(key, conversation)
        if conversation is not None and self.max_sessions > 0 and conversation.history:
            history_digest = HistoryDigest(conversation.history)
            session = self.sessions.take(key, history_digest)
            if session is not None:
                if session.prepared:
                    self.stats.prepared_hits += 1
                else:
                    self.stats.session_hits += 1
                return Lease(session.proc, key, "resumed" if session.prepared else "session")
            entry = self.pool.take_held(key, history_digest)
            if entry is not None:
                # pushed out a moment ago, not cleared yet: it goes on
                self.stats.session_hits += 1
                return Lease(entry.proc, key, "session")
            self.stats.session_misses += 1
        history = conversation.history if conversation is not None else ()
        # a taken process's replacement starts once its turn is under way,
        # so the next one is ready about two start times after a take
        if bindable and key.web_search:
            self._web_at = self.reactor.seconds()
        self._demand_of(key).begin(self.reactor.seconds(), 2 * self.start_time)
        if bindable and user_turns(history) <= self.history_write_max:
            lease = self._take_cleared(key, history)
            if lease is None and not self.pool.ready_generic(key.web_search):
                # clearing a one-shot's conversation (~15-30 ms) beats
                # waiting for a process still starting
                lease = self._reuse(key, history)
            lease = lease or self._take_generic(key, history)
            if lease is not None:
                return lease
        elif not history:
            lease = self._take_keyed(key)
            if lease is not None:
                return lease
        self.stats.warm_misses += 1
        self.key_stats.setdefault(key, [0, 0])[1] += 1
        if bindable:
            self._demand_of(key).short(self.reactor.seconds())
        self._make_room()
        try:
            if history:
                # a conversation no process holds: a new process loads it
                assert conversation is not None
                loaded, turn = resume_split(conversation)
                proc = self._spawn(key, loaded)
                return Lease(proc, key, "cold", turn=turn, fresh=True)
            proc = self._spawn(key)
        except BaseException:
            self._demand_of(key).end()
            raise
        self._schedule_refill(REFILL_DELAY)
        return Lease(proc, key, "cold", fresh=True)

    def _lent(self) -> None:
        # the replacement starts as soon as this turn's first token is out
        # (or when it ends, or after a moment), so its spawn (~0.7 s of a
        # core) does not compete with this turn's start
        self._refill_soon = True
        # one due sooner (a process just became ready) waits too
        cancel(self._refill_call)
        self._refill_call = None
        self._schedule_refill(REFILL_DELAY)

    def _take_generic(self, key: SpawnKey, history: tuple[Message, ...]) -> Optional[Lease]:
        entry = self.pool.take_generic(key.model, key.web_search)
        if entry is None:
            return None
        if entry.proc.control_error is not None:
            entry.proc.kill("pool_trim")
            self.turn_binding_off("the CLI refused get_binary_version: %s" % (entry.proc.control_error,))
            return None
        self.stats.warm_hits += 1
        self.stats.bound += 1
        self.key_stats.setdefault(key, [0, 0])[0] += 1
        self._lent()
        bind = Bind(entry.model, history)
        if not entry.proc.ready:
            self._demand_of(key).short(self.reactor.seconds())
            self.stats.starting_hits += 1
            return Lease(entry.proc, key, "starting", bind=bind, fresh=True)
        if history:
            self.stats.written += 1
        return Lease(entry.proc, key, "written" if history else "warm", bind=bind, fresh=True)

    def _take_cleared(self, key: SpawnKey, history: tuple[Message, ...]) -> Optional[Lease]:
        entry = self.pool.take_cleared(key)
        if entry is None:
            return None
        assert entry.key is not None
        held = entry.held is not None
        bind = Bind(key.model, history, clear=held, bound=not held, switch_from=_other(entry.key, key))
        return self._reused(entry.proc, key, bind)

    def _reused(self, proc: CLIProcess, key: SpawnKey, bind: Bind) -> Lease:
        if bind.switch_from is not None:
            self.stats.switched += 1
        self.stats.reused += 1
        self.key_stats.setdefault(key, [0, 0])[0] += 1
        return Lease(proc, key, "reused", bind=bind, fresh=True)

    def _recycle(self, session: Session) -> bool:
        """
        A conversation pushed out by newer ones keeps its process, bound to
        its settings, for a new conversation with the same ones: it waits
        as a warm process would (C{--warm-ttl}).  For L{PUSHED_OUT_HOLD}
        it keeps its conversation: a one-shot just answered (pushed out
        first) may be a new conversation whose next turn is on its way, and
        goes on as a live session; a new conversation that takes it
        meanwhile clears it first.  Then its conversation is cleared
        (C{/clear}, ~15-30 ms).  At most C{--warm} and C{--max-sessions}
        wait so; the oldest goes first.
        """
        proc = session.proc
        if not self.binding or self.closing or self.warm <= 0 or not can_bind(session.key):
            return False
        if proc.is_ended or proc.killed:
            return False
        while len(self.pool.cleared) >= max(1, min(self.warm, self.max_sessions)):
            oldest = self.pool.cleared[0]
            self.pool.remove(oldest)
            oldest.proc.kill("pool_trim")
        entry = Idle(
            proc, session.key, self.reactor.seconds(), model=session.key.model, cleared=True, held=session.held
        )
        self.pool.add(entry)
        entry.clear_timer = self.reactor.callLater(PUSHED_OUT_HOLD, self._clear_recycled, entry)
        self.stats.recycled += 1
        return True

    def _clear_recycled(self, entry: Idle) -> None:
        entry.clear_timer = None
        if entry not in self.pool.cleared:
            return
        entry.clearing, entry.held = True, None
        proc = entry.proc

        def cleared(_: Any) -> None:
            entry.clearing = False

        def failed(f: Failure) -> None:
            self.log.warn("could not clear a CLI process for reuse: {why}", why=f.getErrorMessage())
            if self.pool.remove(entry):
                proc.kill("clear_failed")

        d = Deferred.fromCoroutine(clear_conversation(self.reactor, proc))
        d.addCallbacks(cleared, failed)

    def _reuse(self, key: SpawnKey, history: tuple[Message, ...]) -> Optional[Lease]:
        """
        The process of a one-shot session with C{key}'s settings (a task
        prompt nobody continued), or of the session this request's own
        reply would push out (there are C{max_sessions}), for a new
        conversation: its own is cleared when the request binds it.  Were
        it continued after all, its history would be written into a
        running process.
        """
        if self.max_sessions <= 0:
            return None
        session = self.sessions.take_one_shot(key) or self.sessions.take_next_out(key)
        if session is None:
            return None
        return self._reused(
            session.proc, key, Bind(key.model, history, clear=True, switch_from=_other(session.key, key))
        )

    def _take_keyed(self, key: SpawnKey) -> Optional[Lease]:
        entry = self.pool.take_keyed(key)
        if entry is None:
            return None
        self.stats.warm_hits += 1
        self.key_stats.setdefault(key, [0, 0])[0] += 1
        self._lent()
        if not entry.proc.ready:
            self.stats.starting_hits += 1
            return Lease(entry.proc, key, "starting", fresh=True)
        return Lease(entry.proc, key, "warm", fresh=True)

    def bind_failed(self, lease: Lease, why: str, refused: Optional[str] = None) -> None:
        """
        A generic process could not be bound (the caller ends it).  When
        the CLI lacks the control requests binding rests on (it refused
        C{initialize}, or the readiness probe), binding is turned off; a
        refusal of one request's settings (a model or effort this CLI
        does not know) only sends that request to a process started for
        it.
        """
        self.stats.bind_failed += 1
        self.log.warn("could not bind a warm CLI process to a request: {why}", why=why)
        if lease.proc.control_error is not None or refused == "initialize":
            self.turn_binding_off(why)

    def cli_known(self, reported: Optional[str]) -> None:
        """
        The installed CLI said its version (C{claude --version}): session
        files carry it, and binding is kept only for versions known to
        have the control requests it uses, with the history size up to
        which writing beats a session file on that version.
        """
        found = parse_version(reported or "")
        if found is None:
            return
        self.cli_version = "%d.%d.%d" % found
        if found < BINDING_SINCE:
            self.turn_binding_off("CLI %s is older than %d.%d.%d" % ((self.cli_version,) + BINDING_SINCE))
        self.history_write_max = history_write_max(found)

    def turn_binding_off(self, why: str) -> None:
        if not self.binding:
            return
        self.binding = False
        self.binding_off = why
        self.log.warn(
            "this CLI cannot be bound to a request after it starts ({why}); "
            "warm processes are started with each request's settings instead",
            why=why,
        )
        for entry in list(self.pool.generic):
            self.pool.remove(entry)
            entry.proc.kill("pool_trim")
        self._schedule_refill()

    def prepare(self, key: SpawnKey, history: tuple[Message, ...]) -> None:
        """
        Start a process on C{history} (ending with the assistant's message)
        ahead of the request expected to continue it, as a live
        conversation.  Nothing happens if one already holds it.
        """
        if self.closing or self.max_sessions <= 0 or not history:
            return
        digest = assistant_digest(history[-1])
        if digest is None:
            return
        held = Continuation(history[:-1], digest)
        if self.sessions.holds(key, held):
            return
        if not self._make_room():
            return
        try:
            proc = self._spawn(key, history)
        except ProxyError as e:
            self.log.warn("cannot prepare a CLI process for a conversation: {why}", why=e.message)
            return
        self.stats.prepared += 1
        self._keep(Session(proc, key, held, prepared=True))

    def _make_room(self) -> bool:
        """
        Below C{max_processes} live processes, ending the oldest idle warm
        process, live conversation or parked tool call as needed; False
        when all that run are serving requests.
        """
        if not self.max_processes:
            return True
        while self._alive() >= self.max_processes:
            candidates: list[tuple[float, str, Any]] = []
            candidates += [(e.born, "idle", e) for e in self.pool.all()]
            candidates += [(s.since, "session", s) for s in self.sessions]
            candidates += [(w.since, "tools", w) for w in self.tool_waits]
            if not candidates:
                return False
            _, kind, oldest = min(candidates, key=lambda c: c[0])
            if kind == "idle":
                self.pool.remove(oldest)
            elif kind == "session":
                self.sessions.remove(oldest)
            else:
                self.tool_waits.remove(oldest)
            self.stats.budget_evicted += 1
            oldest.proc.kill("budget")
        return True

    def _room_for_warm(self) -> bool:
        """
        At the process limit, end what is worth less than a ready process
        for the next request: a cleared one (it serves only its own
        settings; the oldest), else a one-shot session (a title or tags
        task), else a parked tool call the client has not come back to,
        each once it has waited C{STALE_WAIT} seconds (a one-shot just
        answered may be a new conversation whose next turn is on its way;
        frameworks that answer tool calls as text, or give up on them,
        leave waits behind; a client that does come back gets its history
        written into a running process), oldest first.  A conversation the
        user is in is never ended for it.
        """
        if self.pool.cleared:
            oldest = self.pool.cleared[0]
            self.pool.remove(oldest)
            self.stats.budget_evicted += 1
            oldest.proc.kill("budget")
            return True
        now = self.reactor.seconds()
        one_shots = [s for s in self.sessions if s.one_shot]
        stale_shots = [s for s in one_shots if now - s.since >= STALE_WAIT]
        if stale_shots:
            self.stats.budget_evicted += 1
            self.sessions.end(min(stale_shots, key=lambda s: s.since), "budget")
            return True
        stale = [w for w in self.tool_waits if now - w.since >= STALE_WAIT]
        if stale:
            self.stats.budget_evicted += 1
            self.tool_waits.end(min(stale, key=lambda w: w.since), "budget")
            return True
        waiting = [s.since for s in one_shots] + [w.since for w in self.tool_waits]
        if waiting:
            # try again once the oldest has waited long enough
            self._schedule_refill(min(waiting) + STALE_WAIT - now)
        return False

    def _alive(self) -> int:
        """
        The live processes not being killed (a killed one is reaped a moment
        later).
        """
        return sum(1 for p in self.live if not p.killed)

    def hold_for_tools(
        self,
        lease: Lease,
        given: frozenset[str],
        held: tuple[ToolCall, ...] = (),
        holds: Optional[Continuation] = None,
        also: Optional[Continuation] = None,
    ) -> None:
        """
        Keep C{lease}'s process waiting inside its MCP calls for the
        client's results, at most C{tool_wait} seconds.
        """
        self._returned(lease)
        proc = lease.proc
        proc.attach(None)
        if self.closing or proc.is_ended or proc.killed:
            proc.kill()
            return
        self.tool_waits.park(ToolWait(proc, lease.key, given, held, holds=holds, also=also))

    def _tool_wait_ended(self, wait: ToolWait, cause: str) -> None:
        if cause == "budget":
            return
        if cause == "tool_wait_abandoned":
            self.stats.tool_waits_abandoned += 1
        else:
            self.stats.tool_waits_expired += 1
            if cause == "tool_wait_expired":
                self.log.info("a client never came back with tool results; ending its CLI process")

    def _demand_of(self, key: SpawnKey) -> Demand:
        """
        The demand a request for a fresh process counts in: requests with
        a hosted web search have generic processes of their own.
        """
        return self.web_demand if self.binding and key.web_search else self.demand

    def _returned(self, lease: Lease) -> None:
        if lease.fresh:
            self._demand_of(lease.key).end()

    def release(self, lease: Lease, keep: Optional[Continuation] = None, cause: str = "done") -> None:
        """
        The request is done with C{lease}.  With C{keep} (the conversation
        the process now holds) the process stays alive as a live
        conversation; otherwise its process group is killed.
        """
        self._returned(lease)
        proc = lease.proc
        proc.attach(None)
        self._schedule_refill()
        if keep is None or self.closing or self.max_sessions <= 0 or proc.is_ended or proc.killed:
            proc.kill(cause)
            return
        self._backoff = 0.0
        self._keep(Session(proc, lease.key, keep))

    def _keep(self, session: Session) -> None:
        self.sessions.keep(session)

    def _session_ended(self, session: Session, cause: str) -> bool:
        """
        A live session ended here: True when its process is kept, cleared
        for a new conversation (L{_recycle}).
        """
        if cause == "budget":
            return False
        if cause == "expired":
            self.stats.session_expired += 1
            return False
        self.stats.session_evicted += 1
        return self._recycle(session)

    # -- the warm pool ---------------------------------------------------------

    def start(self) -> None:
        """
        Begin keeping processes warm (generic ones, or for C{default_key}
        until traffic says otherwise).
        """
        self._active_at = self.reactor.seconds()
        if self.default_key is not None and self.warm > 0 and not self.binding:
            self._recent[self.default_key] = self.reactor.seconds()
        self._schedule_refill()

    def _note(self, key: SpawnKey) -> None:
        now = self.reactor.seconds()
        self._recent[key] = now
        self._recent.move_to_end(key)
        self._arrivals.setdefault(key, deque(maxlen=64)).append(now)
        while len(self._recent) > 32:
            old, _ = self._recent.popitem(last=False)
            self._arrivals.pop(old, None)
            self.key_stats.pop(old, None)

    @property
    def bound(self) -> int:
        """
        The most warm processes: C{--warm}, within what memory allows.
        """
        return min(self.warm, self.warm_cap)

    def generic_wanted(self, web: bool = False) -> int:
        """
        How many generic processes (started with the WebSearch tool, or
        without) to keep ready now.
        """
        if not self.binding:
            return 0
        now = self.reactor.seconds()
        if web:
            if self._web_at is None or now - self._web_at >= self.warm_ttl:
                return 0
            return max(1, min(self.web_demand.peak(now) + 1, self.bound))
        if self._active_at is None or now - self._active_at >= self.warm_ttl:
            # nothing asked for a process for a whole warm-ttl: none kept
            return 0
        return generic_target(self.demand.peak(now), self.bound)

    def targets(self) -> dict[SpawnKey, int]:
        """
        How many idle keyed processes each key should have (see
        L{keyed_targets}), from what the generic processes leave of the
        budget.
        """
        budget = self.bound - self.generic_wanted() - self.generic_wanted(True) if self.binding else self.bound
        if budget <= 0:
            return {}
        return keyed_targets(self._recent, self._arrivals, self.reactor.seconds(), self.warm_ttl, budget)

    def first_token(self) -> None:
        """
        A turn's first token went out: a replacement that waited for it
        starts now.
        """
        if self._refill_soon:
            self._refill_soon = False
            self._schedule_refill()

    def _schedule_refill(self, delay: float = 0.0) -> None:
        if self.warm <= 0 or self.closing:
            return
        delay = max(delay, self._backoff)
        call = self._refill_call
        if call is not None and call.active():
            if call.getTime() <= self.reactor.seconds() + delay:
                return
            call.cancel()
        self._refill_call = self.reactor.callLater(delay, self._refill)

    def _refill(self) -> None:
        self._refill_call = None
        self._refill_soon = False
        if self.closing:
            return
        targets = self.targets()
        # end idle processes of keys no longer wanted, or beyond their share
        for key, entries in list(self.pool.keyed.items()):
            while len(entries) > targets.get(key, 0):
                entry = entries[-1]
                self.pool.remove(entry)
                entry.proc.kill("pool_trim")
        wants = {web: self.generic_wanted(web) for web in (False, True)}
        for web, want in wants.items():
            while len(self.pool.generics(web)) > want:
                entry = self.pool.generics(web)[-1]
                self.pool.remove(entry)
                entry.proc.kill("pool_trim")
        for web, want in wants.items():
            while len(self.pool.generics(web)) < want:
                if not self._may_start() or not self._add_idle(None, web):
                    return
        want = wants[False] + wants[True]
        for key, count in targets.items():
            while len(self.pool.keyed.get(key, [])) < count:
                if not self._may_start() or not self._add_idle(key):
                    return
        if self.binding and want:
            # the pool shrinks again once the peak has aged out
            self._schedule_refill(min(60.0, self.demand.window))

    def _may_start(self) -> bool:
        """
        Whether another warm process may start now: at most
        C{max_starting} start at once (a start takes ~0.7 s of a core; more
        at once than the machine has cores slow each other and the
        turns being served).  The next starts when one becomes ready.
        """
        now = self.reactor.seconds()
        starting = [
            e
            for e in self.pool.all()
            if not e.cleared and not e.proc.ready and e.proc.control_error is None and now - e.born < STARTING_AT_MOST
        ]
        if len(starting) < self.max_starting:
            return True
        # the next starts when one is ready, or once the oldest has taken
        # too long to hold it up
        self._schedule_refill(min(e.born for e in starting) + STARTING_AT_MOST - now)
        return False

    def _add_idle(self, key: Optional[SpawnKey], web: bool = False) -> bool:
        if self.max_processes and self._alive() >= self.max_processes and not self._room_for_warm():
            # warm processes never push out a conversation
            return False
        try:
            proc = self._spawn(key) if key is not None else self._spawn_generic(web)
        except ProxyError as e:
            self.log.warn("cannot keep a CLI process warm: {why}", why=e.message)
            return False
        born = self.reactor.seconds()
        proc.ask_ready(warm_up=key is None)
        proc.on_ready = lambda: self._became_ready(born)
        self.pool.add(Idle(proc, key, born, model=self.generic_model if key is None else "", web=web))
        return True

    def _became_ready(self, born: float) -> None:
        took = max(0.0, self.reactor.seconds() - born)
        self.start_time = 0.7 * self.start_time + 0.3 * took
        if not self._refill_soon:
            # the next warm process may start (else it waits for the
            # first token of the turn that took one)
            self._schedule_refill()

    def _idle_expired(self, entry: Idle) -> None:
        self.stats.warm_expired += 1
        entry.proc.kill("expired")
        self._schedule_refill()

    # -- reporting and shutdown --------------------------------------------------

    def describe(self) -> dict[str, Any]:
        targets = self.targets()
        return {
            "live_processes": len(self.live),
            "mode": self.mode,
            "binding_off": self.binding_off,
            "warm": {
                "max_idle": self.warm,
                "cap": self.warm_cap,
                "ttl": self.warm_ttl,
                "generic": {
                    "idle": len(self.pool.generic),
                    "ready": self.pool.ready_generic(),
                    "target": self.generic_wanted(),
                    "web_search": {
                        "idle": len(self.pool.generics(True)),
                        "ready": self.pool.ready_generic(True),
                        "target": self.generic_wanted(True),
                    },
                    "peak": self.demand.peak(self.reactor.seconds()),
                    "start_s": round(self.start_time, 3),
                    "bound": self.stats.bound,
                    "written": self.stats.written,
                    "reused": self.stats.reused,
                    "switched": self.stats.switched,
                    "recycled": self.stats.recycled,
                    "cleared": len(self.pool.cleared),
                    "bind_failed": self.stats.bind_failed,
                    "history_write_max": self.history_write_max,
                },
                "idle": [
                    dict(key_view(key), count=len(entries)) for key, entries in self.pool.keyed.items() if entries
                ],
                "hits": self.stats.warm_hits,
                "starting": self.stats.starting_hits,
                "ready": sum(1 for e in self.pool.all() if e.proc.ready),
                "misses": self.stats.warm_misses,
                "keys": [
                    dict(
                        key_view(key),
                        hits=hits,
                        misses=misses,
                        idle=len(self.pool.keyed.get(key, [])),
                        ready=sum(1 for e in self.pool.keyed.get(key, []) if e.proc.ready),
                        target=targets.get(key, 0),
                    )
                    for key, (hits, misses) in self.key_stats.items()
                ],
                "died": self.stats.warm_died,
                "expired": self.stats.warm_expired,
            },
            "sessions": {
                "live": len(self.sessions),
                "one_shot": sum(1 for s in self.sessions if s.one_shot),
                "max": self.max_sessions,
                "ttl": self.session_ttl,
                "hits": self.stats.session_hits,
                "misses": self.stats.session_misses,
                "expired": self.stats.session_expired,
                "evicted": self.stats.session_evicted,
                "prepared": self.stats.prepared,
                "prepared_hits": self.stats.prepared_hits,
                "resumed_spawns": self.stats.resumed_spawns,
            },
            "tools": {
                "waiting": len(self.tool_waits),
                "resumed": self.stats.tool_hits,
                "expired": self.stats.tool_waits_expired,
                "abandoned": self.stats.tool_waits_abandoned,
                "wait": self.tool_wait,
            },
            "spawned": self.stats.spawned,
            "max_processes": self.max_processes,
            "budget_evicted": self.stats.budget_evicted,
        }

    @property
    def idle_count(self) -> int:
        return len(self.pool)

    @property
    def session_count(self) -> int:
        return len(self.sessions)

    def shutdown(self) -> Deferred[Any]:
        """
        Kill every process, idle, live or serving; fires when all have been
        reaped.
        """
        self.closing = True
        call = self._refill_call
        if call is not None and call.active():
            call.cancel()
        self.pool.clear()
        self.sessions.clear()
        self.tool_waits.clear()
        waits = []
        for proc in list(self.live):
            proc.kill("shutdown")
            waits.append(proc.ended)
        return DeferredList(waits, consumeErrors=True)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _removing(result: Any, path: str) -> Any:
    _remove(path)
    return result
