"""
An abandoned request stops costing, and its log line says what it did:
on each protocol, streamed or not, over a kept-alive HTTP/1.1 connection
(as Open WebUI's aiohttp sends its background task requests), a client
that goes away mid-reply has its CLI process killed, so the upstream call
is dropped; and the request's log line says how it was served, its first
token, the pieces and tokens streamed, and that the client went away.
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.fakeanthropic import Reply
from tests.fakes import LogLines
from tests.harness import RawClient, Running, group_members, live_pids, raw_connect, scaled, sleep, wait_for
from tests.harness import start_settled as start

#: a reply that takes ~20 s to stream (the test leaves well before)
SLOW = Reply(text="".join("word%03d " % i for i in range(200)), chunk=8, delay=0.1)
HI = [{"role": "user", "content": "hi"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "sonnet", "messages": HI},
    "/v1/messages": {"model": "sonnet", "max_tokens": 1000, "messages": HI},
    "/v1/responses": {"model": "sonnet", "input": "hi"},
}


async def post11(port: int, path: str, body: Any) -> RawClient:
    """
    One HTTP/1.1 keep-alive POST on a new connection.
    """
    data = json.dumps(body).encode()
    client = await raw_connect(port)
    head = (
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % (path, port, len(data))
    )
    assert client.transport is not None
    client.transport.write(head.encode() + data)
    return client


def group_gone(pids: list[int]) -> bool:
    return not live_pids(pids) and not any(group_members(pid) for pid in pids)


class AbandonTests(TestCase):
    timeout = 240

    async def _abandon(self, path: str, stream: bool) -> None:
        d = await start(self)
        log = LogLines()
        d.proxy.accounting.log = Logger(observer=log)
        d.fake.default = SLOW
        client = await post11(d.port.getHost().port, path, dict(BODIES[path], stream=stream))
        # the reply is under way upstream, and (streamed) the client has had some of it
        await wait_for(lambda: len(d.fake.message_requests) == 1, timeout=scaled(30))
        if stream:
            await wait_for(lambda: b"word001" in client.data, timeout=scaled(30))
        else:
            await sleep(scaled(1.0))
        (pid,) = d.spawned
        self.assertIn(pid, group_members(pid))
        assert client.transport is not None
        client.transport.loseConnection()
        await wait_for(lambda: group_gone([pid]), timeout=scaled(5), interval=0.01)
        await wait_for(lambda: d.fake.lost == [1], timeout=scaled(5))
        await wait_for(lambda: not d.proxy.runs and d.proxy.limiter.running == 0, timeout=scaled(5))
        self.assertEqual(len(d.fake.message_requests), 1)
        if not stream:
            self.assertEqual(bytes(client.data), b"")
        (line,) = [x for x in log.lines if "status=" in x]
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        self.assertEqual(
            (fields["status"], fields["served"], fields["ended"], fields["stream"]),
            ("499", "cold", "client_gone", str(stream)),
            line,
        )
        # the turn went on upstream until the client left: it had its first
        # token and pieces, streamed out or gathered for a whole reply
        self.assertNotEqual(fields["first_token_ms"], "-", line)
        self.assertGreater(int(fields["pieces"]), 0, line)

    async def test_chat(self) -> None:
        await self._abandon("/v1/chat/completions", False)

    async def test_chat_stream(self) -> None:
        await self._abandon("/v1/chat/completions", True)

    async def test_messages(self) -> None:
        await self._abandon("/v1/messages", False)

    async def test_messages_stream(self) -> None:
        await self._abandon("/v1/messages", True)

    async def test_responses(self) -> None:
        await self._abandon("/v1/responses", False)

    async def test_responses_stream(self) -> None:
        await self._abandon("/v1/responses", True)


__all__ = ["AbandonTests", "Running"]
