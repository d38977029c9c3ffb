"""
The plan guard's state: what the subscription's plan allows now, from the
rate-limit reports the CLI made during turns and the usage check's
answers; whether requests are paused to keep inside it, and the request
that crossed into extra usage.  The decisions are
L{claudeproxy.engine.planguard}'s pure functions.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.logger import Logger

from ..config import Config
from ..engine.planguard import Pause, freshest_windows, in_extra_usage, pause, window_words
from ..engine.serve import TurnServer
from ..engine.streaming import Outcome
from ..engine.usageprobe import UsageReport


class PlanWatch:
    """
    What the plan allows, as known now.

    @ivar probed_limits: the subscription's usage the daemon asked the CLI
        for (get_usage, see L{claudeproxy.engine.usageprobe}), None before
        the first answer.
    @ivar usage_report: the last answer to the usage check, whatever it
        said.
    @ivar in_extra_usage: whether the last report said extra usage paid the
        request.
    """

    def __init__(self, config: Config, turns: TurnServer, wallclock: Callable[[], float], log: Logger) -> None:
        self.config = config
        #: the CLI's last rate-limit report and the limit windows merged
        #: from every report
        self.turns = turns
        self.wallclock = wallclock
        self.log = log
        self.probed_limits: Optional[dict[str, Any]] = None
        self.usage_report: Optional[UsageReport] = None
        self.in_extra_usage = False

    def paused(self) -> Optional[Pause]:
        """
        Why API requests are refused now to keep inside the plan, if they
        are (L{claudeproxy.engine.planguard.pause}).
        """
        return pause(
            self.turns.quota,
            self.turns.limits,
            self.probed_limits,
            self.config.extra_usage,
            self.config.reserve,
            self.wallclock(),
        )

    def usage_reported(self, report: UsageReport) -> None:
        """
        The usage check's answer: its windows, where the CLI could read
        them, join what the rate-limit reports said (the newer wins).
        """
        self.usage_report = report
        if report.available:
            was = self.paused()
            self.probed_limits = report.to_json()
            now = self.paused()
            if was is not None and now is None:
                self.log.info("the plan allows requests again: {was} no longer holds", was=was.summary())
            elif now is not None and was is None:
                self.log.warn("API requests {summary}", summary=now.summary())

    def known_limits(self) -> dict[str, Any]:
        """
        The limit windows as known now: each from the CLI's last report of
        it or the usage asked for, whichever is newer; the extra usage
        state, with its monthly limit and credits used where asked for.
        """
        limits = self.turns.limits
        overage = dict(limits.get("overage") or {})
        probed = self.probed_limits
        if probed is not None and probed.get("extra_usage") is not None:
            overage["extra_usage"] = probed["extra_usage"]
        return {"windows": freshest_windows(limits, probed), "overage": overage}

    def state(self) -> dict[str, Any]:
        """
        The plan guard's settings and state, for /health and /v1/usage.
        """
        paused = self.paused()
        return {
            "extra_usage": self.config.extra_usage,
            "reserve": self.config.reserve,
            "in_extra_usage": self.in_extra_usage,
            "paused": paused.to_json() if paused is not None else None,
            "summary": paused.summary() if paused is not None else "serving",
        }

    def watch(self, rid: str, outcome: Optional[Outcome]) -> None:
        """
        Log the request that crossed into extra usage (paid beyond the
        plan), from the rate-limit report its turn brought.
        """
        info = outcome.rate_limit if outcome is not None else None
        if info is None:
            return
        now_in = in_extra_usage(info)
        if now_in and not self.in_extra_usage:
            resets = info.get("resetsAt")
            self.log.warn(
                "{rid} crossed into extra usage: the plan's {window} is reached (resets {resets}); {then}",
                rid=rid,
                window=window_words(info.get("rateLimitType") if isinstance(info.get("rateLimitType"), str) else None),
                resets=resets if resets is not None else "?",
                then=(
                    "later requests may spend extra usage (--extra-usage allow)"
                    if self.config.extra_usage == "allow"
                    else "later requests get 429 plan_limit_reached until it resets"
                ),
            )
        self.in_extra_usage = now_in
