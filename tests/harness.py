"""
Integration-test harness: the real Claude Code CLI (installed by the test
command, see tests/run.sh), the fake Anthropic API, and the real daemon site
on a loopback port.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import tempfile
import zlib
from typing import Any, AsyncIterator, Mapping, Optional

import attrs
import treq
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from zope.interface import implementer

from claudeproxy.config import Config
from claudeproxy.engine.process import group_spawner
from claudeproxy.engine.versions import OLDEST_TESTED
from claudeproxy.service import Daemon, build
from tests.fakeanthropic import FakeAnthropic

CLI_VERSION = OLDEST_TESTED
DEFAULT_CLI = os.path.expanduser("~/.cache/claudeproxy/cli-%s/node_modules/.bin/claude" % (CLI_VERSION,))

reactor: Any = _reactor


def cli_path() -> str:
    """
    The real CLI.  Integration tests fail (never skip) without it.
    """
    path = os.environ.get("CLAUDEPROXY_TEST_CLI", DEFAULT_CLI)
    if not os.access(path, os.X_OK):
        raise AssertionError(
            "The real Claude Code CLI is not installed at %s: run the test command "
            "from the README (bash tests/run.sh), which installs it." % (path,)
        )
    return path


def cli_env(base_url: str, home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ANTHROPIC_API_KEY", None)
    env.update(
        HOME=home,
        ANTHROPIC_BASE_URL=base_url,
        CLAUDE_CODE_OAUTH_TOKEN="test-oauth-token",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    return env


def treq_headers(headers: Optional[Mapping[str, str]]) -> dict[bytes | str, bytes | str]:
    """
    C{headers} as treq takes them.
    """
    out: dict[bytes | str, bytes | str] = {}
    out.update(headers or {})
    return out


@attrs.define
class Running:
    """
    A daemon running for one test.
    """

    daemon: Daemon
    fake: FakeAnthropic
    url: str
    port: Any
    env: dict[str, str]
    spawned: list[int] = attrs.Factory(list)
    pool: Any = attrs.field(factory=lambda: HTTPConnectionPool(reactor, persistent=False))

    @property
    def proxy(self) -> Any:
        return self.daemon.proxy

    @property
    def manager(self) -> Any:
        return self.daemon.manager

    async def post(self, path: str, body: Any, headers: Optional[dict[str, str]] = None, **kw: Any) -> Any:
        h = treq_headers({"Content-Type": "application/json", **(headers or {})})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        kw.setdefault("pool", self.pool)
        return await treq.post(self.url + path, data=data, headers=h, **kw)

    async def pool_request(self, method: str, path: str, headers: Optional[dict[str, str]] = None, **kw: Any) -> Any:
        kw.setdefault("pool", self.pool)
        return await treq.request(method, self.url + path, headers=treq_headers(headers), **kw)

    async def get(self, path: str, headers: Optional[dict[str, str]] = None, **kw: Any) -> Any:
        kw.setdefault("pool", self.pool)
        return await treq.get(self.url + path, headers=treq_headers(headers), **kw)

    async def post_json(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """
        POST C{body} to C{path}; the status and the parsed JSON body.
        """
        resp = await self.post(path, body)
        return resp.code, json.loads(await resp.text())

    async def chat(self, body: dict[str, Any], headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
        """
        POST a chat completion; the status and the parsed JSON body.
        """
        resp = await self.post("/v1/chat/completions", body, headers)
        text = await resp.text()
        return resp.code, json.loads(text)

    async def chat_stream(self, body: dict[str, Any]) -> tuple[int, list[Any], Any]:
        """
        POST a streaming chat completion; the status, the parsed SSE data
        items (the string "[DONE]" for the end) and the response.
        """
        resp = await self.post("/v1/chat/completions", dict(body, stream=True))
        raw = await resp.content()
        return resp.code, parse_sse(raw), resp


def parse_sse(raw: bytes) -> list[Any]:
    items: list[Any] = []
    for frame in raw.decode("utf-8").split("\n\n"):
        for line in frame.split("\n"):
            if line.startswith("data: "):
                data = line[len("data: ") :]
                items.append("[DONE]" if data == "[DONE]" else json.loads(data))
    return items


def streamed_text(items: list[Any], field: str = "content") -> str:
    out = []
    for item in items:
        if isinstance(item, dict):
            for choice in item.get("choices", []):
                value = choice.get("delta", {}).get(field)
                if value:
                    out.append(value)
    return "".join(out)


def live_pids(pids: list[int]) -> list[int]:
    """
    Those of C{pids} still running (zombies count as gone).
    """
    alive = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % (pid,)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _live_stats() -> Any:
    """
    (pid, fields after the command) of every live (not zombie) process.
    """
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield int(name), fields


def group_members(pgid: int) -> list[int]:
    """
    Live processes whose process group is C{pgid}.
    """
    return [pid for pid, fields in _live_stats() if int(fields[2]) == pgid]


def sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


#: how long a trivial process round trip (start C{python -I -S -c pass},
#: wait for its exit) takes on an idle 2-core machine: the reference that
#: L{slowdown} compares with
REFERENCE_ROUND_TRIP = 0.015
#: how long a measured slowdown holds before it is measured again (the load
#: on a shared machine changes during a run)
SLOWDOWN_FOR = 30.0
_slowdown: list[tuple[float, float]] = []


def measure_round_trip(runs: int = 5) -> float:
    """
    The median time of a trivial process round trip, now.
    """
    import subprocess
    import time

    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def slowdown() -> float:
    """
    How many times slower than an idle machine this one runs processes
    (at least 1, at most 20): measured again when the last measure is
    older than L{SLOWDOWN_FOR} seconds, or taken from
    C{CLAUDEPROXY_TEST_SLOWDOWN}.  Timeouts that real processes must beat
    are scaled by it (L{scaled}, L{wait_for}), so that the suite holds on
    a busy machine; what a test asserts as a requirement (e.g. "within one
    second") is asserted separately and not scaled.
    """
    import time

    given = os.environ.get("CLAUDEPROXY_TEST_SLOWDOWN")
    if given:
        return float(given)
    now = time.monotonic()
    if not _slowdown or now - _slowdown[0][0] > SLOWDOWN_FOR:
        factor = min(20.0, max(1.0, measure_round_trip() / REFERENCE_ROUND_TRIP))
        _slowdown[:] = [(now, factor)]
    return _slowdown[0][1]


def scaled(seconds: float) -> float:
    """
    C{seconds}, a time a real process must beat on an idle machine, scaled
    to how busy this one is (L{slowdown}).
    """
    return seconds * slowdown()


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """
    Wait until C{predicate()} is true, at most C{timeout} seconds (scaled
    by L{slowdown}: what is waited for involves real processes).
    """
    limit = scaled(timeout)
    waited = 0.0
    while not predicate():
        if waited > limit:
            raise AssertionError("condition not met within %gs (x%.1f: machine load)" % (timeout, slowdown()))
        await sleep(interval)
        waited += interval


async def start(
    test: TestCase,
    claude: Optional[str] = None,
    extra_env: Optional[Mapping[str, str]] = None,
    home: Optional[str] = None,
    oauth_token: bool = True,
    **overrides: Any,
) -> Running:
    """
    Start the fake upstream and the daemon (the real CLI unless C{claude}
    names another); both stop when the test ends, and the test fails if a
    CLI process is left running.  C{extra_env} is added to the CLI's
    environment.  C{home} is the HOME (default: a new empty one); without
    C{oauth_token} the CLI has no C{CLAUDE_CODE_OAUTH_TOKEN} (the login is
    whatever C{home} holds).
    """
    fake = FakeAnthropic(reactor)
    base_url = fake.listen()
    home = home if home is not None else tempfile.mkdtemp(prefix="cp-home-")
    workdir = overrides.pop("workdir", None) or tempfile.mkdtemp(prefix="cp-work-")
    env = cli_env(base_url, home)
    if not oauth_token:
        env.pop("CLAUDE_CODE_OAUTH_TOKEN")
    env.update(extra_env or {})
    settings: dict[str, Any] = dict(
        listen="tcp:0:interface=127.0.0.1",
        claude=claude if claude is not None else cli_path(),
        upstream_retries=0,
        # CLAUDEPROXY_TEST_WARM=N runs every test with a warm pool (a check
        # that binding late changes nothing a test sees)
        warm=int(os.environ.get("CLAUDEPROXY_TEST_WARM", "0")),
        max_sessions=0,
        workdir=workdir,
        shutdown_grace=3.0,
        # no usage check at start unless a test asks for it (it would be one more CLI process)
        usage_check=0.0,
    )
    settings.update(overrides)
    spawned: list[int] = []
    real = group_spawner(reactor)

    def recording_spawner(protocol: Any, executable: str, args: Any, env: Any, path: str) -> Any:
        result = real(protocol, executable, args, env, path)
        pid = getattr(result, "pid", None)
        if pid is not None:
            spawned.append(pid)
        return result

    daemon = build(reactor, Config(**settings), env, spawner=recording_spawner)
    daemon.core.startService()
    connections = WrappingFactory(daemon.site)
    # a deep accept queue: tests open hundreds of connections at once, and a
    # busy reactor accepts them late
    port = reactor.listenTCP(0, connections, backlog=1024, interface="127.0.0.1")
    running = Running(daemon, fake, "http://127.0.0.1:%d" % (port.getHost().port,), port, env, spawned)

    async def cleanup() -> None:
        await running.pool.closeCachedConnections()
        await port.stopListening()
        # clients that keep connections open (the openai SDK) are cut off
        for protocol in list(connections.protocols):
            protocol.transport.abortConnection()
        await wait_for(lambda: not connections.protocols, timeout=5)
        await daemon.core.stopService()
        await fake.stop()
        left = live_pids(spawned)
        for pid in spawned:
            left.extend(p for p in group_members(pid) if p not in left)
        if left:
            raise AssertionError("CLI processes left running: %r" % (left,))

    test.addCleanup(lambda: Deferred.fromCoroutine(cleanup()))
    return running


__all__ = ["AsyncIterator"]


class RawClient(Protocol):
    """
    A hand-made HTTP/1.0 client: the test decides when it reads
    (C{transport.pauseProducing}) and when it goes away.  C{data} is every
    byte received; C{closed} fires with it when the server closes.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: Deferred[bytes] = Deferred()
        self.connected = False

    def connectionMade(self) -> None:
        self.connected = True

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Any = None) -> None:
        self.connected = False
        if not self.closed.called:
            self.closed.callback(bytes(self.data))

    @property
    def head(self) -> bytes:
        return bytes(self.data).split(b"\r\n\r\n", 1)[0]

    @property
    def status(self) -> Optional[int]:
        if b"\r\n" not in self.data:
            return None
        return int(bytes(self.data).split(b" ", 2)[1])

    @property
    def body(self) -> bytes:
        parts = bytes(self.data).split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) == 2 else b""


