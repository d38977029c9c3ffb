"""
Fakes for the process layer in unit tests: an in-memory process transport, a
spawner that connects the CLI protocol to one, a killer that records, and a
L{ProcessSink} and a L{TurnOutput} that record what they are handed; a log observer that
keeps the text of each event, and the port a listener got.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import ILogObserver, LogEvent, formatEvent
from zope.interface import implementer

from claudeproxy.engine.errors import ProxyError
from claudeproxy.engine.process import CLIProcess
from claudeproxy.engine.turn import Finished, WebSearch


class FakeTransport:
    """
    Just enough of a process transport for L{CLIProcess} and the usage
    probe: what was written, flow control and stdin's close counted.
    """

    def __init__(self, pid: Optional[int] = 4242) -> None:
        self.pid = pid
        self.written: list[bytes] = []
        self.pauses = 0
        self.resumes = 0
        self.stdin_closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1

    def closeStdin(self) -> None:
        self.stdin_closed = True

    def loseConnection(self) -> None:
        pass


class FakeSpawner:
    """
    Records every spawn and connects the protocol to a fake transport, as
    C{spawnProcess} would; pids count up from C{first_pid} + 1.  With
    C{error}, every spawn raises it.
    """

    def __init__(self, error: Optional[Exception] = None, first_pid: int = 1000) -> None:
        self.calls: list[tuple[ProcessProtocol, str, list[str], dict[str, str], str]] = []
        self.procs: list[CLIProcess] = []
        self.transports: list[FakeTransport] = []
        self.error = error
        self.first_pid = first_pid

    def __call__(
        self,
        protocol: ProcessProtocol,
        executable: str,
        args: Sequence[str],
        env: Mapping[str, str],
        path: str,
    ) -> Any:
        if self.error is not None:
            raise self.error
        self.calls.append((protocol, executable, list(args), dict(env), path))
        transport = FakeTransport(self.first_pid + len(self.calls))
        if isinstance(protocol, CLIProcess):
            self.procs.append(protocol)
        self.transports.append(transport)
        protocol.makeConnection(transport)
        return transport


class RecordingKiller:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pid: int) -> None:
        self.calls.append(pid)


class RecordingSink:
    """
    A L{claudeproxy.engine.process.ProcessSink} that records the lines, the
    garbage and the exit it is handed, and the elisions it was asked about
    (which it allows with C{allow}).
    """

    def __init__(self, allow: bool = False) -> None:
        self.allow = allow
        self.lines: list[Mapping[str, Any]] = []
        self.garbage: list[bytes] = []
        self.exits: list[tuple[Optional[int], str]] = []
        self.asked: list[tuple[str, Optional[str]]] = []

    def cli_line(self, line: Mapping[str, Any]) -> None:
        self.lines.append(line)

    def cli_garbage(self, line: bytes) -> None:
        self.garbage.append(line)

    def cli_exited(self, status: Optional[int], stderr_tail: str) -> None:
        self.exits.append((status, stderr_tail))

    def may_elide(self, kind: str, message_id: Optional[str]) -> bool:
        self.asked.append((kind, message_id))
        return self.allow


@implementer(ILogObserver)
class LogLines:
    """
    A log observer that keeps the text of every event it sees.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, event: LogEvent) -> None:
        self.lines.append(formatEvent(event))


def tcp_port(listening: IListeningPort) -> int:
    """
    The TCP port C{listening} got.
    """
    address = listening.getHost()
    assert isinstance(address, IPv4Address), address
    return address.port


class RecordingOutput:
    """
    A L{claudeproxy.engine.streaming.TurnOutput} that records each call as
    C{(kind, value)}; like a streamed output, it takes the text in pieces
    and needs none of it whole at the end.
    """

    needs_text = False

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def text(self, text: str) -> None:
        self.events.append(("text", text))

    def reasoning(self, text: str) -> None:
        self.events.append(("reasoning", text))

    def tool_call_start(self, index: int, call_id: str, name: str) -> None:
        self.events.append(("tool_call_start", (index, call_id, name)))

    def tool_call_delta(self, index: int, arguments: str) -> None:
        self.events.append(("tool_call_delta", (index, arguments)))

    def finished(self, finished: Finished) -> None:
        self.events.append(("finished", finished))

    def web_search(self, search: WebSearch) -> None:
        self.events.append(("web_search", search))

    def failed(self, error: ProxyError) -> None:
        self.events.append(("failed", error))

    def texts(self) -> str:
        return "".join(v for k, v in self.events if k == "text")

    def of(self, kind: str) -> list[Any]:
        return [v for k, v in self.events if k == kind]
