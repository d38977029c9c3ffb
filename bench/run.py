"""
The claudeproxy benchmark (not part of the test suite).

Run from the repository root with the test virtualenv::

    ~/.cache/claudeproxy/venv/bin/python bench/run.py   # all of it, n=15 rounds (the venv tests/run.sh makes)
    ~/.cache/claudeproxy/venv/bin/python bench/run.py --n 5        # fewer rounds
    ~/.cache/claudeproxy/venv/bin/python bench/run.py --only fake  # only the fake-CLI part

Part 1, the real Claude Code CLI against the fake Anthropic API (its own
subprocess, answering instantly): time to first token and total time of
C{--n} sequential streaming requests, interleaved round by round:

  a. the CLI started cold and fed one stream-json user line directly;
  b. the daemon with C{--warm 0} (a CLI spawned per request);
  c. the daemon with C{--warm 2} once the pool is full (default model, no
     system prompt, so each request takes a warm process);
  d. the second turn of a live conversation on the warm daemon.

Part 2, the fast fake CLI (bench/fakecli.py), with the daemon at
C{--max-concurrent 256 --max-queued 0 --warm 0}: 256 concurrent streams
(correctness, wall time, daemon RSS idle and peak), one slow reader taking
a 50 MB reply at 1 MB/s (daemon RSS growth), and daemon CPU seconds per
1,000 SSE frames.

Daemons run as C{twistd -n claudeproxy} subprocesses with this checkout on
PYTHONPATH (C{--root} names another checkout).  Results are printed and
written to bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import (  # noqa: E402
    Daemon,
    Reply,
    check,
    cold_cli,
    machine,
    post_stream,
    user,
)
from bench.fakecli import reply_text  # noqa: E402

COMMAND = "cd %s && %s bench/run.py" % (ROOT, sys.executable)
FAKECLI = os.path.join(HERE, "fakecli.py")
UPSTREAM_TEXT = "Hello from the fake upstream: a short streamed reply for the benchmark, in a few text deltas."


# -- small helpers ---------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rss_kb(pid: int) -> int:
    try:
        with open("/proc/%d/status" % (pid,)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """
    utime + stime of C{pid} itself (not its children).
    """
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(limit: float = 8.0, busy_max: float = 0.15) -> None:
    """
    Wait (at most C{limit} seconds) until the machine is nearly idle, so
    a CLI starting in the background does not slow what is measured next.
    """

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
        idle = parts[3] + parts[4]
        return sum(parts), idle

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        t0, i0 = sample()
        time.sleep(0.2)
        t1, i1 = sample()
        if t1 > t0 and 1 - (i1 - i0) / (t1 - t0) < busy_max:
            return


class Sampler:
    """
    The peak VmRSS of a process, sampled every C{interval} seconds.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            self.samples += 1
            self._stop.wait(self.interval)


# -- the fake upstream ---------------------------------------------------------------


def serve_upstream() -> None:
    """
    (In a subprocess.)  The fake Anthropic API, answering instantly; prints
    its URL.
    """
    from twisted.internet import reactor

    from tests.fakeanthropic import FakeAnthropic, Reply, ToolUse

    class Upstream(FakeAnthropic):
        def next_reply(self, body: dict[str, Any]) -> Any:
            # a request with a JSON schema gets its structured output
            if any(t.get("name") == "StructuredOutput" for t in body.get("tools") or []):
                return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse("StructuredOutput", {}),))
            return super().next_reply(body)

    fake = Upstream(reactor)
    fake.default = Reply(text=UPSTREAM_TEXT, chunk=16)
    print(fake.listen(), flush=True)
    reactor.run()


def start_upstream() -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve-upstream"], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        raise SystemExit("the fake upstream did not start")
    return proc, url


# -- daemons ---------------------------------------------------------------------------


# -- clients ------------------------------------------------------------------------------


# -- part 1: the real CLI -------------------------------------------------------------------