async def raw_connect(port: int) -> RawClient:
    """
    A L{RawClient} connected to C{port} on loopback; the test writes the
    request itself.
    """
    client = RawClient()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    return client


async def raw_post(port: int, path: str, body: Any, headers: Optional[dict[str, str]] = None) -> RawClient:
    """
    Connect to C{port} on loopback and send one HTTP/1.0 POST of C{body}
    (JSON unless bytes); the connected L{RawClient}.
    """
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    client = await raw_connect(port)
    h = {"Host": "127.0.0.1:%d" % (port,), "Content-Type": "application/json", "Content-Length": str(len(data))}
    h.update(headers or {})
    request = ("POST %s HTTP/1.0\r\n" % (path,)).encode() + b"".join(
        ("%s: %s\r\n" % (k, v)).encode() for k, v in h.items()
    )
    assert client.transport is not None
    client.transport.write(request + b"\r\n" + data)
    return client


def dechunk(body: bytes) -> bytes:
    """
    An HTTP/1.1 chunked body, decoded.
    """
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def children_of(ppid: int) -> list[int]:
    """
    Live processes whose parent is C{ppid}.
    """
    return [pid for pid, fields in _live_stats() if int(fields[1]) == ppid]


def only_cli_pipes(running: Running) -> bool:
    """
    True when the reactor watches no process pipes but those of the
    daemon's CLI processes: the daemon's start-up C{claude --version} probe
    has finished.
    """
    from twisted.internet.process import ProcessReader, ProcessWriter

    mine = {p.transport for p in running.manager.live}
    guard = running.daemon.guard
    if guard is not None and guard.transport is not None:
        # the daemon's watchdog runs as long as the daemon
        mine.add(guard.transport)
    for selectable in [*reactor.getReaders(), *reactor.getWriters()]:
        if isinstance(selectable, (ProcessReader, ProcessWriter)) and selectable.proc not in mine:
            return False
    return True


