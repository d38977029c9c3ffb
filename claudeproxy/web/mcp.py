"""
The daemon's own MCP server: how a client's functions reach the CLI.

Each CLI process started with tools gets a L{ToolBridge}: a private URL and
bearer secret on a loopback listener, the tools it lists, and the calls it
is waiting on.  When the model calls a tool, the CLI's MCP C{tools/call}
stays open (as server-sent events, with progress notifications so the CLI
keeps waiting) until the client's follow-up request brings the result.

Only the small JSON-RPC subset the CLI uses is implemented: initialize,
notifications, ping, tools/list and tools/call over streamable HTTP.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Any, Optional

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.web.server import Request

from ..engine.bridge import Result, ToolBridge
from ..engine.mcprpc import Call, answer, rpc_error, rpc_result
from ..engine.tools import ToolSpec

PROGRESS_EVERY = 20.0


def _event(message: Any) -> bytes:
    """
    One JSON-RPC message as a server-sent event.
    """
    return b"event: message\ndata: " + json.dumps(message).encode() + b"\n\n"


class McpServer:
    """
    The loopback HTTP endpoint all bridges share.
    """

    app = Klein()
    log = Logger()

    def __init__(self, reactor: IReactorTime, timeout_ms: int = 360_000) -> None:
        self.reactor = reactor
        self.bridges: dict[str, ToolBridge] = {}
        self.port = 0
        self.timeout_ms = timeout_ms

    def config_for(self, bridge: ToolBridge) -> str:
        return bridge.mcp_config(self.port, self.timeout_ms)

    def resource(self) -> Any:
        return self.app.resource()

    def register(self, tools: tuple[ToolSpec, ...]) -> ToolBridge:
        bridge = ToolBridge(secrets.token_hex(12), secrets.token_urlsafe(24), tools)
        self.bridges[bridge.id] = bridge
        return bridge

    def unregister(self, bridge: ToolBridge) -> None:
        self.bridges.pop(bridge.id, None)
        bridge.close()

    def _json(self, request: Request, status: int, obj: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(obj).encode()

    @app.route("/mcp/<bridge_id>", methods=["GET", "DELETE"])
    def other(self, request: Request, bridge_id: str) -> bytes:
        request.setResponseCode(405)
        return b""

    @app.route("/mcp/<bridge_id>", methods=["POST"])
    def post(self, request: Request, bridge_id: str) -> Any:
        bridge = self.bridges.get(bridge_id)
        auth = request.getHeader(b"authorization") or b""
        if bridge is None or not hmac.compare_digest(auth, b"Bearer " + bridge.secret.encode()):
            return self._json(request, 404, rpc_error(None, -32001, "unknown MCP endpoint"))
        try:
            assert request.content is not None
            message = json.loads(request.content.read())
        except ValueError:
            return self._json(request, 400, rpc_error(None, -32700, "parse error"))
        if isinstance(message, list):
            return self._json(request, 400, rpc_error(None, -32600, "batches are not supported"))
        if not isinstance(message, dict):
            return self._json(request, 400, rpc_error(None, -32600, "invalid request"))
        reply = answer(bridge, message)
        if reply is None:
            # a notification or a response: nothing to answer
            request.setResponseCode(202)
            return b""
        if isinstance(reply, Call):
            return self._call(request, bridge, reply)
        return self._json(request, 200, reply)

    def _call(self, request: Request, bridge: ToolBridge, call: Call) -> Any:
        rid = call.rid
        tool_use_id = call.tool_use_id
        token = call.progress_token
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b": waiting for the client's result\n\n")
        d = bridge.call(tool_use_id)
        ticks = [0]
        timer: list[Optional[IDelayedCall]] = [None]

        def progress() -> None:
            ticks[0] += 1
            if token is not None:
                note = {
                    "jsonrpc": "2.0",
                    "method": "notifications/progress",
                    "params": {"progressToken": token, "progress": ticks[0]},
                }
                request.write(_event(note))
            else:
                request.write(b": still waiting\n\n")
            timer[0] = self.reactor.callLater(PROGRESS_EVERY, progress)

        timer[0] = self.reactor.callLater(PROGRESS_EVERY, progress)

        def gone(_: Any) -> None:
            if timer[0] is not None and timer[0].active():
                timer[0].cancel()
            if not d.called:
                d.cancel()

        request.notifyFinish().addBoth(gone)
        done: Deferred[None] = Deferred()

        def answered(result: Result) -> None:
            if timer[0] is not None and timer[0].active():
                timer[0].cancel()
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(_event(rpc_result(rid, result)))
                request.finish()
            if not done.called:
                done.callback(None)

        def dropped(_: Any) -> None:
            if not done.called:
                done.callback(None)

        d.addCallbacks(answered, dropped)
        return done
