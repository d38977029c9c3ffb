"""
Binding a generic warm process to a request when it arrives: the control
requests and history lines of L{claudeproxy.engine.binding}, written in
order, each one waited for (an assistant line written while a user line is
still queued overtakes it).  Takes ~5-50 ms against 0.5-1.1 s for a start.
"""

from __future__ import annotations

import json
import time
from typing import Any, Mapping, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from .binding import (
    boundary_line,
    clear_line,
    history_lines,
    initialize_request,
    is_history_result,
    model_request,
    settings_request,
    switch_requests,
)
from .bridge import ToolBridge
from .conversation import Message
from .process import CLIProcess, ControlError, ProcessGone, SpawnKey
from .sdkmcp import ControlTools

#: how long binding may take before the process is given up on
BIND_TIMEOUT = 20.0


class BindFailed(Exception):
    """
    The process could not be bound (it died, refused a control request or
    took too long): the request is served by another process.
    C{refused} names the control request the CLI refused, if it did.
    """

    def __init__(self, message: str, refused: Optional[str] = None) -> None:
        super().__init__(message)
        self.refused = refused


class _HistorySink:
    """
    The sink of a process while its history is written: fires C{waiting}
    at each history line's C{result}.
    """

    def __init__(self) -> None:
        self.waiting: Optional[Deferred[None]] = None
        self.failure: Optional[str] = None

    def _fire(self, error: Optional[str] = None) -> None:
        d, self.waiting = self.waiting, None
        if d is None:
            if error is not None:
                self.failure = error
            return
        if error is None:
            d.callback(None)
        else:
            d.errback(BindFailed(error))

    def cli_line(self, line: Mapping[str, Any]) -> None:
        if is_history_result(line):
            self._fire()
        elif line.get("type") == "result":
            self._fire("the CLI ran a turn while its history was written: %s" % (json.dumps(line)[:200],))

    def cli_garbage(self, line: bytes) -> None:
        self._fire("the CLI printed something that is not stream-json")

    def cli_exited(self, status: Optional[int], stderr_tail: str) -> None:
        self._fire("the CLI ended (status %s) while its history was written: %s" % (status, stderr_tail[-300:]))

    def may_elide(self, kind: str, message_id: Optional[str]) -> bool:
        return False


async def _wait(d: Deferred[Any], reactor: IReactorTime, what: str) -> Any:
    timer = reactor.callLater(BIND_TIMEOUT, d.cancel)
    try:
        return await d
    except ControlError as e:
        raise BindFailed("the CLI refused %s: %s" % (what, e), what)
    except ProcessGone as e:
        raise BindFailed(str(e))
    except BindFailed:
        raise
    except Exception as e:
        raise BindFailed("%s: %s" % (what, e or type(e).__name__))
    finally:
        if timer.active():
            timer.cancel()


async def bind(
    reactor: IReactorTime,
    proc: CLIProcess,
    key: SpawnKey,
    started_with: str,
    history: tuple[Message, ...],
    cwd: str,
    version: str,
    clock: Any = time.time,
    clear: bool = False,
    bound: bool = False,
    switch_from: Optional[SpawnKey] = None,
) -> None:
    """
    Give C{proc} (a generic process, ready) C{key}'s settings and
    C{history} as real turns.  With C{clear}, C{proc} is already bound to
    C{key} and holds a conversation, which is cleared instead; with
    C{bound}, it is bound to C{key} and holds none.  With either, and
    C{switch_from}, it is bound to that key instead, and switched to
    C{key}'s model and effort.  Raises L{BindFailed}.
    """
    if clear:
        await clear_conversation(reactor, proc)
    elif not bound:
        await _settings(reactor, proc, key, started_with)
    if switch_from is not None and (clear or bound):
        for request in switch_requests(switch_from, key):
            await _control(reactor, proc, request)
    if history:
        await _write_history(reactor, proc, key, history, cwd, version, clock)
    if proc.is_ended:
        raise BindFailed("the CLI process ended while it was bound")


async def clear_conversation(reactor: IReactorTime, proc: CLIProcess) -> None:
    """
    C{/clear}, waited for until its C{result}, then a boundary: the
    process holds no conversation, and upstream sees none of the command.
    """
    sink = _HistorySink()
    proc.attach(sink)
    try:
        d: Deferred[None] = Deferred()
        sink.waiting = d
        proc.send(clear_line())
        await _wait(d, reactor, "/clear")
    finally:
        proc.attach(None)
    proc.send(boundary_line())


async def _settings(reactor: IReactorTime, proc: CLIProcess, key: SpawnKey, started_with: str) -> None:
    if key.tools:
        tools = ControlTools(ToolBridge("control-%d" % (id(proc),), "", key.tools))
        proc.bridge = tools.bridge
        proc.control_handler = tools
    else:
        tools = None
    await _wait(proc.control(initialize_request(key)), reactor, "initialize")
    if tools is not None and tools.began:
        # newer CLIs (2.1.332) connect to the tool server while answering
        # initialize; a user line written before the tool list is fetched
        # makes them start over much later
        await _wait(tools.listed, reactor, "the tool server's handshake")
    for request in (model_request(key, started_with), settings_request(key)):
        if request is not None:
            await _control(reactor, proc, request)


async def _control(reactor: IReactorTime, proc: CLIProcess, request: dict[str, Any]) -> None:
    """
    One control request, waited for.
    """
    echoes = proc.local_echoes
    await _wait(proc.control(request), reactor, request["subtype"])
    if proc.local_echoes != echoes:
        # 2.1.197 puts set_model's "Set model to ..." into the next user
        # message: a boundary keeps it from upstream
        proc.send(boundary_line())


async def _write_history(
    reactor: IReactorTime,
    proc: CLIProcess,
    key: SpawnKey,
    history: tuple[Message, ...],
    cwd: str,
    version: str,
    clock: Any,
) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(clock()))
    lines = history_lines(history, key.model, cwd, version, now)
    sink = _HistorySink()
    proc.attach(sink)
    try:
        for line in lines:
            if sink.failure is not None:
                raise BindFailed(sink.failure)
            if line["type"] == "user":
                d: Deferred[None] = Deferred()
                sink.waiting = d
                proc.send(line)
                await _wait(d, reactor, "a history turn")
            else:
                proc.send(line)
    finally:
        proc.attach(None)
