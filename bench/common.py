"""
What the benchmark's parts share: starting a daemon (L{Daemon}), one
streamed request timed to its first token (L{post_stream}), a direct cold
CLI (L{cold_cli}), and the machine's description.  C{bench/run.py} runs the
parts; each part imports from here, never from another part.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any, Callable, Optional

from claudeproxy.engine.binding import (
    boundary_line,
    generic_argv,
    history_lines,
    initialize_request,
    is_history_result,
    model_request,
    settings_request,
)
from claudeproxy.engine.bridge import ToolBridge
from claudeproxy.engine.conversation import Message, text_block, user_line
from claudeproxy.engine.history import session_file_text, session_rows
from claudeproxy.engine.isolation import isolation_args
from claudeproxy.engine.mcprpc import answer
from claudeproxy.engine.process import WARM_UP, SpawnKey, build_argv, build_env, stream_json_argv
from claudeproxy.engine.tools import SERVER
from claudeproxy.engine.versions import parse_version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


#: twistd, started so that options the daemon reads but does not (yet)
#: declare get their defaults instead of a KeyError at start
LAUNCH = """
import sys
from claudeproxy import _tap
have = {p[0] for p in _tap.Options.optParameters}
extra = [
    ["warm", None, 2, "", int],
    ["warm-ttl", None, 600.0, "", float],
    ["session-ttl", None, 300.0, "", float],
    ["max-sessions", None, 4, "", int],
    ["tool-wait", None, 300.0, "", float],
]
missing = [p for p in extra if p[0] not in have]
if missing:
    sys.stderr.write("bench: claudeproxy._tap.Options lacks %s; added for this run\\n" % [p[0] for p in missing])
    _tap.Options.optParameters = list(_tap.Options.optParameters) + missing
from twisted.scripts.twistd import run
run()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, root: str, cli: str, env: dict[str, str], args: list[str], name: str) -> None:
        self.port = free_port()
        self.log = os.path.join(tempfile.gettempdir(), "claudeproxy-bench-%s-%d.log" % (name, self.port))
        cmd = [sys.executable, "-c", LAUNCH, "-n", "--pidfile=", "--logfile=" + self.log, "claudeproxy"]
        cmd += ["--listen", "tcp:%d:interface=127.0.0.1" % (self.port,), "--claude", cli, *args]
        env = dict(env, PYTHONPATH=root)
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise SystemExit("the daemon (%s) exited at start:\n%s\n%s" % (" ".join(args), err, self._log_tail()))
            try:
                self.health()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the daemon did not answer /health within 30 s\n" + self._log_tail())
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def health(self) -> Any:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % (self.port,), timeout=5) as r:
            return json.loads(r.read())

    def idle(self) -> int:
        warm = self.health()["pool"]["warm"]
        return sum(e["count"] for e in warm["idle"]) + warm.get("generic", {}).get("idle", 0)

    def wait_idle(self, want: int, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while self.idle() < want:
            if time.monotonic() > deadline:
                raise SystemExit("the warm pool never reached %d idle processes" % (want,))
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Reply:
    def __init__(self) -> None:
        self.status = 0
        self.ttft: Optional[float] = None
        self.total = 0.0
        self.body = b""
        self.error = ""
        #: the daemon's x-claudeproxy-served header
        self.served = "-"

    def items(self) -> list[Any]:
        out: list[Any] = []
        for frame in self.body.split(b"\n\n"):
            if frame.startswith(b"data: "):
                data = frame[6:]
                out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
        return out

    def text(self) -> str:
        parts = []
        for item in self.items():
            if isinstance(item, dict):
                for choice in item.get("choices", []):
                    value = choice.get("delta", {}).get("content")
                    if value:
                        parts.append(value)
        return "".join(parts)


def _first_content(buf: bytes) -> bool:
    for frame in buf.split(b"\n\n")[:-1]:
        if frame.startswith(b"data: {"):
            obj = json.loads(frame[6:])
            for choice in obj.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    return True
    return False


def post_stream(
    port: int,
    body: dict[str, Any],
    timeout: float = 120.0,
    pace: Optional[Callable[[int, float], None]] = None,
    rcvbuf: Optional[int] = None,
) -> Reply:
    """
    One streaming chat completion over a plain HTTP/1.0 socket: the time
    to the first content delta, the total time and the SSE body.  C{pace}
    (bytes so far, start) is called before every read, to read slowly.
    """
    reply = Reply()
    data = json.dumps(dict(body, stream=True)).encode()
    head = b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    parts: list[bytes] = []
    got = 0
    scan = b""
    body_at = -1
    t0 = time.perf_counter()
    try:
        sock.connect(("127.0.0.1", port))
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % (len(data),) + data)
        while True:
            if pace is not None:
                pace(got, t0)
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
            parts.append(chunk)
            if reply.ttft is None:
                scan += chunk
                if body_at < 0 and b"\r\n\r\n" in scan:
                    body_at = scan.index(b"\r\n\r\n") + 4
                if body_at >= 0 and _first_content(scan[body_at:]):
                    reply.ttft = time.perf_counter() - t0
                    scan = b""
    except OSError as e:
        reply.error = repr(e)
    finally:
        reply.total = time.perf_counter() - t0
        sock.close()
    raw = b"".join(parts)
    headers, _, reply.body = raw.partition(b"\r\n\r\n")
    for line in headers.split(b"\r\n"):
        if line.lower().startswith(b"x-claudeproxy-served:"):
            reply.served = line.split(b":", 1)[1].strip().decode()
    try:
        reply.status = int(headers.split(b" ", 2)[1])
    except (IndexError, ValueError):
        reply.status = 0
    return reply


