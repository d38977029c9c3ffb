#!/usr/bin/env python3
"""
A misbehaving stand-in for the Claude Code CLI, for the hardening tests.

It reads one stream-json user line per turn and behaves according to the
first word of the user's last text (so one daemon can serve a mix of
behaviours), or C{FAULTY_MODE} when the text starts with no known word:

- C{ok}: a normal streamed reply (C{FAULTY_TEXT} or "ok reply"), at once;
  it then waits for the next turn.
- C{drip}: a normal reply in 10 deltas, C{FAULTY_DELAY} seconds apart
  (default 0.01).
- C{slow}: a normal reply in 400 deltas 0.05 s apart (20 s in all).
- C{crash}: two text deltas ("partial answer"), then a message on stderr
  and exit status 1.
- C{hang}: nothing at all, forever.
- C{hangafter}: two text deltas, then nothing, forever.
- C{garbage}: an init line, then lines that are not JSON, then it stays.
- C{big}: one text_delta line of C{FAULTY_BIG} bytes (default 1 MiB) of
  text, then the usual end.
- C{exit}: exits with status 1 and a stderr message before printing
  anything.
- C{compact}: on a process that has answered a turn before (a live
  conversation), reports compacting it as CLI 2.1.332 does (C{status:
  compacting}, C{compact_boundary}, the "This session is being continued"
  user line), then answers "reply from the summary"; on a fresh process,
  a normal reply.
- C{compactalways}: the same on every process, fresh ones too.

Standard library only, and only what starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

MODES = ("ok", "drip", "slow", "crash", "hang", "hangafter", "garbage", "big", "exit", "compact", "compactalways")
#: turns this process has answered
ANSWERED = [0]
SESSION = "00000000-0000-4000-8000-%012x" % (os.getpid(),)
MODEL = "claude-sonnet-5"


def out(obj: dict) -> None:
    obj.setdefault("session_id", SESSION)
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


def event(ev: dict) -> None:
    out({"type": "stream_event", "event": ev, "parent_tool_use_id": None})


def flush() -> None:
    sys.stdout.flush()


def last_text(line: bytes) -> str:
    try:
        content = json.loads(line)["message"]["content"]
    except (ValueError, KeyError, TypeError):
        return ""
    if isinstance(content, str):
        return content
    for block in reversed(content if isinstance(content, list) else []):
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            return block["text"]
    return ""


def start() -> None:
    out({"type": "system", "subtype": "init", "model": MODEL, "tools": [], "mcp_servers": []})
    usage = {"input_tokens": 5, "output_tokens": 1}
    message = {"id": "msg_faulty", "type": "message", "role": "assistant", "model": MODEL, "content": []}
    event({"type": "message_start", "message": dict(message, usage=usage)})
    event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})


def delta(text: str) -> None:
    event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})


def finish(text: str) -> None:
    message = {"id": "msg_faulty", "type": "message", "role": "assistant", "model": MODEL}
    out({"type": "assistant", "message": dict(message, content=[{"type": "text", "text": text}])})
    event({"type": "content_block_stop", "index": 0})
    event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}})
    event({"type": "message_stop"})
    usage = {"input_tokens": 5, "output_tokens": 3, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    out(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": text,
            "stop_reason": "end_turn",
            "usage": usage,
        }
    )
    flush()


def forever() -> None:
    while True:
        time.sleep(3600)


def reply(parts: list[str], delay: float) -> None:
    start()
    flush()
    for part in parts:
        delta(part)
        flush()
        if delay:
            time.sleep(delay)
    finish("".join(parts))


def compacting() -> None:
    out({"type": "system", "subtype": "status", "status": "compacting", "compact_output_chars": 0})
    out({"type": "system", "subtype": "status", "status": None, "compact_result": "success"})
    out(
        {
            "type": "system",
            "subtype": "compact_boundary",
            "compact_metadata": {"trigger": "auto", "pre_tokens": 995009, "post_tokens": 436},
        }
    )
    summary = "This session is being continued from a previous conversation that ran out of context."
    out({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": summary}]}})
    flush()
    reply(["reply from ", "the summary"], 0.0)


def turn(mode: str) -> None:
    if mode == "compactalways" or (mode == "compact" and ANSWERED[0]):
        compacting()
        return
    if mode == "compact":
        mode = "ok"
    if mode == "exit":
        sys.stderr.write("fatal: faulty CLI exits before any output\n")
        sys.stderr.flush()
        sys.exit(1)
    if mode == "hang":
        forever()
    if mode == "ok":
        text = os.environ.get("FAULTY_TEXT", "ok reply")
        reply([text[: len(text) // 2], text[len(text) // 2 :]], 0.0)
    elif mode == "drip":
        reply(["drip%02d " % (i,) for i in range(10)], float(os.environ.get("FAULTY_DELAY", "0.01")))
    elif mode == "slow":
        reply(["word%03d " % (i,) for i in range(400)], 0.05)
    elif mode in ("crash", "hangafter"):
        start()
        delta("partial ")
        delta("answer")
        flush()
        if mode == "hangafter":
            forever()
        time.sleep(0.05)
        sys.stderr.write("panic: faulty CLI crashed mid-stream on purpose\n")
        sys.stderr.flush()
        sys.exit(1)
    elif mode == "garbage":
        out({"type": "system", "subtype": "init", "model": MODEL})
        sys.stdout.write("Segmentation fault (core dumped)\n<html>not stream-json</html>\n")
        flush()
        forever()
    elif mode == "big":
        size = int(os.environ.get("FAULTY_BIG", str(1 << 20)))
        pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
        text = (pattern * (size // len(pattern) + 1))[:size]
        start()
        delta(text)
        finish(text)


def control_response(line: bytes) -> bool:
    """
    Answer a control request (the daemon's readiness probe) as the CLI
    does: a C{control_response} with its request id.
    """
    try:
        obj = json.loads(line)
    except ValueError:
        return False
    if not isinstance(obj, dict) or obj.get("type") != "control_request":
        return False
    if os.environ.get("FAULTY_NO_CONTROL") != "1":
        response: dict[str, Any] = {"subtype": "success", "request_id": obj.get("request_id"), "response": {}}
        sys.stdout.write(json.dumps({"type": "control_response", "response": response}) + "\n")
        sys.stdout.flush()
    return True


def main() -> int:
    default = os.environ.get("FAULTY_MODE", "ok")
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        if control_response(line):
            continue
        words = last_text(line).split()
        mode = words[0] if words and words[0] in MODES else default
        turn(mode)
        ANSWERED[0] += 1
    return 0


if __name__ == "__main__":
    if "--version" in sys.argv[1:]:
        sys.stdout.write("0.0.0 (faulty fake CLI)\n")
        sys.exit(0)
    try:
        sys.exit(main())
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(0)
