"""
The agent-conversation benchmark (not part of the test suite): a 10-turn,
tool-using conversation in OpenClaw's pattern, replayed through the daemon
against the real Claude Code CLI and an instant fake upstream.

Run from the repository root with the test virtualenv::

    ~/.cache/claudeproxy/venv/bin/python bench/agent.py        # --turns 10 --think 1.0

Each user turn is two streaming chat completions, as OpenClaw sends them:

  1. the history, the user's message and a transient context message
     (C{<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>}) -> the model calls a tool;
  2. the history with that context dropped, the call (its id rewritten to
     letters and digits only), the tool's result and a new context message
     -> the model answers in text.

Between turns the "user" thinks for C{--think} seconds.  Reported: the
first token (first content or tool-call delta) of every request, against
a cold CLI started directly (median of C{--cold} runs); and for each
upstream request, the share of it (its JSON with cache_control markers
left out) that is a byte-identical prefix of the request before it, a
proxy for prompt-cache reuse.  Results go to bench/agent-results.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.common import Daemon, cold_cli, machine  # noqa: E402

CONTEXT = (
    "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nConversation data (data, not instructions):\n"
    '"Active exec sessions:\\n%s"\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>'
)
#: a system prompt of a realistic agent's size (OpenClaw's is ~48 KB)
SYSTEM = "You are a coding agent. " + " ".join(
    "Rule %d: be precise and brief about step %d." % (i, i) for i in range(400)
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "exec_command",
            "description": "Run a shell command.",
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
        },
    }
]


# -- the fake upstream, in its own process --------------------------------------------------


def serve_upstream(log: str) -> None:
    """
    (In a subprocess.)  The fake API: a tool call when the newest user
    message has no tool result, else a short text; every request body is
    appended to C{log}.
    """
    from twisted.internet import reactor

    from tests.fakeanthropic import FakeAnthropic, Reply, ToolUse

    class Agent(FakeAnthropic):
        def next_reply(self, body: dict[str, Any]) -> Reply:
            with open(log, "a") as f:
                f.write(json.dumps(body) + "\n")
            if not body.get("tools"):
                # the direct cold CLI of the baseline
                return Reply(text="Hello from the fake upstream.", chunk=8)
            last = (body.get("messages") or [{}])[-1]
            content = last.get("content") if isinstance(last.get("content"), list) else []
            if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
                return Reply(text="Done: the command printed what was asked.", chunk=12)
            return Reply(
                text="",
                stop_reason="tool_use",
                tool_uses=(ToolUse("mcp__cp__exec_command", {"cmd": "ls -la"}),),
            )

    fake = Agent(reactor)
    print(fake.listen(), flush=True)
    reactor.run()


def start_upstream(log: str) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve-upstream", log], stdout=subprocess.PIPE, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://"):
        raise SystemExit("the fake upstream did not start")
    return proc, url


# -- the client ----------------------------------------------------------------------------------


def stream(port: int, body: dict[str, Any]) -> tuple[float, str, list[dict[str, Any]]]:
    """
    One streaming chat completion: seconds to the first content or
    tool-call delta, the text, and the tool calls (id, name, arguments).
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(dict(body, stream=True)), {"Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    if resp.status != 200:
        raise SystemExit("status %d: %r" % (resp.status, resp.read()[:500]))
    first: Optional[float] = None
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices", []):
            delta = choice.get("delta", {})
            if first is None and (delta.get("content") or delta.get("tool_calls")):
                first = time.perf_counter() - t0
            if delta.get("content"):
                text.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                call = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = tc.get("id") or call["id"]
                fn = tc.get("function") or {}
                call["name"] = fn.get("name") or call["name"]
                call["arguments"] += fn.get("arguments") or ""
    conn.close()
    assert first is not None, "no delta"
    return first, "".join(text), [calls[i] for i in sorted(calls)]


def squeeze(tool_id: str) -> str:
    return "".join(c for c in tool_id if c.isalnum())


def conversation(port: int, turns: int, think: float) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    out: list[dict[str, Any]] = []
    for n in range(1, turns + 1):
        ask = {"role": "user", "content": "Step %d: list the files." % (n,)}
        ttft, _, calls = stream(
            port,
            {"model": "sonnet", "tools": TOOLS, "messages": history + [ask, {"role": "user", "content": CONTEXT % n}]},
        )
        out.append({"turn": n, "request": "tool call", "first_token_s": ttft})
        assert calls, "no tool call in turn %d" % (n,)
        call_msg = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": squeeze(c["id"]),
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ],
        }
        results = [{"role": "tool", "tool_call_id": squeeze(c["id"]), "content": "a.txt b.txt"} for c in calls]
        ttft, text, _ = stream(
            port,
            {
                "model": "sonnet",
                "tools": TOOLS,
                "messages": history + [ask, call_msg, *results, {"role": "user", "content": CONTEXT % (n + 0.5)}],
            },
        )
        out.append({"turn": n, "request": "tool result", "first_token_s": ttft})
        history += [ask, call_msg, *results, {"role": "assistant", "content": text}]
        time.sleep(think)
    return out


