"""
Client-declared tools, protocol-neutral: what a request declares, what the
model called, and what the client answered.  Pure data and functions.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

import attrs

#: The MCP server name the CLI knows the daemon's tools under; upstream
#: tool names are C{mcp__cp__NAME}.
SERVER = "cp"
PREFIX = "mcp__%s__" % (SERVER,)
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@attrs.frozen
class ToolSpec:
    """
    One function the client declared: name, description and JSON Schema
    (kept as canonical JSON text so specs compare and hash).
    """

    name: str
    description: str
    schema: str

    def to_mcp(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "inputSchema": json.loads(self.schema)}


def spec(name: str, description: Optional[str], parameters: Any) -> ToolSpec:
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    return ToolSpec(name, description or "", json.dumps(parameters, sort_keys=True, separators=(",", ":")))


@attrs.frozen
class ToolUse:
    """
    The tools a turn offers the model, and how its reply must use them.

    @ivar specs: the client's tools, as the model is offered them.
    @ivar choice: C{"auto"}, C{"required"} or the one tool's name.
    @ivar parallel: more than one call may go out at once.
    """

    specs: tuple[ToolSpec, ...] = ()
    choice: str = "auto"
    parallel: bool = True
    #: the CLI's WebSearch tool is offered (a hosted web search tool was
    #: declared)
    web_search: bool = False
    #: hosted tools the request declared that cannot be served (reported
    #: in the C{x-claudeproxy-skipped-tools} header and the log)
    skipped: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        """
        The reply must call one of the tools.
        """
        return bool(self.specs) and self.choice != "auto"


@attrs.frozen
class ToolCall:
    """
    A call the model made: C{id} is the upstream tool_use id (the client's
    tool_call_id); C{name} is the client's function name; C{arguments} is
    JSON text.
    """

    id: str
    name: str
    arguments: str

    def input(self) -> Any:
        try:
            return json.loads(self.arguments) if self.arguments.strip() else {}
        except ValueError:
            return {}


def client_name(upstream: Any) -> Optional[str]:
    """
    The client's function name for an upstream tool name, or None when
    the tool is not one of the client's.
    """
    if isinstance(upstream, str) and upstream.startswith(PREFIX):
        return upstream[len(PREFIX) :]
    return None


def mcp_content(content: Any) -> list[dict[str, Any]]:
    """
    A tool result as MCP content: text stays text, images become image
    content.
    """
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[dict[str, Any]] = []
    for block in content or []:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            out.append({"type": "text", "text": block.get("text", "")})
        elif block.get("type") == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                out.append(
                    {"type": "image", "data": source.get("data", ""), "mimeType": source.get("media_type", "image/png")}
                )
            else:
                out.append({"type": "text", "text": "[image: %s]" % (source.get("url", ""),)})
    if not out:
        out.append({"type": "text", "text": ""})
    return out
