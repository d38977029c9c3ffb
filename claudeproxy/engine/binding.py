"""
Binding a started CLI to one request: what a generic warm process is told
when the request arrives (its system prompt, model, effort, output limit,
JSON schema and the client's tools), and the history written into it as
real turns.  Pure functions: the lines and control requests, no I/O
(L{claudeproxy.engine.binder} writes them).

A generic process is started with only what must be fixed at spawn
(L{generic_argv}): the isolation flags, no built-in tools, the permission
for the client-tool server and the working directory.  Everything else
goes over the stream-json control protocol (docs/CLI-NOTES.md, "Binding a
started process"):

- C{initialize} with C{systemPrompt} (replace mode) or
  C{appendSystemPrompt} (append mode), C{jsonSchema} and
  C{sdkMcpServers} (the client's tools, answered over the same channel);
- C{set_model} when the request's model is not the one it was started
  with;
- C{apply_flag_settings} with C{effortLevel} and the output limit
  (C{env.CLAUDE_CODE_MAX_OUTPUT_TOKENS}).

What stays fixed at spawn, and why: the WebSearch built-in tool (C{--tools}
is read once at start), so requests with a hosted web search (Codex sends
one with every request) take generic processes of their own, started with
it; and extra CLI flags.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs

from .conversation import Message
from .history import session_rows
from .process import ISOLATED, SpawnKey, stream_json_argv
from .tools import SERVER

#: the oldest CLI version whose control requests binding was checked on
BINDING_SINCE = (2, 1, 197)

#: the largest history (in user turns) written into a started process; a
#: longer one is loaded from a session file by a new process (--resume),
#: which is faster beyond this point (bench/binding.py measures it)
HISTORY_WRITE_MAX = 20


def history_write_max(version: tuple[int, int, int]) -> int:
    """
    Up to how many user turns writing a history into a running process
    beats a cold start with a session file, on CLI C{version}: measured
    with bench/binding.py (docs/performance.md), the two are level at ~20
    exchanges on 2.1.197 and ~10 on 2.1.332.
    """
    return HISTORY_WRITE_MAX if version < (2, 1, 300) else 10


def can_bind(key: SpawnKey) -> bool:
    """
    Whether a generic process can be bound to C{key}: everything but extra
    CLI flags can be set after the start (the WebSearch tool cannot, so
    requests with a hosted web search take generic processes started with
    it: L{generic_argv}'s C{web_search}).
    """
    return not key.extra


def generic_argv(claude: str, model: str, settings: Sequence[str] = ISOLATED, web_search: bool = False) -> list[str]:
    """
    The argv of a generic process: stream-json both ways, no built-in
    tools, no session files written, no MCP servers but the client-tool
    server the daemon answers over the control channel (allowed here:
    permissions are read at start), none of the user's own set-up.  No
    system prompt: it comes with C{initialize}.  With C{web_search}, the
    CLI's WebSearch tool is offered and allowed (it is read from C{--tools}
    at start): such processes serve only requests with a hosted web search.
    """
    allowed = ("WebSearch," if web_search else "") + "mcp__" + SERVER
    return stream_json_argv(claude, settings, model, "WebSearch" if web_search else "") + ["--allowedTools", allowed]


def initialize_request(key: SpawnKey) -> dict[str, Any]:
    """
    The C{initialize} control request that gives a generic process
    C{key}'s system prompt, JSON schema and tools.  In replace mode a
    request without system text gets an empty one (none of Claude Code's
    own prompt, as with the API).
    """
    request: dict[str, Any] = {"subtype": "initialize"}
    if key.system_mode == "append":
        request["appendSystemPrompt"] = key.system or ""
    else:
        request["systemPrompt"] = key.system or ""
    if key.json_schema is not None:
        request["jsonSchema"] = json.loads(key.json_schema)
    if key.tools:
        request["sdkMcpServers"] = [SERVER]
    return request


def settings_request(key: SpawnKey) -> Optional[dict[str, Any]]:
    """
    The C{apply_flag_settings} control request for C{key}'s effort and
    output limit, or None when it has neither.
    """
    settings: dict[str, Any] = {}
    if key.effort is not None:
        settings["effortLevel"] = key.effort
    env = key.env()
    if env:
        settings["env"] = env
    if not settings:
        return None
    return {"subtype": "apply_flag_settings", "settings": settings}


def switchable(bound: SpawnKey, wanted: SpawnKey) -> bool:
    """
    Whether a process bound to C{bound} (and holding no conversation once
    cleared) can serve C{wanted} by switching what a started CLI switches
    again and again: the model (C{set_model}), and the effort when it has
    none yet (C{apply_flag_settings}; an effort given as C{--effort} at
    spawn outranks the settings, so it is never unset or changed).  Not
    the output limit (the CLI read it into its environment), nor what
    C{initialize} set once.
    """
    if bound == wanted or bound.effort not in (None, wanted.effort):
        return False
    return attrs.evolve(bound, model=wanted.model, effort=wanted.effort) == wanted


def switch_requests(bound: SpawnKey, wanted: SpawnKey) -> list[dict[str, Any]]:
    """
    The control requests that take a process bound to C{bound} to
    C{wanted} (L{switchable}): C{set_model}, and the effort.
    """
    model = model_request(wanted, bound.model)
    requests = [model] if model is not None else []
    if wanted.effort != bound.effort:
        requests.append({"subtype": "apply_flag_settings", "settings": {"effortLevel": wanted.effort}})
    return requests


def model_request(key: SpawnKey, started_with: str) -> Optional[dict[str, Any]]:
    """
    The C{set_model} control request, when C{key}'s model is not the one
    the process was started with.
    """
    if key.model == started_with:
        return None
    return {"subtype": "set_model", "model": key.model}


def clear_line(make_uuid: Callable[[], str] = lambda: str(uuid.uuid4())) -> dict[str, Any]:
    """
    The C{/clear} command as a user line: the CLI drops its conversation
    and keeps what it was bound to (system prompt, tools, JSON schema,
    model, effort, output limit), answering with a C{result} of no turn.
    A L{boundary_line} after it keeps the command's own lines from
    upstream.
    """
    return {
        "type": "user",
        "uuid": make_uuid(),
        "session_id": "",
        "parent_tool_use_id": None,
        "message": {"role": "user", "content": "/clear"},
    }


def boundary_line(make_uuid: Callable[[], str] = lambda: str(uuid.uuid4())) -> dict[str, Any]:
    """
    A C{compact_boundary} input line: what came before it (2.1.197's
    "Set model to" caveat after C{set_model}) is not sent upstream.  Only
    written when the CLI echoed something to hide.
    """
    return {
        "type": "system",
        "subtype": "compact_boundary",
        "uuid": make_uuid(),
        "compact_metadata": {"trigger": "manual", "pre_tokens": 0},
        "session_id": "",
    }


def user_turns(history: Sequence[Message]) -> int:
    """
    How many user turns C{history} has (what writing it costs).
    """
    count = 0
    previous = None
    for message in history:
        if message.role == "user" and previous != "user":
            count += 1
        previous = message.role
    return count


def history_lines(
    history: Sequence[Message],
    model: str,
    cwd: str,
    version: str,
    now: str,
    make_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> list[dict[str, Any]]:
    """
    C{history} (ending with the assistant's message) as stream-json input
    lines that add real turns and start none: user lines with
    C{shouldQuery: false}, assistant lines with the whole message.  The
    same messages a session file would hold (L{session_rows}: merged by
    role, tool names as the CLI offers them, the API's rules checked).
    """
    lines: list[dict[str, Any]] = []
    for row in session_rows(history, model, cwd, version, now, make_uuid):
        line: dict[str, Any] = {
            "type": row["type"],
            "uuid": row["uuid"],
            "session_id": "",
            "parent_tool_use_id": None,
            "message": row["message"],
        }
        if row["type"] == "user":
            line["shouldQuery"] = False
        lines.append(line)
    return lines


def is_history_result(line: Mapping[str, Any]) -> bool:
    """
    Whether C{line} is the C{result} that answers a history user line
    (no turn was run).
    """
    return line.get("type") == "result" and line.get("num_turns") == 0
