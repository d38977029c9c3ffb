"""
Errors a client sees (each protocol renders them in its own shape), and
the mapping from what the CLI reports to them.  Pure functions; no I/O.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import attrs

INSTALL_HINT = (
    "Install it with `npm install -g @anthropic-ai/claude-code`, log in once by "
    "running `claude`, then restart claudeproxy (or pass --claude PATH)."
)
LOGIN_HINT = (
    "The Claude Code CLI is not logged in or its login has expired: run `claude` "
    "in a terminal and log in (/login), then retry."
)


#: statuses a retry of the same request cannot change
NOT_RETRYABLE_STATUSES = frozenset({400, 401, 402, 403, 404, 405, 413, 422})
#: errors of other statuses a retry does not fix: the model did what it
#: does with this request (it was already asked again once)
#: (a client over its budget waits for the reset, named in Retry-After)
#: (a request refused to keep inside the plan waits for the window's reset)
#: (upstream's 5xx and 529 were retried by the CLI as far as the daemon's
#: policy allows, or upstream forbade it: a client's SDK retrying would
#: multiply the upstream calls)
NOT_RETRYABLE_CODES = frozenset(
    {
        "tool_choice_not_followed",
        "structured_output_missing",
        "budget_exceeded",
        "plan_limit_reached",
        "reserve_reached",
        "upstream_overloaded",
        "upstream_error",
    }
)
#: the longest Retry-After the official SDKs wait for (a longer one, they
#: replace with their own short backoff)
SDK_RETRY_AFTER_MAX = 60
#: the Retry-After given with an upstream 5xx or 529 (upstream's own hint
#: never reaches the daemon: the CLI keeps the headers)
UPSTREAM_RETRY_AFTER = 10


@attrs.frozen(auto_exc=True)
class ProxyError(Exception):
    """
    An error answered to the client: its HTTP status, its kind (C{type}),
    code and the request field it concerns; each protocol renders it in
    its own shape.
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: Optional[str] = None
    param: Optional[str] = None
    retry_after: Optional[int] = None
    #: the message in Anthropic's own words, where it has them (the
    #: Messages API answers with this instead of C{message})
    anthropic_message: Optional[str] = None

    @property
    def retryable(self) -> bool:
        """
        Whether the same request may succeed if sent again (the official
        SDKs retry what C{x-should-retry} does not forbid).
        """
        if self.status == 429 and self.retry_after is not None and self.retry_after > SDK_RETRY_AFTER_MAX:
            # the SDKs ignore a longer Retry-After and retry within seconds,
            # which a subscription window that resets later cannot answer
            return False
        return self.status not in NOT_RETRYABLE_STATUSES and self.code not in NOT_RETRYABLE_CODES

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if not self.retryable:
            headers["x-should-retry"] = "false"
        return headers


def bad_request(message: str, param: Optional[str] = None, code: str = "invalid_request") -> ProxyError:
    return ProxyError(400, message, "invalid_request_error", code, param)


def cli_missing(reason: str) -> ProxyError:
    return ProxyError(
        503,
        "The Claude Code CLI is not available: %s. %s" % (reason, INSTALL_HINT),
        "server_error",
        "cli_unavailable",
    )


#: an over-long prompt: the real API's words ("prompt is too long: N
#: tokens > M maximum"), or the CLI's rewording of them ("Prompt is too
#: long · the request is ~N tokens (limit M) but ..."), or the CLI's own
#: refusal ("Prompt is too long")
_TOO_LONG = re.compile(r"prompt is too long", re.I)
_FIGURES = (
    re.compile(r"(\d+) tokens > (\d+) maximum"),
    re.compile(r"~?(\d+) tokens \(limit (\d+)\)"),
)


