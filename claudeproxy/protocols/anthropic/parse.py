"""
Anthropic Messages API requests (C{POST /v1/messages}) -> the neutral
conversation.

Pure functions: request bodies in, L{MessagesRequest} out (or a
L{ProxyError} naming the field).  What goes back to the client is in
L{shapes}.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping, Optional

import attrs

from ...engine import models
from ...engine.conversation import IMAGE_TYPES, Block, Conversation, Message, text_block
from ...engine.errors import bad_request
from ...engine.spec import TurnSettings, TurnSpec, canonical_schema, check_system
from ...engine.tools import ToolSpec, ToolUse
from ...engine.tools import spec as tool_spec
from ..fields import declared_name, flag, load_json, objects, positive_int, required_objects
from .context import apply_context_management

#: Accepted and ignored: sampling and bookkeeping the CLI does not expose.
IGNORED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "service_tier",
        "inference_geo",
    }
)
#: Refused with a 400: features the CLI cannot provide through this daemon.
UNSUPPORTED_PARAMS = {
    "mcp_servers": "remote MCP servers are not supported; declare client tools in 'tools'",
    "container": "code execution containers are not supported",
}
#: C{output_config.effort} values, as the CLI's C{--effort} takes them.
EFFORTS = ("low", "medium", "high", "xhigh", "max")
#: C{thinking.budget_tokens} mapped to C{--effort}: below the first bound
#: "low", below the second "medium", else "high".  Adaptive thinking and
#: no thinking leave the CLI's own effort; C{output_config.effort} wins.
BUDGET_LOW = 4096
BUDGET_MEDIUM = 16384


@attrs.frozen
class MessagesRequest(TurnSpec):
    """
    A Messages API request: the neutral spec plus what only this protocol
    has.

    @ivar include_thinking: the client asked for thinking (enabled or
        adaptive), so thinking blocks are part of the reply; without it
        they are left out, as the real API does.
    """

    include_thinking: bool = False


# -- requests ---------------------------------------------------------------


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise bad_request("%s must be a string" % (where,), where)
    return value


def _image_block(block: Mapping[str, Any], where: str) -> Block:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise bad_request("%s.source must be an object" % (where,), where + ".source")
    kind = source.get("type")
    if kind == "base64":
        media_type = source.get("media_type")
        if media_type not in IMAGE_TYPES:
            raise bad_request(
                "%s.source.media_type must be one of %s" % (where, ", ".join(IMAGE_TYPES)),
                where + ".source.media_type",
            )
        data = _string(source.get("data"), where + ".source.data")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if kind == "url":
        url = _string(source.get("url"), where + ".source.url")
        if not url.startswith(("http://", "https://")):
            raise bad_request("%s.source.url must be an http(s) URL" % (where,), where + ".source.url")
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("%s.source.type %r is not supported (use base64 or url)" % (where, kind), where + ".source.type")


def _document_block(block: Mapping[str, Any], where: str) -> Block:
    source = block.get("source")
    if not isinstance(source, Mapping) or not isinstance(source.get("type"), str):
        raise bad_request("%s.source must be an object with a type" % (where,), where + ".source")
    if source["type"] == "file":
        raise bad_request(
            "%s: Files API documents are not supported; send the content inline" % (where,), where + ".source.type"
        )
    out: Block = {"type": "document", "source": dict(source)}
    for key in ("title", "context"):
        if isinstance(block.get(key), str):
            out[key] = block[key]
    return out


def _text(block: Mapping[str, Any], where: str) -> Optional[Block]:
    text = _string(block.get("text"), where + ".text")
    return text_block(text) if text else None


BlockReader = Callable[[Mapping[str, Any], str], Optional[Block]]


def _drop(block: Mapping[str, Any], where: str) -> Optional[Block]:
    return None


def _blocks(content: Any, where: str, kinds: Mapping[str, BlockReader], place: str) -> list[Block]:
    """
    Content given as a string or an array of blocks: each block read by the
    reader for its type in C{kinds} (a reader may drop it); any other type is
    a 400 naming the field.
    """
    if isinstance(content, str):
        return [text_block(content)] if content else []
    if not isinstance(content, list):
        raise bad_request("%s.content must be a string or an array of content blocks" % (where,), where + ".content")
    blocks: list[Block] = []
    for bwhere, block in objects(content, where + ".content"):
        reader = kinds.get(block.get("type"))  # type: ignore[arg-type]
        if reader is None:
            raise bad_request(
                "%s.type %r is not supported in %s (use %s)" % (bwhere, block.get("type"), place, ", ".join(kinds)),
                bwhere + ".type",
            )
        read = reader(block, bwhere)
        if read is not None:
            blocks.append(read)
    return blocks


def _tool_result(block: Mapping[str, Any], where: str) -> Block:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise bad_request("%s.tool_use_id must be a non-empty string" % (where,), where + ".tool_use_id")
    content = block.get("content", "")
    inner = [] if content is None else _blocks(content, where, RESULT_KINDS, "a tool result")
    is_error = block.get("is_error", False)
    if is_error is None:
        is_error = False
    if not isinstance(is_error, bool):
        raise bad_request("%s.is_error must be a boolean" % (where,), where + ".is_error")
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": inner, "is_error": is_error}


def _tool_use(block: Mapping[str, Any], where: str) -> Block:
    call_id = block.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request("%s.id must be a non-empty string" % (where,), where + ".id")
    name = _string(block.get("name"), where + ".name")
    tool_input = block.get("input", {})
    if not isinstance(tool_input, Mapping):
        raise bad_request("%s.input must be an object" % (where,), where + ".input")
    return {"type": "tool_use", "id": call_id, "name": name, "input": dict(tool_input)}


#: the block types each place takes; earlier thinking is not sent back (the
#: CLI keeps its own)
RESULT_KINDS: Mapping[str, BlockReader] = {"text": _text, "image": _image_block, "document": _document_block}
USER_KINDS: Mapping[str, BlockReader] = {**RESULT_KINDS, "tool_result": _tool_result}
ASSISTANT_KINDS: Mapping[str, BlockReader] = {
    "text": _text,
    "tool_use": _tool_use,
    "thinking": _drop,
    "redacted_thinking": _drop,
    # an earlier web search (its results are in the text that follows)
    "server_tool_use": _drop,
    "web_search_tool_result": _drop,
}


def system_reminder(text: str) -> Block:
    """
    A mid-conversation system message as the CLI carries its own context
    into a conversation: a C{<system-reminder>} text block in the user
    turn.
    """
    return text_block("<system-reminder>\n%s\n</system-reminder>" % (text,))


def parse_messages(messages: Any, system: Any = None) -> Conversation:
    """
    Anthropic C{messages} and C{system} to a L{Conversation}; 400 naming
    the field for what cannot be honoured.
    """
    each = required_objects(messages, "messages")
    turns: list[Message] = []
    #: system messages waiting for the next user turn
    reminders: list[Block] = []
    for where, msg in each:
        role = msg.get("role")
        if role == "user":
            blocks = _blocks(msg.get("content"), where, USER_KINDS, "a user message")
            if not blocks:
                raise bad_request("%s.content is empty" % (where,), where + ".content")
            if reminders:
                # after the turn's tool results, which must lead it
                lead = 0
                while lead < len(blocks) and blocks[lead].get("type") == "tool_result":
                    lead += 1
                blocks[lead:lead] = reminders
                reminders = []
            turns.append(Message("user", blocks))
        elif role == "assistant":
            blocks = _blocks(msg.get("content"), where, ASSISTANT_KINDS, "an assistant message")
            if blocks:
                turns.append(Message("assistant", blocks))
        elif role == "system":
            # a mid-conversation system message (beta
            # mid-conversation-system-2026-04-07): into the next user turn
            text = "\n\n".join(
                b["text"] for b in _blocks(msg.get("content"), where, {"text": _text}, "a system message")
            )
            if text:
                reminders.append(system_reminder(text))
        else:
            raise bad_request("%s.role %r must be user, assistant or system" % (where, role), where + ".role")
    if reminders and turns and turns[-1].role == "user":
        # system messages after the last user turn: the end of that turn
        turns[-1] = Message("user", turns[-1].blocks + tuple(reminders))
        reminders = []
    if not turns or turns[-1].role != "user":
        raise bad_request(
            "'messages': the last message must have role 'user': prefilling the assistant's reply is not supported "
            "by the Claude Code CLI",
            "messages",
        )
    return Conversation(parse_system(system), turns)


def parse_system(system: Any) -> Optional[str]:
    """
    C{system}: a string or an array of text blocks, as one text.
    """
    if system is None:
        return None
    if isinstance(system, str):
        parts = [system] if system else []
    else:
        parts = _system_blocks(system)
    text = "\n\n".join(parts) if parts else None
    check_system(text)
    return text


def _system_blocks(system: Any) -> list[str]:
    if not isinstance(system, list):
        raise bad_request("'system' must be a string or an array of text blocks", "system")
    parts: list[str] = []
    for i, block in enumerate(system):
        where = "system[%d]" % (i,)
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise bad_request("%s must be a text block" % (where,), where)
        text = _string(block.get("text"), where + ".text")
        if text:
            parts.append(text)
    return parts


#: server tool types (C{web_search_20250305}, ...) run by the CLI's WebSearch tool
WEB_SEARCH_TYPE = re.compile(r"^web_search_\d{8}$")


@attrs.frozen
class ServerTools:
    """
    The server tools a request declared: whether web search is asked for,
    and the names (C{type}) of those that cannot be served.
    """

    web_search: bool = False
    skipped: tuple[str, ...] = ()


def parse_server_tools(body: Mapping[str, Any]) -> ServerTools:
    raw = body.get("tools")
    web_search = False
    skipped: list[str] = []
    for tool in raw if isinstance(raw, list) else []:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type")
        if kind in (None, "custom"):
            continue
        if isinstance(kind, str) and WEB_SEARCH_TYPE.match(kind):
            web_search = True
        else:
            skipped.append(str(kind))
    return ServerTools(web_search, tuple(skipped))


def parse_tools(body: Mapping[str, Any]) -> ToolUse:
    """
    The tools offered to the model: the client tools and how they must be
    used (L{client_tools}), and the server tools (L{parse_server_tools}).
    """
    server = parse_server_tools(body)
    specs, choice, parallel = client_tools(body, server.web_search)
    return ToolUse(specs, choice, parallel=parallel, web_search=server.web_search, skipped=server.skipped)


def client_tools(body: Mapping[str, Any], web_search: bool) -> tuple[tuple[ToolSpec, ...], str, bool]:
    """
    The declared client tools exposed to the model, the tool choice
    ("auto", "required" or a tool's name) and whether parallel calls are
    allowed.  C{tool_choice: {"type": "none"}} exposes none.  With
    C{web_search} (the server tool was declared) and no client tools,
    choosing any tool or C{web_search} leaves the model free to search.
    Server tools (a C{type} other than C{custom}) are read by
    L{parse_server_tools}.
    """
    raw = body.get("tools")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise bad_request("'tools' must be an array", "tools")
    specs: list[ToolSpec] = []
    for where, tool in objects(raw, "tools"):
        kind = tool.get("type")
        if kind not in (None, "custom"):
            if not isinstance(kind, str):
                raise bad_request("%s.type must be a string" % (where,), where + ".type")
            continue
        name = declared_name(tool.get("name"), where, ".name", specs, "tool")
        schema = tool.get("input_schema")
        if not isinstance(schema, Mapping):
            raise bad_request("%s.input_schema must be a JSON Schema object" % (where,), where + ".input_schema")
        desc = tool.get("description")
        if desc is not None and not isinstance(desc, str):
            raise bad_request("%s.description must be a string" % (where,), where + ".description")
        specs.append(tool_spec(name, desc, dict(schema)))
    choice = body.get("tool_choice")
    if choice is None:
        choice = {"type": "auto"}
    if not isinstance(choice, Mapping):
        raise bad_request("'tool_choice' must be an object with a type", "tool_choice")
    parallel = True
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None:
        if not isinstance(disable, bool):
            raise bad_request(
                "'tool_choice.disable_parallel_tool_use' must be a boolean", "tool_choice.disable_parallel_tool_use"
            )
        parallel = not disable
    kind = choice.get("type")
    if kind == "none" or (kind == "auto" and not specs):
        return (), "auto", parallel
    if kind == "auto":
        return tuple(specs), "auto", parallel
    if kind == "any":
        if not specs and web_search:
            return (), "auto", parallel
        if not specs:
            raise bad_request("'tool_choice' is 'any' but no tools are declared", "tool_choice")
        return tuple(specs), "required", parallel
    if kind == "tool":
        chosen = choice.get("name")
        if chosen == "web_search" and web_search and not specs:
            return (), "auto", parallel
        if not isinstance(chosen, str) or not any(s.name == chosen for s in specs):
            raise bad_request("'tool_choice.name' names a tool that is not in 'tools'", "tool_choice.name")
        return tuple(s for s in specs if s.name == chosen), chosen, parallel
    raise bad_request("'tool_choice.type' must be auto, any, tool or none", "tool_choice.type")


def parse_effort(body: Mapping[str, Any]) -> tuple[Optional[str], bool, Optional[str]]:
    """
    C{thinking} and C{output_config}: the C{--effort} level (or None for
    the CLI's own), whether thinking blocks are returned, and the JSON
    schema of C{output_config.format}, if any.
    """
    include_thinking = False
    effort: Optional[str] = None
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, Mapping):
            raise bad_request("'thinking' must be an object", "thinking")
        kind = thinking.get("type")
        if kind == "enabled":
            include_thinking = True
            budget = positive_int(thinking.get("budget_tokens"), "thinking.budget_tokens")
            if budget is None:
                raise bad_request("'thinking.budget_tokens' is required when thinking is enabled", "thinking")
            effort = "low" if budget < BUDGET_LOW else "medium" if budget < BUDGET_MEDIUM else "high"
        elif kind == "adaptive":
            include_thinking = True
        elif kind != "disabled":
            raise bad_request("'thinking.type' must be enabled, adaptive or disabled", "thinking.type")
    json_schema: Optional[str] = None
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise bad_request("'output_config' must be an object", "output_config")
        level = config.get("effort")
        if level is not None:
            if level not in EFFORTS:
                raise bad_request(
                    "'output_config.effort' must be one of %s" % (", ".join(EFFORTS),), "output_config.effort"
                )
            effort = str(level)
        fmt = config.get("format")
        if fmt is not None:
            json_schema = _output_format(fmt, "output_config.format")
    if body.get("output_format") is not None and json_schema is None:
        json_schema = _output_format(body["output_format"], "output_format")
    return effort, include_thinking, json_schema


def _output_format(fmt: Any, where: str) -> str:
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), Mapping):
        raise bad_request('\'%s\' must be {"type": "json_schema", "schema": {...}}' % (where,), where)
    return canonical_schema(fmt["schema"])


def parse_request(raw: bytes, aliases: Iterable[tuple[str, str]]) -> MessagesRequest:
    body = load_json(raw)
    for param, why in UNSUPPORTED_PARAMS.items():
        if body.get(param) is not None:
            raise bad_request("'%s': %s" % (param, why), param, "unsupported_parameter")
    cli_model = models.resolve(body.get("model"), tuple(aliases))
    if body.get("max_tokens") is None:
        raise bad_request("'max_tokens' is required", "max_tokens")
    max_tokens = positive_int(body.get("max_tokens"), "max_tokens")
    stream = flag(body, "stream", False)
    stop = body.get("stop_sequences")
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad_request("'stop_sequences' must be an array of strings", "stop_sequences")
    tools = parse_tools(body)
    effort, include_thinking, json_schema = parse_effort(body)
    conversation = parse_messages(body.get("messages"), body.get("system"))
    conversation = apply_context_management(body.get("context_management"), conversation)
    stops = tuple(s for s in stop if s)
    settings = TurnSettings(stop=stops, effort=effort, tools=tools, json_schema=json_schema, max_tokens=max_tokens)
    return MessagesRequest(body["model"], cli_model, conversation, stream, settings, include_thinking=include_thinking)
