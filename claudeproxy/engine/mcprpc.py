"""
The small JSON-RPC subset of MCP the CLI speaks to the client-tool server:
initialize, notifications, ping, tools/list and tools/call.  Pure functions
shared by both transports: the control channel (L{claudeproxy.engine.sdkmcp})
and the loopback HTTP endpoint (L{claudeproxy.web.mcp}).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import attrs

from .bridge import ToolBridge

PROTOCOL_VERSION = "2025-06-18"


def rpc_result(rid: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def rpc_error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


@attrs.frozen
class Call:
    """
    A C{tools/call} to hold until the client's result: the JSON-RPC id,
    the upstream tool_use id, and the progress token if any.
    """

    rid: Any
    tool_use_id: str
    progress_token: Any = None


#: what a message needs: nothing (a notification), an answer now, or a call to hold
Answer = Union[None, dict[str, Any], Call]


def answer(bridge: ToolBridge, message: Mapping[str, Any]) -> Answer:
    """
    What to answer the JSON-RPC C{message} with, for C{bridge}'s tools.
    """
    method = message.get("method")
    rid = message.get("id")
    params = message.get("params") or {}
    if rid is None:
        # a notification or a response: nothing to answer
        return None
    if method == "initialize":
        version = params.get("protocolVersion") or PROTOCOL_VERSION
        return rpc_result(
            rid,
            {
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "claudeproxy", "version": "1"},
            },
        )
    if method == "ping":
        return rpc_result(rid, {})
    if method == "tools/list":
        return rpc_result(rid, {"tools": [t.to_mcp() for t in bridge.tools]})
    if method == "tools/call":
        meta = params.get("_meta") or {}
        tool_use_id = meta.get("claudecode/toolUseId")
        if not isinstance(tool_use_id, str) or params.get("name") not in {t.name for t in bridge.tools}:
            return rpc_error(rid, -32602, "unknown tool call")
        return Call(rid, tool_use_id, meta.get("progressToken"))
    return rpc_error(rid, -32601, "method not found: %s" % (method,))


def method_of(message: Mapping[str, Any]) -> Optional[str]:
    method = message.get("method")
    return method if isinstance(method, str) else None