def context_length_exceeded(detail: str) -> Optional[ProxyError]:
    """
    The error for an over-long prompt, or None if C{detail} is about
    something else: whether the API answered 400 "prompt is too long: N
    tokens > M maximum" or the CLI refused the turn by its own count
    ("Prompt is too long").  OpenAI's shape (C{context_length_exceeded},
    the figures in OpenAI's words) and Anthropic's message both.
    """
    if _TOO_LONG.search(detail) is None:
        return None
    figures = next((m for m in (f.search(detail) for f in _FIGURES) if m is not None), None)
    if figures is not None:
        used, limit = int(figures.group(1)), int(figures.group(2))
        anthropic = "prompt is too long: %d tokens > %d maximum" % (used, limit)
        message = (
            "This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. "
            "Please reduce the length of the messages. (%s)" % (limit, used, anthropic)
        )
    else:
        anthropic = "prompt is too long"
        message = (
            "The messages exceed this model's maximum context length (prompt is too long). "
            "Please reduce the length of the messages."
        )
    return ProxyError(
        400, message, "invalid_request_error", "context_length_exceeded", "messages", anthropic_message=anthropic
    )


def cli_failed(message: str, stderr_tail: str = "") -> ProxyError:
    """
    The CLI crashed or printed something that is not stream-json.
    """
    if stderr_tail.strip():
        message = "%s; its stderr ended with: %s" % (message, stderr_tail.strip())
    return ProxyError(502, message, "server_error", "cli_error")


def timeout(message: str) -> ProxyError:
    return ProxyError(504, message, "server_error", "timeout")


_EXTRA_USAGE_MARKERS = ("third-party apps", "extra usage")
_LOGIN_MARKERS = ("not logged in", "please run /login", "failed to authenticate", "invalid api key", "oauth token")


def _clean(text: str) -> str:
    for prefix in ("API Error: ",):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.strip()


def error_from_result(
    result: Mapping[str, Any],
    rate_limit: Optional[Mapping[str, Any]] = None,
    now: float = 0.0,
) -> ProxyError:
    """
    Map a C{result} line with C{is_error: true} (plus the last
    C{rate_limit_info} seen, if any) to the error the client gets.
    """
    status = result.get("api_error_status")
    text = result.get("result")
    if not isinstance(text, str) or not text:
        errors = result.get("errors")
        text = "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else ""
    if not text:
        text = "the Claude Code CLI reported an error (%s)" % (result.get("subtype", "unknown"),)
    detail = _clean(text)
    lowered = detail.lower()
    too_long = context_length_exceeded(detail) if status in (None, 400, 413) else None
    if too_long is not None:
        return too_long
    if status == 401 or any(m in lowered for m in _LOGIN_MARKERS):
        return ProxyError(
            401, "%s Upstream said: %s" % (LOGIN_HINT, detail), "authentication_error", "cli_not_logged_in"
        )
    if status == 429:
        retry_after = None
        # the subscription's window refused the request: the client may
        # come back when it resets; a 429 while the window allows
        # (a burst limit, "slow down") says nothing of when
        if rate_limit is not None and rate_limit.get("status") == "rejected":
            resets = rate_limit.get("resetsAt")
            if isinstance(resets, (int, float)) and resets > now:
                retry_after = max(1, int(resets - now + 0.999))
        return ProxyError(
            429, "Upstream rate limit: %s" % (detail,), "rate_limit_error", "rate_limit_exceeded", None, retry_after
        )
    if any(m in lowered for m in _EXTRA_USAGE_MARKERS):
        return ProxyError(402, detail, "insufficient_quota", "extra_usage_required")
    if status == 400:
        return ProxyError(
            400, "Upstream rejected the request: %s" % (detail,), "invalid_request_error", "upstream_invalid_request"
        )
    if status == 403:
        return ProxyError(403, "Upstream refused the request: %s" % (detail,), "permission_error", "upstream_forbidden")
    if status == 404:
        return ProxyError(
            404,
            "Upstream does not know this model or resource: %s" % (detail,),
            "invalid_request_error",
            "model_not_found",
        )
    if status == 413:
        return ProxyError(
            413, "Upstream says the request is too large: %s" % (detail,), "invalid_request_error", "request_too_large"
        )
    if status == 529 or "overloaded" in lowered:
        return ProxyError(
            503,
            "Upstream is overloaded: %s" % (detail,),
            "server_error",
            "upstream_overloaded",
            retry_after=UPSTREAM_RETRY_AFTER,
        )
    if isinstance(status, int) and status >= 500:
        return ProxyError(
            502,
            "Upstream error %d: %s" % (status, detail),
            "server_error",
            "upstream_error",
            retry_after=UPSTREAM_RETRY_AFTER,
        )
    return ProxyError(502, "The Claude Code CLI could not answer: %s" % (detail,), "server_error", "cli_error")
