"""
The subscription's limit windows, from what the CLI reports in its
C{rate_limit_event} lines (C{rate_limit_info}), which it makes from the
API's C{anthropic-ratelimit-unified-*} response headers.

Every CLI reports the representative window (C{rateLimitType}: C{five_hour},
C{seven_day}, ...) with its C{status} and C{resetsAt}, the C{utilization}
(0..1) only past a warning threshold (C{allowed_warning}), and the extra
usage state (C{overageStatus}, C{overageResetsAt}, C{overageDisabledReason},
C{isUsingOverage}).  Newer CLIs (2.1.332) add C{unifiedWindows}: each
window's C{status}, C{utilization} and C{resetsAt}.  The windows are kept
merged, each with when it was last reported.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

#: the windows' lengths in seconds, for the pace
WINDOW_SECONDS = {
    "five_hour": 5 * 3600,
    "seven_day": 7 * 86400,
    "seven_day_opus": 7 * 86400,
    "seven_day_sonnet": 7 * 86400,
    "seven_day_overage_included": 7 * 86400,
}
_WINDOW_FIELDS = ("status", "utilization", "resetsAt", "surpassedThreshold")
_OVERAGE_FIELDS = ("overageStatus", "overageResetsAt", "overageDisabledReason", "isUsingOverage", "overageInUse")


def merge_limits(limits: Mapping[str, Any], info: Mapping[str, Any], now: float) -> dict[str, Any]:
    """
    C{limits} (C{{"windows": {name: {...}}, "overage": {...}}}) updated with
    one C{rate_limit_info} seen at C{now}.
    """
    windows = {k: dict(v) for k, v in (limits.get("windows") or {}).items()}
    overage = dict(limits.get("overage") or {})
    reported = info.get("unifiedWindows")
    if isinstance(reported, Mapping):
        for name, w in reported.items():
            if isinstance(w, Mapping):
                windows[str(name)] = _window(w, now)
    name = info.get("rateLimitType")
    if isinstance(name, str):
        window = windows.get(name, {})
        fresh = _window(info, now)
        if "utilization" not in fresh and window.get("resetsAt") == fresh.get("resetsAt"):
            # the CLI names no utilization while under the thresholds: keep the one known for this period
            fresh = dict(fresh, **{k: window[k] for k in ("utilization",) if k in window})
        windows[name] = fresh
    for key in _OVERAGE_FIELDS:
        if key in info:
            overage[key] = info[key]
    if overage:
        overage["observed_at"] = now
    return {"windows": windows, "overage": overage}


def _window(w: Mapping[str, Any], now: float) -> dict[str, Any]:
    out: dict[str, Any] = {k: w[k] for k in _WINDOW_FIELDS if w.get(k) is not None}
    out["observed_at"] = now
    return out


def pace(window: Mapping[str, Any], name: str, now: float) -> Optional[float]:
    """
    When the window's limit is reached at the rate used so far in this
    period, if before it resets; C{None} if not, or the data does not allow
    (no utilization, an unknown length, nothing used yet).
    """
    utilization, resets, length = window.get("utilization"), window.get("resetsAt"), WINDOW_SECONDS.get(name)
    if not isinstance(utilization, (int, float)) or not isinstance(resets, (int, float)) or length is None:
        return None
    elapsed = length - (resets - now)
    if utilization <= 0 or elapsed <= 0 or resets <= now:
        return None
    if utilization >= 1:
        return now
    reached = now + (1 - utilization) * elapsed / utilization
    return reached if reached < resets else None


def describe(limits: Mapping[str, Any], now: float) -> dict[str, Any]:
    """
    The windows with their pace (C{reached_at}), for C{/v1/usage}.
    """
    windows = {}
    for name, w in (limits.get("windows") or {}).items():
        windows[name] = dict(w, reached_at=pace(w, name, now), seconds=WINDOW_SECONDS.get(name))
    return {"windows": windows, "overage": dict(limits.get("overage") or {})}