def part_real(args: argparse.Namespace, cli: str, env: dict[str, str], results: dict[str, Any]) -> None:
    workdir = tempfile.mkdtemp(prefix="cp-bench-cold-")
    cold = Daemon(args.root, cli, env, ["--warm", "0", "--max-sessions", "0", "--upstream-retries", "0"], "warm0")
    warm = Daemon(args.root, cli, env, ["--warm", "2", "--max-sessions", "4", "--upstream-retries", "0"], "warm2")
    series: dict[str, dict[str, list[float]]] = {k: {"ttft": [], "total": []} for k in "abcd"}
    problems: list[str] = []
    try:
        warm.wait_idle(2)
        # one unmeasured request each to load caches (page cache, the daemon's imports)
        cold_cli(cli, env, workdir, "warm-up")
        post_stream(cold.port, {"model": "sonnet", "messages": [user("warm-up")]})
        settle()
        for i in range(args.n):
            # a: the CLI cold, directly
            settle()
            ttft, total = cold_cli(cli, env, workdir, "round %d" % (i,))
            series["a"]["ttft"].append(ttft)
            series["a"]["total"].append(total)
            # b: the daemon, --warm 0
            settle()
            r = post_stream(cold.port, {"model": "sonnet", "messages": [user("round %d" % (i,))]})
            check(r, UPSTREAM_TEXT, "b", problems)
            series["b"]["ttft"].append(r.ttft or float("nan"))
            series["b"]["total"].append(r.total)
            # c: the daemon, a warm process
            warm.wait_idle(2)
            settle()
            hits = warm.health()["pool"]["warm"]["hits"]
            r = post_stream(warm.port, {"model": "sonnet", "messages": [user("round %d" % (i,))]})
            check(r, UPSTREAM_TEXT, "c", problems)
            if warm.health()["pool"]["warm"]["hits"] != hits + 1:
                problems.append("c: round %d did not take a warm process" % (i,))
            series["c"]["ttft"].append(r.ttft or float("nan"))
            series["c"]["total"].append(r.total)
            # d: the second turn of a live conversation
            first = [user("conversation %d" % (i,))]
            r = post_stream(warm.port, {"model": "sonnet", "messages": first})
            check(r, UPSTREAM_TEXT, "d (first turn)", problems)
            warm.wait_idle(2)
            settle()
            hits = warm.health()["pool"]["sessions"]["hits"]
            messages = [*first, {"role": "assistant", "content": r.text()}, user("and then?")]
            r = post_stream(warm.port, {"model": "sonnet", "messages": messages})
            check(r, UPSTREAM_TEXT, "d", problems)
            if warm.health()["pool"]["sessions"]["hits"] != hits + 1:
                problems.append("d: round %d did not continue its live conversation" % (i,))
            series["d"]["ttft"].append(r.ttft or float("nan"))
            series["d"]["total"].append(r.total)
            print(
                "  round %2d: first token a %.0f ms, b %.0f ms, c %.0f ms, d %.0f ms"
                % tuple([i + 1] + [series[k]["ttft"][-1] * 1000 for k in "abcd"]),
                flush=True,
            )
        results["real_health_warm"] = warm.health()["pool"]
    finally:
        cold.stop()
        warm.stop()
    names = {
        "a": "cold CLI, direct",
        "b": "daemon --warm 0",
        "c": "daemon warm hit",
        "d": "second turn (live)",
    }
    table: dict[str, Any] = {}
    base = statistics.median(series["a"]["ttft"])
    base_total = statistics.median(series["a"]["total"])
    for k in "abcd":
        t, tot = series[k]["ttft"], series[k]["total"]
        table[k] = {
            "name": names[k],
            "ttft_median_ms": statistics.median(t) * 1000,
            "ttft_p95_ms": pct(t, 0.95) * 1000,
            "total_median_ms": statistics.median(tot) * 1000,
            "total_p95_ms": pct(tot, 0.95) * 1000,
            "ttft_ratio_to_a": statistics.median(t) / base,
            "total_ratio_to_a": statistics.median(tot) / base_total,
            "ttft_ms": [x * 1000 for x in t],
            "total_ms": [x * 1000 for x in tot],
        }
    results["latency"] = table
    results["latency_problems"] = problems
    print()
    print("Time to first token and total, real CLI %s, n=%d (ms)" % (results["machine"]["cli_version"], args.n))
    print(
        "  %-22s %10s %10s %8s %10s %10s %8s"
        % ("", "ttft med", "ttft p95", "x cold", "total med", "total p95", "x cold")
    )
    for k in "abcd":
        row = table[k]
        print(
            "  %s %-20s %10.1f %10.1f %8.3f %10.1f %10.1f %8.3f"
            % (
                k,
                row["name"],
                row["ttft_median_ms"],
                row["ttft_p95_ms"],
                row["ttft_ratio_to_a"],
                row["total_median_ms"],
                row["total_p95_ms"],
                row["total_ratio_to_a"],
            )
        )
    for p in problems:
        print("  problem:", p)
    overhead = table["b"]["ttft_median_ms"] - table["a"]["ttft_median_ms"]
    results["targets"]["warm first token <= 0.10 x cold"] = {
        "value": table["c"]["ttft_ratio_to_a"],
        "met": table["c"]["ttft_ratio_to_a"] <= 0.10,
    }
    results["targets"]["--warm 0 adds <= 5 ms over cold (median)"] = {"value_ms": overhead, "met": overhead <= 5.0}
    results["targets"]["second turn first token <= 0.10 x cold"] = {
        "value": table["d"]["ttft_ratio_to_a"],
        "met": table["d"]["ttft_ratio_to_a"] <= 0.10,
    }


