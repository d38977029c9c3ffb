"""
OpenAI Responses API requests (C{POST /v1/responses}) -> the neutral
conversation.

Pure functions: a request body (plus the stored conversation a
C{previous_response_id} names) in, L{ResponsesRequest} out, or a
L{ProxyError} naming the field; a finished turn in, the conversation a
follow-up continues out.  The response object is in L{shapes}, the
streaming events in L{events}.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs

from ...engine import models
from ...engine.conversation import Block, Conversation, Message, text_block
from ...engine.errors import ProxyError, bad_request
from ...engine.ids import call_alias
from ...engine.spec import JSON_OBJECT_SCHEMA, TurnSettings, TurnSpec, canonical_schema
from ...engine.tools import NAME_RE, ToolSpec, ToolUse
from ...engine.tools import spec as tool_spec
from ...engine.turn import Finished
from ..fields import flag, load_json, objects, positive_int
from ..openai import EFFORTS, image_url_block, said

#: Accepted and documented as ignored: they cannot change what the CLI does.
#: (C{store}: every response is kept for C{previous_response_id}, in the
#: state database when there is one, whatever it says.)
IGNORED_PARAMS = frozenset(
    {
        "store",
        "metadata",
        "temperature",
        "top_p",
        "truncation",
        "user",
        "service_tier",
        "include",
        "stream_options",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "max_tool_calls",
        "top_logprobs",
        "client_metadata",
    }
)
#: hosted web search tools: served by the CLI's WebSearch tool
WEB_SEARCH_TYPE = re.compile(r"^web_search(_preview)?(_\d{4}_\d{2}_\d{2})?$")

#: C{reasoning.effort} -> C{--effort} (C{none}: the CLI's default)
RESPONSE_EFFORTS: Mapping[str, Optional[str]] = dict(EFFORTS, none=None)

#: where a stored conversation comes from: response id -> conversation
Lookup = Callable[[str], Optional[Conversation]]
#: where an C{item_reference} is resolved: item id -> the output item
ItemLookup = Callable[[str], Optional[Mapping[str, Any]]]


@attrs.frozen
class ClientTool:
    """
    How a tool offered to the model under one name is the client's: its
    own name, the C{namespace} it was declared in (Codex's namespace
    tools; calls come back with it), and whether it is a C{custom} tool
    (free-text input, offered as a function of one string C{input}).
    """

    name: str
    namespace: Optional[str] = None
    custom: bool = False


@attrs.frozen
class ParsedTools:
    specs: tuple[ToolSpec, ...]
    choice: str
    echoed: list[dict[str, Any]]
    choice_echo: Any
    #: upstream name -> the client's tool, where they differ in kind or name
    client: Mapping[str, ClientTool]
    web_search: bool = False
    skipped: tuple[str, ...] = ()

    def offered(self, parallel: bool) -> ToolUse:
        """
        The tools as the turn offers them, C{parallel} calls allowed or not.
        """
        return ToolUse(self.specs, self.choice, parallel=parallel, web_search=self.web_search, skipped=self.skipped)

    def upstream_name(self, name: str, namespace: Optional[str] = None) -> str:
        """
        The name the model knows a client's (namespaced) tool by.
        """
        for upstream, tool in self.client.items():
            if tool.name == name and tool.namespace == namespace:
                return upstream
        return name


#: the schema a custom (free-text) tool is offered with
CUSTOM_SCHEMA = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as free text."}},
    "required": ["input"],
    "additionalProperties": False,
}


@attrs.frozen
class ResponsesRequest(TurnSpec):
    """
    A Responses API request: the neutral spec plus what only this protocol
    has.

    @ivar item_system: system text from C{system}/C{developer} input items
        (carried into follow-ups, unlike C{instructions}).
    @ivar echo: the request's parameters as the response object repeats
        them.
    """

    instructions: Optional[str] = None
    previous_response_id: Optional[str] = None
    item_system: Optional[str] = None
    echo: Mapping[str, Any] = attrs.field(factory=dict, eq=False)
    #: upstream tool name -> the client's tool (namespaced or custom)
    client_tools: Mapping[str, ClientTool] = attrs.field(factory=dict, eq=False)


# -- requests --------------------------------------------------------------


def _text_of(part: Mapping[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request("%s.text must be a string" % (where,), where + ".text")
    return text


def _content(content: Any, where: str, images: bool) -> list[Block]:
    """
    A message's (or a function output's) content: a string or an array of
    input_text / output_text / input_image parts.
    """
    if isinstance(content, str):
        return [text_block(content)] if content else []
    if not isinstance(content, list):
        raise bad_request("%s must be a string or an array of content parts" % (where,), where)
    blocks: list[Block] = []
    for pwhere, part in objects(content, where):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text"):
            blocks += said(_text_of(part, pwhere))
        elif kind == "refusal":
            blocks += said(part.get("refusal"))
        elif kind == "input_image" and images:
            if part.get("image_url") is None and part.get("file_id") is not None:
                raise bad_request(
                    "%s: images by file_id are not supported; send image_url (a data: or http(s) URL)" % (pwhere,),
                    pwhere + ".file_id",
                    "unsupported_content",
                )
            blocks.append(image_url_block(part, pwhere))
        elif kind in ("input_file", "input_audio"):
            raise bad_request(
                "%s: %s parts are not supported" % (pwhere, kind), pwhere + ".type", "unsupported_content"
            )
        else:
            raise bad_request(
                "%s: unsupported content part type %r" % (pwhere, kind), pwhere + ".type", "unsupported_content"
            )
    return blocks


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return arguments
    return arguments if arguments is not None else {}


def _required_str(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise bad_request("%s.%s must be a non-empty string" % (where, key), "%s.%s" % (where, key))
    return value


def _add(turns: list[Message], role: str, blocks: list[Block]) -> None:
    """
    Append a turn.  Assistant content (text and function calls of one
    reply) joins the assistant turn before it; function outputs join a user
    turn of function outputs before them.
    """
    if turns and turns[-1].role == role:
        last = turns[-1]
        if role == "assistant" or (
            all(b.get("type") == "tool_result" for b in last.blocks)
            and all(b.get("type") == "tool_result" for b in blocks)
        ):
            turns[-1] = Message(role, last.blocks + tuple(blocks))
            return
    turns.append(Message(role, blocks))


def _no_item(item_id: str) -> Optional[Mapping[str, Any]]:
    return None


def item_not_found(item_id: str, where: str) -> ProxyError:
    return ProxyError(
        404, "Item with id '%s' not found." % (item_id,), "invalid_request_error", "item_not_found", where + ".id"
    )


def parse_input(
    raw: Any,
    turns: list[Message],
    tools: Optional[ParsedTools] = None,
    items: ItemLookup = _no_item,
) -> list[str]:
    """
    C{input} (a string or an array of items) appended to C{turns}; the
    system texts of its system/developer messages are returned.
    C{item_reference} items are resolved by C{items}; calls of namespaced
    and custom tools get the names C{tools} offers them under.
    """
    if isinstance(raw, str):
        if not raw:
            raise bad_request("'input' is empty", "input")
        turns.append(Message("user", [text_block(raw)]))
        return []
    if not isinstance(raw, list) or not raw:
        raise bad_request("'input' must be a string or a non-empty array of input items", "input")
    system: list[str] = []
    for where, item in objects(raw, "input"):
        kind = item.get("type", "message")
        if kind == "item_reference":
            ref = _required_str(item, "id", where)
            found = items(ref)
            if found is None:
                raise item_not_found(ref, where)
            item = found
            kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if role in ("system", "developer"):
                text = "".join(b["text"] for b in _content(content, where + ".content", images=False))
                if text:
                    system.append(text)
            elif role == "user":
                blocks = _content(content, where + ".content", images=True)
                if not blocks:
                    raise bad_request("%s.content is empty" % (where,), where + ".content")
                turns.append(Message("user", blocks))
            elif role == "assistant":
                blocks = _content(content, where + ".content", images=False)
                if blocks:
                    _add(turns, "assistant", blocks)
            else:
                raise bad_request(
                    "%s.role %r is not one of user, assistant, system, developer" % (where, role), where + ".role"
                )
        elif kind in ("function_call", "custom_tool_call"):
            call_id = _required_str(item, "call_id", where)
            name = _required_str(item, "name", where)
            namespace = item.get("namespace") if isinstance(item.get("namespace"), str) else None
            if tools is not None:
                name = tools.upstream_name(name, namespace)
            elif namespace is not None:
                name = "%s__%s" % (namespace, name)
            if kind == "custom_tool_call":
                tool_input = item.get("input")
                use: Block = {
                    "type": "tool_use",
                    "id": call_id,
                    "name": name,
                    "input": {"input": tool_input if isinstance(tool_input, str) else ""},
                }
                _add(turns, "assistant", [use])
                continue
            use = {"type": "tool_use", "id": call_id, "name": name, "input": _arguments(item.get("arguments"))}
            _add(turns, "assistant", [use])
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = _required_str(item, "call_id", where)
            output = item.get("output")
            blocks = _content(output if output is not None else "", where + ".output", images=True)
            _add(turns, "user", [{"type": "tool_result", "tool_use_id": call_id, "content": blocks}])
        elif kind in ("reasoning", "web_search_call", "tool_search_call", "tool_search_output"):
            # reasoning is not replayed (as the API ignores earlier
            # thinking); a web search's results are in the text after it;
            # tool_search is not offered (a skipped tool)
            continue
        else:
            raise bad_request(
                "%s.type %r is not supported: only message, function_call, function_call_output, custom_tool_call, "
                "custom_tool_call_output, item_reference, reasoning and web_search_call items" % (where, kind),
                where + ".type",
                "unsupported_parameter",
            )
    return system


def _function(tool: Mapping[str, Any], where: str) -> tuple[str, Optional[str], Optional[Mapping[str, Any]]]:
    """
    A function tool's name, description and parameters, checked.
    """
    name = tool.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad_request("%s.name must match ^[A-Za-z0-9_-]{1,64}$" % (where,), where + ".name")
    params = tool.get("parameters")
    if params is not None and not isinstance(params, Mapping):
        raise bad_request("%s.parameters must be a JSON Schema object" % (where,), where + ".parameters")
    desc = tool.get("description")
    if desc is not None and not isinstance(desc, str):
        raise bad_request("%s.description must be a string" % (where,), where + ".description")
    return name, desc, params


def _flat_name(namespace: str, name: str) -> str:
    """
    The name a namespaced function is offered under when its own name is
    taken: C{<namespace>__<name>}, cut to 64 allowed characters.
    """
    flat = re.sub(r"[^A-Za-z0-9_-]", "_", "%s__%s" % (namespace, name))
    return flat[-64:]


def parse_tools(body: Mapping[str, Any]) -> ParsedTools:
    """
    The declared tools exposed to the model and the tool choice
    (C{"auto"}, C{"required"} or a function name; C{"none"} exposes none),
    plus both as the response object repeats them.

    Function tools, the functions of C{namespace} tools (offered under
    their own name, or C{<namespace>__<name>} when that is taken) and
    C{custom} tools (offered as a function of one string C{input}) are
    the client's; C{web_search} (and its preview names) is served by the
    CLI's WebSearch tool; any other hosted tool is skipped and reported.
    """
    raw = body.get("tools")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise bad_request("'tools' must be an array", "tools")
    declared: list[tuple[str, Optional[str], Optional[Mapping[str, Any]], Optional[str], bool, str]] = []
    echoed: list[dict[str, Any]] = []
    web_search = False
    skipped: list[str] = []
    for i, tool in enumerate(raw):
        where = "tools[%d]" % (i,)
        if not isinstance(tool, Mapping):
            raise bad_request("%s must be an object" % (where,), where)
        kind = tool.get("type")
        if kind == "function":
            name, desc, params = _function(tool, where)
            declared.append((name, desc, params, None, False, where))
            strict = tool.get("strict")
            echoed.append(
                {
                    "type": "function",
                    "name": name,
                    "description": desc,
                    "parameters": dict(params) if params is not None else None,
                    "strict": strict if isinstance(strict, bool) else True,
                }
            )
        elif kind == "namespace":
            namespace = tool.get("name")
            if not isinstance(namespace, str) or not namespace:
                raise bad_request("%s.name must be a non-empty string" % (where,), where + ".name")
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise bad_request("%s.tools must be an array" % (where,), where + ".tools")
            for j, fn in enumerate(inner):
                fwhere = "%s.tools[%d]" % (where, j)
                if not isinstance(fn, Mapping) or fn.get("type", "function") != "function":
                    raise bad_request("%s must be a function tool" % (fwhere,), fwhere + ".type")
                name, desc, params = _function(fn, fwhere)
                declared.append((name, desc, params, namespace, False, fwhere))
            echoed.append(dict(tool))
        elif kind == "custom":
            cname = tool.get("name")
            if not isinstance(cname, str) or not NAME_RE.match(cname):
                raise bad_request("%s.name must match ^[A-Za-z0-9_-]{1,64}$" % (where,), where + ".name")
            name = cname
            desc = tool.get("description")
            fmt = tool.get("format")
            text = desc if isinstance(desc, str) else ""
            if isinstance(fmt, Mapping) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
                text += "\n\nThe input must follow this %s grammar:\n%s" % (fmt.get("syntax", ""), fmt["definition"])
            declared.append((name, text, CUSTOM_SCHEMA, None, True, where))
            echoed.append(dict(tool))
        elif isinstance(kind, str) and WEB_SEARCH_TYPE.match(kind):
            web_search = True
            echoed.append(dict(tool))
        elif isinstance(kind, str) and kind:
            skipped.append(kind)
        else:
            raise bad_request("%s.type must be a string" % (where,), where + ".type")
    specs: list[ToolSpec] = []
    client: dict[str, ClientTool] = {}
    plain = [d[0] for d in declared]
    for name, desc, params, namespace, custom, where in declared:
        upstream = name
        if namespace is not None and plain.count(name) > 1:
            upstream = _flat_name(namespace, name)
        if any(s.name == upstream for s in specs):
            raise bad_request("%s: function %r is declared twice" % (where, name), where + ".name")
        specs.append(tool_spec(upstream, desc, params))
        if namespace is not None or custom or upstream != name:
            client[upstream] = ClientTool(name, namespace, custom)
    choice = body.get("tool_choice")
    if choice is None:
        choice = "auto"
    if isinstance(choice, Mapping):
        ckind = choice.get("type")
        if ckind in ("function", "custom"):
            chosen = choice.get("name")
            space = choice.get("namespace") if isinstance(choice.get("namespace"), str) else None
            picked: Optional[str] = next(
                (
                    s.name
                    for s in specs
                    if (s.name == chosen and s.name not in client)
                    or (s.name in client and client[s.name].name == chosen and client[s.name].namespace == space)
                ),
                None,
            )
            if picked is None:
                raise bad_request("'tool_choice' names a function that is not in 'tools'", "tool_choice")
            return ParsedTools(
                tuple(s for s in specs if s.name == picked),
                picked,
                echoed,
                dict(choice),
                client,
                web_search,
                tuple(skipped),
            )
        if isinstance(ckind, str) and (WEB_SEARCH_TYPE.match(ckind) or ckind in ("allowed_tools",)):
            # the model may search (or use the allowed tools): not forced
            choice = "auto"
        else:
            raise bad_request(
                "'tool_choice' of type %r is not supported: use none, auto, required or a function" % (ckind,),
                "tool_choice",
                "unsupported_parameter",
            )
    if choice not in ("none", "auto", "required"):
        raise bad_request("'tool_choice' must be none, auto, required or a function", "tool_choice")
    if choice == "required" and not specs:
        raise bad_request("'tool_choice' is required but no tools are declared", "tool_choice")
    if choice == "none":
        return ParsedTools((), "auto", echoed, choice, client, False, tuple(skipped))
    if not specs:
        return ParsedTools((), "auto", echoed, choice, client, web_search, tuple(skipped))
    return ParsedTools(tuple(specs), str(choice), echoed, choice, client, web_search, tuple(skipped))


def parse_text_format(text: Any) -> tuple[Optional[str], dict[str, Any]]:
    """
    C{text.format}: the schema the reply must match (None for plain text),
    and the format as the response object repeats it.
    """
    if text is None:
        return None, {"type": "text"}
    if not isinstance(text, Mapping):
        raise bad_request("'text' must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None, {"type": "text"}
    if not isinstance(fmt, Mapping) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise bad_request("'text.format.type' must be text, json_object or json_schema", "text.format.type")
    if fmt["type"] == "text":
        return None, {"type": "text"}
    if fmt["type"] == "json_object":
        return JSON_OBJECT_SCHEMA, {"type": "json_object"}
    schema = fmt.get("schema")
    if not isinstance(schema, Mapping):
        raise bad_request("'text.format.schema' must be a JSON Schema object", "text.format.schema")
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("'text.format.name' must be a non-empty string", "text.format.name")
    echoed: dict[str, Any] = {"type": "json_schema", "name": name, "schema": dict(schema)}
    if isinstance(fmt.get("description"), str):
        echoed["description"] = fmt["description"]
    echoed["strict"] = fmt.get("strict") if isinstance(fmt.get("strict"), bool) else None
    return canonical_schema(schema), echoed


def parse_reasoning(reasoning: Any) -> tuple[Optional[str], dict[str, Any]]:
    """
    C{reasoning}: the C{--effort} value, and the setting as repeated.
    """
    if reasoning is None:
        return None, {"effort": None, "summary": None}
    if not isinstance(reasoning, Mapping):
        raise bad_request("'reasoning' must be an object", "reasoning")
    effort = reasoning.get("effort")
    if effort is not None and (not isinstance(effort, str) or effort not in RESPONSE_EFFORTS):
        raise bad_request("'reasoning.effort' must be one of %s" % (", ".join(RESPONSE_EFFORTS),), "reasoning.effort")
    summary = reasoning.get("summary", reasoning.get("generate_summary"))
    return (RESPONSE_EFFORTS[effort] if effort is not None else None), {"effort": effort, "summary": summary}


def _join(parts: Sequence[Optional[str]]) -> Optional[str]:
    """
    System texts joined by blank lines; a text already there (the same
    instructions or system items sent again with C{previous_response_id})
    is not added twice.
    """
    kept: list[str] = []
    for part in parts:
        if not part:
            continue
        joined = "\n\n".join(kept)
        if part in kept or part == joined or ("\n\n%s\n\n" % (part,)) in ("\n\n%s\n\n" % (joined,)):
            continue
        kept.append(part)
    return "\n\n".join(kept) if kept else None


def not_found(response_id: str) -> ProxyError:
    return ProxyError(
        404,
        "Previous response with id '%s' not found." % (response_id,),
        "invalid_request_error",
        "previous_response_not_found",
        "previous_response_id",
    )


def parse_request(
    raw: bytes, aliases: tuple[tuple[str, str], ...], lookup: Lookup, items: ItemLookup = _no_item
) -> ResponsesRequest:
    """
    A C{POST /v1/responses} body as a L{ResponsesRequest}; C{lookup} finds
    the conversation a C{previous_response_id} continues.
    """
    body = load_json(raw)
    cli_model = models.resolve(body.get("model"), aliases)
    stream = flag(body, "stream", False)
    for param in ("conversation", "prompt"):
        if body.get(param) is not None:
            raise bad_request("'%s' is not supported by claudeproxy" % (param,), param, "unsupported_parameter")
    if body.get("background"):
        raise bad_request("background responses are not supported", "background", "unsupported_parameter")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("'instructions' must be a string", "instructions")
    previous_id = body.get("previous_response_id")
    turns: list[Message] = []
    prior_system: Optional[str] = None
    if previous_id is not None:
        if not isinstance(previous_id, str) or not previous_id:
            raise bad_request("'previous_response_id' must be a string", "previous_response_id")
        prior = lookup(previous_id)
        if prior is None:
            raise not_found(previous_id)
        turns.extend(prior.messages)
        prior_system = prior.system
    parsed = parse_tools(body)
    item_system = parse_input(body.get("input"), turns, parsed, items)
    if not turns or turns[-1].role != "user":
        raise bad_request("'input' must end with a user message or function_call_output items", "input")
    tools = parsed.offered(flag(body, "parallel_tool_calls", True))
    max_tokens = positive_int(body.get("max_output_tokens"), "max_output_tokens")
    effort, reasoning_echo = parse_reasoning(body.get("reasoning"))
    json_schema, format_echo = parse_text_format(body.get("text"))
    text_echo: dict[str, Any] = {"format": format_echo}
    if isinstance(body.get("text"), Mapping) and body["text"].get("verbosity") is not None:
        text_echo["verbosity"] = body["text"]["verbosity"]
    carried = _join([prior_system, *item_system])
    echo = {
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "parallel_tool_calls": tools.parallel,
        "previous_response_id": previous_id,
        "reasoning": reasoning_echo,
        "text": text_echo,
        "tool_choice": parsed.choice_echo,
        "tools": parsed.echoed,
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {},
        "temperature": body.get("temperature") if isinstance(body.get("temperature"), (int, float)) else 1.0,
        "top_p": body.get("top_p") if isinstance(body.get("top_p"), (int, float)) else 1.0,
        "truncation": body.get("truncation") if body.get("truncation") in ("auto", "disabled") else "disabled",
        "user": body.get("user") if isinstance(body.get("user"), str) else None,
        "store": body.get("store") if isinstance(body.get("store"), bool) else True,
        "service_tier": "default",
    }
    conversation = Conversation(_join([instructions, carried]), turns)
    settings = TurnSettings(effort=effort, tools=tools, json_schema=json_schema, max_tokens=max_tokens)
    return ResponsesRequest(
        body["model"],
        cli_model,
        conversation,
        stream,
        settings,
        instructions=instructions,
        previous_response_id=previous_id,
        item_system=carried,
        echo=echo,
        client_tools=parsed.client,
    )


def conversation_after(spec: ResponsesRequest, finished: Finished) -> Conversation:
    """
    What a follow-up naming this response continues: the request's
    conversation plus the reply as an assistant turn (its text, then its
    function calls); the system part is what the input items carried
    (C{instructions} are not carried over).  A text reply is the exact turn
    the process keeps for a live conversation, so a follow-up finds it.
    """
    blocks: list[Block] = []
    if finished.text:
        blocks.append(text_block(finished.text))
    for call in finished.tool_calls:
        # as the client saw it (and sends back in function_call_output)
        blocks.append({"type": "tool_use", "id": call_alias(call.id), "name": call.name, "input": call.input()})
    messages = spec.conversation.messages
    if blocks:
        messages = messages + (Message("assistant", blocks),)
    return Conversation(spec.item_system, messages)
