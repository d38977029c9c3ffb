"""
C{claudeproxy status}: the dashboard's summary in the terminal, from a
running daemon's C{GET /v1/usage}.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any, Callable, Optional, TextIO

from ..store.usage import COUNTS

#: (host, port, key, timeout) -> (status, body)
Fetch = Callable[[str, int, Optional[str], float], tuple[int, bytes]]


def fetch_usage(host: str, port: int, key: Optional[str], timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Authorization": "Bearer " + key} if key else {}
        conn.request("GET", "/v1/usage", headers=headers)
        response = conn.getresponse()
        return response.status, response.read(16 * 1024 * 1024)
    finally:
        conn.close()


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if isinstance(t, (int, float)) else "-"


def _cost(c: dict[str, Any]) -> str:
    """
    A cost in dollars, with how many requests are unpriced.
    """
    text = "$%.4f" % (c.get("cost") or 0.0,)
    if c.get("unpriced"):
        text += " (+%s unpriced)" % (_n(c["unpriced"]),)
    return text


def extra_usage_words(extra: dict[str, Any]) -> str:
    """
    The CLI's C{extra_usage} (from get_usage) in words: off, or the credits
    used of the monthly limit (both in cents of C{currency}, as the CLI's
    own /usage reads them).
    """
    if not extra.get("is_enabled"):
        return "off"
    currency = str(extra.get("currency") or "USD")

    def money(cents: Any) -> str:
        return "?" if not isinstance(cents, (int, float)) else "%.2f %s" % (cents / 100.0, currency)

    limit = extra.get("monthly_limit")
    return "on, %s used of %s" % (money(extra.get("used_credits")), "no limit" if limit is None else money(limit))


def summary(figures: dict[str, Any], window: str = "day") -> str:
    """
    The figures as lines of text.
    """
    out = []
    cli = figures.get("cli") or {}
    login = cli.get("login") or {}
    state = login.get("logged_in")
    logged = (
        "login unknown" if state is None else ("logged in" if state else "NOT logged in (run `claude`, then /login)")
    )
    out.append("claudeproxy %s   CLI %s, %s" % (figures.get("version"), cli.get("version") or "unknown", logged))
    stored = login.get("stored")
    if isinstance(stored, dict) and stored.get("expires_at"):
        out.append(
            "login: access token expires %s (%s)"
            % (
                _when(stored["expires_at"]),
                "the CLI refreshes it itself"
                if stored.get("refreshable")
                else "no refresh token: run `claude`, then /login",
            )
        )
    quota = figures.get("quota")
    if quota:
        resets = quota.get("resetsAt")
        out.append(
            "quota: %s%s (reported %s)"
            % (quota.get("status", "?"), ", resets " + _when(resets) if resets else "", _when(quota.get("observed_at")))
        )
    else:
        out.append("quota: not reported yet")
    limits = figures.get("limits") or {}
    for name, w in sorted((limits.get("windows") or {}).items()):
        used = w.get("utilization")
        out.append(
            "limit %s: %s%s%s%s"
            % (
                name,
                w.get("status") or ("asked" if w.get("source") == "get_usage" else "?"),
                "" if used is None else ", %d%% used" % (round(used * 100),),
                ", resets " + _when(w["resetsAt"]) if w.get("resetsAt") else "",
                ", at this rate reached " + _when(w["reached_at"]) if w.get("reached_at") else "",
            )
        )
    overage = limits.get("overage") or {}
    if overage.get("overageStatus") or "isUsingOverage" in overage:
        out.append(
            "extra usage: %s (%s)"
            % ("in use" if overage.get("isUsingOverage") else "not in use", overage.get("overageStatus", "?"))
        )
    extra = overage.get("extra_usage")
    if isinstance(extra, dict):
        out.append("extra usage this month: %s" % (extra_usage_words(extra),))
    guard = figures.get("plan_guard")
    if isinstance(guard, dict):
        out.append(
            "API requests: %s (extra usage %s%s)"
            % (
                guard.get("summary", "?"),
                "allowed" if guard.get("extra_usage") == "allow" else "refused",
                ", %g%% reserved for you" % (guard["reserve"],) if guard.get("reserve") else "",
            )
        )
    live = figures.get("live") or {}
    out.append(
        "now: %s in flight, %s queued, %s warm, %s live conversations, %s tool waits; %s served since start"
        % tuple(_n(live.get(k)) for k in ("in_flight", "queued", "warm", "conversations", "tool_waits", "served"))
    )
    history = figures.get("history")
    if history is None:
        out.append("no usage history (the daemon has no state directory)")
        return "\n".join(out) + "\n"
    win = history["windows"][window]
    out.append("")
    out.append("last %s, per client:" % (window,))
    rows = [("client", "requests", "errors", "input", "output", "cache read", "cache write", "API cost")]
    for name, c in sorted(win["clients"].items()):
        rows.append((name, *(_n(c[k]) for k in COUNTS), _cost(c)))
    if len(rows) == 1:
        out.append("  no requests")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            out.append(
                "  "
                + "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
    total = win.get("total")
    if total is not None:
        plan = figures.get("plan") or {}
        was = win.get("saved")
        out.append(
            "  API-equivalent cost %s%s"
            % (
                _cost(total),
                ""
                if was is None
                else "; against the %s plan's $%.2f/month: %s"
                % (
                    plan.get("name"),
                    plan["monthly_price"],
                    "saved $%.2f" % (was,) if was >= 0 else "the plan cost $%.2f more" % (-was,),
                ),
            )
        )
        for model, m in sorted((win.get("models") or {}).items()):
            out.append("    %s: %s requests, %s" % (model or "(none)", _n(m["requests"]), _cost(m)))
    if win["hours"]:
        per_hour: dict[int, int] = {}
        for h in win["hours"]:
            per_hour[h["hour"]] = per_hour.get(h["hour"], 0) + h["requests"]
        peak = max(per_hour.items(), key=lambda kv: kv[1])
        out.append("  busiest hour: %s with %s requests" % (_when(peak[0]), _n(peak[1])))
    errors = history.get("errors") or []
    out.append("")
    out.append("last errors:" if errors else "last errors: none")
    for e in errors[:10]:
        out.append(
            "  %s  %s  %s  %s %s  %s ms"
            % (
                _when(e["time"]),
                e["client"],
                e["endpoint"],
                e["status"],
                e["error_code"] or "",
                _n(round(e["total_ms"])),
            )
        )
    return "\n".join(out) + "\n"


def run(host: str, port: int, key: Optional[str], timeout: float, window: str, out: TextIO, fetch: Fetch) -> int:
    try:
        status, body = fetch(host, port, key, timeout)
    except (OSError, http.client.HTTPException) as e:
        out.write("no claudeproxy answers on %s:%d (%s); start it with `twistd -n claudeproxy`\n" % (host, port, e))
        return 1
    if status == 401:
        out.write("the daemon needs an API key: pass --api-key-file FILE (or set CLAUDEPROXY_API_KEY)\n")
        return 1
    try:
        figures = json.loads(body)
    except ValueError:
        figures = None
    if status != 200 or not isinstance(figures, dict) or figures.get("object") != "usage":
        out.write("%s:%d answered %d, not claudeproxy's /v1/usage\n" % (host, port, status))
        return 1
    out.write(summary(figures, window))
    return 0