def part_interleaved(args: argparse.Namespace, cli: str, env: dict[str, str], results: dict[str, Any]) -> None:
    """
    The pattern that starves a pool refilled too late: a request through
    the daemon (--warm 2), at once a direct cold CLI run, at once the next
    daemon request, and so on, with no waiting for the pool.  How many of
    the daemon's requests a warm process served, and their first token
    against the cold runs', in the same run.
    """
    workdir = tempfile.mkdtemp(prefix="cp-bench-inter-")
    warm = Daemon(args.root, cli, env, ["--warm", "2", "--max-sessions", "0", "--upstream-retries", "0"], "inter")
    daemon_ttft: list[float] = []
    cold_ttft: list[float] = []
    served_warm = 0
    problems: list[str] = []
    try:
        warm.wait_idle(2)
        for i in range(max(args.n, 10)):
            hits = warm.health()["pool"]["warm"]["hits"]
            r = post_stream(warm.port, {"model": "sonnet", "messages": [user("interleaved %d" % (i,))]})
            check(r, UPSTREAM_TEXT, "interleaved", problems)
            daemon_ttft.append(r.ttft or float("nan"))
            if warm.health()["pool"]["warm"]["hits"] == hits + 1:
                served_warm += 1
            cold_ttft.append(cold_cli(cli, env, workdir, "interleaved cold %d" % (i,))[0])
            print(
                "  round %2d: daemon %.0f ms, cold CLI %.0f ms" % (i + 1, daemon_ttft[-1] * 1000, cold_ttft[-1] * 1000),
                flush=True,
            )
        keys = warm.health()["pool"]["warm"].get("keys", [])
    finally:
        warm.stop()
    n = len(daemon_ttft)
    ratio = statistics.median(daemon_ttft) / statistics.median(cold_ttft)
    results["interleaved"] = {
        "rounds": n,
        "served_warm": served_warm,
        "daemon_ttft_median_ms": statistics.median(daemon_ttft) * 1000,
        "cold_ttft_median_ms": statistics.median(cold_ttft) * 1000,
        "ratio": ratio,
        "keys": keys,
        "problems": problems,
    }
    results.setdefault("targets", {})["interleaved"] = {
        "warm_share": served_warm / n,
        "ratio": ratio,
        "met": served_warm / n >= 0.9 and ratio <= 0.10 and not problems,
    }
    print(
        "  served warm %d/%d; first token median %.1f ms vs cold %.1f ms = %.3f x cold"
        % (served_warm, n, statistics.median(daemon_ttft) * 1000, statistics.median(cold_ttft) * 1000, ratio)
    )


# -- part 2: the fake CLI ---------------------------------------------------------------------


def fake_env(env: dict[str, str], nbytes: int, chunk: int) -> dict[str, str]:
    path = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", os.defpath)
    return dict(env, FAKECLI_BYTES=str(nbytes), FAKECLI_CHUNK=str(chunk), PATH=path)


FAKE_ARGS = ["--max-concurrent", "256", "--max-queued", "0", "--warm", "0", "--max-sessions", "0"]


