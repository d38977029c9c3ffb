"""
The accounting of requests: one L{RequestRecord} per request, whatever
became of it, goes to one L{Accounting}, which writes the request's log
line, counts it in the metrics, keeps its usage row (from which the named
keys' budgets are tallied) and learns the models the CLI served.
"""

from __future__ import annotations

from typing import Callable, Optional

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from ..config import Config
from ..engine.models import ModelCatalog
from ..engine.streaming import Outcome
from ..engine.turn import Finished, TurnState, Usage
from ..store import models as stored_models
from ..store.budgets import Budget, Budgets
from ..store.db import StateDB
from ..store.usage import UsageLog, UsageRow
from .metrics import Metrics

#: the response header naming the upstream model that answered
MODEL_HEADER = b"x-claudeproxy-model"
#: the response header saying where the request's process came from
SERVED_HEADER = b"x-claudeproxy-served"


@attrs.frozen
class Seen:
    """
    What a request's turn had done when the request ended (L{Progress},
    frozen): where its process came from, its first piece, how many pieces
    went out, and the output tokens so far.
    """

    served: str = "-"
    first_token_ms: Optional[float] = None
    pieces: int = 0
    tokens_out: int = 0


@attrs.define
class Progress:
    """
    What a request's turn has done so far, kept as it happens, so that its
    log line says it even when the turn never ends (the client went away):
    where its process came from, when the first piece went out and how many
    pieces (text, reasoning and tool-call deltas, searches) did, and the
    turn's state (its usage so far).
    """

    served: str = "-"
    #: when the current attempt began (reactor seconds)
    began: Optional[float] = None
    first_token_ms: Optional[float] = None
    pieces: int = 0
    state: Optional[TurnState] = None

    def attempt(self, now: float, state: TurnState) -> None:
        self.began = now
        self.state = state

    def piece(self, now: float) -> None:
        self.pieces += 1
        if self.first_token_ms is None and self.began is not None:
            self.first_token_ms = (now - self.began) * 1000.0

    def tokens_out(self) -> int:
        return self.state.usage_so_far().output_tokens if self.state is not None else 0

    def seen(self) -> Seen:
        return Seen(self.served, self.first_token_ms, self.pieces, self.tokens_out())


class ResponseHook:
    """
    The engine's L{claudeproxy.engine.serve.ClientHook} for one HTTP
    request: what the engine tells the client goes in its response
    headers (set before the first byte), and the request's L{Progress} is
    kept as it goes.
    """

    def __init__(self, request: Request, progress: Progress, clock: Callable[[], float]) -> None:
        self.request = request
        self.progress = progress
        self.clock = clock

    def served(self, source: str) -> None:
        self.progress.served = source
        self.request.setHeader(SERVED_HEADER, source.encode())

    def attempt(self, state: TurnState) -> None:
        self.progress.attempt(self.clock(), state)

    def answering(self, model: str) -> None:
        self.request.setHeader(MODEL_HEADER, model.encode("utf-8", "replace"))

    def piece(self) -> None:
        self.progress.piece(self.clock())


def end_reason(status: int, error_code: Optional[str], outcome: Optional[Outcome]) -> str:
    """
    Why a request ended, for its log line: C{done}, C{stopped} (the daemon
    ended the reply at a stop sequence), C{client_gone}, C{timeout},
    C{shutting_down}, or C{error}.
    """
    if error_code in ("client_gone", "timeout", "shutting_down"):
        return error_code
    if outcome is not None and outcome.finished is not None and status == 200:
        return "stopped" if outcome.finished.stop_reason == "stop_sequence" and not outcome.clean else "done"
    return "error"


@attrs.frozen
class RequestRecord:
    """
    One request, whatever became of it: what was asked, how it was served,
    its tokens, its timings and its outcome.  A request whose turn never
    ended (the client went away) has no C{outcome}, only what its
    L{Progress} had C{seen}.

    @ivar endpoint: the route, as the log line and metrics name it.
    @ivar rid: the request's id (C{x-request-id}).
    @ivar client: the name of the key it carried (C{-}: none needed).
    @ivar model: the model as the client asked for it (C{-} when the
        request was refused before it was read).
    @ivar cli_model: the C{--model} it was served with.
    @ivar begun: when it came (wall clock).
    @ivar total_ms: how long it took.
    @ivar error_code: why it failed, if it did.
    """

    endpoint: str
    rid: str
    status: int
    begun: float
    total_ms: float
    client: str = "-"
    model: str = "-"
    cli_model: str = ""
    stream: bool = False
    error_code: Optional[str] = None
    outcome: Optional[Outcome] = None
    seen: Seen = Seen()

    @property
    def finished(self) -> Optional[Finished]:
        return self.outcome.finished if self.outcome is not None else None

    @property
    def usage(self) -> Optional[Usage]:
        finished = self.finished
        return finished.usage if finished is not None else None

    @property
    def error(self) -> Optional[str]:
        """
        The error code, the turn's own where the request names none.
        """
        if self.error_code is None and self.outcome is not None and self.outcome.error is not None:
            return self.outcome.error.code
        return self.error_code

    @property
    def served(self) -> str:
        return self.outcome.served if self.outcome is not None else self.seen.served

    @property
    def first_token_ms(self) -> Optional[float]:
        return self.outcome.first_token_ms if self.outcome is not None else self.seen.first_token_ms

    @property
    def tokens_out(self) -> int:
        usage = self.usage
        return usage.output_tokens if usage else self.seen.tokens_out

    @property
    def ended(self) -> str:
        return end_reason(self.status, self.error, self.outcome)

    def usage_row(self) -> UsageRow:
        """
        The request's row in the usage history.
        """
        usage = self.usage
        return UsageRow(
            time=self.begun,
            request_id=self.rid,
            client=self.client,
            endpoint=self.endpoint,
            model_asked=self.model,
            model_served=(self.outcome.model if self.outcome is not None else "") or "",
            served=self.served,
            stream=self.stream,
            status=self.status,
            error_code=self.error,
            first_token_ms=self.first_token_ms,
            total_ms=self.total_ms,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=self.tokens_out,
            cache_read_tokens=usage.cache_read_tokens if usage else 0,
            cache_write_tokens=usage.cache_creation_tokens if usage else 0,
            rate_limit=self.outcome.rate_limit if self.outcome is not None else None,
        )


