"""
The daemon for tests/clients.sh: the real site and the real CLI, whose
upstream is the fake API (tests/fakeanthropic.py), answering every model
call with text, or with a call of the client's first tool when the last
user text asks to "use the tool".
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

from twisted.internet import reactor as _reactor

from claudeproxy.config import Config
from claudeproxy.engine.process import group_spawner
from claudeproxy.service import build
from tests.fakeanthropic import FakeAnthropic, Reply, ToolUse
from tests.harness import cli_env

reactor: Any = _reactor


class ScriptedFake(FakeAnthropic):
    def next_reply(self, body: dict[str, Any]) -> Reply:
        tools = [t for t in body.get("tools") or [] if str(t.get("name", "")).startswith("mcp__cp__")]
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        content = last.get("content")
        text = (
            content
            if isinstance(content, str)
            else " ".join(b.get("text", "") for b in content or [] if isinstance(b, dict) and b.get("type") == "text")
        )
        answered = isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        )
        if tools and "use the tool" in text.lower() and not answered:
            return Reply(text="", stop_reason="tool_use", tool_uses=(ToolUse(tools[0]["name"], {"city": "Bern"}),))
        return super().next_reply(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=34561)
    parser.add_argument("--claude", required=True)
    args = parser.parse_args()
    fake = ScriptedFake(reactor)
    env = cli_env(fake.listen(), tempfile.mkdtemp(prefix="cp-clients-home-"))
    config = Config(
        listen="tcp:%d:interface=127.0.0.1" % (args.port,),
        claude=args.claude,
        workdir=tempfile.mkdtemp(prefix="cp-clients-work-"),
        model_aliases=(("gpt-4o", "sonnet"), ("mock-model", "sonnet")),
    )
    daemon = build(reactor, config, env, spawner=group_spawner(reactor))
    daemon.core.startService()
    reactor.listenTCP(args.port, daemon.site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
