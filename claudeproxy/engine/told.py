"""
What the engine tells the client of a request while its turn runs: the
hook a request gives the engine (L{ClientHook}: in HTTP, the response's
headers and the request's progress), the protocol's output
(L{ProtocolOutput}) and that output as the engine drives it (L{Told}).
"""

from __future__ import annotations

from typing import Protocol

import attrs

from .errors import ProxyError
from .streaming import TurnOutput
from .turn import Finished, TurnState, WebSearch


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


class ProtocolOutput(TurnOutput, Protocol):
    """
    A protocol's output for one attempt at a turn: a L{TurnOutput} that is
    also told the model the reply names.
    """

    def named(self, model: str) -> None:
        """
        The model the reply names, as the client asked for it: before the
        output's first frame.
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
    piece and, before the first output, of the model answering; the reply
    names the model as the client asked for it (the output is told so
    before its first output, and the finished turn names it too):
    OpenAI-compatible servers echo the requested id; a different one makes
    clients such as OpenClaw report a rerouted model.
    """

    def __init__(self, output: ProtocolOutput, hook: ClientHook, state: TurnState, requested: str) -> None:
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
            self._output.named(self._requested)

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
