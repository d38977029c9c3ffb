"""
L{TurnSpec}: what every front-end protocol's request is translated into.
The serving machinery (process pool, turn run, tool bridge) reads only
this.
"""

from __future__ import annotations

import json
from typing import Optional

import attrs

from .conversation import Conversation
from .errors import bad_request
from .tools import ToolSpec


@attrs.frozen
class TurnSpec:
    """
    A request, protocol-neutral.

    @ivar model: the model id as the client asked for it.
    @ivar cli_model: the C{--model} value.
    @ivar tool_choice: C{"auto"}, C{"required"} or the one function's name.
    @ivar json_schema: canonical JSON of the schema the reply must match
        (C{--json-schema}), or None.
    @ivar max_tokens: the upstream output limit, or None for the CLI's own.
    """

    model: str
    cli_model: str
    conversation: Conversation
    stream: bool = False
    stop: tuple[str, ...] = ()
    effort: Optional[str] = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    json_schema: Optional[str] = None
    max_tokens: Optional[int] = None
    #: the CLI's WebSearch tool is offered (a hosted web search tool was
    #: declared)
    web_search: bool = False
    #: hosted tools the request declared that cannot be served (reported
    #: in the C{x-claudeproxy-skipped-tools} header and the log)
    skipped_tools: tuple[str, ...] = ()

    @property
    def requires_tool(self) -> bool:
        return bool(self.tools) and self.tool_choice != "auto"

    @property
    def policy(self) -> TurnPolicy:
        """
        What the turn's run holds the model's answer to.
        """
        return TurnPolicy(
            stops=self.stop,
            parallel_tool_calls=self.parallel_tool_calls,
            require_tool=self.requires_tool,
            json_mode=self.json_schema is not None,
            stream=self.stream,
        )


@attrs.frozen
class TurnPolicy:
    """
    What a turn's run holds the model's answer to, beyond its messages.

    @ivar stops: the stop sequences the reply is cut at.
    @ivar parallel_tool_calls: more than one tool call may go out at once
        (else the first goes out, the rest are held for later turns).
    @ivar require_tool: the reply must call a tool (asked once more, then
        refused).
    @ivar json_mode: the reply is the structured output the CLI checked
        against C{--json-schema}.
    @ivar stream: the output is a stream (structured output goes out as
        the model writes it).
    """

    stops: tuple[str, ...] = ()
    parallel_tool_calls: bool = True
    require_tool: bool = False
    json_mode: bool = False
    stream: bool = False


#: what C{json_object} response formats are held to
JSON_OBJECT_SCHEMA = '{"type":"object"}'


def canonical_schema(schema: object) -> str:
    """
    A JSON Schema as canonical text (so equal schemas share processes).
    """
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def check_system(system: Optional[str]) -> None:
    """
    System text goes to the CLI as a command-line argument (or a file
    named by one): NUL characters and lone surrogates cannot be passed on
    faithfully, so they are a 400.
    """
    if system is None:
        return
    if "\x00" in system:
        raise bad_request("The system prompt must not contain NUL characters", "system")
    try:
        system.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("The system prompt is not valid Unicode (lone surrogate)", "system")