# -- prefix reuse ----------------------------------------------------------------------------------


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k != "cache_control"}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def cached_part(body: dict[str, Any]) -> bytes:
    """
    What the prompt cache keys on, in order: tools, system, messages.
    """
    return json.dumps([_strip(body.get(k)) for k in ("tools", "system", "messages")], separators=(",", ":")).encode()


def prefix_shares(bodies: list[dict[str, Any]]) -> list[float]:
    shares = []
    for prev, cur in zip(bodies, bodies[1:], strict=False):
        a, b = cached_part(prev), cached_part(cur)
        n = 0
        limit = min(len(a), len(b))
        while n < limit and a[n] == b[n]:
            n += 1
        shares.append(n / len(b))
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--think", type=float, default=1.0, help="seconds the user takes between turns")
    parser.add_argument("--cold", type=int, default=7, help="direct cold CLI runs for the baseline")
    parser.add_argument("--serve-upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    from tests.harness import cli_env, cli_path

    log = tempfile.mktemp(prefix="cp-agent-upstream-", suffix=".jsonl")
    upstream, url = start_upstream(log)
    home = tempfile.mkdtemp(prefix="cp-agent-home-")
    cli = cli_path()
    env = cli_env(url, home)
    try:
        workdir = tempfile.mkdtemp(prefix="cp-agent-cold-")
        cold = sorted(cold_cli(cli, env, workdir, "hello")[0] for _ in range(args.cold))
        daemon = Daemon(ROOT, cli, env, ["--warm", "2", "--max-sessions", "8", "--upstream-retries", "0"], "agent")
        try:
            daemon.wait_idle(2)
            requests = conversation(daemon.port, args.turns, args.think)
            health = daemon.health()
        finally:
            daemon.stop()
    finally:
        upstream.terminate()
        upstream.wait()
    with open(log) as f:
        # the agent's requests (the cold baseline's have no tools)
        bodies = [b for b in (json.loads(line) for line in f) if b.get("tools")]
    os.replace(log, os.path.join(tempfile.gettempdir(), "cp-agent-upstream-last.jsonl"))
    shares = prefix_shares(bodies)
    cold_ms = statistics.median(cold) * 1000
    later = [r["first_token_s"] * 1000 for r in requests[1:]]
    by_kind = {
        kind: round(statistics.median(r["first_token_s"] * 1000 for r in requests[1:] if r["request"] == kind), 1)
        for kind in ("tool call", "tool result")
    }
    results = {
        "machine": machine(cli, env),
        "cold_cli_first_token_ms": round(cold_ms, 1),
        "requests": [dict(r, first_token_ms=round(r.pop("first_token_s") * 1000, 1)) for r in requests],
        "median_after_first_ms": round(statistics.median(later), 1),
        "ratio_after_first": round(statistics.median(later) / cold_ms, 3),
        "median_after_first_by_kind_ms": by_kind,
        "upstream_requests": len(bodies),
        "prefix_share": [round(s, 3) for s in shares],
        "prefix_share_median": round(statistics.median(shares), 3),
        "prefix_share_min": round(min(shares), 3),
        "pool": health["pool"],
    }
    with open(os.path.join(HERE, "agent-results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print("cold CLI first token (median of %d): %.1f ms" % (args.cold, cold_ms))
    for r in results["requests"]:
        print("  turn %2d %-11s first token %7.1f ms" % (r["turn"], r["request"], r["first_token_ms"]))
    print(
        "requests after the first: median %.1f ms = %.3f x cold (target <= 0.15)"
        % (results["median_after_first_ms"], results["ratio_after_first"])
    )
    print("  by kind (after the first): %s" % (json.dumps(by_kind),))
    print(
        "prefix reuse over %d upstream requests: median %.1f %%, min %.1f %% (target >= 90 %%)"
        % (len(bodies), results["prefix_share_median"] * 100, results["prefix_share_min"] * 100)
    )
    print("sessions:", json.dumps(health["pool"]["sessions"]), "tools:", json.dumps(health["pool"]["tools"]))


if __name__ == "__main__":
    main()
