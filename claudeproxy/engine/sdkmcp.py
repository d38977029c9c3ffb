"""
The client's tools over the CLI's control channel: the CLI, told of an
SDK MCP server in C{initialize} (C{sdkMcpServers}), writes each MCP message
as a C{mcp_message} control request on its stdout and reads the answer on
its stdin.  No port, no HTTP: a held C{tools/call} is simply not answered
until the client's follow-up request brings the result.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from twisted.internet.defer import Deferred, succeed

from .bridge import Result, ToolBridge
from .mcprpc import Call, answer, method_of, rpc_result
from .tools import SERVER


class ControlTools:
    """
    One bound process's tool server: answers its C{mcp_message} control
    requests from C{bridge}.  C{listed} fires once the CLI has fetched the
    tool list (the handshake is over).
    """

    def __init__(self, bridge: ToolBridge) -> None:
        self.bridge = bridge
        #: the CLI began the MCP handshake
        self.began = False
        self.listed: Deferred[None] = Deferred()

    def __call__(self, request: Mapping[str, Any]) -> Optional[Deferred[Mapping[str, Any]]]:
        if request.get("subtype") != "mcp_message" or request.get("server_name") != SERVER:
            return None
        message = request.get("message")
        if not isinstance(message, Mapping):
            return None
        method = method_of(message)
        if method == "initialize":
            self.began = True
        reply = answer(self.bridge, message)
        if method == "tools/list" and not self.listed.called:
            self.listed.callback(None)
        if reply is None:
            return succeed({"mcp_response": {"jsonrpc": "2.0", "result": {}}})
        if isinstance(reply, Call):
            return self._held(reply)
        return succeed({"mcp_response": reply})

    def _held(self, call: Call) -> Deferred[Mapping[str, Any]]:
        def done(result: Result) -> Mapping[str, Any]:
            return {"mcp_response": rpc_result(call.rid, result)}

        d: Deferred[Any] = self.bridge.call(call.tool_use_id)
        d.addCallback(done)
        return d