async def start_settled(test: TestCase, claude: Optional[str] = None, **overrides: Any) -> Running:
    """
    L{start}, then wait for the daemon's version probe to end (a test that
    ends sooner would leave its process to the next test).
    """
    running = await start(test, claude, **overrides)
    await wait_for(lambda: only_cli_pipes(running), timeout=15)
    return running


# -- for the hardening tests -------------------------------------------------

FAKECLIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakeclis")
BENCH_FAKECLI = os.path.normpath(os.path.join(os.path.dirname(FAKECLIS), os.pardir, "bench", "fakecli.py"))


def fast_script(path: str, directory: Optional[str] = None) -> str:
    """
    A copy of the Python script C{path} whose C{#!} line names the running
    interpreter (with C{-IS}: isolated, no site), so that it starts in a few
    milliseconds even where C{python3} on PATH is a slow shim (pyenv).  The
    copy is made in C{directory} (made if missing; by default a new
    temporary one); tests pass C{self.mktemp()}.
    """
    with open(path, "rb") as f:
        source = f.read()
    if source.startswith(b"#!"):
        source = source.split(b"\n", 1)[1]
    directory = os.path.abspath(directory or tempfile.mkdtemp(prefix="cp-fakecli-"))
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, os.path.basename(path))
    with open(target, "wb") as f:
        f.write(b"#!" + sys.executable.encode() + b" -IS\n" + source)
    os.chmod(target, 0o755)
    return target


