"""
Browser safety: what keeps a web page from spending the subscription.

- The Host header must name loopback (or a host given with
  C{--allowed-host}): a DNS-rebinding page reaches the daemon under its own
  host name and is refused (cf. Ollama's CVE-2024-28224).
- A request that carries an C{Origin} is refused unless that origin is
  listed with C{--cors-origin}: browsers send C{Origin} on cross-origin
  requests, including the "simple" POSTs that need no preflight.
- CORS headers are sent only to listed origins.
"""

from __future__ import annotations

from typing import Any, Iterable

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from ..engine.errors import ProxyError
from .httpio import error_bytes

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: the dashboard's paths: its own page may call them (same origin: its
#: login form's POST carries an Origin header)
SAME_ORIGIN_PATHS = frozenset({b"/", b"/login", b"/logout", b"/v1/usage"})
ALLOW_HEADERS = b"authorization, content-type, x-api-key, anthropic-version, anthropic-beta, openai-beta, x-request-id"


def host_name(host: str) -> str:
    """
    The name part of a Host header, without the port, lower case.
    """
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def host_allowed(host: str | None, allowed: frozenset[str]) -> bool:
    if host is None:
        return True
    name = host_name(host)
    return name in LOOPBACK_HOSTS or name.endswith(".localhost") or name.startswith("127.") or name in allowed


class Guard(Resource):
    """
    Wraps the daemon's resource with the Host and Origin checks and CORS.
    """

    isLeaf = True

    def __init__(self, wrapped: IResource, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.allowed_hosts = frozenset(host_name(h) for h in allowed_hosts)
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    def _refuse(self, request: Request, error: ProxyError) -> bytes:
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json")
        return error_bytes(error)

    def render(self, request: Request) -> Any:
        host = request.getHeader(b"host")
        if not host_allowed(host.decode("latin-1") if host is not None else None, self.allowed_hosts):
            return self._refuse(
                request,
                ProxyError(
                    403,
                    "Host %r is not allowed: claudeproxy answers only to loopback names (add others with --allowed-host)"
                    % (host.decode("latin-1") if host else "",),
                    "permission_error",
                    "host_not_allowed",
                ),
            )
        origin_raw = request.getHeader(b"origin")
        if origin_raw is not None:
            origin = origin_raw.decode("latin-1").rstrip("/").lower()
            if (
                request.path in SAME_ORIGIN_PATHS
                and host is not None
                and origin in ("http://" + host.decode("latin-1").lower(), "https://" + host.decode("latin-1").lower())
            ):
                # the daemon's own page (its Host already checked above)
                return self.wrapped.render(request)
            if origin not in self.cors_origins:
                return self._refuse(
                    request,
                    ProxyError(
                        403,
                        "Requests from the web origin %r are not allowed (list trusted origins with --cors-origin)"
                        % (origin,),
                        "permission_error",
                        "origin_not_allowed",
                    ),
                )
            request.setHeader(b"access-control-allow-origin", origin_raw)
            request.setHeader(b"vary", b"Origin")
            request.setHeader(b"access-control-expose-headers", b"x-request-id")
            if request.method == b"OPTIONS":
                request.setResponseCode(204)
                request.setHeader(b"access-control-allow-methods", b"GET, POST, OPTIONS")
                request.setHeader(b"access-control-allow-headers", ALLOW_HEADERS)
                request.setHeader(b"access-control-max-age", b"600")
                return b""
        return self.wrapped.render(request)