class Accounting:
    """
    Where every request's L{RequestRecord} goes: the log line, the
    metrics, the usage history (off the reactor thread), the named keys'
    budgets (tallied from the usage rows stored) and the model catalog.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        metrics: Metrics,
        log: Logger,
        wallclock: Callable[[], float],
        state: Optional[StateDB] = None,
    ) -> None:
        self.metrics = metrics
        self.log = log
        self.requests_served = 0
        #: the model id the CLI was asked for -> the upstream model that
        #: answered last (for /health)
        self.models_resolved: dict[str, str] = {}
        #: the models the CLI was seen to serve (kept in the state database)
        self.model_catalog = ModelCatalog(stored_models.saver(state, wallclock) if state is not None else None)
        if state is not None:
            self.model_catalog.load(stored_models.load(state))
        #: the usage history (None: no state database)
        self.usage: Optional[UsageLog] = (
            UsageLog(reactor, state, wallclock, config.usage_retention * 86400.0) if state is not None else None
        )
        #: the named keys' budgets, their tallies kept from the usage history
        self.budgets = Budgets((Budget(*b) for b in config.budgets), wallclock)
        if self.budgets and self.usage is None:
            raise ValueError("budgets are kept in the state database, and there is none (--state-dir)")
        if self.budgets and state is not None and self.usage is not None:
            state.read_now(self.budgets.load)
            self.usage.on_stored = self._stored

    def _stored(self, rows: list[UsageRow]) -> None:
        for r in rows:
            self.budgets.stored(
                r.client,
                r.time,
                r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens,
                r.cost,
                r.error_code,
            )

    def admit(self, client: str) -> None:
        """
        Raise the 429 of the first budget C{client} is over, or count its
        request as running until its usage row is stored.
        """
        self.budgets.check(client)
        self.budgets.begin(client)

    def account(self, record: RequestRecord) -> None:
        """
        A request ended: log it, count it, and keep what it taught.
        """
        self.requests_served += 1
        self._observe(record)
        finished = record.finished
        if record.outcome is not None and finished is not None:
            self.models_resolved[record.cli_model] = finished.model
            self.model_catalog.learn(record.cli_model, record.outcome.model, finished.result.get("modelUsage"))
        if self.usage is not None:
            self.usage.record(record.usage_row())

    def _observe(self, record: RequestRecord) -> None:
        """
        The request's metrics and its log line: how it was served, its
        first token, what was streamed, and why it ended.
        """
        usage = record.usage
        first = record.first_token_ms
        self.metrics.observe(
            record.endpoint,
            record.status,
            record.total_ms / 1000.0,
            None if first is None else first / 1000.0,
            usage.prompt_tokens if usage else 0,
            usage.output_tokens if usage else 0,
            usage.cache_read_tokens if usage else 0,
        )
        error_code = record.error
        self.log.info(
            "{rid} {endpoint} model={model} stream={stream} status={status} served={served} first_token_ms={first} "
            "total_ms={total:.0f} tokens_in={tin} tokens_out={tout} cached={cached} pieces={pieces} ended={ended}"
            "{error}",
            served=record.served,
            endpoint=record.endpoint,
            rid=record.rid,
            model=record.model,
            stream=record.stream,
            status=record.status,
            first="-" if first is None else "%.0f" % (first,),
            total=record.total_ms,
            tin=usage.prompt_tokens if usage else 0,
            tout=record.tokens_out,
            cached=usage.cache_read_tokens if usage else 0,
            pieces=record.seen.pieces,
            ended=record.ended,
            error=" error=%s" % (error_code,) if error_code and error_code not in ("client_gone", "timeout") else "",
        )
