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
from .tools import ToolUse


@attrs.frozen
class TurnSettings:
    """
    What a request sets for its turn beyond its messages, whatever its
    protocol calls it.

    @ivar stop: the stop sequences the reply is cut at.
    @ivar effort: the C{--effort} level, or None for the CLI's own.
    @ivar tools: the tools offered, and how they must be used.
    @ivar json_schema: canonical JSON of the schema the reply must match
        (C{--json-schema}), or None.
    @ivar max_tokens: the upstream output limit, or None for the CLI's own.
    """

    stop: tuple[str, ...] = ()
    effort: Optional[str] = None
    tools: ToolUse = ToolUse()
    json_schema: Optional[str] = None
    max_tokens: Optional[int] = None


@attrs.frozen
class TurnSpec:
    """
    A request, protocol-neutral.

    @ivar model: the model id as the client asked for it.
    @ivar cli_model: the C{--model} value.
    @ivar stream: the reply goes out as it is written.
    @ivar settings: what the request sets for its turn.
    """

    model: str
    cli_model: str
    conversation: Conversation
    stream: bool = False
    settings: TurnSettings = TurnSettings()

    @property
    def policy(self) -> TurnPolicy:
        """
        What the turn's run holds the model's answer to.
        """
        settings = self.settings
        return TurnPolicy(
            stops=settings.stop,
            parallel_tool_calls=settings.tools.parallel,
            require_tool=settings.tools.required,
            json_mode=settings.json_schema is not None,
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
