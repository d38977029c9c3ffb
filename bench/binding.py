"""
The benchmark's "binding" part (C{bench/run.py --only binding}): requests
that each need settings or a history no process was started with, against
the waiting CLI in the same run (the same CLI started as the daemon starts
it, ready on stdin: the best any warm path can do).

- first of its kind: a new system prompt, tools, a JSON schema, another
  model, an effort, a 5-exchange history, each never seen before, 2 s
  apart;
- the sequential pattern: one request, then a new conversation with the
  same settings that goes on to a second turn, repeated;
- history misses of 5, 20 and 50 exchanges, written into a running
  process (the default) and loaded from a session file by a new process
  (C{--late-binding off}): where writing stops paying;
- bursts of 8 new conversations, repeated 10 s later;
- a replay of Open WebUI's pattern: each new chat's first message with its
  title request beside it, then two chats used in turn.

Each request's first token is measured as a client sees it; x-claudeproxy-
served says whether a running process served it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from typing import Any

from bench.common import FAST as _FAST
from bench.common import Daemon, Reply, check, late_bound_cli, post_stream, together, user, waiting_cli
from claudeproxy.engine.conversation import Message, text_block
from claudeproxy.engine.process import SpawnKey
from claudeproxy.engine.tools import spec

UPSTREAM_TEXT = "Hello from the fake upstream: a short streamed reply for the benchmark, in a few text deltas."
#: served by a process that was already running
FAST = _FAST
MODELS = ("haiku", "opus")
EFFORTS = ("low", "medium", "high")


def generic_ready(d: Daemon, want: int = 2, limit: float = 60.0) -> None:
    """
    Wait until C{want} generic processes have finished starting (or the
    pool's target, if lower).
    """
    deadline = time.monotonic() + limit
    while True:
        g = d.health()["pool"]["warm"]["generic"]
        if g["ready"] >= min(want, g["target"]) and g["target"]:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the generic pool never came to rest: %r" % (g,))
        time.sleep(0.05)


def tool(i: int) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "lookup_%d" % (i,),
            "description": "Look something up (%d)." % (i,),
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }


def history(tag: str, exchanges: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for k in range(exchanges):
        out += [user("%s question %d" % (tag, k)), {"role": "assistant", "content": "%s answer %d" % (tag, k)}]
    return out


def as_messages(chat: list[dict[str, Any]]) -> tuple[Message, ...]:
    return tuple(Message(m["role"], (text_block(m["content"]),)) for m in chat)


def kinds(i: int) -> list[tuple[str, dict[str, Any], SpawnKey, tuple[Message, ...]]]:
    """
    Six requests, each with settings or a history never seen before; with
    each, the settings and history a CLI started for it gets (its waiting
    CLI, the physical limit).
    """
    schema = {"type": "object", "properties": {"p%d" % (i,): {"type": "string"}}}
    effort, limit = EFFORTS[i % len(EFFORTS)], 2000 + i
    past = history("h%d" % (i,), 5)
    return [
        (
            "system prompt",
            {"messages": [{"role": "system", "content": "You are assistant #%d." % (i,)}, user("hi")]},
            SpawnKey("sonnet", "You are assistant #%d." % (i,)),
            (),
        ),
        (
            "tools",
            {"messages": [user("look up %d" % (i,))], "tools": [tool(i)]},
            SpawnKey("sonnet", tools=(spec(**tool(i)["function"]),)),
            (),
        ),
        (
            "json schema",
            {
                "messages": [user("a value %d" % (i,))],
                "response_format": {"type": "json_schema", "json_schema": {"name": "v%d" % (i,), "schema": schema}},
            },
            SpawnKey("sonnet", json_schema=json.dumps(schema)),
            (),
        ),
        (
            "model",
            {"model": MODELS[i % len(MODELS)], "messages": [user("model %d" % (i,))]},
            SpawnKey(MODELS[i % len(MODELS)]),
            (),
        ),
        (
            "effort",
            {"reasoning_effort": effort, "max_tokens": limit, "messages": [user("e")]},
            SpawnKey("sonnet", effort=effort, max_tokens=limit),
            (),
        ),
        ("history 5", {"messages": past + [user("and now?")]}, SpawnKey("sonnet"), as_messages(past)),
    ]


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def part_binding(args: Any, cli: str, env: dict[str, str], results: dict[str, Any]) -> None:
    workdir = tempfile.mkdtemp(prefix="cp-bench-binding-")
    said = subprocess.run([cli, "--version"], env=env, capture_output=True, timeout=60).stdout.decode()
    version = (said.split() or ["2.1.197"])[0]
    common = ["--max-sessions", "8", "--upstream-retries", "0", "--max-concurrent", "8"]
    d = Daemon(args.root, cli, env, ["--warm", "9", *common], "binding")
    problems: list[str] = []
    waiting: list[float] = []
    #: each kind's own waiting CLI (started with its settings), per round
    limits: dict[str, list[float]] = {}
    #: each kind bound late by hand, with no daemon (the best binding late
    #: can do), per round
    floors: dict[str, list[float]] = {}
    first: dict[str, list[Reply]] = {}
    sequential: list[Reply] = []
    bursts: list[list[str]] = []
    replay: list[str] = []
    misses: dict[str, dict[int, list[float]]] = {"written": {}, "session file": {}}
    try:
        rounds = max(2, args.n // 3)
        for i in range(rounds):
            waiting.append(waiting_cli(cli, env, workdir, "waiting %d" % (i,)))
            for what, body, key, past in kinds(i):
                limits.setdefault(what, []).append(
                    waiting_cli(cli, env, workdir, "waiting %s %d" % (what, i), key, past, version)
                )
                floors.setdefault(what, []).append(
                    late_bound_cli(cli, env, workdir, "late %s %d" % (what, i), key, past, version)
                )
                generic_ready(d)
                time.sleep(2.0)
                r = post_stream(d.port, dict({"model": "sonnet"}, **body))
                if r.status != 200:
                    problems.append("%s: status %d %r" % (what, r.status, r.body[:200]))
                first.setdefault(what, []).append(r)
            print(
                "  round %d: waiting CLI %.0f ms; first of its kind: %s"
                % (
                    i + 1,
                    waiting[-1] * 1000,
                    ", ".join(
                        "%s %s %.0f ms" % (w, rs[-1].served, (rs[-1].ttft or 0) * 1000) for w, rs in first.items()
                    ),
                ),
                flush=True,
            )
        # the sequential pattern
        for i in range(args.n):
            r = post_stream(d.port, {"model": "sonnet", "messages": [user("one %d" % (i,))]})
            check(r, UPSTREAM_TEXT, "sequential", problems)
            sequential.append(r)
            convo = [user("new %d" % (i,))]
            r = post_stream(d.port, {"model": "sonnet", "messages": convo})
            sequential.append(r)
            convo += [{"role": "assistant", "content": r.text()}, user("second turn")]
            r = post_stream(d.port, {"model": "sonnet", "messages": convo})
            sequential.append(r)
        print("  sequential: %s" % ([r.served for r in sequential],), flush=True)
        # bursts of 8 new conversations, 10 s apart
        for b in range(3):
            replies = together(
                d.port, [{"model": "sonnet", "messages": [user("burst %d %d" % (b, j))]} for j in range(8)]
            )
            bursts.append([r.served for r in replies])
            print("  burst %d: %s" % (b + 1, bursts[-1]), flush=True)
            time.sleep(10.0)
        # Open WebUI: a new chat's first message with its title request
        # beside it; then the two chats in turn
        generic_ready(d)
        chats: list[list[dict[str, Any]]] = []
        for n in range(2):
            convo = [user("chat %d" % (n,))]
            title = {"model": "sonnet", "max_tokens": 1000, "messages": [user("### Task: title for chat %d" % (n,))]}
            main, side = together(d.port, [{"model": "sonnet", "messages": convo}, title])
            replay += [main.served, side.served]
            chats.append(convo + [{"role": "assistant", "content": main.text().rstrip()}])
            generic_ready(d)
        for n in (0, 1, 0, 1):
            chats[n].append(user("next in chat %d" % (n,)))
            r = post_stream(d.port, {"model": "sonnet", "messages": chats[n]})
            replay.append(r.served)
            chats[n].append({"role": "assistant", "content": r.text().rstrip()})
        print("  Open WebUI replay: %s" % (replay,), flush=True)
        # history misses, written into a running process
        for size in (5, 20, 50):
            for k in range(3):
                generic_ready(d)
                r = post_stream(
                    d.port, {"model": "sonnet", "messages": history("w%d-%d" % (size, k), size) + [user("?")]}
                )
                check(r, UPSTREAM_TEXT, "history %d" % (size,), problems)
                misses["written"].setdefault(size, []).append(r.ttft or float("nan"))
    finally:
        d.stop()
    keyed = Daemon(args.root, cli, env, ["--warm", "2", "--late-binding", "off", *common], "keyed")
    try:
        for size in (5, 20, 50):
            for k in range(3):
                r = post_stream(
                    keyed.port, {"model": "sonnet", "messages": history("c%d-%d" % (size, k), size) + [user("?")]}
                )
                check(r, UPSTREAM_TEXT, "history %d (session file)" % (size,), problems)
                misses["session file"].setdefault(size, []).append(r.ttft or float("nan"))
    finally:
        keyed.stop()
    limit = statistics.median(waiting)
    every_first = [r for rs in first.values() for r in rs]
    first_ttft = [r.ttft for r in every_first if r.ttft is not None]
    out: dict[str, Any] = {"rounds": len(waiting), "problems": problems, "waiting_cli_ms": limit * 1000}
    # each request against its own kind's waiting CLI of the same round
    ratios = {
        what: [r.ttft / w for r, w in zip(rs, limits[what], strict=True) if r.ttft is not None and w == w and w > 0]
        for what, rs in first.items()
    }
    # binding late by hand, against the same waiting CLI
    floor_ratios = {
        what: [f / w for f, w in zip(floors[what], limits[what], strict=True) if f == f and w == w and w > 0]
        for what in first
    }
    out["first_of_its_kind"] = {
        what: {
            "ttft_median_ms": _median_ms([r.ttft for r in rs if r.ttft is not None]),
            "waiting_cli_ms": _median_ms([w for w in limits[what] if w == w]),
            "x_waiting_cli": statistics.median(ratios[what]) if ratios[what] else float("nan"),
            "late_bound_cli_ms": _median_ms([f for f in floors[what] if f == f]),
            "late_bound_x_waiting_cli": statistics.median(floor_ratios[what]) if floor_ratios[what] else float("nan"),
            "served": [r.served for r in rs],
        }
        for what, rs in first.items()
    }
    every_ratio = [x for xs in ratios.values() for x in xs]
    every_floor = [x for xs in floor_ratios.values() for x in xs]
    out["first_of_its_kind_all"] = {
        "ttft_median_ms": _median_ms(first_ttft),
        "x_waiting_cli": statistics.median(every_ratio),
        # against the plain waiting CLI (no system prompt, tools, schema...)
        "x_plain_waiting_cli": statistics.median(first_ttft) / limit,
        # binding late by hand, no daemon: the best a first of its kind can do
        "late_bound_x_waiting_cli": statistics.median(every_floor) if every_floor else float("nan"),
        "running_share": sum(r.served in FAST for r in every_first) / len(every_first),
    }
    seq_ttft = [r.ttft for r in sequential if r.ttft is not None]
    out["sequential"] = {
        "ttft_median_ms": _median_ms(seq_ttft),
        "x_waiting_cli": statistics.median(seq_ttft) / limit,
        "running_share": sum(r.served in FAST for r in sequential) / len(sequential),
    }
    out["bursts"] = {"served": bursts, "later_bursts_running": [sum(s in FAST for s in b) for b in bursts[1:]]}
    out["open_webui_replay"] = {"served": replay, "running_share": sum(s in FAST for s in replay) / len(replay)}
    out["history_misses_ms"] = {
        how: {str(size): _median_ms(v) for size, v in sizes.items()} for how, sizes in misses.items()
    }
    print("  waiting CLI      first token median %6.1f ms" % (limit * 1000,))
    for what, v in out["first_of_its_kind"].items():
        print(
            "  %-16s %6.1f ms = %4.2f x its waiting CLI (%.1f ms); bound late by hand %.1f ms = %4.2f x; served %s"
            % (
                what,
                v["ttft_median_ms"],
                v["x_waiting_cli"],
                v["waiting_cli_ms"],
                v["late_bound_cli_ms"],
                v["late_bound_x_waiting_cli"],
                v["served"],
            )
        )
    print(
        "  first of its kind, bound late by hand with no daemon: %4.2f x the waiting CLI"
        % (out["first_of_its_kind_all"]["late_bound_x_waiting_cli"],)
    )
    for name in ("first_of_its_kind_all", "sequential"):
        v = out[name]
        print(
            "  %-22s %6.1f ms = %4.2f x, %.0f %% on a running process"
            % (name, v["ttft_median_ms"], v["x_waiting_cli"], v["running_share"] * 100)
        )
    for how, sizes in out["history_misses_ms"].items():
        print("  history miss, %-12s %s" % (how, ", ".join("%s exchanges %.0f ms" % kv for kv in sizes.items())))
    results["binding"] = out
    results.setdefault("targets", {})["binding"] = {
        "first_x": out["first_of_its_kind_all"]["x_waiting_cli"],
        "first_share": out["first_of_its_kind_all"]["running_share"],
        "first_late_bound_x": out["first_of_its_kind_all"]["late_bound_x_waiting_cli"],
        "sequential_x": out["sequential"]["x_waiting_cli"],
        "sequential_share": out["sequential"]["running_share"],
        "met": out["first_of_its_kind_all"]["x_waiting_cli"] <= 1.25
        and out["first_of_its_kind_all"]["running_share"] >= 0.9
        and out["sequential"]["x_waiting_cli"] <= 1.25
        and out["sequential"]["running_share"] >= 0.95
        and all(n == 8 for n in out["bursts"]["later_bursts_running"])
        and not problems,
    }
