"""
One Claude Code CLI process: how it is started (argv, environment, working
directory, its own process group), and a L{ProcessProtocol} that splits its
stdout into stream-json lines with no length limit and hands them to
whoever holds the process now.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

import attrs
from twisted.internet import process as _process
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..config import DEFAULTS
from .isolation import isolation_args, isolation_env
from .lines import Elided, LineBuffer, LineTooLong, head_fields
from .tools import SERVER, ToolSpec

STDERR_TAIL = 4096
#: the CLI flags that keep the user's own set-up out (the default)
ISOLATED: tuple[str, ...] = tuple(isolation_args(False))
#: the CLI's built-in tool that runs Anthropic's web search server tool
WEB_SEARCH = "WebSearch"


@attrs.frozen
class SpawnKey:
    """
    Everything fixed when a CLI process starts.  Two requests with equal
    keys can be served by the same kind of process.
    """

    model: str
    system: Optional[str] = None
    system_mode: str = "replace"
    effort: Optional[str] = None
    extra: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    json_schema: Optional[str] = None
    max_tokens: Optional[int] = None
    web_search: bool = False

    def env(self) -> dict[str, str]:
        """
        What this key adds to the CLI's environment.
        """
        if self.max_tokens is None:
            return {}
        return {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(self.max_tokens)}


#: system prompts longer than this go to the CLI in a file (one argv
#: string may not exceed 128 KiB on Linux)
SYSTEM_ARG_MAX = 64 * 1024


def system_file(workdir: str, system: str) -> str:
    """
    A file in C{workdir} holding C{system}, named by its content.
    """
    data = system.encode("utf-8")
    path = os.path.join(workdir, "system-%s.txt" % (hashlib.sha256(data).hexdigest()[:32],))
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return path


def stream_json_argv(
    claude: str,
    settings: Sequence[str],
    model: Optional[str] = None,
    tools: str = "",
    partial: bool = True,
) -> list[str]:
    """
    What every CLI the daemon starts shares: C{-p}, stream-json both ways
    (with C{partial}, text deltas as they come), C{model} when given, only
    the built-in C{tools} named, no session files written, no MCP servers
    but those given, none of the user's own set-up (C{settings}).
    """
    argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
    if partial:
        argv.append("--include-partial-messages")
    if model is not None:
        argv += ["--model", model]
    return argv + ["--tools", tools, "--no-session-persistence", "--strict-mcp-config", *settings]


def build_argv(
    claude: str,
    key: SpawnKey,
    mcp_config: Optional[str] = None,
    system_path: Optional[str] = None,
    resume: Optional[str] = None,
    settings: Sequence[str] = ISOLATED,
) -> list[str]:
    """
    The CLI's argv: stream-json both ways, built-in tools off, no session
    files written, no MCP servers but those given, none of the user's own
    set-up (C{settings}: L{isolation_args}); with C{resume}, the
    session file holding the conversation's earlier turns.  In replace
    mode a request without system text gets none of Claude Code's own
    prompt (C{--system-prompt ""}), as with the API.
    """
    argv = stream_json_argv(claude, settings, key.model, WEB_SEARCH if key.web_search else "")
    if system_path is not None:
        flag = "--append-system-prompt-file" if key.system_mode == "append" else "--system-prompt-file"
        argv += [flag, system_path]
    elif key.system is not None:
        if key.system_mode == "append":
            argv += ["--append-system-prompt", key.system]
        else:
            argv += ["--system-prompt", key.system]
    elif key.system_mode != "append":
        argv += ["--system-prompt", ""]
    if key.effort is not None:
        argv += ["--effort", key.effort]
    if key.json_schema is not None:
        argv += ["--json-schema", key.json_schema]
    allowed = [WEB_SEARCH] if key.web_search else []
    if mcp_config is not None:
        # the client's functions, served by the daemon's MCP endpoint, and
        # only those (built-in tools stay off, but for WebSearch when a
        # hosted web search was asked for)
        argv += ["--mcp-config", mcp_config]
        allowed.append("mcp__" + SERVER)
    if allowed:
        argv += ["--allowedTools", ",".join(allowed)]
    if resume is not None:
        argv += ["--resume", resume]
    argv += list(key.extra)
    return argv


def tool_timeout_ms(tool_wait: float) -> int:
    """
    How long the CLI waits inside one tool call, in milliseconds: the
    daemon's own wait for the client (C{--tool-wait}) and a minute more,
    so that the daemon, not the CLI, decides when a call is abandoned.
    """
    return int((tool_wait + 60) * 1000)


def build_env(
    base: Mapping[str, str],
    keep_api_key: bool,
    upstream_retries: int,
    tool_wait: float = DEFAULTS.tool_wait,
    use_settings: bool = False,
) -> dict[str, str]:
    """
    The daemon's own environment, without C{ANTHROPIC_API_KEY} (so the
    subscription login is used) unless asked to keep it, with upstream
    retries bounded, and the CLI kept from the user's set-up and from
    compacting (L{isolation_env}).
    """
    env = dict(base)
    env.update(isolation_env(use_settings))
    if not keep_api_key:
        env.pop("ANTHROPIC_API_KEY", None)
    env["CLAUDE_CODE_MAX_RETRIES"] = str(upstream_retries)
    # the client's tools are offered as they are: newer CLIs (2.1.332)
    # otherwise defer them behind a ToolSearch tool and a placeholder
    env["ENABLE_TOOL_SEARCH"] = "false"
    # a tool call waits for the client's follow-up at most --tool-wait
    env["MCP_TOOL_TIMEOUT"] = str(tool_timeout_ms(tool_wait))
    return env


class ProcessSink(Protocol):
    """
    Who receives a process's output while it serves a request.
    """

    def cli_line(self, line: Mapping[str, Any]) -> None: ...

    def cli_garbage(self, line: bytes) -> None: ...

    def cli_exited(self, status: Optional[int], stderr_tail: str) -> None: ...

    def may_elide(self, kind: str, message_id: Optional[str]) -> bool:
        """
        Whether a huge line of C{kind} (C{"assistant"}, with its message's
        id, or C{"result"}) may arrive with its long strings emptied: the
        sink has no use for them (the text was already streamed).
        """
        ...


#: the key a line read with its long strings emptied gets: how many bytes
#: were left out
ELIDED = "_elided_bytes"


class Spawner(Protocol):
    def __call__(
        self,
        protocol: ProcessProtocol,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str],
        path: str,
    ) -> Any: ...


Killer = Callable[[int], None]


class _GroupProcess(_process.Process):
    """
    A process that leads its own session and process group, so killing
    the group kills everything it started.
    """

    def _trySpawnInsteadOfFork(
        self,
        path: Optional[str],
        uid: Any,
        gid: Any,
        executable: str,
        args: Any,
        environment: Any,
        kwargs: Any,
    ) -> bool:
        """
        Start the child with posix_spawn in a new session: a fork of the
        whole daemon costs several milliseconds on the reactor thread, this
        well under one.  posix_spawn cannot change directory, so this is only
        possible when the child's directory is the daemon's own (the daemon
        moves into its private directory at start); otherwise the child is
        forked and calls setsid() itself.
        """
        if uid is not None or gid is not None or path is None or os.path.abspath(path) != os.getcwd():
            return False
        if not hasattr(os, "posix_spawnp"):
            return False
        fd_state: list[tuple[int, bool]] = []
        for fd in _process._listOpenFDs():
            try:
                fd_state.append((fd, bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)))
            except OSError:
                pass
        ignored = [n for n in range(1, signal.NSIG) if signal.getsignal(n) == signal.SIG_IGN]
        self.pid = os.posix_spawnp(
            executable,
            args,
            environment if environment is not None else os.environ,
            file_actions=_process._getFileActions(
                fd_state, kwargs.get("fdmap"), doClose=_process._PS_CLOSE, doDup2=_process._PS_DUP2
            ),
            setsigdef=ignored,
            setsid=True,
        )
        self.status = -1
        return True

    def _execChild(self, *args: Any, **kwargs: Any) -> None:
        os.setsid()
        super()._execChild(*args, **kwargs)


def group_spawner(reactor: Any) -> Spawner:
    """
    A L{Spawner} starting real processes in their own group on C{reactor}.
    """

    def spawn(
        protocol: ProcessProtocol,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str],
        path: str,
    ) -> Any:
        return _GroupProcess(reactor, executable, list(args), dict(env), path, protocol)

    return spawn


def kill_group(pid: int) -> None:
    """
    Kill the process group led by C{pid}, and C{pid} itself: a child killed
    before it has called setsid() has no group of its own yet.
    """
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


#: the request id of the readiness probe (L{CLIProcess.ask_ready})
READY_REQUEST = "claudeproxy-ready"
#: the request id of a generic process's warm-up, after the probe
WARM_UP_REQUEST = "claudeproxy-warm-up"
#: what a generic process is told before it is called ready: settings it
#: already has (no effort, no environment).  The CLI's first
#: C{apply_flag_settings} costs ~25-60 ms more than later ones (2.1.197;
#: ~15 ms on 2.1.332); paid here, a request's own effort or output limit
#: is then set in a few milliseconds.  It binds nothing: a later
#: C{initialize} still sets the system prompt, schema and tools.
WARM_UP = {"subtype": "apply_flag_settings", "settings": {"effortLevel": None, "env": {}}}


class ControlError(Exception):
    """
    The CLI answered a control request with an error.
    """


class ProcessGone(Exception):
    """
    The CLI ended before it answered.
    """


#: answers one of the CLI's control requests, or None to refuse it
ControlHandler = Callable[[Mapping[str, Any]], Optional[Deferred[Mapping[str, Any]]]]


def _local_echo(obj: Mapping[str, Any]) -> bool:
    """
    Whether a C{user} line is the CLI echoing a local command's output
    (C{<local-command-stdout>}), not a turn.
    """
    message = obj.get("message")
    content = message.get("content") if isinstance(message, Mapping) else None
    return isinstance(content, str) and content.startswith("<local-command-stdout>")


class CLIProcess(ProcessProtocol):
    """
    A running CLI.  Lines go to the current L{ProcessSink}; C{ended} fires
    with the exit status once the process is gone.
    """

    log = Logger()

    def __init__(self, killer: Killer = kill_group, label: str = "") -> None:
        self.pid: Optional[int] = None
        self.label = label
        self.ended: Deferred[Optional[int]] = Deferred()
        self.exit_status: Optional[int] = None
        self.is_ended = False
        self.killed = False
        self.kill_cause: Optional[str] = None
        self._group_killed = False
        self.init: Optional[Mapping[str, Any]] = None
        #: the MCP bridge of a process started with the client's tools
        self.bridge: Any = None
        self._killer = killer
        self._sink: Optional[ProcessSink] = None
        self._lines = LineBuffer(elide=self._may_elide)
        self._stderr = b""
        self._paused = False
        self._garbage = False
        #: the CLI answered the readiness probe: it has finished starting
        #: and a turn written now is answered at once
        self.ready = False
        self._warm_up = False
        #: told when the readiness probe is answered
        self.on_ready: Optional[Callable[[], None]] = None
        #: the readiness probe was answered with an error: this CLI lacks
        #: the control request
        self.control_error: Optional[str] = None
        #: the control requests sent and not answered yet, by request id
        self._controls: dict[str, Deferred[Mapping[str, Any]]] = {}
        self._control_seq = 0
        #: answers the CLI's own control requests (C{mcp_message}: the
        #: client's tools over the control channel); set while bound
        self.control_handler: Optional[ControlHandler] = None
        #: how many times the CLI echoed a local command (C{set_model}'s
        #: "Set model to" on 2.1.197) as a user line
        self.local_echoes = 0

    # -- who listens ---------------------------------------------------------

    def attach(self, sink: Optional[ProcessSink]) -> None:
        self._sink = sink

    @property
    def buffered(self) -> int:
        """
        The bytes held of a stdout line not complete yet.
        """
        return self._lines.size

    @property
    def stderr_tail(self) -> str:
        return self._stderr[-STDERR_TAIL:].decode("utf-8", "replace")

    # -- control -------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """
        Write C{data} to the CLI's stdin.  Nothing is written when C{data}
        is empty: Twisted's C{ProcessWriter.write} stops watching the stdin
        pipe before it drops an empty write and never watches it again, so
        the pipe's close would go unseen and C{processEnded} never fire.
        """
        if data and self.transport is not None and not self.is_ended:
            self.transport.write(data)

    def ask_ready(self, warm_up: bool = False) -> None:
        """
        Ask the CLI to say when it has finished starting: the stream-json
        control protocol's C{get_binary_version} request, answered only once
        the CLI is up (0.4-1.6 s after the spawn on 2.1.197 and 2.1.332) and
        binding nothing: a later C{initialize} still sets the system prompt,
        schema and tools (a bare C{initialize} would lock them).  The answer
        sets C{ready}; an error answer (a CLI without the request) sets
        C{control_error} instead.  With C{warm_up} (a generic process), the
        process is ready once it has also answered L{WARM_UP}.
        """
        self._warm_up = warm_up
        self.send(
            {"type": "control_request", "request_id": READY_REQUEST, "request": {"subtype": "get_binary_version"}}
        )

    def control(self, request: Mapping[str, Any]) -> Deferred[Mapping[str, Any]]:
        """
        Send a control request; fires with the CLI's answer (its
        C{response} object), or fails with L{ControlError} when the CLI
        answers with an error, or with L{ProcessGone} when it ends first.
        """
        self._control_seq += 1
        rid = "claudeproxy-%d" % (self._control_seq,)
        d: Deferred[Mapping[str, Any]] = Deferred()
        if self.is_ended:
            d.errback(ProcessGone("the CLI process ended"))
            return d
        self._controls[rid] = d
        self.send({"type": "control_request", "request_id": rid, "request": dict(request)})
        return d

    def send(self, obj: Mapping[str, Any]) -> None:
        self.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.is_ended:
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.is_ended:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def kill(self, cause: str = "done") -> None:
        """
        Kill the process group (C{killed} then says the daemon ended it, and
        C{kill_cause} why); safe to call any number of times, acts once.
        """
        if not self.killed:
            self.kill_cause = cause
        self.killed = True
        self._kill_group()

    def _kill_group(self) -> None:
        if self._group_killed:
            return
        self._group_killed = True
        if self.pid is not None:
            self._killer(self.pid)

    # -- ProcessProtocol -----------------------------------------------------

    def connectionMade(self) -> None:
        self.pid = getattr(self.transport, "pid", None)

    def outReceived(self, data: bytes) -> None:
        if self._garbage:
            return
        try:
            lines = self._lines.feed(data)
        except LineTooLong:
            self._garbage = True
            if self._sink is not None:
                self._sink.cli_garbage(b"(a line longer than the daemon accepts)")
            return
        for raw in lines:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                self.log.warn(
                    "CLI {pid} printed a line that is not stream-json: {line!r}", pid=self.pid, line=raw[:200]
                )
                if self._sink is not None:
                    self._garbage = True
                    self._sink.cli_garbage(raw)
                    return
                continue
            if isinstance(raw, Elided):
                obj[ELIDED] = raw.dropped
                self.log.debug(
                    "CLI {pid}: {dropped} bytes of strings left out of a {kind} line",
                    pid=self.pid,
                    dropped=raw.dropped,
                    kind=obj.get("type"),
                )
            kind = obj.get("type")
            if kind == "control_response":
                self._control_answered(obj.get("response"))
                continue
            if kind == "control_request":
                self._control_asked(obj)
                continue
            if kind == "control_cancel_request" or kind == "command_lifecycle":
                continue
            if kind == "user" and _local_echo(obj):
                # a local command's output (set_model on 2.1.197): not part
                # of any turn
                self.local_echoes += 1
                continue
            if obj.get("type") == "system" and obj.get("subtype") == "init":
                self.init = obj
            if self._sink is not None:
                self._sink.cli_line(obj)

    def _control_answered(self, response: Any) -> None:
        if not isinstance(response, Mapping):
            return
        rid = response.get("request_id")
        error = response.get("error") if response.get("subtype") == "error" else None
        if rid == READY_REQUEST and error is None and self._warm_up:
            self.send({"type": "control_request", "request_id": WARM_UP_REQUEST, "request": WARM_UP})
            return
        if rid in (READY_REQUEST, WARM_UP_REQUEST):
            # the daemon's own probe: not part of any turn (a refused
            # warm-up only costs the first request its few milliseconds)
            if error is not None and rid == READY_REQUEST:
                self.control_error = str(error)
            else:
                self.ready = True
                if self.on_ready is not None:
                    self.on_ready()
            return
        d = self._controls.pop(rid, None) if isinstance(rid, str) else None
        if d is None:
            return
        if response.get("subtype") == "error":
            d.errback(ControlError(str(error or "the CLI refused the control request")))
        else:
            answer = response.get("response")
            d.callback(answer if isinstance(answer, Mapping) else {})

    def _control_asked(self, obj: Mapping[str, Any]) -> None:
        """
        The CLI asks the daemon something (the client's tools over the
        control channel).  Answered by the handler, else refused.
        """
        rid = obj.get("request_id")
        request = obj.get("request")
        if not isinstance(rid, str) or not isinstance(request, Mapping):
            return
        handler = self.control_handler
        answer: Deferred[Mapping[str, Any]] | None = None
        if handler is not None:
            answer = handler(request)
        if answer is None:
            self.send(
                {
                    "type": "control_response",
                    "response": {
                        "subtype": "error",
                        "request_id": rid,
                        "error": "claudeproxy does not handle %s" % (request.get("subtype"),),
                    },
                }
            )
            return

        def reply(result: Mapping[str, Any]) -> None:
            self.send(
                {"type": "control_response", "response": {"subtype": "success", "request_id": rid, "response": result}}
            )

        def failed(f: Failure) -> None:
            self.send(
                {
                    "type": "control_response",
                    "response": {"subtype": "error", "request_id": rid, "error": f.getErrorMessage()},
                }
            )

        answer.addCallbacks(reply, failed)

    def _may_elide(self, head: bytes) -> bool:
        """
        Whether the line that begins with C{head} (already long) may be
        read with its long strings emptied: an C{assistant} message or a
        C{result} that the sink says it does not need whole.  Stream events
        never are (a single delta must arrive intact), nor error results.
        """
        sink = self._sink
        if sink is None:
            return False
        fields = head_fields(head)
        kind = fields.get(("type",))
        if kind == "assistant":
            message_id = fields.get(("message", "id"))
            return isinstance(message_id, str) and sink.may_elide("assistant", message_id)
        if kind == "result":
            return fields.get(("is_error",)) is False and sink.may_elide("result", None)
        return False

    def errReceived(self, data: bytes) -> None:
        self._stderr = (self._stderr + data)[-STDERR_TAIL * 4 :]
        self.log.debug("CLI {pid} stderr: {data}", pid=self.pid, data=data.decode("utf-8", "replace").rstrip())

    def processEnded(self, reason: Failure) -> None:
        self.is_ended = True
        status: Optional[int] = None
        if reason.check(ProcessDone):
            status = 0
        elif reason.check(ProcessTerminated):
            value: Any = reason.value
            status = value.exitCode if value.exitCode is not None else -(value.signal or 0)
        self.exit_status = status
        # anything the CLI left in its group goes with it
        self._kill_group()
        controls, self._controls = self._controls, {}
        for d in controls.values():
            d.errback(ProcessGone("the CLI process ended (status %s)" % (status,)))
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.cli_exited(status, self.stderr_tail)
            except Exception:
                self.log.failure("while ending a request after the CLI exited")
        self.ended.callback(status)
