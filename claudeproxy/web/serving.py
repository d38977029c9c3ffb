"""
What every protocol's routes share: authentication, the body limit, the
request's life from parse to log line, and the engine call in between.
Each protocol's routes class derives from L{Serving}.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable, Mapping, Optional

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from ..config import Config
from ..engine.errors import ProxyError, bad_request
from ..engine.models import ModelCatalog
from ..engine.planguard import Pause, freshest_windows, in_extra_usage, pause, window_words
from ..engine.pool import Limiter, ProcessManager
from ..engine.process import SYSTEM_ARG_MAX
from ..engine.serve import SHUTTING_DOWN, OutputMaker, TurnServer
from ..engine.spec import TurnSpec, check_system
from ..engine.streaming import Outcome, TurnOutput, TurnRun
from ..engine.turn import Finished, TurnState, WebSearch
from ..engine.usageprobe import UsageReport
from ..engine.usersetup import UserSetup
from ..store import models as stored_models
from ..store.budgets import Budget, Budgets
from ..store.db import StateDB
from ..store.usage import UsageLog, UsageRow
from .auth import ANONYMOUS, ClientKeys, presented_key
from .metrics import Metrics

__all__ = ["SHUTTING_DOWN", "Progress", "Serving", "end_reason", "parse_checked", "quota_headers"]

ErrorWriter = Callable[[Request, ProxyError], None]


def quota_headers(quota: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """
    The last subscription rate-limit state the CLI reported, as response
    headers: C{x-claudeproxy-ratelimit-<field>} for each of its fields.
    """
    if not quota:
        return {}
    out = {}
    for key, value in quota.items():
        if isinstance(value, (str, int, float, bool)):
            name = re.sub(r"(?<!^)(?=[A-Z])", "-", key).replace("_", "-").lower()
            out["x-claudeproxy-ratelimit-" + name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def parse_checked(parse: Callable[[bytes], TurnSpec], body: bytes) -> TurnSpec:
    """
    C{parse(body)}, with what no protocol can honour refused as a 400: JSON
    nested too deeply to read, and system text that cannot be a command-line
    argument (it goes to the CLI's --system-prompt).
    """
    try:
        spec = parse(body)
    except RecursionError:
        raise bad_request("The request body is nested too deeply", None, "invalid_json")
    if spec.json_schema is not None and len(spec.json_schema.encode("utf-8")) > SYSTEM_ARG_MAX:
        raise bad_request(
            "The JSON schema is larger than %d bytes, the most the CLI can be given" % (SYSTEM_ARG_MAX,),
            "response_format",
            "schema_too_large",
        )
    check_system(spec.conversation.system)
    return spec


#: the response header naming the upstream model that answered
MODEL_HEADER = b"x-claudeproxy-model"


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


class ModelNamed:
    """
    A protocol's output whose replies name the model as the client asked
    for it (OpenAI-compatible servers echo the requested id; a different
    one makes clients such as OpenClaw report a rerouted model), while the
    model that answered goes in the C{x-claudeproxy-model} header, set
    before the first byte.  Everything else is the wrapped output's.
    """

    def __init__(
        self,
        output: TurnOutput,
        request: Request,
        spec: TurnSpec,
        state: TurnState,
        progress: Optional[Progress] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._output = output
        self._request = request
        self._spec = spec
        self._state = state
        self._named = False
        self._progress = progress
        self._clock = clock
        if progress is not None:
            progress.attempt(clock(), state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._output, name)

    def _piece(self) -> None:
        if self._progress is not None:
            self._progress.piece(self._clock())

    def _name(self) -> None:
        if not self._named:
            self._named = True
            self._request.setHeader(MODEL_HEADER, self._state.model.encode("utf-8", "replace"))

    def text(self, text: str) -> None:
        self._name()
        self._piece()
        self._output.text(text)

    def reasoning(self, text: str) -> None:
        self._name()
        self._piece()
        self._output.reasoning(text)

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self._name()
        self._piece()
        self._output.tool_call_start(index, call_id, name)

    def tool_call_delta(self, index: int, arguments: str) -> None:
        self._piece()
        self._output.tool_call_delta(index, arguments)

    def web_search(self, search: WebSearch) -> None:
        self._name()
        self._piece()
        self._output.web_search(search)

    def finished(self, finished: Finished) -> None:
        self._name()
        self._output.finished(attrs.evolve(finished, model=self._spec.model))

    def failed(self, error: ProxyError) -> None:
        self._name()
        self._output.failed(error)


class Serving:
    """
    The state and the request path every protocol's routes use.
    Everything is passed in.
    """

    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        manager: ProcessManager,
        limiter: Limiter,
        cli_version: Callable[[], Optional[str]] = lambda: None,
        wallclock: Callable[[], float] = time.time,
        state: Optional[StateDB] = None,
    ) -> None:
        self.reactor = reactor
        #: the state database (None: nothing kept across restarts)
        self.state = state
        self.config = config
        self.manager = manager
        self.limiter = limiter
        self.cli_version = cli_version
        self.wallclock = wallclock
        self.turns = TurnServer(reactor, config, manager, wallclock)
        self.metrics = Metrics(self.live_state)
        self.requests_served = 0
        #: what the user's own Claude Code set-up holds (kept out of API
        #: requests), for /health; set by the service
        self.user_setup: Optional[UserSetup] = None
        #: set when the CLI refuses the subscription login in -p mode
        self.print_mode_warning: Optional[str] = None
        #: checks running in the background (the CLI's login): shutdown
        #: waits for them
        self.background: set[Deferred[Any]] = set()
        #: the model id the CLI was asked for -> the upstream model that
        #: answered last (for /health)
        self.models_resolved: dict[str, str] = {}
        self.keys = ClientKeys.from_config(config)
        #: the models the CLI was seen to serve (kept in the state database)
        self.model_catalog = ModelCatalog(stored_models.saver(state, wallclock) if state is not None else None)
        if state is not None:
            self.model_catalog.load(stored_models.load(state))
        #: the usage history (None: no state database)
        self.usage: Optional[UsageLog] = (
            UsageLog(reactor, state, wallclock, config.usage_retention * 86400.0) if state is not None else None
        )
        #: the subscription's usage the daemon asked the CLI for (get_usage,
        #: see L{claudeproxy.engine.usageprobe}), None before the first answer
        self.probed_limits: Optional[dict[str, Any]] = None
        #: the last answer to the usage check, whatever it said
        self.usage_report: Optional[UsageReport] = None
        #: whether the last report said extra usage paid the request
        self.in_extra_usage = False
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

    def in_background(self, d: Deferred[Any]) -> None:
        """
        Keep C{d} (a check that never fails) until it fires.
        """
        if d.called:
            return
        self.background.add(d)

        def done(result: Any) -> Any:
            self.background.discard(d)
            return result

        d.addBoth(done)

    @property
    def runs(self) -> set[TurnRun]:
        return self.turns.runs

    @property
    def quota(self) -> Optional[dict[str, Any]]:
        return self.turns.quota

    @property
    def closing(self) -> bool:
        return self.turns.closing

    def plan_pause(self) -> Optional[Pause]:
        """
        Why API requests are refused now to keep inside the plan, if they
        are (L{claudeproxy.engine.planguard.pause}).
        """
        return pause(
            self.quota,
            self.turns.limits,
            self.probed_limits,
            self.config.extra_usage,
            self.config.reserve,
            self.wallclock(),
        )

    def usage_reported(self, report: UsageReport) -> None:
        """
        The usage check's answer: its windows, where the CLI could read
        them, join what the rate-limit reports said (the newer wins).
        """
        self.usage_report = report
        if report.available:
            was = self.plan_pause()
            self.probed_limits = report.to_json()
            now = self.plan_pause()
            if was is not None and now is None:
                self.log.info("the plan allows requests again: {was} no longer holds", was=was.summary())
            elif now is not None and was is None:
                self.log.warn("API requests {summary}", summary=now.summary())

    def known_limits(self) -> dict[str, Any]:
        """
        The limit windows as known now: each from the CLI's last report of
        it or the usage asked for, whichever is newer; the extra usage
        state, with its monthly limit and credits used where asked for.
        """
        limits = self.turns.limits
        overage = dict(limits.get("overage") or {})
        probed = self.probed_limits
        if probed is not None and probed.get("extra_usage") is not None:
            overage["extra_usage"] = probed["extra_usage"]
        return {"windows": freshest_windows(limits, probed), "overage": overage}

    def plan_state(self) -> dict[str, Any]:
        """
        The plan guard's settings and state, for /health and /v1/usage.
        """
        paused = self.plan_pause()
        return {
            "extra_usage": self.config.extra_usage,
            "reserve": self.config.reserve,
            "in_extra_usage": self.in_extra_usage,
            "paused": paused.to_json() if paused is not None else None,
            "summary": paused.summary() if paused is not None else "serving",
        }

    def _watch_extra_usage(self, rid: str, outcome: Optional[Outcome]) -> None:
        """
        Log the request that crossed into extra usage (paid beyond the
        plan), from the rate-limit report its turn brought.
        """
        info = outcome.rate_limit if outcome is not None else None
        if info is None:
            return
        now_in = in_extra_usage(info)
        if now_in and not self.in_extra_usage:
            resets = info.get("resetsAt")
            self.log.warn(
                "{rid} crossed into extra usage: the plan's {window} is reached (resets {resets}); {then}",
                rid=rid,
                window=window_words(info.get("rateLimitType") if isinstance(info.get("rateLimitType"), str) else None),
                resets=resets if resets is not None else "?",
                then=(
                    "later requests may spend extra usage (--extra-usage allow)"
                    if self.config.extra_usage == "allow"
                    else "later requests get 429 plan_limit_reached until it resets"
                ),
            )
        self.in_extra_usage = now_in

    def live_state(self) -> dict[str, Any]:
        return {
            "in_flight": self.limiter.running,
            "queued": self.limiter.queued,
            "pool": self.manager.describe(),
            "exits": dict(self.manager.exits),
        }

    def _authorize(self, request: Request) -> str:
        """
        The name of the client whose key the request carries (C{-} when no
        keys are configured), or a 401.
        """
        if not self.keys.required:
            return ANONYMOUS
        name = self.keys.match(presented_key(request))
        if name is None:
            raise ProxyError(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer <key>' with the key claudeproxy was started with (--api-key).",
                "invalid_request_error",
                "invalid_api_key",
            )
        return name

    def _body(self, request: Request) -> bytes:
        if getattr(request, "too_large", False):
            request.setHeader(b"connection", b"close")
            raise ProxyError(
                413,
                "The request body is larger than %d bytes (--max-body)" % (self.config.max_body,),
                "invalid_request_error",
                "request_too_large",
            )
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        return content.read()

    async def serve(
        self,
        request: Request,
        endpoint: str,
        id_prefix: str,
        parse: Callable[[bytes], TurnSpec],
        make_output: OutputMaker,
        write_err: ErrorWriter,
        remember: Optional[Callable[[TurnSpec, Outcome, str], None]] = None,
    ) -> None:
        """
        Authenticate, parse, wait for a slot, run the turn on a process and
        log it.  Errors before the answer starts are written by
        C{write_err} in the protocol's shape.
        """
        rid = id_prefix + uuid.uuid4().hex
        request.setHeader(b"x-request-id", rid.encode())
        self._quota_headers(request)
        started = self.reactor.seconds()
        status = 500
        outcome: Optional[Outcome] = None
        model = "-"
        stream = False
        client = ANONYMOUS
        cli_model = ""
        error_code: Optional[str] = None
        begun = self.wallclock()
        progress = Progress()

        def served(source: str) -> None:
            progress.served = source
            request.setHeader(b"x-claudeproxy-served", source.encode())

        try:
            if self.closing:
                raise SHUTTING_DOWN
            client = self._authorize(request)
            paused = self.plan_pause()
            if paused is not None:
                raise paused.error(self.wallclock())
            self.budgets.check(client)
            self.budgets.begin(client)
            spec = parse_checked(parse, self._body(request))
            model, stream, cli_model = spec.model, spec.stream, spec.cli_model
            if spec.skipped_tools:
                skipped = ",".join(spec.skipped_tools)
                request.setHeader(b"x-claudeproxy-skipped-tools", skipped.encode("utf-8", "replace"))
                self.log.info("{rid} hosted tools not served, skipped: {skipped}", rid=rid, skipped=skipped)
            self.manager.check_cli()
            await self.limiter.acquire()

            def named(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
                return ModelNamed(
                    make_output(spec, state, rid, created), request, spec, state, progress, self.reactor.seconds
                )

            try:
                outcome = await self.turns.serve(
                    rid,
                    spec,
                    named,
                    request,
                    served,
                )
                if outcome.finished is not None:
                    self.models_resolved[spec.cli_model] = outcome.finished.model
                status = outcome.status
                if outcome.error is not None:
                    error_code = outcome.error.code
            finally:
                self.limiter.release()
            if remember is not None and outcome.finished is not None:
                remember(spec, outcome, rid)
        except ProxyError as e:
            status = e.status
            error_code = e.code
            write_err(request, e)
        except CancelledError:
            status = 499
            error_code = "client_gone"
        except Exception:
            self.log.failure("request {rid}", rid=rid)
            status = 500
            error_code = "internal_error"
            write_err(
                request, ProxyError(500, "claudeproxy failed internally; see its log", "server_error", "internal_error")
            )
        finally:
            self.requests_served += 1
            self._log(endpoint, rid, model, stream, status, started, outcome, progress, error_code)
            self._watch_extra_usage(rid, outcome)
            self.login_seen(status, error_code)
            if outcome is not None and outcome.finished is not None:
                self.model_catalog.learn(cli_model, outcome.model, outcome.finished.result.get("modelUsage"))
            if self.usage is not None:
                self._record(
                    endpoint, rid, client, model, stream, status, error_code, begun, started, outcome, progress
                )

    def _quota_headers(self, request: Request) -> None:
        for name, value in quota_headers(self.quota).items():
            request.setHeader(name.encode(), value.encode())

    def _log(
        self,
        endpoint: str,
        rid: str,
        model: str,
        stream: bool,
        status: int,
        started: float,
        outcome: Optional[Outcome],
        progress: Optional[Progress] = None,
        error_code: Optional[str] = None,
    ) -> None:
        """
        The request's log line: how it was served, its first token, what
        was streamed, and why it ended, whether or not the turn finished
        (a request whose client went away has no outcome, only its
        L{Progress}).
        """
        progress = progress if progress is not None else Progress()
        total_ms = (self.reactor.seconds() - started) * 1000.0
        first = outcome.first_token_ms if outcome is not None else progress.first_token_ms
        usage = outcome.finished.usage if outcome is not None and outcome.finished is not None else None
        if error_code is None and outcome is not None and outcome.error is not None:
            error_code = outcome.error.code
        self.metrics.observe(
            endpoint,
            status,
            total_ms / 1000.0,
            None if first is None else first / 1000.0,
            usage.prompt_tokens if usage else 0,
            usage.output_tokens if usage else 0,
            usage.cache_read_tokens if usage else 0,
        )
        self.log.info(
            "{rid} {endpoint} model={model} stream={stream} status={status} served={served} first_token_ms={first} "
            "total_ms={total:.0f} tokens_in={tin} tokens_out={tout} cached={cached} pieces={pieces} ended={ended}"
            "{error}",
            served=outcome.served if outcome is not None else progress.served,
            endpoint=endpoint,
            rid=rid,
            model=model,
            stream=stream,
            status=status,
            first="-" if first is None else "%.0f" % (first,),
            total=total_ms,
            tin=usage.prompt_tokens if usage else 0,
            tout=usage.output_tokens if usage else progress.tokens_out(),
            cached=usage.cache_read_tokens if usage else 0,
            pieces=progress.pieces,
            ended=end_reason(status, error_code, outcome),
            error=" error=%s" % (error_code,) if error_code and error_code not in ("client_gone", "timeout") else "",
        )

    def login_seen(self, status: int, error_code: Optional[str]) -> None:
        """
        A request ended with C{status} and C{error_code} (what it says
        about the CLI's login is kept by the dashboard).
        """

    def cli_version_known(self) -> None:
        """
        The service has read the CLI's version (the dashboard may have a
        check waiting for it).
        """

    def _record(
        self,
        endpoint: str,
        rid: str,
        client: str,
        model: str,
        stream: bool,
        status: int,
        error_code: Optional[str],
        begun: float,
        started: float,
        outcome: Optional[Outcome],
        progress: Optional[Progress] = None,
    ) -> None:
        """
        The request's row in the usage history (written off the reactor
        thread).
        """
        assert self.usage is not None
        progress = progress if progress is not None else Progress()
        usage = outcome.finished.usage if outcome is not None and outcome.finished is not None else None
        if outcome is not None and outcome.error is not None and error_code is None:
            error_code = outcome.error.code
        self.usage.record(
            UsageRow(
                time=begun,
                request_id=rid,
                client=client,
                endpoint=endpoint,
                model_asked=model,
                model_served=(outcome.model if outcome is not None else "") or "",
                served=outcome.served if outcome is not None else progress.served,
                stream=stream,
                status=status,
                error_code=error_code,
                first_token_ms=outcome.first_token_ms if outcome is not None else progress.first_token_ms,
                total_ms=(self.reactor.seconds() - started) * 1000.0,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else progress.tokens_out(),
                cache_read_tokens=usage.cache_read_tokens if usage else 0,
                cache_write_tokens=usage.cache_creation_tokens if usage else 0,
                rate_limit=outcome.rate_limit if outcome is not None else None,
            )
        )
