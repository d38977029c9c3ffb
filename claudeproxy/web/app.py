"""
The daemon's own routes: C{/health}, C{/metrics} and C{/v1/models}, a Klein
app of their own (L{DaemonApp}), and how a path no app routes is answered
(L{unknown_route}).  This layer knows no wire protocol: the protocols' apps
are mounted beside this one above it, in L{claudeproxy.app.ProxyApp}.
"""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .. import __version__
from ..engine import models
from ..engine.errors import ProxyError
from ..engine.versions import NEWEST_TESTED, OLDEST_TESTED, version_warning
from .httpio import error_bytes, write_error, write_json
from .metrics import CONTENT_TYPE
from .mount import answering_errors
from .serving import Serving


def unknown_route(request: Request, missing: HTTPException) -> bytes:
    """
    The answer to a path no app routes (404 C{unknown_url}), or routes for
    other methods only (405 C{method_not_allowed}), as an OpenAI error
    object.
    """
    what = "%s %s" % (request.method.decode(), request.path.decode("utf-8", "replace"))
    if isinstance(missing, MethodNotAllowed):
        error = ProxyError(405, "Method not allowed: %s" % (what,), "invalid_request_error", "method_not_allowed")
    else:
        error = ProxyError(404, "Unknown path: %s" % (what,), "invalid_request_error", "unknown_url")
    request.setResponseCode(error.status)
    request.setHeader(b"content-type", b"application/json")
    return error_bytes(error)


class DaemonApp:
    """
    The routes every daemon has, whatever protocols it speaks.
    """

    app = answering_errors(Klein(), write_error)

    def __init__(self, serving: Serving) -> None:
        self.serving = serving

    @app.route("/health", methods=["GET"])
    def health(self, request: Request) -> None:
        serving = self.serving
        cli: dict[str, Any] = {"path": serving.manager.claude, "version": serving.cli_version()}
        warning = version_warning(cli["version"])
        if warning is not None:
            cli["warning"] = warning
        cli["tested"] = {"oldest": OLDEST_TESTED, "newest": NEWEST_TESTED}
        if serving.login.print_mode_warning is not None:
            cli["login_warning"] = serving.login.print_mode_warning
        status = "ok"
        try:
            serving.manager.check_cli()
        except ProxyError as e:
            cli["error"] = e.message
            status = "degraded"
        plan_guard = serving.plan_state()
        if plan_guard["paused"] is not None and status == "ok":
            # API requests get 429 until the window resets
            status = "paused"
        if serving.closing:
            status = "shutting_down"
        write_json(
            request,
            200,
            {
                "status": status,
                "version": __version__,
                "cli": cli,
                "requests": {
                    "in_flight": serving.limiter.running,
                    "queued": serving.limiter.queued,
                    "max_concurrent": serving.limiter.max_concurrent,
                    "max_queued": serving.limiter.max_queued,
                    "served": serving.requests_served,
                },
                "pool": serving.manager.describe(),
                "claude_setup": (
                    serving.user_setup.to_json(serving.config.use_claude_settings)
                    if serving.user_setup is not None
                    else None
                ),
                "login": serving.login.to_json(),
                "quota": serving.quota,
                "plan_guard": plan_guard,
                "models": dict(serving.models_resolved),
            },
        )

    @app.route("/metrics", methods=["GET"])
    def metrics_page(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.serving.metrics.render()

    @app.route("/v1/models", methods=["GET"])
    def list_models(self, request: Request) -> None:
        serving = self.serving
        serving.authorize(request)
        config = serving.config
        write_json(request, 200, models.list_models(config.model_aliases, serving.model_catalog, config.default_model))

    @app.route("/v1/models/<path:model_id>", methods=["GET"])
    def get_model(self, request: Request, model_id: str) -> None:
        self.serving.authorize(request)
        write_json(
            request, 200, models.get_model(model_id, self.serving.config.model_aliases, self.serving.model_catalog)
        )


__all__ = ["DaemonApp", "unknown_route"]
