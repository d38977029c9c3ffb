"""
Prometheus metrics (GET /metrics), in their own registry.

Request counts and latencies are recorded as requests end; the process pool,
queue and sessions are read from the live objects at scrape time.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Live(Collector):
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Any]:
        s = self.read()
        yield GaugeMetricFamily("claudeproxy_requests_in_flight", "Requests being served now", value=s["in_flight"])
        yield GaugeMetricFamily("claudeproxy_requests_queued", "Requests waiting for a slot", value=s["queued"])
        pool = s["pool"]
        yield GaugeMetricFamily(
            "claudeproxy_cli_processes", "Live CLI processes (serving, warm, kept)", value=pool["live_processes"]
        )
        idle = GaugeMetricFamily(
            "claudeproxy_warm_idle", "Warm CLI processes waiting", value=sum(e["count"] for e in pool["warm"]["idle"])
        )
        yield idle
        yield GaugeMetricFamily(
            "claudeproxy_warm_ready",
            "Warm CLI processes waiting that have finished starting",
            value=pool["warm"]["ready"],
        )
        hits = CounterMetricFamily("claudeproxy_warm_pool", "Warm pool lookups by result", labels=["result"])
        # a hit on a process still starting is its own result: it waits
        # for the rest of the start
        hits.add_metric(["hit"], pool["warm"]["hits"] - pool["warm"]["starting"])
        hits.add_metric(["starting"], pool["warm"]["starting"])
        hits.add_metric(["miss"], pool["warm"]["misses"])
        # a one-shot's process, its conversation cleared
        hits.add_metric(["reused"], pool["warm"]["generic"]["reused"])
        per_key = CounterMetricFamily(
            "claudeproxy_warm_pool_key",
            "Warm pool lookups by result, per key (the settings a process is started with; the key label names them all)",
            labels=["key", "model", "system_prompt", "effort", "tools", "max_tokens", "result"],
        )
        for k in pool["warm"].get("keys", []):
            labels = [
                k["key"],
                str(k["model"]),
                str(k["system_prompt"]).lower(),
                str(k["effort"] or "-"),
                str(k["tools"]),
                str(k["max_tokens"] or "-"),
            ]
            per_key.add_metric(labels + ["hit"], k["hits"])
            per_key.add_metric(labels + ["miss"], k["misses"])
        yield per_key
        yield hits
        yield GaugeMetricFamily("claudeproxy_live_sessions", "Live conversations kept", value=pool["sessions"]["live"])
        sess = CounterMetricFamily("claudeproxy_sessions", "Live conversation lookups and ends", labels=["event"])
        for event in ("hits", "misses", "expired", "evicted"):
            sess.add_metric([event], pool["sessions"][event])
        yield sess
        yield GaugeMetricFamily(
            "claudeproxy_tool_waits", "CLI processes waiting for tool results", value=pool["tools"]["waiting"]
        )
        exits = CounterMetricFamily("claudeproxy_cli_exits", "CLI processes ended, by cause", labels=["cause"])
        for cause, n in sorted(s["exits"].items()):
            exits.add_metric([cause], n)
        yield exits


class Metrics:
    """
    The daemon's metrics.  C{read_live} returns the live state (see
    L{claudeproxy.web.serving.Serving.live_state}).
    """

    def __init__(self, read_live: Optional[Callable[[], dict[str, Any]]] = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "claudeproxy_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "claudeproxy_request_seconds",
            "Request duration",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "claudeproxy_first_token_seconds",
            "Time to the first token",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter("claudeproxy_tokens", "Tokens by kind", ["kind"], registry=self.registry)
        if read_live is not None:
            self.registry.register(_Live(read_live))

    def observe(
        self,
        endpoint: str,
        status: int,
        seconds: float,
        first_token: Optional[float],
        tokens_in: int = 0,
        tokens_out: int = 0,
        cached: int = 0,
    ) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)
        if first_token is not None:
            self.first_token.labels(endpoint).observe(first_token)
        if tokens_in:
            self.tokens.labels("input").inc(tokens_in)
        if tokens_out:
            self.tokens.labels("output").inc(tokens_out)
        if cached:
            self.tokens.labels("cached").inc(cached)

    def render(self) -> bytes:
        return generate_latest(self.registry)
