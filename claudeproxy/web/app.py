"""
The daemon's own routes: C{/health}, C{/metrics}, C{/v1/models}, the
dashboard, unknown paths and methods, on the shared Klein router
(L{claudeproxy.web.router.app}).  This layer knows no wire protocol: the
protocols' routes classes and this one are composed into the app above it,
L{claudeproxy.app.ProxyApp}.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .. import __version__
from ..engine import models
from ..engine.errors import ProxyError
from ..engine.versions import NEWEST_TESTED, OLDEST_TESTED, version_warning
from .dashboard import DashboardRoutes
from .httpio import write_error, write_json
from .metrics import CONTENT_TYPE
from .router import app
from .serving import SHUTTING_DOWN, Serving


class DaemonRoutes(DashboardRoutes, Serving):
    """
    The routes every daemon has, whatever protocols it speaks.  Everything
    they use is passed in (see L{Serving}).
    """

    app = app

    def resource(self) -> Any:
        return self.app.resource()

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

    # -- the daemon's own routes ---------------------------------------------------

    @app.route("/health", methods=["GET"])
    def health(self, request: Request) -> None:
        cli: dict[str, Any] = {"path": self.manager.claude, "version": self.cli_version()}
        warning = version_warning(cli["version"])
        if warning is not None:
            cli["warning"] = warning
        cli["tested"] = {"oldest": OLDEST_TESTED, "newest": NEWEST_TESTED}
        if self.print_mode_warning is not None:
            cli["login_warning"] = self.print_mode_warning
        status = "ok"
        try:
            self.manager.check_cli()
        except ProxyError as e:
            cli["error"] = e.message
            status = "degraded"
        plan_guard = self.plan_state()
        if plan_guard["paused"] is not None and status == "ok":
            # API requests get 429 until the window resets
            status = "paused"
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
                "claude_setup": (
                    self.user_setup.to_json(self.config.use_claude_settings) if self.user_setup is not None else None
                ),
                "login": self.login_state(),
                "quota": self.quota,
                "plan_guard": plan_guard,
                "models": dict(self.models_resolved),
            },
        )

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
        write_json(
            request, 200, models.list_models(self.config.model_aliases, self.model_catalog, self.config.default_model)
        )

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    def get_model(self, request: Request, model_id: str) -> None:
        try:
            self._authorize(request)
            write_json(request, 200, models.get_model(model_id, self.config.model_aliases, self.model_catalog))
        except ProxyError as e:
            write_error(request, e)

    # -- shutdown ------------------------------------------------------------------

    def shutdown(self) -> None:
        """
        Refuse new work, end every running turn with an error, fail the
        queue.
        """
        self.turns.shutdown()
        self.limiter.close(SHUTTING_DOWN)


__all__ = ["DaemonRoutes"]
