"""
The daemon's request class: Nagle off on each TCP connection.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.web.httpio import no_delay


class _TCP(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.no_delay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay.append(enabled)


class _Channel:
    def __init__(self, transport: Any) -> None:
        self.transport = transport


class NoDelayTests(SynchronousTestCase):
    def test_once_per_connection(self) -> None:
        transport = _TCP()
        channel = _Channel(transport)
        no_delay(channel)
        no_delay(channel)
        self.assertEqual(transport.no_delay, [True])

    def test_not_tcp(self) -> None:
        # a UNIX socket's transport has no such switch
        no_delay(_Channel(StringTransport()))
        no_delay(None)