def open_fds() -> int:
    """
    How many file descriptors this process has open.
    """
    return len(os.listdir("/proc/self/fd"))


def process_groups() -> dict[int, list[int]]:
    """
    Every live (non-zombie) process, by process group: one pass over /proc.
    """
    groups: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            groups.setdefault(int(fields[2]), []).append(int(name))
    return groups


def left_running(pids: list[int]) -> list[int]:
    """
    Live processes in the groups led by C{pids} (the CLI processes a daemon
    started lead their own groups): what L{start}'s clean-up checks, in one
    pass over /proc however many pids there are.
    """
    groups = process_groups()
    return sorted({p for pid in set(pids) for p in groups.get(pid, [])})


@implementer(ILogObserver)
class LoggedErrors:
    """
    A C{twisted.logger} observer, on the global log publisher while
    installed, that keeps every event carrying a failure or logged at
    level error or critical.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: LogEvent) -> None:
        from twisted.logger import LogLevel

        if "log_failure" in event or event.get("log_level") in (LogLevel.error, LogLevel.critical):
            self.events.append(event)

    def install(self, test: TestCase) -> LoggedErrors:
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(self)
        test.addCleanup(globalLogPublisher.removeObserver, self)
        return self

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent

        out = []
        for event in self.events:
            text = formatEvent(event)
            failure = event.get("log_failure")
            if failure is not None:
                text += ": " + failure.getTraceback()
            out.append(text)
        return out


async def reap_leaks(running: Running, settle: float = 0.3) -> list[int]:
    """
    The CLI processes of C{running} still alive C{settle} seconds after its
    work ended (L{left_running}); they are killed, and reaped by the
    daemon, so that a test that found them can still end cleanly.
    """
    import signal

    await sleep(settle)
    leaked = left_running(running.spawned)
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if leaked:
        await wait_for(lambda: not running.manager.live, timeout=5)
    return leaked


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    """
    A loopback TCP port free just now.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TwistdProcess(ProcessProtocol):
    """
    A twistd child: its output, whether it runs, and C{ended}, which fires
    with its exit status (negative: the signal that ended it).
    """

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: Deferred[Optional[int]] = Deferred()
        self.status: Optional[int] = None
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        if reason.check(ProcessDone):
            self.status = 0
        elif reason.check(ProcessTerminated):
            value: Any = reason.value
            self.status = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        self.ended.callback(self.status)


