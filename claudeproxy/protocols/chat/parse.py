"""
OpenAI Chat Completions requests -> the neutral conversation.

Pure functions: request bodies in, L{ChatRequest} out (or a L{ProxyError}
naming the field).  What goes back to the client is in L{shapes}.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

import attrs

from ...engine import models
from ...engine.conversation import Block, Conversation, Message, text_block
from ...engine.errors import bad_request
from ...engine.spec import JSON_OBJECT_SCHEMA, TurnSettings, TurnSpec, canonical_schema
from ...engine.tools import ToolSpec, ToolUse
from ...engine.tools import spec as tool_spec
from ..fields import declared_name, flag, load_json, objects, positive_int, required_objects
from ..openai import EFFORTS, image_url_block, said

#: Accepted and documented as ignored: they cannot change what the CLI does.
IGNORED_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "seed",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "verbosity",
        "top_logprobs",
    }
)


@attrs.frozen
class ChatRequest(TurnSpec):
    """
    A chat completions request: the neutral spec plus what only this
    protocol has.
    """

    include_usage: bool = False


def _content_blocks(content: Any, where: str, allow_images: bool = True) -> list[Block]:
    if isinstance(content, str):
        return [text_block(content)] if content else []
    if not isinstance(content, list):
        raise bad_request("%s.content must be a string or an array of content parts" % (where,), where + ".content")
    blocks: list[Block] = []
    for i, part in enumerate(content):
        pwhere = "%s.content[%d]" % (where, i)
        if isinstance(part, str):
            blocks.append(text_block(part))
            continue
        if not isinstance(part, Mapping):
            raise bad_request("%s must be an object" % (pwhere,), pwhere)
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request("%s.text must be a string" % (pwhere,), pwhere + ".text")
            blocks += said(text)
        elif kind == "refusal":
            blocks += said(part.get("refusal"))
        elif kind == "image_url" and allow_images:
            blocks.append(image_url_block(part, pwhere))
        elif kind in ("input_audio", "audio"):
            raise bad_request("%s: audio input is not supported by Claude" % (pwhere,), pwhere, "unsupported_content")
        elif kind == "file":
            raise bad_request("%s: file parts are not supported" % (pwhere,), pwhere, "unsupported_content")
        else:
            raise bad_request(
                "%s: unsupported content part type %r" % (pwhere, kind), pwhere + ".type", "unsupported_content"
            )
    return blocks


def _text_only(content: Any, where: str) -> str:
    blocks = _content_blocks(content, where, allow_images=False)
    return "".join(b["text"] for b in blocks)


def _tool_calls(calls: Any, where: str) -> list[Block]:
    if not isinstance(calls, list):
        raise bad_request("%s.tool_calls must be an array" % (where,), where + ".tool_calls")
    blocks: list[Block] = []
    for i, call in enumerate(calls):
        cwhere = "%s.tool_calls[%d]" % (where, i)
        fn = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise bad_request("%s.function.name is required" % (cwhere,), cwhere + ".function")
        args = fn.get("arguments", "{}")
        try:
            parsed = json.loads(args) if isinstance(args, str) and args.strip() else (args or {})
        except ValueError:
            parsed = args
        blocks.append({"type": "tool_use", "id": str(call.get("id", "")), "name": fn["name"], "input": parsed})
    return blocks


def parse_messages(messages: Any) -> Conversation:
    """
    OpenAI C{messages} to a L{Conversation}; 400 naming the field for what
    cannot be honoured.
    """
    each = required_objects(messages, "messages")
    system: list[str] = []
    turns: list[Message] = []
    for where, msg in each:
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = _text_only(content, where)
            if text:
                system.append(text)
        elif role == "user":
            blocks = _content_blocks(content, where)
            if not blocks:
                raise bad_request("%s.content is empty" % (where,), where + ".content")
            turns.append(Message("user", blocks))
        elif role == "assistant":
            blocks = [] if content is None else _content_blocks(content, where, allow_images=False)
            if msg.get("tool_calls") is not None:
                blocks.extend(_tool_calls(msg.get("tool_calls"), where))
            if msg.get("function_call") is not None:
                blocks.extend(_tool_calls([{"id": "", "function": msg["function_call"]}], where))
            if not blocks:
                raise bad_request("%s has neither content nor tool_calls" % (where,), where + ".content")
            turns.append(Message("assistant", blocks))
        elif role in ("tool", "function"):
            call_id = msg.get("tool_call_id", msg.get("name", ""))
            if not isinstance(call_id, str):
                raise bad_request("%s.tool_call_id must be a string" % (where,), where + ".tool_call_id")
            text_blocks = _content_blocks(content if content is not None else "", where, allow_images=True)
            result: Block = {"type": "tool_result", "tool_use_id": call_id, "content": text_blocks}
            if turns and turns[-1].role == "user" and all(b.get("type") == "tool_result" for b in turns[-1].blocks):
                turns[-1] = Message("user", turns[-1].blocks + (result,))
            else:
                turns.append(Message("user", [result]))
        else:
            raise bad_request(
                "%s.role %r is not one of system, developer, user, assistant, tool" % (where, role), where + ".role"
            )
    if not turns:
        raise bad_request("'messages' has no user message", "messages")
    if turns[-1].role != "user":
        raise bad_request("the conversation must end with a user (or tool) message", "messages")
    return Conversation("\n\n".join(system) if system else None, turns)


def parse_request(raw: bytes, aliases: tuple[tuple[str, str], ...]) -> ChatRequest:
    body = load_json(raw)
    cli_model = models.resolve(body.get("model"), aliases)
    stream = flag(body, "stream", False)
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise bad_request("'n' must be a positive integer", "n")
    if n is not None and n > 1:
        raise bad_request(
            "'n' > 1 is not supported: the CLI gives one answer per request", "n", "unsupported_parameter"
        )
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, Mapping):
            raise bad_request("'stream_options' must be an object", "stream_options")
        include_usage = bool(options.get("include_usage", False))
    stop = body.get("stop")
    stops: tuple[str, ...] = ()
    if isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(s for s in stop if s)
    elif stop is not None:
        raise bad_request("'stop' must be a string or an array of strings", "stop")
    if len(stops) > 4:
        raise bad_request("'stop' takes at most 4 sequences", "stop")
    tools = parse_tools(body)
    json_schema = parse_response_format(body.get("response_format"))
    max_tokens = positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = positive_int(body.get("max_tokens"), "max_tokens")
    if body.get("logprobs"):
        raise bad_request(
            "'logprobs' cannot be provided: Claude does not expose token log probabilities",
            "logprobs",
            "unsupported_parameter",
        )
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise bad_request("only the text modality is supported", "modalities", "unsupported_parameter")
    if body.get("audio") is not None:
        raise bad_request("audio output is not supported", "audio", "unsupported_parameter")
    effort = body.get("reasoning_effort")
    cli_effort: Optional[str] = None
    if effort is not None:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise bad_request("'reasoning_effort' must be one of %s" % (", ".join(EFFORTS),), "reasoning_effort")
        cli_effort = EFFORTS[effort]
    conversation = parse_messages(body.get("messages"))
    settings = TurnSettings(stop=stops, effort=cli_effort, tools=tools, json_schema=json_schema, max_tokens=max_tokens)
    return ChatRequest(body["model"], cli_model, conversation, stream, settings, include_usage=include_usage)


def parse_response_format(fmt: Any) -> Optional[str]:
    """
    C{response_format}: None for text, else the schema the reply must match
    (C{json_object}: any JSON object).
    """
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_request("'response_format.type' must be text, json_object or json_schema", "response_format")
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return JSON_OBJECT_SCHEMA
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise bad_request(
            "'response_format.json_schema.schema' must be a JSON Schema object", "response_format.json_schema.schema"
        )
    return canonical_schema(schema)


def hosted_tools(body: Mapping[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """
    Whether web search is asked for (C{web_search_options}, or a hosted
    C{web_search*} tool), and the hosted tools that cannot be served.
    """
    web_search = isinstance(body.get("web_search_options"), Mapping)
    skipped: list[str] = []
    raw = body.get("tools")
    for tool in raw if isinstance(raw, list) else []:
        kind = tool.get("type", "function") if isinstance(tool, Mapping) else "function"
        if kind == "function" or not isinstance(kind, str):
            continue
        if kind.startswith("web_search"):
            web_search = True
        else:
            skipped.append(kind)
    return web_search, tuple(skipped)


def parse_tools(body: Mapping[str, Any]) -> ToolUse:
    """
    The tools offered to the model: the declared functions, the tool
    choice, C{parallel_tool_calls}, and the hosted tools (L{hosted_tools}).
    """
    specs, choice = declared_functions(body)
    web_search, skipped = hosted_tools(body)
    return ToolUse(
        specs, choice, parallel=flag(body, "parallel_tool_calls", True), web_search=web_search, skipped=skipped
    )


def declared_functions(body: Mapping[str, Any]) -> tuple[tuple[ToolSpec, ...], str]:
    """
    The declared functions exposed to the model, and the tool choice
    ("auto", "required" or a function name).  C{tool_choice: "none"}
    exposes none.
    """
    legacy = "tools" not in body and "functions" in body
    raw = body.get("functions") if legacy else body.get("tools")
    param = "functions" if legacy else "tools"
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise bad_request("'%s' must be an array" % (param,), param)
    specs: list[ToolSpec] = []
    for where, tool in objects(raw, param):
        if legacy:
            fn: Any = tool
        else:
            if tool.get("type", "function") != "function":
                kind = tool.get("type")
                if not isinstance(kind, str):
                    raise bad_request("%s.type must be a string" % (where,), where + ".type")
                # a hosted tool: web search is served, others skipped (see
                # hosted_tools)
                continue
            fn = tool.get("function")
            if not isinstance(fn, Mapping):
                raise bad_request("%s.function must be an object" % (where,), where + ".function")
        name = declared_name(fn.get("name"), where, ".function.name", specs, "function")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise bad_request(
                "%s.function.parameters must be a JSON Schema object" % (where,), where + ".function.parameters"
            )
        desc = fn.get("description")
        if desc is not None and not isinstance(desc, str):
            raise bad_request("%s.function.description must be a string" % (where,), where + ".function.description")
        specs.append(tool_spec(name, desc, params))
    choice = body.get("function_call" if legacy else "tool_choice")
    cparam = "function_call" if legacy else "tool_choice"
    if choice is None:
        choice = "auto"
    if isinstance(choice, Mapping):
        fn = choice.get("function", choice) if not legacy else choice
        chosen = fn.get("name") if isinstance(fn, Mapping) else None
        if not isinstance(chosen, str) or not any(s.name == chosen for s in specs):
            raise bad_request("'%s' names a function that is not in '%s'" % (cparam, param), cparam)
        return tuple(s for s in specs if s.name == chosen), chosen
    if choice not in ("none", "auto", "required"):
        raise bad_request("'%s' must be none, auto, required or a named function" % (cparam,), cparam)
    if choice == "none" or not specs:
        if choice == "required":
            raise bad_request("'tool_choice' is required but no tools are declared", cparam)
        return (), "auto"
    return tuple(specs), str(choice)
