"""
The dashboard's routes (composed into L{claudeproxy.app.ProxyApp}):
C{GET /}, C{POST /login}, C{POST /logout} and C{GET /v1/usage}.

With API keys configured, these accept the key (C{Authorization: Bearer},
C{x-api-key}) or the login cookie; the cookie is accepted here only, never
by the API routes.
"""

from __future__ import annotations

import secrets
from typing import Any, Optional, cast
from urllib.parse import parse_qs

import attrs
from twisted.web.server import Request

from ... import __version__
from ...engine.errors import ProxyError
from ...engine.limits import describe as describe_limits
from ...engine.loginprobe import REFUSED_WARNING, read_stored_login
from ...store.pricing import PLANS, plan_for, saved
from ...store.usage import WINDOWS
from ..auth import ANONYMOUS, Sessions, presented_key
from ..httpio import write_error, write_json
from ..router import app
from ..serving import Serving
from . import page
from .login import LoginState, has_auth_status, print_mode_refused, probe

COOKIE = "claudeproxy_dashboard"
#: how many failed requests and recent requests the figures list
ERRORS = 20
RECENT = 20


def _csp(nonce: str) -> bytes:
    return (
        "default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; connect-src 'self'; "
        "img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" % (nonce, nonce)
    ).encode()


class DashboardRoutes(Serving):
    @property
    def dashboard_sessions(self) -> Sessions:
        sessions = self.__dict__.get("_dashboard_sessions")
        if sessions is None:
            sessions = self.__dict__["_dashboard_sessions"] = Sessions(self.wallclock)
        return cast(Sessions, sessions)

    @property
    def cli_login(self) -> LoginState:
        """
        The CLI's login state: from the start-up probe, then from the
        requests served.
        """
        state = self.__dict__.get("_cli_login")
        return state if isinstance(state, LoginState) else LoginState()

    @cli_login.setter
    def cli_login(self, state: LoginState) -> None:
        self.__dict__["_cli_login"] = state

    def login_seen(self, status: int, error_code: Optional[str]) -> None:
        """
        What a request's outcome says about the CLI's login.
        """
        if error_code == "cli_not_logged_in":
            self.cli_login = attrs.evolve(
                self.cli_login, logged_in=False, source="request", checked_at=self.wallclock()
            )
            self._check_print_mode()
        elif status == 200 and self.cli_login.logged_in is not True:
            self.cli_login = attrs.evolve(self.cli_login, logged_in=True, source="request", checked_at=self.wallclock())

    def _check_print_mode(self) -> None:
        """
        A request was answered "not logged in": once, ask whether the CLI
        refuses in C{-p} mode a login it has (a future C{--bare} default);
        if so, C{/health} and the log say so.
        """
        if self.__dict__.get("_print_mode_probe") or self.manager.claude is None:
            return
        version = self.cli_version()
        if version is None:
            # asked once the version is known (L{cli_version_known})
            self.__dict__["_print_mode_wanted"] = True
            return
        if not has_auth_status(version):
            # a CLI older than 2.x would take "auth status" for a prompt
            return
        self.__dict__["_print_mode_probe"] = True

        def got(refused: bool) -> None:
            if refused:
                self.print_mode_warning = REFUSED_WARNING
                self.log.error("{refusal}", refusal=REFUSED_WARNING)

        d = print_mode_refused(
            self.reactor,
            self.manager.claude,
            self.manager.env,
            self.manager.settings,
            self.manager.workdir,
            self.wallclock(),
        )
        d.addCallback(got)
        self.in_background(d)

    def cli_version_known(self) -> None:
        """
        The service has read the CLI's version: a login check a request
        asked for before then runs now.
        """
        if self.__dict__.pop("_print_mode_wanted", False):
            self._check_print_mode()

    def login_state(self) -> dict[str, Any]:
        """
        The CLI's login for /health and /v1/usage: logged in or not (from
        C{claude auth status}, then from the requests served), and what its
        credentials file says (when the access token expires, whether it can
        be refreshed; no secrets).  /v1/usage asks C{claude auth status}
        once (L{_probe_login}); /health only says what is known.
        """
        state = self.cli_login.to_json()
        env = self.manager.env
        if env.get("CLAUDE_CODE_OAUTH_TOKEN"):
            state["token"] = "CLAUDE_CODE_OAUTH_TOKEN (a long-lived token: no refresh, no expiry the CLI knows)"
            state["stored"] = None
        else:
            state["stored"] = read_stored_login(env, self.wallclock())
        if state["logged_in"] is False:
            state["fix"] = "run `claude` in a terminal, then /login; requests are served again as soon as it is done"
        return state

    def _probe_login(self) -> None:
        """
        The first time the figures are asked for, ask the CLI whether it is
        logged in (C{claude auth status}, ~1 s, not awaited: the next
        refresh shows it), unless requests already told.
        """
        if self.__dict__.get("_login_probe") or self.cli_login.source or self.manager.claude is None:
            return
        if not has_auth_status(self.cli_version()):
            return
        self.__dict__["_login_probe"] = True

        def got(state: LoginState) -> None:
            if not self.cli_login.source:
                self.cli_login = state

        d = probe(self.reactor, self.manager.claude, self.manager.env, self.manager.workdir, self.wallclock())
        d.addCallback(got)
        self.in_background(d)

    # -- who is asking -------------------------------------------------------------

    def _dashboard_client(self, request: Request) -> Optional[str]:
        """
        The client name of a dashboard request (its key or its login
        cookie), C{-} without keys, None when it has neither.
        """
        if not self.keys.required:
            return ANONYMOUS
        name = self.keys.match(presented_key(request))
        if name is not None:
            return name
        cookie = request.getCookie(COOKIE.encode())
        if cookie:
            return self.dashboard_sessions.lookup(cookie.decode("latin-1"))
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
        return self._html(request, 200, lambda nonce: page.dashboard_page(nonce, figures, self.keys.required))

    @app.route("/login", methods=["POST"])
    def login(self, request: Request) -> bytes:
        content = request.content.read(64 * 1024).decode("utf-8", "replace") if request.content is not None else ""
        key = (parse_qs(content).get("key") or [""])[0].strip()
        name = self.keys.match(key.encode("utf-8")) if self.keys.required else ANONYMOUS
        if name is None:
            return self._html(
                request, 200, lambda nonce: page.login_page(nonce, "That key is not one of this daemon's keys.")
            )
        if self.keys.required:
            token = self.dashboard_sessions.issue(name)
            request.addCookie(
                COOKIE.encode(),
                token.encode(),
                path=b"/",
                httpOnly=True,
                sameSite="strict",
                max_age=str(int(self.dashboard_sessions.lifetime)).encode(),
            )
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        request.setHeader(b"cache-control", b"no-store")
        return b""

    @app.route("/logout", methods=["POST"])
    def logout(self, request: Request) -> bytes:
        cookie = request.getCookie(COOKIE.encode())
        if cookie:
            self.dashboard_sessions.end(cookie.decode("latin-1"))
        request.addCookie(COOKIE.encode(), b"", path=b"/", httpOnly=True, sameSite="strict", max_age=b"0")
        request.setResponseCode(303)
        request.setHeader(b"location", b"/")
        return b""

    @app.route("/v1/usage", methods=["GET"])
    async def usage_json(self, request: Request) -> None:
        client = self._dashboard_client(request)
        if client is None:
            write_error(
                request,
                ProxyError(
                    401,
                    "Missing or wrong API key: send 'Authorization: Bearer <key>', or log in on the dashboard.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
            return
        request.setHeader(b"cache-control", b"no-store")
        write_json(request, 200, await self.usage_figures(client))

    # -- the figures -----------------------------------------------------------------

    async def usage_figures(self, client: str) -> dict[str, Any]:
        """
        What C{/v1/usage} returns: the usage history's summary, the quota,
        the live pool figures, the CLI's version and login.
        """
        self._probe_login()
        pool = self.manager.describe()
        history: Optional[dict[str, Any]] = None
        plan, plan_source = plan_for(self.config.plan, self.cli_login.subscription, self.cli_login.plan_tier)
        if self.usage is not None:
            history = await self.usage.summary(ERRORS, RECENT)
            for name, window in history["windows"].items():
                window["saved"] = saved(window["total"]["cost"], plan, WINDOWS[name] / 86400.0)
        return {
            "object": "usage",
            "version": __version__,
            "now": self.wallclock(),
            "you": client,
            "clients": self.keys.names,
            "cli": {
                "path": self.manager.claude,
                "version": self.cli_version(),
                "login": self.login_state(),
            },
            "quota": self.quota,
            "limits": describe_limits(self.known_limits(), self.wallclock()),
            "plan_guard": self.plan_state(),
            "usage_check": self.usage_report.to_json() if self.usage_report is not None else None,
            "live": {
                "in_flight": self.limiter.running,
                "queued": self.limiter.queued,
                "max_concurrent": self.limiter.max_concurrent,
                "served": self.requests_served,
                "processes": pool["live_processes"],
                "warm": self.manager.idle_count,
                "conversations": self.manager.session_count,
                "tool_waits": pool["tools"]["waiting"],
                "spawned": pool["spawned"],
                "warm_hits": pool["warm"]["hits"],
                "session_hits": pool["sessions"]["hits"],
            },
            "retention_days": self.config.usage_retention,
            "budgets": self.budgets.describe(),
            "plan": {
                "name": plan,
                "source": plan_source,
                "monthly_price": PLANS[plan] if plan is not None else None,
                "subscription": self.cli_login.subscription,
            },
            "windows": list(WINDOWS),
            "history": history,
        }
