"""
The tool bridge of one CLI process: the client's functions it was started
with, the calls it is waiting on, and the results the client gave.  The
MCP endpoint that the CLI talks to (L{claudeproxy.web.mcp}) feeds it.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from twisted.internet.defer import Deferred

from .tools import SERVER, ToolSpec

Result = dict[str, Any]


class ToolBridge:
    """
    One process's tools and pending calls.  Results the client gives
    before the CLI asks are kept until it does.
    """

    def __init__(self, bridge_id: str, secret: str, tools: tuple[ToolSpec, ...]) -> None:
        self.id = bridge_id
        self.secret = secret
        self.tools = tools
        self.pending: dict[str, Deferred[Result]] = {}
        self.answers: dict[str, Result] = {}
        self.calls_seen: list[str] = []
        #: told of each call as it arrives (the request serving the process)
        self.on_call: Optional[Callable[[str], None]] = None

    def call(self, tool_use_id: str) -> Deferred[Result]:
        """
        The CLI calls a tool; fires with the MCP result.
        """
        self.calls_seen.append(tool_use_id)

        def forget(_: Deferred[Result]) -> None:
            self.pending.pop(tool_use_id, None)

        d: Deferred[Result] = Deferred(forget)
        if tool_use_id in self.answers:
            d.callback(self.answers.pop(tool_use_id))
            return d
        self.pending[tool_use_id] = d
        if self.on_call is not None:
            self.on_call(tool_use_id)
        return d

    def answer(self, tool_use_id: str, result: Result) -> None:
        """
        The client's result for C{tool_use_id}.
        """
        d = self.pending.pop(tool_use_id, None)
        if d is not None:
            d.callback(result)
        else:
            self.answers[tool_use_id] = result

    def close(self) -> None:
        pending, self.pending = self.pending, {}
        for d in pending.values():
            d.callback({"content": [{"type": "text", "text": "the request was abandoned"}], "isError": True})

    def mcp_config(self, port: int, timeout_ms: int) -> str:
        return json.dumps(
            {
                "mcpServers": {
                    SERVER: {
                        "type": "http",
                        "url": "http://127.0.0.1:%d/mcp/%s" % (port, self.id),
                        "headers": {"Authorization": "Bearer " + self.secret},
                        "timeout": timeout_ms,
                    }
                }
            },
            separators=(",", ":"),
        )
