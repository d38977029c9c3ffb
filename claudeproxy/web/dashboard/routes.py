"""
The dashboard's routes, a Klein app (mounted by L{claudeproxy.app.ProxyApp}):
C{GET /}, C{POST /login}, C{POST /logout} and C{GET /v1/usage}.

With API keys configured, these accept the key (C{Authorization: Bearer},
C{x-api-key}) or the login cookie; the cookie is accepted here only, never
by the API routes.
"""

from __future__ import annotations

import secrets
from typing import Any, Optional, cast
from urllib.parse import parse_qs

from klein import Klein
from twisted.web.server import Request

from ... import __version__
from ...engine.errors import ProxyError
from ...engine.limits import describe as describe_limits
from ...store.pricing import PLANS, plan_for, saved
from ...store.usage import WINDOWS
from ..auth import ANONYMOUS, Sessions, presented_key
from ..httpio import write_error, write_json
from ..mount import answering_errors
from ..serving import Serving
from . import page

COOKIE = "claudeproxy_dashboard"
#: how many failed requests and recent requests the figures list
ERRORS = 20
RECENT = 20


def _csp(nonce: str) -> bytes:
    return (
        "default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; connect-src 'self'; "
        "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" % (nonce, nonce)
    ).encode()


class DashboardApp:
    """
    The dashboard's routes, with its login sessions.
    """

    app = answering_errors(Klein(), write_error)

    def __init__(self, serving: Serving) -> None:
        self.serving = serving
        self.sessions = Sessions(serving.wallclock)

    # -- who is asking -------------------------------------------------------------

    def _dashboard_client(self, request: Request) -> Optional[str]:
        """
        The client name of a dashboard request (its key or its login
        cookie), C{-} without keys, None when it has neither.
        """
        if not self.serving.keys.required:
            return ANONYMOUS
        name = self.serving.keys.match(presented_key(request))
        if name is not None:
            return name
        cookie = request.getCookie(COOKIE.encode())
        if cookie:
            return self.sessions.lookup(cookie.decode("latin-1"))
        return None

    def _html(self, request: Request, status: int, render: Any) -> bytes:
        nonce = secrets.token_urlsafe(16)
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", _csp(nonce))
        request.setHeader(b"x-frame-options", b"DENY")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"same-origin")
        request.setHeader(b"cache-control", b"no-store")
        return cast(bytes, render(nonce).encode("utf-8"))

    # -- the routes ------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    async def dashboard(self, request: Request) -> bytes:
        client = self._dashboard_client(request)
        if client is None:
            return self._html(request, 200, lambda nonce: page.login_page(nonce, None))
        figures = await self.usage_figures(client)
        return self._html(request, 200, lambda nonce: page.dashboard_page(nonce, figures, self.serving.keys.required))

    @app.route("/login", methods=["POST"])
    def login(self, request: Request) -> bytes:
        content = request.content.read(64 * 1024).decode("utf-8", "replace") if request.content is not None else ""
        key = (parse_qs(content).get("key") or [""])[0].strip()
        name = self.serving.keys.match(key.encode("utf-8")) if self.serving.keys.required else ANONYMOUS
        if name is None:
            return self._html(
                request, 200, lambda nonce: page.login_page(nonce, "That key is not one of this daemon's keys.")
            )
        if self.serving.keys.required:
            token = self.sessions.issue(name)
            request.addCookie(
                COOKIE.encode(),
                token.encode(),
                path=b"/",
                httpOnly=True,
                sameSite="strict",
                max_age=str(int(self.sessions.lifetime)).encode(),
            )
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        request.setHeader(b"cache-control", b"no-store")
        return b""

    @app.route("/logout", methods=["POST"])
    def logout(self, request: Request) -> bytes:
        cookie = request.getCookie(COOKIE.encode())
        if cookie:
            self.sessions.end(cookie.decode("latin-1"))
        request.addCookie(COOKIE.encode(), b"", path=b"/", httpOnly=True, sameSite="strict", max_age=b"0")
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        return b""

    @app.route("/v1/usage", methods=["GET"])
    async def usage_json(self, request: Request) -> None:
        client = self._dashboard_client(request)
        if client is None:
            raise ProxyError(
                401,
                "Missing or wrong API key: send 'Authorization: Bearer <key>', or log in on the dashboard.",
                "invalid_request_error",
                "invalid_api_key",
            )
        request.setHeader(b"cache-control", b"no-store")
        write_json(request, 200, await self.usage_figures(client))

    # -- the figures -----------------------------------------------------------------

    async def usage_figures(self, client: str) -> dict[str, Any]:
        """
        What C{/v1/usage} returns: the usage history's summary, the quota,
        the live pool figures, the CLI's version and login.
        """
        serving = self.serving
        serving.login.probe()
        pool = serving.manager.describe()
        history: Optional[dict[str, Any]] = None
        login = serving.login.state
        plan, plan_source = plan_for(serving.config.plan, login.subscription, login.plan_tier)
        if serving.usage is not None:
            history = await serving.usage.summary(ERRORS, RECENT)
            for name, window in history["windows"].items():
                window["saved"] = saved(window["total"]["cost"], plan, WINDOWS[name] / 86400.0)
        return {
            "object": "usage",
            "version": __version__,
            "now": serving.wallclock(),
            "you": client,
            "clients": serving.keys.names,
            "cli": {
                "path": serving.manager.claude,
                "version": serving.cli_version(),
                "login": serving.login.to_json(),
            },
            "quota": serving.quota,
            "limits": describe_limits(serving.known_limits(), serving.wallclock()),
            "plan_guard": serving.plan_state(),
            "usage_check": serving.usage_report.to_json() if serving.usage_report is not None else None,
            "live": {
                "in_flight": serving.limiter.running,
                "queued": serving.limiter.queued,
                "max_concurrent": serving.limiter.max_concurrent,
                "served": serving.requests_served,
                "processes": pool["live_processes"],
                "warm": serving.manager.idle_count,
                "conversations": serving.manager.session_count,
                "tool_waits": pool["tools"]["waiting"],
                "spawned": pool["spawned"],
                "warm_hits": pool["warm"]["hits"],
                "session_hits": pool["sessions"]["hits"],
            },
            "retention_days": serving.config.usage_retention,
            "budgets": serving.budgets.describe(),
            "plan": {
                "name": plan,
                "source": plan_source,
                "monthly_price": PLANS[plan] if plan is not None else None,
                "subscription": login.subscription,
            },
            "windows": list(WINDOWS),
            "history": history,
        }