def spawn_cli(argv: list[str], env: dict[str, str], workdir: str) -> subprocess.Popen[bytes]:
    """
    A CLI in its own session, stream-json on its stdin and stdout.
    """
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=workdir,
        start_new_session=True,
    )


def cold_cli(cli: str, env: dict[str, str], workdir: str, prompt: str) -> tuple[float, float]:
    """
    (a): start the CLI, write one user line; seconds to the first
    text_delta line and to the result line.
    """
    argv = stream_json_argv(cli, (), "sonnet")
    line = json.dumps({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": prompt}]}})
    t0 = time.perf_counter()
    proc = spawn_cli(argv, env, workdir)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(line.encode() + b"\n")
    proc.stdin.flush()
    ttft = total = float("nan")
    for raw in proc.stdout:
        obj = json.loads(raw)
        if obj.get("type") == "stream_event" and ttft != ttft:
            delta = obj.get("event", {}).get("delta", {})
            if delta.get("type") == "text_delta":
                ttft = time.perf_counter() - t0
        if obj.get("type") == "result":
            total = time.perf_counter() - t0
            break
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc.stdout.close()
    return ttft, total


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def check(r: Reply, expected: str, what: str, problems: list[str]) -> None:
    if r.error or r.status != 200:
        problems.append("%s: status %s %s %r" % (what, r.status, r.error, r.body[:200]))
        return
    items = r.items()
    if r.text() != expected or not items or items[-1] != "[DONE]":
        problems.append("%s: wrong reply %r" % (what, r.body[-300:]))


def machine(cli: str, env: dict[str, str]) -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    try:
        version = subprocess.run([cli, "--version"], env=env, capture_output=True, timeout=30).stdout.decode().strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        version = "unknown (%s)" % (e,)
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gb": round(mem / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cli": cli,
        "cli_version": version,
    }


#: what counts as served by a process that had finished starting
FAST = ("warm", "session", "resumed", "tools", "written", "reused")


class DirectCLI:
    """
    A CLI driven directly over its stdin and stdout, as the daemon drives
    it: stream-json lines written, lines read with a deadline, the
    client's tools (C{tools}) answered on the control channel.
    """

    def __init__(self, argv: list[str], env: dict[str, str], workdir: str, tools: tuple[Any, ...] = ()) -> None:
        self.bridge = ToolBridge("direct", "", tools)
        self.proc = spawn_cli(argv, env, workdir)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin = self.proc.stdin
        self.fd = self.proc.stdout.fileno()
        self.buf = b""
        #: the MCP methods the CLI has called, in order
        self.mcp: list[str] = []
        #: the user lines the CLI printed (local commands' echoes)
        self.echoes = 0
        self._seq = 0

    def write(self, *objs: Any) -> None:
        self.stdin.write(b"".join(json.dumps(obj).encode() + b"\n" for obj in objs))
        self.stdin.flush()

    def say(self, prompt: str) -> None:
        """
        Write one user turn.
        """
        self.stdin.write(user_line([text_block(prompt)]))
        self.stdin.flush()

    def control(self, request: dict[str, Any]) -> str:
        """
        Write a control request; its request id.
        """
        self._seq += 1
        rid = "bench-%d" % (self._seq,)
        self.write({"type": "control_request", "request_id": rid, "request": request})
        return rid

    def lines(self, limit: float) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            # never past the deadline: a short wait stays short
            ready, _, _ = select.select([self.fd], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if not line.strip():
                    continue
                obj = json.loads(line)
                request = obj.get("request") or {}
                if obj.get("type") == "control_request" and request.get("subtype") == "mcp_message":
                    message = request.get("message") or {}
                    self.mcp.append(str(message.get("method")))
                    reply = answer(self.bridge, message)
                    response = reply if isinstance(reply, dict) else {"jsonrpc": "2.0", "result": {}}
                    self.write(
                        {
                            "type": "control_response",
                            "response": {
                                "subtype": "success",
                                "request_id": obj["request_id"],
                                "response": {"mcp_response": response},
                            },
                        }
                    )
                    continue
                if obj.get("type") == "user":
                    # a local command's echo (2.1.197's set_model)
                    self.echoes += 1
                yield obj

    def until(self, done: Callable[[Any], bool], limit: float = 30.0) -> Any:
        for obj in self.lines(limit):
            if done(obj):
                return obj
        raise SystemExit("the CLI never printed what the benchmark waited for")

    def answered(self, rid: str) -> Any:
        return self.until(lambda o: o.get("type") == "control_response" and o["response"].get("request_id") == rid)

    def first_token(self, limit: float = 30.0) -> float:
        """
        Seconds from now to the first text delta (NaN if none comes).
        """
        t0 = time.perf_counter()
        for obj in self.lines(limit):
            if obj.get("type") == "stream_event" and obj.get("event", {}).get("delta", {}).get("type") in (
                "text_delta",
                "input_json_delta",
            ):
                return time.perf_counter() - t0
        return float("nan")

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.stdin.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def waiting_cli(
    cli: str,
    env: dict[str, str],
    workdir: str,
    prompt: str,
    key: SpawnKey = SpawnKey("sonnet"),
    history: tuple[Message, ...] = (),
    version: str = "2.1.197",
) -> float:
    """
    The physical limit for a request with C{key}'s settings and
    C{history}: the same CLI, started with those settings (flags, as the
    daemon starts a process for one request; the client's tools from an
    SDK MCP server answered on the control channel; the history from a
    session file), ready and left waiting on stdin.  Seconds from writing
    one user line to its first text delta.
    """
    resume = None
    if history:
        rows = session_rows(history, key.model, os.path.realpath(workdir), version, "2026-01-01T00:00:00.000Z")
        resume = os.path.join(workdir, "waiting-%d.jsonl" % (time.monotonic_ns(),))
        with open(resume, "wb") as f:
            f.write(session_file_text(rows))
    mcp = json.dumps({"mcpServers": {SERVER: {"type": "sdk", "name": SERVER}}}) if key.tools else None
    argv = build_argv(cli, key, mcp_config=mcp, resume=resume, settings=isolation_args(False))
    cli_ = DirectCLI(argv, dict(build_env(env, False, 0), **key.env()), workdir, key.tools)
    try:
        cli_.answered(cli_.control({"subtype": "initialize"}))
        # left waiting, as a warm process is (its tool server connected)
        for _ in cli_.lines(1.0):
            pass
        cli_.say(prompt)
        return cli_.first_token()
    finally:
        cli_.close()
        if resume is not None:
            os.unlink(resume)


def late_bound_cli(
    cli: str,
    env: dict[str, str],
    workdir: str,
    prompt: str,
    key: SpawnKey,
    history: tuple[Message, ...] = (),
    version: str = "2.1.197",
) -> float:
    """
    The limit of binding late, with no daemon in the way: a generic
    process (started as the daemon starts one, ready, warmed up and left
    waiting) given C{key}'s settings and C{history} over the control
    protocol as L{claudeproxy.engine.binder} gives them, each step waited
    for, then the user line.  Seconds from the first bind write to the
    first text delta.  What a request that is the first of its kind can
    reach at best: its settings are not known before it arrives.
    """
    argv = generic_argv(cli, "sonnet", isolation_args(False))
    cli_ = DirectCLI(argv, build_env(env, False, 0), workdir, key.tools)
    newer = (parse_version(version) or (2, 1, 197)) >= (2, 1, 300)
    try:
        cli_.answered(cli_.control({"subtype": "get_binary_version"}))
        cli_.answered(cli_.control(WARM_UP))
        # settled, as the daemon's warm processes are when the benchmark
        # asks (it waits for the pool and 2 s more before each request);
        # left 1-2 s, the by-hand binding was slower than the daemon's
        for _ in cli_.lines(4.0):
            pass
        t0 = time.perf_counter()
        cli_.answered(cli_.control(initialize_request(key)))
        if key.tools and newer:
            # 2.1.332 connects to the tool server now: wait for its list
            deadline = time.monotonic() + 30
            while "tools/list" not in cli_.mcp and time.monotonic() < deadline:
                for _ in cli_.lines(0.002):
                    pass
        for request in (model_request(key, "sonnet"), settings_request(key)):
            if request is not None:
                echoes = cli_.echoes
                cli_.answered(cli_.control(request))
                if cli_.echoes != echoes:
                    cli_.write(boundary_line())
        if history:
            now = "2026-01-01T00:00:00.000Z"
            for line in history_lines(history, key.model, os.path.realpath(workdir), version, now):
                cli_.write(line)
                if line["type"] == "user":
                    cli_.until(is_history_result)
        cli_.say(prompt)
        waited = time.perf_counter() - t0
        return waited + cli_.first_token()
    finally:
        cli_.close()


def together(port: int, bodies: list[dict[str, Any]]) -> list[Reply]:
    out: list[Any] = [None] * len(bodies)

    def one(i: int) -> None:
        out[i] = post_stream(port, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
