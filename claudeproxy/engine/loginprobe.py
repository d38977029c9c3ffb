"""
Does the installed CLI take the subscription login in C{-p} mode?  Its
docs say C{--bare} (which never reads OAuth or the keychain) will become
the default for C{-p}; a CLI that does that answers every API request
"Not logged in" although C{claude} in a terminal is logged in.

The probe asks nothing of Anthropic and spends no quota: a C{-p} run with
the daemon's flags against an address where nothing listens.  A CLI that
takes the login gets as far as connecting (and fails there); one that
refuses it says "Not logged in" before any connection.  Pure functions;
the caller runs the process.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional, Sequence

#: where nothing listens (TCP port 1 on loopback)
NOWHERE = "http://127.0.0.1:1"

ACCEPTED = "accepted"
REFUSED = "refused"
UNKNOWN = "unknown"

_REFUSED_MARKERS = ("not logged in", "please run /login", "invalid api key", "failed to authenticate")
_CONNECT_MARKERS = ("connect", "econnrefused", "connection refused", "fetch failed")

REFUSED_WARNING = (
    "The installed Claude Code CLI refuses the subscription login in -p mode (it answers 'Not logged in' "
    "although a login is there; its docs say --bare, which never reads OAuth or the keychain, will become the "
    "default for -p). claudeproxy cannot serve requests with it: install the last CLI version that takes the "
    "login (npm install -g @anthropic-ai/claude-code@VERSION) or set CLAUDE_CODE_OAUTH_TOKEN from "
    "`claude setup-token`."
)


def probe_argv(claude: str, settings: Sequence[str]) -> list[str]:
    return [
        claude,
        "-p",
        "--output-format",
        "json",
        "--model",
        "haiku",
        "--tools",
        "",
        "--system-prompt",
        "",
        "--no-session-persistence",
        *settings,
        "hi",
    ]


def probe_env(env: Mapping[str, str]) -> dict[str, str]:
    return dict(env, ANTHROPIC_BASE_URL=NOWHERE, CLAUDE_CODE_MAX_RETRIES="0")


def verdict(stdout: str) -> str:
    """
    L{ACCEPTED}, L{REFUSED} or L{UNKNOWN}, from the probe's JSON result.
    """
    result: Optional[dict[str, object]] = None
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                result = parsed
    if result is None:
        return UNKNOWN
    text = str(result.get("result") or "").lower()
    if any(m in text for m in _REFUSED_MARKERS):
        return REFUSED
    if any(m in text for m in _CONNECT_MARKERS):
        return ACCEPTED
    if not result.get("is_error"):
        return ACCEPTED
    return UNKNOWN


# -- the stored login ------------------------------------------------------------


def credentials_path(env: Mapping[str, str]) -> str:
    """
    Where the CLI keeps its login on Linux: C{.credentials.json} in its
    config directory (C{$CLAUDE_CONFIG_DIR}, else C{~/.claude}).  macOS
    keeps it in the Keychain instead.
    """
    config = env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".claude")
    return os.path.join(config, ".credentials.json")


def stored_login(text: str, now: float) -> Optional[dict[str, Any]]:
    """
    What a credentials file says of the login, without its secrets: when
    the access token expires (C{expires_at}, epoch seconds, and
    C{expires_in}), whether the CLI can refresh it (a refresh token is
    there), the scopes and the subscription.  None when it holds no
    claude.ai login.
    """
    try:
        data = json.loads(text)
    except ValueError:
        return None
    oauth = data.get("claudeAiOauth") if isinstance(data, Mapping) else None
    if not isinstance(oauth, Mapping):
        return None
    expires_ms = oauth.get("expiresAt")
    expires = expires_ms / 1000.0 if isinstance(expires_ms, (int, float)) and expires_ms > 0 else None
    scopes = oauth.get("scopes")
    return {
        "has_access_token": bool(oauth.get("accessToken")),
        "refreshable": bool(oauth.get("refreshToken")),
        "expires_at": expires,
        "expires_in": expires - now if expires is not None else None,
        "scopes": [str(s) for s in scopes] if isinstance(scopes, list) else None,
        "subscription": oauth.get("subscriptionType") if isinstance(oauth.get("subscriptionType"), str) else None,
    }


def read_stored_login(env: Mapping[str, str], now: float) -> Optional[dict[str, Any]]:
    """
    L{stored_login} of the CLI's credentials file, None when there is none
    (a login from C{CLAUDE_CODE_OAUTH_TOKEN}, the macOS Keychain, an API key).
    """
    try:
        with open(credentials_path(env), encoding="utf-8") as f:
            text = f.read(1 << 20)
    except OSError:
        return None
    return stored_login(text, now)
