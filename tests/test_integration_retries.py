"""
One layer of retries: what one client request costs upstream when upstream
answers 529, with the official SDKs at their default retries (2), on chat
completions (plain and streamed), Messages and Responses.

The CLI is the only one that sees upstream's headers.  A 529 marked
C{x-should-retry: false} must cost exactly one upstream call; one that may be
retried at most what the daemon's policy allows (C{--upstream-retries} by
the CLI where the CLI honours the header, none where it does not; see
L{claudeproxy.engine.versions.cli_retries}); and the client's SDK must not
multiply either.
"""

from __future__ import annotations

from typing import Any, Callable

import anthropic
import attrs
import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from claudeproxy.engine.versions import cli_retries
from tests.fakeanthropic import Reply
from tests.harness import Running, scaled, start, wait_for

OVERLOADED = Reply(status=529, error_type="overloaded_error", error_message="Overloaded")
RETRIES = 2


def calls(d: Running) -> Callable[[Callable[[], Any]], Any]:
    """
    Run one SDK call in a thread, expecting it to fail; fire with
    (the upstream calls it cost, the SDK's error).
    """

    async def run(call: Callable[[], Any]) -> Any:
        before = len(d.fake.message_requests)
        try:
            await deferToThread(call)
        except Exception as e:
            return len(d.fake.message_requests) - before, e
        raise AssertionError("the call did not fail")

    return run


class RetryLayerTests(TestCase):
    timeout = 300

    async def _daemon(self, reply: Reply) -> tuple[Running, int]:
        d = await start(self, upstream_retries=RETRIES)
        d.fake.default = reply
        # the CLI's retries follow its version, known shortly after start
        await wait_for(lambda: d.daemon.cli.version is not None, timeout=scaled(30))
        return d, cli_retries(RETRIES, d.daemon.cli.version)

    def _clients(self, d: Running) -> tuple[openai.OpenAI, anthropic.Anthropic]:
        # the SDKs' default max_retries (2): the daemon's answer must stop them
        oai = openai.OpenAI(base_url=d.url + "/v1", api_key="unused", timeout=scaled(60))
        ant = anthropic.Anthropic(base_url=d.url, api_key="unused", timeout=scaled(60))
        self.addCleanup(oai.close)
        self.addCleanup(ant.close)
        return oai, ant

    async def _costs(self, d: Running) -> dict[str, tuple[int, Any]]:
        oai, ant = self._clients(d)
        run = calls(d)
        hi: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
        ant_hi: list[MessageParam] = [{"role": "user", "content": "hi"}]
        return {
            "chat": await run(lambda: oai.chat.completions.create(model="sonnet", messages=hi)),
            "chat stream": await run(
                lambda: list(oai.chat.completions.create(model="sonnet", messages=hi, stream=True))
            ),
            "messages": await run(lambda: ant.messages.create(model="sonnet", max_tokens=100, messages=ant_hi)),
            "messages stream": await run(
                lambda: list(ant.messages.create(model="sonnet", max_tokens=100, messages=ant_hi, stream=True))
            ),
            "responses": await run(lambda: oai.responses.create(model="sonnet", input="hi")),
        }

    def _hints(self, error: Any) -> None:
        headers = error.response.headers
        self.assertEqual(headers.get("x-should-retry"), "false", dict(headers))
        self.assertTrue(int(headers.get("retry-after")) >= 1, dict(headers))

    async def test_529_no_retry_costs_one_call(self) -> None:
        d, _ = await self._daemon(attrs.evolve(OVERLOADED, headers={"x-should-retry": "false"}))
        costs = await self._costs(d)
        self.assertEqual({k: n for k, (n, _) in costs.items()}, {k: 1 for k in costs}, costs)
        for _, error in costs.values():
            self.assertEqual(error.status_code, 503)
            self._hints(error)

    async def test_529_retryable_costs_what_the_policy_says(self) -> None:
        d, retries = await self._daemon(OVERLOADED)
        costs = await self._costs(d)
        self.assertEqual({k: n for k, (n, _) in costs.items()}, {k: 1 + retries for k in costs}, costs)
        for _, error in costs.values():
            self._hints(error)
