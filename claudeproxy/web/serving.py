"""
What every protocol's app shares: authentication, the body limit, and a
request's path: parse, admission, the engine's turn, and the request's
record to the accounting (L{claudeproxy.web.accounting}).  Each protocol's
app (and the daemon's own) is given the one L{Serving}.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable, Mapping, Optional

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from ..config import Config
from ..engine.errors import ProxyError, bad_request
from ..engine.models import ModelCatalog
from ..engine.planguard import Pause
from ..engine.pool import Limiter, ProcessManager
from ..engine.process import SYSTEM_ARG_MAX
from ..engine.serve import SHUTTING_DOWN, OutputMaker, TurnServer
from ..engine.spec import TurnSpec, check_system
from ..engine.streaming import Outcome, TurnRun
from ..engine.usageprobe import UsageReport
from ..engine.usersetup import UserSetup
from ..store.budgets import Budgets
from ..store.db import StateDB
from ..store.usage import UsageLog
from .accounting import Accounting, Progress, RequestRecord, ResponseHook
from .auth import ANONYMOUS, ClientKeys, presented_key
from .dashboard.login import CLILogin
from .metrics import Metrics
from .plan import PlanWatch

__all__ = ["SHUTTING_DOWN", "Serving", "parse_checked", "quota_headers"]

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
    schema = spec.settings.json_schema
    if schema is not None and len(schema.encode("utf-8")) > SYSTEM_ARG_MAX:
        raise bad_request(
            "The JSON schema is larger than %d bytes, the most the CLI can be given" % (SYSTEM_ARG_MAX,),
            "response_format",
            "schema_too_large",
        )
    check_system(spec.conversation.system)
    return spec


class Serving:
    """
    The state and the request path every protocol's app uses.
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
        #: the log line, metrics, usage row, budgets and model catalog of
        #: every request
        self.accounting = Accounting(reactor, config, self.metrics, self.log, wallclock, state)
        #: what the user's own Claude Code set-up holds (kept out of API
        #: requests), for /health; set by the service
        self.user_setup: Optional[UserSetup] = None
        #: checks running in the background (the CLI's login): shutdown
        #: waits for them
        self.background: set[Deferred[Any]] = set()
        #: the CLI's login, as asked and as the requests tell
        self.login = CLILogin(reactor, manager, cli_version, wallclock, self.in_background)
        self.keys = ClientKeys.from_config(config)
        #: what the plan allows, from the CLI's reports and the usage check
        self.plan = PlanWatch(config, self.turns, wallclock, self.log)

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

    # -- what the accounting keeps, as the routes read it ------------------------

    @property
    def requests_served(self) -> int:
        return self.accounting.requests_served

    @property
    def models_resolved(self) -> dict[str, str]:
        return self.accounting.models_resolved

    @property
    def usage(self) -> Optional[UsageLog]:
        return self.accounting.usage

    @property
    def budgets(self) -> Budgets:
        return self.accounting.budgets

    @property
    def model_catalog(self) -> ModelCatalog:
        return self.accounting.model_catalog

    @property
    def runs(self) -> set[TurnRun]:
        return self.turns.runs

    @property
    def quota(self) -> Optional[dict[str, Any]]:
        return self.turns.quota

    @property
    def closing(self) -> bool:
        return self.turns.closing

    # -- the plan guard, as the routes and the service use it -------------------

    def plan_pause(self) -> Optional[Pause]:
        return self.plan.paused()

    def usage_reported(self, report: UsageReport) -> None:
        self.plan.usage_reported(report)

    @property
    def usage_report(self) -> Optional[UsageReport]:
        return self.plan.usage_report

    def known_limits(self) -> dict[str, Any]:
        return self.plan.known_limits()

    def plan_state(self) -> dict[str, Any]:
        return self.plan.state()

    def live_state(self) -> dict[str, Any]:
        return {
            "in_flight": self.limiter.running,
            "queued": self.limiter.queued,
            "pool": self.manager.describe(),
            "exits": dict(self.manager.exits),
        }

    def authorize(self, request: Request) -> str:
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

    def read_body(self, request: Request) -> bytes:
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
        Admit, parse, wait for a slot, run the turn on a process, and give
        the request's record to the accounting.  Errors before the answer
        starts are written by C{write_err} in the protocol's shape.
        """
        rid = id_prefix + uuid.uuid4().hex
        request.setHeader(b"x-request-id", rid.encode())
        self._quota_headers(request)
        started = self.reactor.seconds()
        begun = self.wallclock()
        client = ANONYMOUS
        spec: Optional[TurnSpec] = None
        status = 500
        outcome: Optional[Outcome] = None
        error_code: Optional[str] = None
        progress = Progress()
        try:
            client = self._admit(request)
            spec = parse_checked(parse, self.read_body(request))
            self._skipped(request, rid, spec)
            self.manager.check_cli()
            await self.limiter.acquire()
            try:
                hook = ResponseHook(request, progress, self.reactor.seconds)
                outcome = await self.turns.serve(rid, spec, make_output, request, hook)
            finally:
                self.limiter.release()
            status = outcome.status
            if outcome.error is not None:
                error_code = outcome.error.code
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
            total_ms = (self.reactor.seconds() - started) * 1000.0
            self.accounting.account(
                RequestRecord(
                    endpoint,
                    rid,
                    status,
                    begun,
                    total_ms,
                    client=client,
                    model=spec.model if spec is not None else "-",
                    cli_model=spec.cli_model if spec is not None else "",
                    stream=spec is not None and spec.stream,
                    error_code=error_code,
                    outcome=outcome,
                    seen=progress.seen(),
                )
            )
            self.plan.watch(rid, outcome)
            self.login_seen(status, error_code)

    def _admit(self, request: Request) -> str:
        """
        The name of the client whose request may be served now, or the
        error that refuses it: the daemon shutting down, a wrong key, the
        plan's limit, the client's budget.
        """
        if self.closing:
            raise SHUTTING_DOWN
        client = self.authorize(request)
        paused = self.plan.paused()
        if paused is not None:
            raise paused.error(self.wallclock())
        self.accounting.admit(client)
        return client

    def _skipped(self, request: Request, rid: str, spec: TurnSpec) -> None:
        """
        Say which hosted tools the request declared are not served.
        """
        if spec.settings.tools.skipped:
            skipped = ",".join(spec.settings.tools.skipped)
            request.setHeader(b"x-claudeproxy-skipped-tools", skipped.encode("utf-8", "replace"))
            self.log.info("{rid} hosted tools not served, skipped: {skipped}", rid=rid, skipped=skipped)

    def _quota_headers(self, request: Request) -> None:
        for name, value in quota_headers(self.quota).items():
            request.setHeader(name.encode(), value.encode())

    def login_seen(self, status: int, error_code: Optional[str]) -> None:
        """
        A request ended with C{status} and C{error_code} (what it says
        about the CLI's login is kept in L{login}).
        """
        self.login.seen(status, error_code)

    def cli_version_known(self) -> None:
        """
        The service has read the CLI's version (a login check may be
        waiting for it).
        """
        self.login.version_known()

    def shutdown(self) -> None:
        """
        Refuse new work, end every running turn with an error, fail the
        queue.
        """
        self.turns.shutdown()
        self.limiter.close(SHUTTING_DOWN)
        self.login.stop()
