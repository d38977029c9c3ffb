"""
The HTTP surface: Klein routes for /health, /v1/models and
/v1/chat/completions, authentication, the body limit, and one log line per
request.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from typing import Any, Callable, Mapping, Optional

from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from . import __version__, models, openai_chat
from .anthropic_routes import AnthropicRoutes
from .app import app
from .chat_output import ChatOutput, ChatStreamOutput
from .config import Config
from .conversation import Conversation, stdin_blocks, turn_blocks, user_line
from .errors import ProxyError, bad_request
from .httpio import write_error, write_json
from .metrics import CONTENT_TYPE, Metrics
from .pool import Continuation, Lease, Limiter, ProcessManager
from .process import SYSTEM_ARG_MAX, SpawnKey
from .responses_routes import ResponsesRoutes
from .spec import TurnSpec, check_system
from .streaming import Outcome, TurnOutput, TurnRun
from .tools import mcp_content
from .turn import TurnState

SHUTTING_DOWN = ProxyError(503, "claudeproxy is shutting down; retry in a moment", "server_error", "shutting_down")


def _model_of(state: TurnState) -> Callable[[], str]:
    return lambda: state.model


OutputMaker = Callable[[TurnSpec, TurnState, str, int], TurnOutput]
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
    return Continuation(conversation.messages, finished.reply_digest())


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


class ProxyApp(AnthropicRoutes, ResponsesRoutes):
    """
    The routes.  Everything they use is passed in.  Each further protocol
    adds its routes as a mixin on the same Klein app (L{claudeproxy.app}).
    """

    app = app
    log = Logger()

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        manager: ProcessManager,
        limiter: Limiter,
        cli_version: Callable[[], Optional[str]] = lambda: None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.manager = manager
        self.limiter = limiter
        self.cli_version = cli_version
        self.wallclock = wallclock
        self.runs: set[TurnRun] = set()
        #: the last rate_limit_info the CLI reported, with when
        self.quota: Optional[dict[str, Any]] = None
        self.metrics = Metrics(self.live_state)
        self.closing = False
        self.requests_served = 0

    def resource(self) -> Any:
        return self.app.resource()

    # -- helpers -------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        header = request.getHeader(b"authorization") or b""
        token = request.getHeader(b"x-api-key") or b""
        if header[:7].lower() == b"bearer ":
            token = header[7:].strip()
        if not hmac.compare_digest(token, key.encode("utf-8")):
            raise ProxyError(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer <key>' with the key claudeproxy was started with (--api-key).",
                "invalid_request_error",
                "invalid_api_key",
            )

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

    # -- errors for unknown routes -----------------------------------------------

    @staticmethod
    def _error_body(request: Any, error: ProxyError) -> bytes:
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(error.to_openai()).encode()

    @app.handle_errors(NotFound)
    def not_found(self, request: IRequest, failure: Failure) -> bytes:
        what = "%s %s" % (request.method.decode(), request.path.decode("utf-8", "replace"))
        return self._error_body(
            request, ProxyError(404, "Unknown path: %s" % (what,), "invalid_request_error", "unknown_url")
        )

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(self, request: IRequest, failure: Failure) -> bytes:
        what = "%s %s" % (request.method.decode(), request.path.decode("utf-8", "replace"))
        return self._error_body(
            request, ProxyError(405, "Method not allowed: %s" % (what,), "invalid_request_error", "method_not_allowed")
        )

    # -- routes ------------------------------------------------------------------

    @app.route("/health", methods=["GET"])
    def health(self, request: Request) -> None:
        cli: dict[str, Any] = {"path": self.manager.claude, "version": self.cli_version()}
        status = "ok"
        try:
            self.manager.check_cli()
        except ProxyError as e:
            cli["error"] = e.message
            status = "degraded"
        if self.closing:
            status = "shutting_down"
        write_json(
            request,
            200,
            {
                "status": status,
                "version": __version__,
                "cli": cli,
                "requests": {
                    "in_flight": self.limiter.running,
                    "queued": self.limiter.queued,
                    "max_concurrent": self.limiter.max_concurrent,
                    "max_queued": self.limiter.max_queued,
                    "served": self.requests_served,
                },
                "pool": self.manager.describe(),
                "quota": self.quota,
            },
        )

    def live_state(self) -> dict[str, Any]:
        return {
            "in_flight": self.limiter.running,
            "queued": self.limiter.queued,
            "pool": self.manager.describe(),
            "exits": dict(self.manager.exits),
        }

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.metrics.render()

    @app.route("/v1/models", methods=["GET"])
    def list_models(self, request: Request) -> None:
        try:
            self._authorize(request)
        except ProxyError as e:
            write_error(request, e)
            return
        write_json(request, 200, models.list_models(self.config.model_aliases))

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    def get_model(self, request: Request, model_id: str) -> None:
        try:
            self._authorize(request)
            write_json(request, 200, models.get_model(model_id, self.config.model_aliases))
        except ProxyError as e:
            write_error(request, e)

    @app.route("/v1/chat/completions", methods=["POST"])
    async def chat_completions(self, request: Request) -> None:
        def output(spec: TurnSpec, state: TurnState, rid: str, created: int) -> TurnOutput:
            assert isinstance(spec, openai_chat.ChatRequest)
            if spec.stream:
                return ChatStreamOutput(request, rid, created, _model_of(state), spec.include_usage)
            return ChatOutput(request, rid, created)

        await self.serve(
            request,
            "/v1/chat/completions",
            "chatcmpl-",
            lambda body: openai_chat.parse_request(body, self.config.model_aliases),
            output,
            write_error,
        )

    # -- serving a turn, for every protocol ------------------------------------------

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
        try:
            if self.closing:
                raise SHUTTING_DOWN
            self._authorize(request)
            spec = parse_checked(parse, self._body(request))
            model, stream = spec.model, spec.stream
            self.manager.check_cli()
            await self.limiter.acquire()
            try:
                outcome = await self._run(request, rid, spec, make_output)
                status = outcome.status
            finally:
                self.limiter.release()
            if remember is not None and outcome.finished is not None:
                remember(spec, outcome, rid)
        except ProxyError as e:
            status = e.status
            write_err(request, e)
        except CancelledError:
            status = 499
        except Exception:
            self.log.failure("request {rid}", rid=rid)
            status = 500
            write_err(
                request, ProxyError(500, "claudeproxy failed internally; see its log", "server_error", "internal_error")
            )
        finally:
            self.requests_served += 1
            self._log(endpoint, rid, model, stream, status, started, outcome)

    def _quota_headers(self, request: Request) -> None:
        for name, value in quota_headers(self.quota).items():
            request.setHeader(name.encode(), value.encode())

    async def _run(self, request: Request, rid: str, spec: TurnSpec, make_output: OutputMaker) -> Outcome:
        key = SpawnKey(
            spec.cli_model,
            spec.conversation.system,
            self.config.system_prompt_mode,
            spec.effort,
            tools=spec.tools,
            json_schema=spec.json_schema,
            max_tokens=spec.max_tokens,
        )
        while True:
            if self.closing:
                raise SHUTTING_DOWN
            lease = self.manager.acquire(key, spec.conversation)
            outcome: Optional[Outcome] = None
            state = TurnState(model=spec.cli_model)
            try:
                output = make_output(spec, state, rid, int(self.wallclock()))
                # a streamed reply nobody needs whole afterwards is not kept
                state.keep_text = getattr(output, "needs_text", True)
                run = TurnRun(
                    self.reactor,
                    lease.proc,
                    state,
                    output,
                    self.config.idle_timeout,
                    self.config.request_timeout,
                    spec.stop,
                    reused=lease.source != "cold",
                    parallel_tool_calls=spec.parallel_tool_calls,
                    require_tool=spec.requires_tool,
                    json_mode=spec.json_schema is not None,
                )
                if spec.stream:
                    request.registerProducer(run, True)
                self.runs.add(run)
                try:
                    if lease.source == "tools":
                        done = run.start(b"")
                        self._resume_tools(lease, run, spec.conversation)
                    else:
                        blocks = (
                            turn_blocks(spec.conversation.last_turn)
                            if lease.resumed
                            else stdin_blocks(spec.conversation)
                        )
                        done = run.start(user_line(blocks))
                    outcome = await done
                finally:
                    self.runs.discard(run)
                    if request.producer is run:
                        request.unregisterProducer()
                    if lease.proc.bridge is not None:
                        lease.proc.bridge.on_call = None
                    if state.rate_limit is not None:
                        self.quota = dict(state.rate_limit, observed_at=int(self.wallclock()))
            finally:
                self._give_back(lease, spec.conversation, outcome)
            if outcome.retry:
                if spec.stream and request.producer is not None:
                    request.unregisterProducer()
                continue
            return outcome

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
                bridge.answer(
                    str(block.get("tool_use_id")),
                    {"content": mcp_content(block.get("content")), "isError": bool(block.get("is_error"))},
                )

    def _give_back(self, lease: Lease, conversation: Conversation, outcome: Optional[Outcome]) -> None:
        finished = outcome.finished if outcome is not None else None
        if finished is not None and finished.tool_calls and outcome is not None and outcome.clean:
            self.manager.hold_for_tools(lease, frozenset(c.id for c in finished.tool_calls), outcome.held)
        elif outcome is None:
            self.manager.release(lease, None, "client_gone")
        else:
            self.manager.release(lease, continuation(conversation, outcome), end_cause(outcome))

    def _log(
        self, endpoint: str, rid: str, model: str, stream: bool, status: int, started: float, outcome: Optional[Outcome]
    ) -> None:
        total_ms = (self.reactor.seconds() - started) * 1000.0
        first = outcome.first_token_ms if outcome is not None else None
        usage = outcome.finished.usage if outcome is not None and outcome.finished is not None else None
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
            "{rid} {endpoint} model={model} stream={stream} status={status} first_token_ms={first} total_ms={total:.0f} "
            "tokens_in={tin} tokens_out={tout} cached={cached}",
            endpoint=endpoint,
            rid=rid,
            model=model,
            stream=stream,
            status=status,
            first="-" if first is None else "%.0f" % (first,),
            total=total_ms,
            tin=usage.prompt_tokens if usage else 0,
            tout=usage.output_tokens if usage else 0,
            cached=usage.cache_read_tokens if usage else 0,
        )

    # -- shutdown ------------------------------------------------------------------

    def shutdown(self) -> None:
        """
        Refuse new work, end every running turn with an error, fail the
        queue.
        """
        self.closing = True
        self.limiter.close(SHUTTING_DOWN)
        for run in list(self.runs):
            run.abort(SHUTTING_DOWN)


__all__ = ["ProxyApp", "bad_request", "json"]