def tiny_png() -> bytes:
    """
    A valid 2x2 PNG (the CLI drops images that do not decode).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def upstream_turns(body: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """
    The user and assistant turns of an upstream request as
    C{(role, blocks)}: cache_control markers and the CLI's own
    C{<system-reminder>} blocks left out, mid-conversation system messages
    skipped.  Fails the test if anything upstream is a flattened
    transcript.
    """
    assert "conversation_history" not in json.dumps(body.get("messages")), "a flattened transcript went upstream"
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for m in body.get("messages") or []:
        if m.get("role") not in ("user", "assistant"):
            continue
        content = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        blocks = [
            {k: v for k, v in b.items() if k != "cache_control"}
            for b in content
            if not (b.get("type") == "text" and str(b.get("text", "")).startswith("<system-reminder>"))
        ]
        out.append((m["role"], blocks))
    return out


def text_turn(role: str, *texts: str) -> tuple[str, list[dict[str, Any]]]:
    return (role, [{"type": "text", "text": t} for t in texts])


@attrs.define
class Twistd:
    """
    A twistd daemon started by L{start_twistd}.
    """

    proto: TwistdProcess
    transport: Any
    port: int

    @property
    def pid(self) -> int:
        return int(self.transport.pid)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % (self.port,)

    def output(self) -> str:
        return bytes(self.proto.output).decode("utf-8", "replace")


#: twistd, as this interpreter runs it (C{sys.executable} then these)
TWISTD = ("-c", "import sys; from twisted.scripts.twistd import run; sys.exit(run())")
#: the console script C{claudeproxy} as pip writes it
CONSOLE_SCRIPT = ("-c", "import sys; from claudeproxy.ops.cli import main; sys.exit(main())")


async def launch(test: TestCase, argv: list[str], env: Mapping[str, str], cwd: str, port: int) -> Twistd:
    """
    Spawn the daemon C{argv} (C{argv[0]} the executable) with C{env} in
    C{cwd}, and wait until it answers /health on C{port}.  It is killed, if
    still running, when the test ends; its children are the test's to reap.
    """
    proto = TwistdProcess()
    transport = reactor.spawnProcess(proto, argv[0], argv, env=dict(env), path=cwd)
    test.addCleanup(lambda: proto.ended if proto.running else None)
    test.addCleanup(lambda: transport.signalProcess("KILL") if proto.running else None)
    daemon = Twistd(proto, transport, port)
    limit = scaled(30)
    waited = 0.0
    while True:
        if not proto.running:
            raise AssertionError("%s exited (%s): %s" % (argv[-1], proto.status, daemon.output()))
        try:
            resp = await treq.get(daemon.url + "/health", persistent=False)
            await resp.content()
            if resp.code == 200:
                return daemon
        except Exception:
            pass
        if waited > limit:
            raise AssertionError("%s did not answer /health: %s" % (argv[-1], daemon.output()))
        await sleep(0.1)
        waited += 0.1


async def start_twistd(
    test: TestCase,
    env: Mapping[str, str],
    args: list[str],
    cwd: Optional[str] = None,
    pid_file: bool = False,
    command: tuple[str, ...] = TWISTD,
) -> Twistd:
    """
    Run C{twistd -n --pidfile= ARGS} (C{{port}} in C{args} and in the values
    of C{env} is a free port) with C{env} plus this checkout on PYTHONPATH,
    in C{cwd} (a new directory if none), and wait until it answers /health.
    With C{pid_file}, twistd writes its default pid file (C{twistd.pid} in
    C{cwd}).  C{command=CONSOLE_SCRIPT} runs C{claudeproxy ARGS} instead
    (C{serve} among them).
    """
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in args]
    if command == TWISTD:
        args = ["-n", *([] if pid_file else ["--pidfile="]), *args]
    argv = [sys.executable, *command, *args]
    full_env = {k: v.replace("{port}", str(port)) for k, v in dict(env, PYTHONPATH=ROOT).items()}
    return await launch(test, argv, full_env, cwd or tempfile.mkdtemp(prefix="cp-twistd-"), port)


def cmdline(pid: int) -> str:
    """
    The command line of C{pid} ("" if it is gone).
    """
    try:
        with open("/proc/%d/cmdline" % (pid,), "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""
