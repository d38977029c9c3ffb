"""
Fakes for the process layer in unit tests: a spawner that connects the CLI
protocol to an in-memory transport, and a killer that records.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from twisted.internet.protocol import ProcessProtocol

from claudeproxy.engine.process import CLIProcess


class FakeTransport:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written: list[bytes] = []
        self.pauses = 0
        self.resumes = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1


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
