"""
Keeping API requests inside the plan: no surprise extra usage, and a
reserve left for the user's own Claude Code.

The evidence is what the CLI reported last: its C{rate_limit_info}
(C{status} C{rejected}, or extra usage in use: C{isUsingOverage},
C{overageInUse}) and the windows' utilization, from C{rate_limit_event}
lines or from the usage the daemon asked for (C{get_usage}, see
L{claudeproxy.engine.usageprobe}).  Whichever is newer decides.  A pause
ends when its window resets or a later report says the plan allows.

Pure functions; the caller keeps the state and the clock.
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Mapping, Optional

import attrs

from .errors import ProxyError

#: the error codes of a request refused to keep inside the plan
PLAN_LIMIT_REACHED = "plan_limit_reached"
RESERVE_REACHED = "reserve_reached"
CODES = frozenset({PLAN_LIMIT_REACHED, RESERVE_REACHED})

EXTRA_USAGE_MODES = ("deny", "allow")

#: the windows in words
WINDOW_NAMES = {
    "five_hour": "5-hour limit",
    "seven_day": "weekly limit",
    "seven_day_opus": "weekly Opus limit",
    "seven_day_sonnet": "weekly Sonnet limit",
    "seven_day_oauth_apps": "weekly limit for apps",
    "seven_day_overage_included": "weekly limit",
    "overage": "extra usage limit",
}


def window_words(name: Optional[str]) -> str:
    if not name:
        return "usage limit"
    return WINDOW_NAMES.get(name, name.replace("_", " ") + " limit")


def iso(t: Optional[float]) -> str:
    if t is None:
        return "at an unknown time"
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class Pause:
    """
    Why API requests are refused now: the C{code}, the C{window} (the
    CLI's name) and when it resets (epoch seconds, None if not said), its
    C{utilization} (0..1) where known.
    """

    code: str
    window: Optional[str]
    resets_at: Optional[float]
    utilization: Optional[float] = None
    reserve: Optional[float] = None

    def summary(self) -> str:
        """
        In words, e.g. "paused: weekly limit reached, resets 2026-12-10T14:00:00Z".
        """
        if self.code == RESERVE_REACHED:
            what = "reserve reached (%s at %s, %g%% kept for you)" % (
                window_words(self.window),
                _percent(self.utilization),
                self.reserve or 0,
            )
        else:
            what = "%s reached" % (window_words(self.window),)
        return "paused: %s, resets %s" % (what, iso(self.resets_at))

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "window": self.window,
            "resets_at": self.resets_at,
            "utilization": self.utilization,
            "reserve": self.reserve,
            "summary": self.summary(),
        }

    def error(self, now: float) -> ProxyError:
        """
        The 429 a request gets (C{Retry-After} until the reset;
        C{x-should-retry: false}: a retry in a moment cannot succeed).
        """
        if self.code == RESERVE_REACHED:
            message = (
                "%s: the subscription's %s is at %s, and claudeproxy keeps the last %g%% for your own use "
                "(--reserve); it resets %s."
                % (
                    RESERVE_REACHED,
                    window_words(self.window),
                    _percent(self.utilization),
                    self.reserve or 0,
                    iso(self.resets_at),
                )
            )
        else:
            message = (
                "%s: the subscription's %s is reached; it resets %s. claudeproxy does not spend extra usage "
                "(paid beyond the plan) unless started with --extra-usage allow."
                % (PLAN_LIMIT_REACHED, window_words(self.window), iso(self.resets_at))
            )
        retry_after = max(1, math.ceil(self.resets_at - now)) if self.resets_at is not None else None
        return ProxyError(429, message, "rate_limit_error", self.code, None, retry_after)


def _percent(utilization: Optional[float]) -> str:
    if utilization is None:
        return "an unknown share"
    return "%.0f%%" % (utilization * 100,)


def _number(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def in_extra_usage(info: Mapping[str, Any]) -> bool:
    """
    Whether a C{rate_limit_info} says the request was paid by extra usage.
    """
    return info.get("isUsingOverage") is True or info.get("overageInUse") is True


def plan_reached(
    report: Optional[Mapping[str, Any]], probed: Optional[Mapping[str, Any]], now: float
) -> Optional[Pause]:
    """
    The plan's own limit, reached: by the newer of the last
    C{rate_limit_info} (C{report}, with C{observed_at}) and the last usage
    asked for (C{probed}: L{claudeproxy.engine.usageprobe} limits, with
    C{observed_at}).  A window past its reset no longer counts.
    """
    if probed is not None and not probed.get("windows"):
        # the check could not read the plan's usage: it says nothing
        probed = None
    report_at = _number(report.get("observed_at")) if report else None
    probed_at = _number(probed.get("observed_at")) if probed else None
    if report is not None and (probed_at is None or (report_at is not None and report_at >= probed_at)):
        if report.get("status") != "rejected" and not in_extra_usage(report):
            return None
        resets = _number(report.get("resetsAt"))
        if resets is not None and resets <= now:
            return None
        window = report.get("rateLimitType")
        return Pause(PLAN_LIMIT_REACHED, window if isinstance(window, str) else None, resets, 1.0)
    if probed is None:
        return None
    for name, w in sorted((probed.get("windows") or {}).items()):
        utilization, resets = _number(w.get("utilization")), _number(w.get("resetsAt"))
        if utilization is not None and utilization >= 1.0 and (resets is None or resets > now):
            return Pause(PLAN_LIMIT_REACHED, name, resets, utilization)
    return None


def reserve_reached(windows: Mapping[str, Mapping[str, Any]], reserve: float, now: float) -> Optional[Pause]:
    """
    The first window (the fullest) whose utilization reached 100 - C{reserve}
    percent and has not reset since; a window reported rejected counts as
    full.
    """
    threshold = (100.0 - reserve) / 100.0
    found: Optional[Pause] = None
    for name, w in sorted(windows.items()):
        utilization = _number(w.get("utilization"))
        if w.get("status") == "rejected":
            utilization = max(utilization or 0.0, 1.0)
        resets = _number(w.get("resetsAt"))
        if utilization is None or utilization < threshold or (resets is not None and resets <= now):
            continue
        if found is None or (found.utilization or 0) < utilization:
            found = Pause(RESERVE_REACHED, name, resets, utilization, reserve)
    return found


def freshest_windows(*sources: Optional[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """
    The windows of several C{{"windows": {...}}} sources, each window from
    the source that observed it last.
    """
    out: dict[str, dict[str, Any]] = {}
    for source in sources:
        for name, w in ((source or {}).get("windows") or {}).items():
            seen = out.get(name)
            if seen is None or (_number(w.get("observed_at")) or 0) >= (_number(seen.get("observed_at")) or 0):
                out[name] = dict(w)
    return out


def pause(
    report: Optional[Mapping[str, Any]],
    limits: Optional[Mapping[str, Any]],
    probed: Optional[Mapping[str, Any]],
    extra_usage: str,
    reserve: float,
    now: float,
) -> Optional[Pause]:
    """
    Why requests are refused now, if they are: the plan's limit (unless
    C{extra_usage} is C{allow}), then the reserve (when C{reserve} > 0).
    C{limits} are the windows merged from the CLI's reports
    (L{claudeproxy.engine.limits.merge_limits}).
    """
    if extra_usage != "allow":
        reached = plan_reached(report, probed, now)
        if reached is not None:
            return reached
    if reserve > 0:
        return reserve_reached(freshest_windows(limits, probed), reserve, now)
    return None