def part_fake(args: argparse.Namespace, env: dict[str, str], results: dict[str, Any]) -> None:
    # 256 concurrent streams
    n, size = 256, 1000
    d = Daemon(args.root, FAKECLI, fake_env(env, size, 100), FAKE_ARGS, "c256")
    try:
        post_stream(d.port, {"model": "sonnet", "messages": [user("bytes=1000: warm-up")]})
        settle()
        idle = rss_kb(d.pid)
        replies: list[Optional[Reply]] = [None] * n
        gate = threading.Barrier(n + 1)

        def one(i: int) -> None:
            gate.wait()
            replies[i] = post_stream(d.port, {"model": "sonnet", "messages": [user("req-%d" % (i,))]})

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        with Sampler(d.pid) as sampler:
            gate.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        correct = 0
        for i, r in enumerate(replies):
            if r is None or r.status != 200 or r.error:
                continue
            items = r.items()
            errors = [x for x in items if isinstance(x, dict) and "error" in x]
            if not errors and items and items[-1] == "[DONE]" and r.text() == reply_text(size, "req-%d" % (i,)):
                correct += 1
        time.sleep(0.5)
        live = d.health()["pool"]["live_processes"]
        ttfts = [r.ttft for r in replies if r is not None and r.ttft is not None]
        results["concurrent"] = {
            "streams": n,
            "reply_bytes": size,
            "correct": correct,
            "wall_s": wall,
            "ttft_median_ms": statistics.median(ttfts) * 1000 if ttfts else None,
            "ttft_p95_ms": pct(ttfts, 0.95) * 1000 if ttfts else None,
            "rss_idle_mb": idle / 1024,
            "rss_peak_mb": sampler.peak / 1024,
            "rss_samples": sampler.samples,
            "live_processes_after": live,
        }
    finally:
        d.stop()
    c = results["concurrent"]
    print()
    print("256 concurrent streams (fake CLI, %d-byte replies)" % (size,))
    print(
        "  correct %d/%d, wall %.2f s, first token median %.0f ms p95 %.0f ms, daemon RSS idle %.1f MB, peak %.1f MB, CLI processes left %d"
        % (
            c["correct"],
            n,
            c["wall_s"],
            c["ttft_median_ms"] or -1,
            c["ttft_p95_ms"] or -1,
            c["rss_idle_mb"],
            c["rss_peak_mb"],
            c["live_processes_after"],
        ),
        flush=True,
    )
    results["targets"]["256 streams all correct, daemon RSS < 150 MB"] = {
        "correct": c["correct"],
        "rss_peak_mb": c["rss_peak_mb"],
        "met": c["correct"] == n and c["rss_peak_mb"] < 150 and c["live_processes_after"] == 0,
    }

    # one slow reader, 50 MB at 1 MB/s
    size = args.slow_mb * 1000 * 1000
    rate = 1_000_000.0
    d = Daemon(args.root, FAKECLI, fake_env(env, size, args.slow_chunk), FAKE_ARGS, "slow")
    try:
        post_stream(d.port, {"model": "sonnet", "messages": [user("bytes=1000: warm-up")]})
        settle()
        before = rss_kb(d.pid)
        progress: list[tuple[float, int, int]] = []
        expected_frames = size // args.slow_chunk
        limit = args.slow_mb * 2 + 30

        def pace(got: int, t0: float) -> None:
            # hold 1 MB/s: read 64 KiB, then sleep until the schedule allows more
            elapsed = time.perf_counter() - t0
            if elapsed > limit:
                raise OSError("gave up after %d s" % (limit,))
            ahead = got / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
            progress.append((time.perf_counter() - t0, got, rss_kb(d.pid)))

        with Sampler(d.pid) as sampler:
            r = post_stream(
                d.port,
                {"model": "sonnet", "messages": [user("slow")]},
                timeout=30.0,
                pace=pace,
                rcvbuf=64 * 1024,
            )
        text = r.text() if not r.error else ""
        intact = text == reply_text(size, "slow")
        received = len(r.body)
        # RSS while the deltas stream, before the CLI's final assistant and
        # result lines (each the whole text) reach the daemon
        streaming_peak = max((kb for t, got, kb in progress if got < 0.9 * received), default=0)
        results["slow_reader"] = {
            "reply_bytes": size,
            "chunk": args.slow_chunk,
            "frames": expected_frames,
            "rate_bytes_per_s": rate,
            "seconds": r.total,
            "error": r.error,
            "sse_bytes_received": received,
            "intact": intact,
            "rss_before_mb": before / 1024,
            "rss_peak_mb": sampler.peak / 1024,
            "rss_growth_mb": (sampler.peak - before) / 1024,
            "rss_growth_while_streaming_deltas_mb": (streaming_peak - before) / 1024 if streaming_peak else None,
        }
    finally:
        d.stop()
    s = results["slow_reader"]
    print()
    print("Slow reader: %d MB reply (%d-char deltas) read at 1 MB/s" % (args.slow_mb, args.slow_chunk))
    print(
        "  %.1f s, intact %s%s, daemon RSS before %.1f MB, peak %.1f MB, growth %.1f MB (while deltas stream: %s MB)"
        % (
            s["seconds"],
            s["intact"],
            (", error " + s["error"]) if s["error"] else "",
            s["rss_before_mb"],
            s["rss_peak_mb"],
            s["rss_growth_mb"],
            "%.1f" % s["rss_growth_while_streaming_deltas_mb"]
            if s["rss_growth_while_streaming_deltas_mb"] is not None
            else "-",
        ),
        flush=True,
    )
    results["targets"]["slow reader RSS growth < 10 MB"] = {
        "value_mb": s["rss_growth_mb"],
        "met": s["intact"] and s["rss_growth_mb"] < 10,
    }

    # CPU per 1,000 SSE frames
    per, requests, parallel = 1000, 100, 8
    d = Daemon(args.root, FAKECLI, fake_env(env, per * 100, 100), FAKE_ARGS, "cpu")
    try:
        post_stream(d.port, {"model": "sonnet", "messages": [user("bytes=1000: warm-up")]})
        settle()
        frames = [0] * requests
        bad = [0]
        c0 = cpu_seconds(d.pid)
        t0 = time.perf_counter()

        def worker(k: int) -> None:
            for i in range(k, requests, parallel):
                r = post_stream(d.port, {"model": "sonnet", "messages": [user("cpu-%d" % (i,))]})
                frames[i] = r.body.count(b"\n\n")
                if r.text() != reply_text(per * 100, "cpu-%d" % (i,)):
                    bad[0] += 1

        workers = [threading.Thread(target=worker, args=(k,)) for k in range(parallel)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
        used = cpu_seconds(d.pid) - c0
        total_frames = sum(frames)
        results["cpu"] = {
            "requests": requests,
            "frames": total_frames,
            "wrong_replies": bad[0],
            "daemon_cpu_s": used,
            "wall_s": wall,
            "cpu_ms_per_1000_frames": used / (total_frames / 1000) * 1000,
            "cpu_ms_per_request": used / requests * 1000,
        }
    finally:
        d.stop()
    c = results["cpu"]
    print()
    print(
        "Daemon CPU: %d requests, %d SSE frames in %.1f s: %.2f CPU s, %.1f CPU ms per 1,000 frames (%.1f ms per request incl. spawn), wrong replies %d"
        % (
            c["requests"],
            c["frames"],
            c["wall_s"],
            c["daemon_cpu_s"],
            c["cpu_ms_per_1000_frames"],
            c["cpu_ms_per_request"],
            c["wrong_replies"],
        ),
        flush=True,
    )


# -- main -----------------------------------------------------------------------------------------


def part_usage(results: dict[str, Any], n: int = 20000) -> None:
    """
    Part 3, in process: what recording a request's usage row costs the
    request (the reactor thread builds the row and queues it; the writer
    thread stores it), per request, while the writer thread works; and
    that every row is stored.
    """
    from twisted.internet import reactor

    from claudeproxy.store.db import open_state
    from claudeproxy.store.schema import MIGRATIONS
    from claudeproxy.store.usage import UsageLog, UsageRow

    state = tempfile.mkdtemp(prefix="cp-bench-state-")
    db = open_state(reactor, state, MIGRATIONS)
    assert db is not None
    db.start()
    log = UsageLog(reactor, db, time.time)
    costs = []
    t0 = time.perf_counter()
    for i in range(n):
        start = time.perf_counter()
        log.record(
            UsageRow(
                time=time.time(),
                request_id="chatcmpl-%032x" % (i,),
                client="agent",
                endpoint="/v1/chat/completions",
                model_asked="sonnet",
                model_served="claude-sonnet-5",
                served="warm",
                stream=True,
                status=200,
                error_code=None,
                first_token_ms=40.0,
                total_ms=900.0,
                input_tokens=1200,
                output_tokens=300,
                cache_read_tokens=20000,
                cache_write_tokens=100,
                rate_limit={"status": "allowed", "resetsAt": 1800000000},
            )
        )
        costs.append((time.perf_counter() - start) * 1000.0)
    queued = time.perf_counter() - t0
    db.stop()
    stored = time.perf_counter() - t0
    again = open_state(reactor, state, MIGRATIONS)
    assert again is not None
    count = again.read_now(lambda conn: conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])
    again.stop()
    mean, p50, p99 = statistics.mean(costs), pct(costs, 0.5), pct(costs, 0.99)
    print(
        "usage recording: %d rows, per request mean %.3f ms, p50 %.3f ms, p99 %.3f ms; all stored in %.2f s "
        "(%.0f rows/s), %d in the table" % (n, mean, p50, p99, stored, n / stored, count)
    )
    results["usage_recording"] = {
        "rows": n,
        "per_request_ms": {"mean": mean, "p50": p50, "p99": p99},
        "queued_s": queued,
        "stored_s": stored,
        "rows_per_s": n / stored,
        "stored_rows": count,
    }
    results["targets"]["usage recording adds < 1 ms to a request (p99)"] = {
        "met": p99 < 1.0 and count == n,
        "p99_ms": p99,
        "lost": n - count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=15, help="rounds of the latency comparison (default 15)")
    parser.add_argument(
        "--only",
        choices=["real", "fake", "usage", "interleaved", "limit", "binding"],
        help="run only one part (usage writes bench/results-usage.json)",
    )
    parser.add_argument("--root", default=ROOT, help="the claudeproxy checkout to run (default: this one)")
    parser.add_argument("--slow-mb", type=int, default=50, help="size of the slow reader's reply in MB (default 50)")
    parser.add_argument(
        "--slow-chunk", type=int, default=1000, help="characters per text delta for the slow reader (default 1000)"
    )
    parser.add_argument("--out", default=os.path.join(HERE, "results.json"))
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream()
        return
    args.root = os.path.abspath(args.root)
    if args.only == "usage":
        out = args.out if args.out != os.path.join(HERE, "results.json") else os.path.join(HERE, "results-usage.json")
        usage_results: dict[str, Any] = {"command": COMMAND, "argv": sys.argv[1:], "targets": {}}
        part_usage(usage_results)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(usage_results, f, indent=2)
        print("written to", out)
        return

    from tests.harness import cli_env, cli_path

    print("benchmark command:", COMMAND, " ".join(sys.argv[1:]))
    cli = cli_path()
    upstream, url = start_upstream()
    home = tempfile.mkdtemp(prefix="cp-bench-home-")
    env = cli_env(url, home)
    results: dict[str, Any] = {
        "command": COMMAND,
        "argv": sys.argv[1:],
        "root": args.root,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(cli, env),
        "targets": {},
    }
    m = results["machine"]
    print(
        "machine: %s CPUs (%s), %.1f GB RAM, Python %s, Linux %s, CLI %s"
        % (m["nproc"], m["cpu"], m["ram_gb"], m["python"], m["kernel"], m["cli_version"])
    )
    print("checkout:", args.root)
    try:
        if args.only in (None, "real"):
            print("\nPart 1: real CLI, fake upstream at %s (instant)" % (url,), flush=True)
            part_real(args, cli, env, results)
        if args.only in (None, "interleaved"):
            print("\nPart 1b: back to back, interleaved with direct cold CLI runs (no waiting)", flush=True)
            part_interleaved(args, cli, env, results)
        if args.only in (None, "limit"):
            from bench.limit import part_limit

            print("\nPart 1c: against the physical limit (the CLI waiting on stdin), pairs and bursts", flush=True)
            part_limit(args, cli, env, results)
        if args.only in (None, "binding"):
            from bench.binding import part_binding

            print("\nPart 1d: requests of settings or histories no process was started with", flush=True)
            part_binding(args, cli, env, results)
        if args.only in (None, "fake"):
            print("\nPart 2: fake CLI (%s)" % (FAKECLI,), flush=True)
            part_fake(args, env, results)
        if args.only is None:
            print("\nPart 3: usage recording", flush=True)
            part_usage(results)
    finally:
        upstream.terminate()
        upstream.wait()
    print("\nTargets")
    for name, t in results["targets"].items():
        detail = ", ".join(
            "%s=%s" % (k, ("%.3f" % v) if isinstance(v, float) else v) for k, v in t.items() if k != "met"
        )
        print("  %-48s %-8s (%s)" % (name, "met" if t["met"] else "NOT MET", detail))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print("\nwritten to", args.out)


if __name__ == "__main__":
    main()
