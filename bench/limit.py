"""
The benchmark's "limit" part (C{bench/run.py --only limit}): the daemon
against the physical limit, in one run, round by round interleaved:

- the waiting CLI: the same CLI started exactly as the daemon starts it
  (L{build_argv}, L{build_env}), left until it says it is ready, then one
  user line; its first token is the best any warm path can do;
- the warm daemon (C{--warm 4}), a plain request once the pool is at rest;
- turn 2 of a live conversation on it;
- the pair pattern: two requests of one kind at once;
- a client-like burst: a main request and two side requests of another
  key (a title and a tags request, their own system prompt, no tools), as
  opencode and Open WebUI send them;
- a direct cold CLI.

Each is printed against the waiting CLI; the pair and burst report how
many of their requests were served warm or live.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

from bench.common import FAST, Daemon, check, cold_cli, post_stream, together, user, waiting_cli

UPSTREAM_TEXT = "Hello from the fake upstream: a short streamed reply for the benchmark, in a few text deltas."
TITLE = "Generate a short title for the conversation. Answer with the title only."
TAGS = "Generate 1-3 broad tags for the conversation. Answer as JSON."
#: the daemon's --warm: two for the main key (a pair), one for each side key
WARM = 4


def ready_pool(d: Daemon, limit: float = 60.0) -> None:
    """
    Wait for the pool at rest: every key it keeps warm has its target of
    processes, all finished starting.
    """
    deadline = time.monotonic() + limit
    while True:
        warm = d.health()["pool"]["warm"]
        keys = [k for k in warm.get("keys", []) if k["target"]]
        generic = warm.get("generic", {})
        if generic.get("target"):
            if generic["ready"] >= generic["target"] and all(k["ready"] >= k["target"] for k in keys):
                return
        elif keys and all(k["ready"] >= k["target"] for k in keys):
            return
        if time.monotonic() > deadline:
            raise SystemExit("the warm pool never came to rest: %r" % (keys,))
        time.sleep(0.05)


def part_limit(args: Any, cli: str, env: dict[str, str], results: dict[str, Any]) -> None:
    workdir = tempfile.mkdtemp(prefix="cp-bench-limit-")
    d = Daemon(args.root, cli, env, ["--warm", str(WARM), "--max-sessions", "8", "--upstream-retries", "0"], "limit")
    ttft: dict[str, list[float]] = {k: [] for k in ("waiting_cli", "warm", "turn2", "cold_cli")}
    patterns = {"pair": [0, 0], "burst": [0, 0]}
    problems: list[str] = []
    try:
        # the side requests' key is learned from one burst first
        together(
            d.port,
            [
                {"model": "sonnet", "messages": [user("learn")]},
                {"model": "sonnet", "messages": [{"role": "system", "content": TITLE}, user("learn")]},
                {"model": "sonnet", "messages": [{"role": "system", "content": TAGS}, user("learn")]},
            ],
        )
        for i in range(args.n):
            ttft["waiting_cli"].append(waiting_cli(cli, env, workdir, "waiting %d" % (i,)))
            ready_pool(d)
            r = post_stream(d.port, {"model": "sonnet", "messages": [user("warm %d" % (i,))]})
            check(r, UPSTREAM_TEXT, "warm", problems)
            ttft["warm"].append(r.ttft or float("nan"))
            r2 = post_stream(
                d.port,
                {
                    "model": "sonnet",
                    "messages": [user("warm %d" % (i,)), {"role": "assistant", "content": r.text()}, user("again")],
                },
            )
            check(r2, UPSTREAM_TEXT, "turn 2", problems)
            ttft["turn2"].append(r2.ttft or float("nan"))
            ready_pool(d)
            for r in together(d.port, [{"model": "sonnet", "messages": [user("pair %d %d" % (i, j))]} for j in (0, 1)]):
                check(r, UPSTREAM_TEXT, "pair", problems)
                patterns["pair"][0] += r.served in FAST
                patterns["pair"][1] += 1
            ready_pool(d)
            burst = together(
                d.port,
                [
                    {"model": "sonnet", "messages": [user("main %d" % (i,))]},
                    {"model": "sonnet", "messages": [{"role": "system", "content": TITLE}, user("main %d" % (i,))]},
                    {"model": "sonnet", "messages": [{"role": "system", "content": TAGS}, user("main %d" % (i,))]},
                ],
            )
            for r in burst:
                check(r, UPSTREAM_TEXT, "burst", problems)
                patterns["burst"][0] += r.served in FAST
                patterns["burst"][1] += 1
            ttft["cold_cli"].append(cold_cli(cli, env, workdir, "cold %d" % (i,))[0])
            print(
                "  round %2d: waiting CLI %.0f ms, warm %.0f ms, turn 2 %.0f ms, cold CLI %.0f ms; served %s / %s"
                % (
                    i + 1,
                    ttft["waiting_cli"][-1] * 1000,
                    ttft["warm"][-1] * 1000,
                    ttft["turn2"][-1] * 1000,
                    ttft["cold_cli"][-1] * 1000,
                    patterns["pair"],
                    patterns["burst"],
                ),
                flush=True,
            )
    finally:
        d.stop()
    limit = statistics.median(ttft["waiting_cli"])
    out: dict[str, Any] = {"rounds": args.n, "problems": problems}
    for name, values in ttft.items():
        med = statistics.median(values)
        out[name] = {"ttft_median_ms": med * 1000, "x_waiting_cli": med / limit}
        print("  %-12s first token median %6.1f ms = %5.2f x the waiting CLI" % (name, med * 1000, med / limit))
    for name, (fast, n) in patterns.items():
        out[name] = {"served_warm_or_live": fast, "requests": n, "share": fast / n}
        print("  %-12s served warm or live %d/%d" % (name, fast, n))
    results["limit"] = out
    results.setdefault("targets", {})["limit"] = {
        "warm_x": out["warm"]["x_waiting_cli"],
        "turn2_x": out["turn2"]["x_waiting_cli"],
        "pair_share": out["pair"]["share"],
        "burst_share": out["burst"]["share"],
        "met": out["warm"]["x_waiting_cli"] <= 1.25
        and out["turn2"]["x_waiting_cli"] <= 1.25
        and out["pair"]["share"] >= 0.95
        and out["burst"]["share"] >= 0.95
        and not problems,
    }
