"""
The process layer: admission (how many requests run, how many wait) and the
manager that hands out CLI processes and takes them back.

Every CLI process the daemon starts goes through L{ProcessManager}, so one
place knows them all: for shutdown, for /health, and for the warm pool and
live conversations that reuse them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
import uuid
from collections import OrderedDict, deque
from typing import Any, Deque, Mapping, Optional, Protocol, Sequence

import attrs
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .continuity import is_transient, resume_split
from .conversation import Conversation, Message
from .errors import ProxyError, cli_missing
from .history import session_file_text, session_rows
from .process import (
    ISOLATED,
    SYSTEM_ARG_MAX,
    CLIProcess,
    Killer,
    Spawner,
    SpawnKey,
    build_argv,
    kill_group,
    system_file,
)
from .tools import ToolCall, ToolSpec
from .turn import digest_text

#: how long after a request took a warm process its replacement starts, at
#: the latest (it starts at once when the request ends)
REFILL_DELAY = 1.0


class Limiter:
    """
    At most C{max_concurrent} requests run; at most C{max_queued} more wait
    in order; beyond that, 429.
    """

    def __init__(self, max_concurrent: int, max_queued: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.running = 0
        self._waiting: Deque[Deferred[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def acquire(self) -> Deferred[None]:
        if self.running < self.max_concurrent and not self._waiting:
            self.running += 1
            return succeed(None)
        if len(self._waiting) >= self.max_queued:
            raise ProxyError(
                429,
                "Too many requests: %d running and %d waiting, the most this daemon accepts (--max-concurrent, --max-queued)"
                % (self.running, len(self._waiting)),
                "rate_limit_error",
                "queue_full",
                None,
                1,
            )

        def cancel(d: Deferred[None]) -> None:
            if d in self._waiting:
                self._waiting.remove(d)

        d: Deferred[None] = Deferred(cancel)
        self._waiting.append(d)
        return d

    def close(self, error: Exception) -> None:
        """
        Fail everything still waiting with C{error}.
        """
        waiting, self._waiting = self._waiting, deque()
        for d in waiting:
            d.errback(error)

    def release(self) -> None:
        if self._waiting:
            self._waiting.popleft().callback(None)
        else:
            self.running -= 1


@attrs.frozen
class Lease:
    """
    A process lent to one request.  C{source} says where it came from:
    C{"session"} (a live conversation), C{"resumed"} (started ahead on the
    conversation the client was expected to send next), C{"tools"} (waiting
    for these tool results), C{"warm"} (started ahead, waiting on stdin),
    C{"starting"} (started ahead, but not done starting when taken) or
    C{"cold"} (spawned now, with the request's history loaded when it has
    one).  Whatever the source, the process holds the request's history and
    only its last turn is written.
    """

    proc: CLIProcess
    key: SpawnKey
    source: str
    tool_wait: Optional[ToolWait] = None
    #: the turn to write, when not the conversation's last turn
    turn: Optional[tuple[Message, ...]] = None


@attrs.define(eq=False)
class _Idle:
    proc: CLIProcess
    key: SpawnKey
    born: float
    timer: Optional[IDelayedCall] = None


@attrs.frozen
class Continuation:
    """
    The conversation a process holds after a clean text reply: the
    request's C{messages}, then the reply, known by the L{digest_text} of
    its text (the text itself need not be kept).
    """

    messages: tuple[Message, ...]
    reply_digest: str


def assistant_digest(message: Message) -> Optional[str]:
    """
    What an assistant message is remembered by: the L{digest_text} of its
    text when it is only text; with tool calls, a digest of that and of
    each call's id, name and input.  Thinking blocks do not count.  None
    for a message that is neither.
    """
    if message.role != "assistant" or not message.blocks:
        return None
    parts: list[str] = []
    calls: list[list[Any]] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind == "tool_use":
            calls.append([str(block.get("id")), str(block.get("name")), block.get("input")])
        elif kind not in ("thinking", "redacted_thinking"):
            return None
    if not calls:
        return digest_text("".join(parts)) if parts else None
    return calls_digest(digest_text("".join(parts)), calls)


def calls_digest(text_digest: str, calls: list[list[Any]]) -> str:
    """
    The digest of an assistant message with tool calls: its text's digest
    and each call as C{[id, name, input]}.
    """
    return digest_text(json.dumps([text_digest, calls], sort_keys=True, separators=(",", ":"), ensure_ascii=True))


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


class _HistoryDigest:
    """
    A conversation's history, with the digest of its last message's text
    worked out at most once.
    """

    def __init__(self, history: tuple[Message, ...]) -> None:
        self.history = history

    @functools.cached_property
    def last_digest(self) -> Optional[str]:
        return assistant_digest(self.history[-1]) if self.history else None

    def continues(self, held: Continuation) -> bool:
        """
        Whether the history is exactly what C{held} holds: its messages,
        then an assistant message of text blocks whose text has its digest.
        """
        history = self.history
        return (
            len(history) == len(held.messages) + 1
            and history[:-1] == held.messages
            and self.last_digest == held.reply_digest
        )


def continues(history: tuple[Message, ...], held: Continuation) -> bool:
    """
    Whether C{history} (the turns before a request's final user turn) is
    the conversation C{held} describes.
    """
    return _HistoryDigest(history).continues(held)


def _passes_over(messages: tuple[Message, ...], wait: ToolWait) -> bool:
    """
    Whether C{messages} are the conversation C{wait}'s process holds up to
    its calls, then go on with a message other than the calls.
    """
    for held in (wait.holds, wait.also):
        if held is None:
            continue
        n = len(held.messages)
        if len(messages) > n and messages[:n] == held.messages and assistant_digest(messages[n]) != held.reply_digest:
            return True
    return False


@attrs.define(eq=False)
class _Session:
    proc: CLIProcess
    key: SpawnKey
    held: Continuation
    #: started ahead on the conversation the client was expected to send
    prepared: bool = False
    timer: Optional[IDelayedCall] = None
    #: when it became idle
    since: float = 0.0


@attrs.define(eq=False)
class ToolWait:
    """
    A process waiting inside its MCP call(s) for the client's results.
    C{given} are the calls the client was handed; C{held} those of the same
    assistant message not handed yet (C{parallel_tool_calls: false}).
    """

    proc: CLIProcess
    key: SpawnKey
    given: frozenset[str]
    held: tuple[ToolCall, ...] = ()
    timer: Optional[IDelayedCall] = None
    #: the conversation the process holds: the request's messages, then
    #: the assistant message with the calls (by digest); None when unknown
    holds: Optional[Continuation] = None
    #: the same without the request's transient context, which the client
    #: drops from its next request (the process cannot drop it)
    also: Optional[Continuation] = None
    #: when it was parked
    since: float = 0.0


class BridgeMaker(Protocol):
    def register(self, tools: tuple[ToolSpec, ...]) -> Any: ...

    def unregister(self, bridge: Any) -> None: ...

    def config_for(self, bridge: Any) -> str: ...


@attrs.define
class PoolStats:
    spawned: int = 0
    warm_hits: int = 0
    #: warm hits on a process that had not finished starting
    starting_hits: int = 0
    warm_misses: int = 0
    warm_died: int = 0
    warm_expired: int = 0
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

    Warm pool: up to C{warm} idle processes, already started and waiting on
    stdin, for the keys used most recently (at start: C{default_key}).  A
    request whose key matches takes one with no spawn on its path; a
    replacement starts in the background.

    Live conversations: after a clean reply the process is kept with its
    conversation (at most C{max_sessions}, least recently used evicted, each
    for C{session_ttl} seconds).  A request whose messages are exactly that
    conversation plus new user turn(s), with the same key, gets it back and
    only the new turn is written.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        claude: Optional[str],
        claude_missing_reason: str,
        env: Mapping[str, str],
        workdir: str,
        spawner: Spawner,
        killer: Killer = kill_group,
        warm: int = 0,
        warm_ttl: float = 600.0,
        session_ttl: float = 300.0,
        max_sessions: int = 0,
        default_key: Optional[SpawnKey] = None,
        bridges: Optional[BridgeMaker] = None,
        tool_wait: float = 300.0,
        max_tool_waits: int = 64,
        cli_version: str = "2.1.197",
        clock: Any = time.time,
        max_processes: int = 0,
        settings: Sequence[str] = ISOLATED,
    ) -> None:
        self.reactor = reactor
        #: the CLI flags that keep the user's own set-up out (or let their
        #: settings in: --use-claude-settings)
        self.settings = tuple(settings)
        #: at most this many CLI processes, serving, idle or parked (0: no
        #: limit); the oldest idle or parked one makes room for a new one
        self.max_processes = max_processes
        self.cli_version = cli_version
        self.clock = clock
        self.claude = claude
        self.claude_missing_reason = claude_missing_reason
        self.env = dict(env)
        self.workdir = workdir
        self.spawner = spawner
        self.killer = killer
        self.warm = warm
        self.warm_ttl = warm_ttl
        self.session_ttl = session_ttl
        self.max_sessions = max_sessions
        self.default_key = default_key
        self.bridges = bridges
        self.tool_wait = tool_wait
        self.max_tool_waits = max_tool_waits
        self._tool_waits: OrderedDict[CLIProcess, ToolWait] = OrderedDict()
        self.live: set[CLIProcess] = set()
        #: CLI processes ended, by cause
        self.exits: dict[str, int] = {}
        self.stats = PoolStats()
        self.closing = False
        self._idle: dict[SpawnKey, list[_Idle]] = {}
        self._sessions: OrderedDict[CLIProcess, _Session] = OrderedDict()
        self._recent: OrderedDict[SpawnKey, float] = OrderedDict()
        #: when each recent key's requests came (the last 64), for sizing
        self._arrivals: dict[SpawnKey, Deque[float]] = {}
        #: warm hits and misses of each key
        self.key_stats: dict[SpawnKey, list[int]] = {}
        self._refill_call: Optional[IDelayedCall] = None
        self._backoff = 0.0

    @property
    def spawned(self) -> int:
        return self.stats.spawned

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
        if proc.bridge is not None and self.bridges is not None:
            self.bridges.unregister(proc.bridge)
        wait = self._tool_waits.pop(proc, None)
        if wait is not None:
            self._cancel(wait.timer)
        for entries in list(self._idle.values()):
            for entry in [e for e in entries if e.proc is proc]:
                entries.remove(entry)
                self._cancel(entry.timer)
                if not proc.killed:
                    # it died while waiting: note it, back off, replace it
                    self.stats.warm_died += 1
                    young = self.reactor.seconds() - entry.born < 10.0
                    self._backoff = min(60.0, max(1.0, self._backoff * 2)) if young else 0.0
                    self.log.warn("a warm CLI process ({pid}) died while idle; replacing it", pid=proc.pid)
                    self._schedule_refill()
        session = self._sessions.pop(proc, None)
        if session is not None:
            self._cancel(session.timer)
        return result

    @staticmethod
    def _cancel(call: Optional[IDelayedCall]) -> None:
        if call is not None and call.active():
            call.cancel()

    # -- lending ---------------------------------------------------------------

    def acquire(self, key: SpawnKey, conversation: Optional[Conversation] = None) -> Lease:
        """
        A process for C{key} that holds C{conversation}'s history: the one
        waiting for exactly these tool results, a live or prepared
        conversation that it continues, else (with no history) a warm one,
        else a new one, with the history loaded from a session file.
        """
        if self.closing:
            raise ProxyError(503, "claudeproxy is shutting down", "server_error", "shutting_down")
        self.check_cli()
        self._note(key)
        if conversation is not None and self._tool_waits:
            wait = self._find_tool_wait(key, conversation)
            if wait is not None:
                self.stats.tool_hits += 1
                return Lease(wait.proc, key, "tools", wait)
            self._end_abandoned_waits(key, conversation)
        if conversation is not None and self.max_sessions > 0 and conversation.history:
            session = self._find_session(key, conversation)
            if session is not None:
                if session.prepared:
                    self.stats.prepared_hits += 1
                else:
                    self.stats.session_hits += 1
                return Lease(session.proc, key, "resumed" if session.prepared else "session")
            self.stats.session_misses += 1
        if conversation is not None and conversation.history:
            # a conversation no process holds: a new process loads it
            history, turn = resume_split(conversation)
            self._make_room()
            proc = self._spawn(key, history)
            return Lease(proc, key, "cold", turn=turn)
        entries = self._idle.get(key, [])
        while entries:
            # one that has finished starting first, else the oldest
            entry = next((e for e in entries if e.proc.ready), entries[0])
            entries.remove(entry)
            self._cancel(entry.timer)
            if entry.proc.is_ended or entry.proc.killed:
                continue
            self.stats.warm_hits += 1
            self.key_stats.setdefault(key, [0, 0])[0] += 1
            # the replacement starts when this turn ends (or after a
            # moment), so its spawn does not compete with this turn's start;
            # at once when none ready is left for the next request
            self._schedule_refill(REFILL_DELAY if any(e.proc.ready for e in entries) else 0.0)
            if not entry.proc.ready:
                self.stats.starting_hits += 1
                return Lease(entry.proc, key, "starting")
            return Lease(entry.proc, key, "warm")
        self.stats.warm_misses += 1
        self.key_stats.setdefault(key, [0, 0])[1] += 1
        self._make_room()
        proc = self._spawn(key)
        self._schedule_refill(REFILL_DELAY)
        return Lease(proc, key, "cold")

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
        for session in self._sessions.values():
            if session.key == key and session.held == held:
                return
        if not self._make_room():
            return
        try:
            proc = self._spawn(key, history)
        except ProxyError as e:
            self.log.warn("cannot prepare a CLI process for a conversation: {why}", why=e.message)
            return
        self.stats.prepared += 1
        self._keep_session(_Session(proc, key, held, prepared=True))

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
            for entries in self._idle.values():
                candidates += [(e.born, "idle", e) for e in entries]
            candidates += [(s.since, "session", s) for s in self._sessions.values()]
            candidates += [(w.since, "tools", w) for w in self._tool_waits.values()]
            if not candidates:
                return False
            _, kind, oldest = min(candidates, key=lambda c: c[0])
            if kind == "idle":
                self._idle[oldest.key].remove(oldest)
            elif kind == "session":
                del self._sessions[oldest.proc]
            else:
                del self._tool_waits[oldest.proc]
            self._cancel(oldest.timer)
            self.stats.budget_evicted += 1
            oldest.proc.kill("budget")
        return True

    def _alive(self) -> int:
        """
        The live processes not being killed (a killed one is reaped a moment
        later).
        """
        return sum(1 for p in self.live if not p.killed)

    def _find_session(self, key: SpawnKey, conversation: Conversation) -> Optional[_Session]:
        if not conversation.last_turn:
            return None
        history = _HistoryDigest(conversation.history)
        for proc, session in reversed(self._sessions.items()):
            if session.key == key and history.continues(session.held):
                del self._sessions[proc]
                self._cancel(session.timer)
                if proc.is_ended or proc.killed:
                    return None
                return session
        return None

    def _find_tool_wait(self, key: SpawnKey, conversation: Conversation) -> Optional[ToolWait]:
        """
        The process waiting for exactly the tool results that end
        C{conversation}, when it holds exactly the conversation before them.
        """
        last = [b for m in conversation.last_turn for b in m.blocks]
        # the results, then at most the client's transient context
        n = 0
        while n < len(last) and last[n].get("type") == "tool_result":
            n += 1
        if not n or not all(is_transient(b) for b in last[n:]):
            return None
        ids = frozenset(str(b.get("tool_use_id")) for b in last[:n])
        history = _HistoryDigest(conversation.history)

        def holds(wait: ToolWait) -> bool:
            if wait.holds is None:
                return True
            return history.continues(wait.holds) or (wait.also is not None and history.continues(wait.also))

        for proc, wait in self._tool_waits.items():
            if wait.key == key and wait.given == ids and holds(wait):
                del self._tool_waits[proc]
                self._cancel(wait.timer)
                if proc.is_ended or proc.killed:
                    return None
                return wait
        return None

    def _end_abandoned_waits(self, key: SpawnKey, conversation: Conversation) -> None:
        """
        A request that went another way than the calls a process waits on
        ends that wait at once: its history answers (or passes over) those
        calls, or it is the same conversation up to the calls and then has
        something else where the calls were (a framework that sends tool
        results back as text, or a client that gave up on them).
        """
        called = {
            str(b.get("id"))
            for m in conversation.messages
            if m.role == "assistant"
            for b in m.blocks
            if b.get("type") == "tool_use"
        }
        messages = conversation.messages
        for proc, wait in list(self._tool_waits.items()):
            if wait.given & called or (wait.key == key and _passes_over(messages, wait)):
                del self._tool_waits[proc]
                self._cancel(wait.timer)
                self.stats.tool_waits_abandoned += 1
                proc.kill("tool_wait_abandoned")

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
        proc = lease.proc
        proc.attach(None)
        if self.closing or proc.is_ended or proc.killed:
            proc.kill()
            return
        wait = ToolWait(proc, lease.key, given, held, holds=holds, also=also, since=self.reactor.seconds())
        wait.timer = self.reactor.callLater(self.tool_wait, self._tool_wait_expired, proc)
        self._tool_waits[proc] = wait
        while len(self._tool_waits) > self.max_tool_waits:
            _, oldest = self._tool_waits.popitem(last=False)
            self._cancel(oldest.timer)
            self.stats.tool_waits_expired += 1
            oldest.proc.kill("evicted")

    def _tool_wait_expired(self, proc: CLIProcess) -> None:
        wait = self._tool_waits.pop(proc, None)
        if wait is not None:
            self.stats.tool_waits_expired += 1
            self.log.info("a client never came back with tool results; ending its CLI process")
            proc.kill("tool_wait_expired")

    def release(self, lease: Lease, keep: Optional[Continuation] = None, cause: str = "done") -> None:
        """
        The request is done with C{lease}.  With C{keep} (the conversation
        the process now holds) the process stays alive as a live
        conversation; otherwise its process group is killed.
        """
        proc = lease.proc
        proc.attach(None)
        self._schedule_refill()
        if keep is None or self.closing or self.max_sessions <= 0 or proc.is_ended or proc.killed:
            proc.kill(cause)
            return
        self._backoff = 0.0
        self._keep_session(_Session(proc, lease.key, keep))

    def _keep_session(self, session: _Session) -> None:
        proc = session.proc
        session.since = self.reactor.seconds()
        session.timer = self.reactor.callLater(self.session_ttl, self._session_expired, proc)
        self._sessions[proc] = session
        while len(self._sessions) > self.max_sessions:
            _, oldest = self._sessions.popitem(last=False)
            self._cancel(oldest.timer)
            self.stats.session_evicted += 1
            oldest.proc.kill("evicted")

    def _session_expired(self, proc: CLIProcess) -> None:
        session = self._sessions.pop(proc, None)
        if session is not None:
            self.stats.session_expired += 1
            proc.kill("expired")

    # -- the warm pool ---------------------------------------------------------

    def start(self) -> None:
        """
        Begin keeping processes warm (for C{default_key} until traffic
        says otherwise).
        """
        if self.default_key is not None and self.warm > 0:
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

    def targets(self) -> dict[SpawnKey, int]:
        """
        How many idle processes each key should have: each key used within
        C{warm_ttl} (most recent first, as many as the budget allows) gets
        one, and the rest of the C{warm} budget goes to the keys in
        proportion to how many requests each had in that time, so a key
        with back-to-back requests keeps several ready.
        """
        now = self.reactor.seconds()
        keys = [k for k, t in reversed(self._recent.items()) if now - t < self.warm_ttl][: self.warm]
        if not keys:
            return {}
        out = {k: 1 for k in keys}
        spare = self.warm - len(keys)
        if spare > 0:
            rates = {k: sum(1 for t in self._arrivals.get(k, ()) if now - t < self.warm_ttl) for k in keys}
            total = sum(rates.values()) or 1
            shares = {k: spare * rates[k] / total for k in keys}
            for k in keys:
                out[k] += int(shares[k])
            left = self.warm - sum(out.values())
            # the largest remainders, most recent first among equals
            for k in sorted(keys, key=lambda k: shares[k] - int(shares[k]), reverse=True)[:left]:
                out[k] += 1
        return out

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
        if self.closing:
            return
        targets = self.targets()
        # end idle processes of keys no longer wanted, or beyond their share
        for key, entries in list(self._idle.items()):
            while len(entries) > targets.get(key, 0):
                entry = entries.pop()
                self._cancel(entry.timer)
                entry.proc.kill("pool_trim")
            if not entries:
                del self._idle[key]
        for key, want in targets.items():
            entries = self._idle.setdefault(key, [])
            while len(entries) < want:
                if self.max_processes and self._alive() >= self.max_processes:
                    # warm processes never push out a conversation
                    return
                try:
                    proc = self._spawn(key)
                except ProxyError as e:
                    self.log.warn("cannot keep a CLI process warm: {why}", why=e.message)
                    return
                proc.ask_ready()
                entry = _Idle(proc, key, self.reactor.seconds())
                entry.timer = self.reactor.callLater(self.warm_ttl, self._idle_expired, entry)
                entries.append(entry)

    def _idle_expired(self, entry: _Idle) -> None:
        entries = self._idle.get(entry.key, [])
        if entry in entries:
            entries.remove(entry)
            self.stats.warm_expired += 1
            entry.proc.kill("expired")
            self._schedule_refill()

    # -- reporting and shutdown --------------------------------------------------

    def describe(self) -> dict[str, Any]:
        targets = self.targets()
        return {
            "live_processes": len(self.live),
            "warm": {
                "max_idle": self.warm,
                "ttl": self.warm_ttl,
                "idle": [dict(key_view(key), count=len(entries)) for key, entries in self._idle.items() if entries],
                "hits": self.stats.warm_hits,
                "starting": self.stats.starting_hits,
                "ready": sum(1 for entries in self._idle.values() for e in entries if e.proc.ready),
                "misses": self.stats.warm_misses,
                "keys": [
                    dict(
                        key_view(key),
                        hits=hits,
                        misses=misses,
                        idle=len(self._idle.get(key, [])),
                        ready=sum(1 for e in self._idle.get(key, []) if e.proc.ready),
                        target=targets.get(key, 0),
                    )
                    for key, (hits, misses) in self.key_stats.items()
                ],
                "died": self.stats.warm_died,
                "expired": self.stats.warm_expired,
            },
            "sessions": {
                "live": len(self._sessions),
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
                "waiting": len(self._tool_waits),
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
        return sum(len(e) for e in self._idle.values())

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def shutdown(self) -> Deferred[Any]:
        """
        Kill every process, idle, live or serving; fires when all have been
        reaped.
        """
        self.closing = True
        self._cancel(self._refill_call)
        for entries in self._idle.values():
            for entry in entries:
                self._cancel(entry.timer)
        for session in self._sessions.values():
            self._cancel(session.timer)
        for wait in self._tool_waits.values():
            self._cancel(wait.timer)
        self._idle.clear()
        self._sessions.clear()
        self._tool_waits.clear()
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
