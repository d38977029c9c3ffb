#!/usr/bin/env python3
"""
A stand-in for the Claude Code CLI that answers instantly, for load tests
and benchmarks of the daemon (not of the CLI).

It takes the real CLI's argv (everything but C{--model} is ignored) and
speaks its stream-json: for every user line read on stdin it writes the
lines the real CLI writes for one streamed text reply (C{system} init,
C{stream_event} message_start, content_block_start, text_delta deltas,
the C{assistant} message, content_block_stop, message_delta,
message_stop, C{rate_limit_event}, C{result}), as fast as the pipe takes
them.  It keeps reading stdin, so warm processes and live conversations
work, and exits when stdin closes.

The reply is L{reply_text}: C{FAKECLI_BYTES} characters (default 1000) sent
in text deltas of C{FAKECLI_CHUNK} characters (default 100).  It starts
with the user's last text (up to 64 safe characters) in angle brackets,
then repeats L{PATTERN}, whose prime length makes any lost, repeated or
reordered chunk visible.  A user text starting C{bytes=N:} asks for N
characters instead (a small warm-up request to a daemon set up for big
replies).

Standard library only, and only what starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time

PATTERN = "The-quick-brown-fox-jumps-over-the-lazy-dog_0123456789+abcde."
assert len(PATTERN) == 61
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:")
MODELS = {
    "sonnet": "claude-sonnet-5",
    "haiku": "claude-haiku-4-5-20251001",
    "opus": "claude-opus-4-8",
}
SESSION = "00000000-0000-4000-8000-%012x" % (os.getpid(),)
BATCH = 1 << 20


def reply_text(nbytes: int, prompt: str = "") -> str:
    """
    The reply to a user turn whose last text is C{prompt}: exactly
    C{nbytes} ASCII characters, none needing a JSON escape.
    """
    tag = "".join(c for c in prompt[:64] if c in SAFE)
    head = "<%s>" % (tag,) if tag else ""
    body_len = max(0, nbytes - len(head))
    body = PATTERN * (body_len // len(PATTERN) + 1)
    return (head + body[:body_len])[:nbytes]


def _last_text(line: bytes) -> str:
    try:
        obj = json.loads(line)
        content = obj["message"]["content"]
    except (ValueError, KeyError, TypeError):
        return ""
    if isinstance(content, str):
        return content
    for block in reversed(content if isinstance(content, list) else []):
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            return block["text"]
    return ""


def _model(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--model" and i + 1 < len(argv):
            return MODELS.get(argv[i + 1], argv[i + 1])
        if arg.startswith("--model="):
            value = arg[len("--model=") :]
            return MODELS.get(value, value)
    return MODELS["sonnet"]


class Writer:
    """
    Stream-json lines onto stdout in big writes.
    """

    def __init__(self) -> None:
        self.out = sys.stdout.buffer
        self.parts: list[bytes] = []
        self.size = 0
        self.n = 0

    def uuid(self) -> bytes:
        self.n += 1
        return b"00000000-0000-4000-8000-%012x" % (self.n,)

    def obj(self, obj: dict[str, object]) -> None:
        obj["uuid"] = self.uuid().decode()
        obj["session_id"] = SESSION
        self.raw(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def event(self, event: dict[str, object], **extra: object) -> None:
        line: dict[str, object] = {"type": "stream_event", "event": event}
        line["parent_tool_use_id"] = None
        line.update(extra)
        self.obj(line)

    def raw(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out.write(b"".join(self.parts))
            self.parts = []
            self.size = 0
        self.out.flush()


def answer(w: Writer, model: str, turn: int, prompt: str, nbytes: int, chunk: int) -> None:
    started = time.monotonic()
    text = reply_text(nbytes, prompt)
    out_tokens = max(1, nbytes // 4)
    usage = {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    mid = "msg_fakecli_%d_%d" % (os.getpid(), turn)
    w.obj(
        {
            "type": "system",
            "subtype": "init",
            "cwd": os.getcwd(),
            "tools": [],
            "mcp_servers": [],
            "model": model,
            "permissionMode": "default",
            "apiKeySource": "none",
            "claude_code_version": "fakecli",
        }
    )
    message: dict[str, object] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    w.event({"type": "message_start", "message": message}, ttft_ms=0)
    w.event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    # the deltas: one template, the text (no escapes needed) dropped in
    head = (
        b'{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
    )
    tail = b'"}},"session_id":"' + SESSION.encode() + b'","parent_tool_use_id":null,"uuid":"'
    raw = text.encode("ascii")
    first = True
    for i in range(0, len(raw), chunk):
        w.raw(head + raw[i : i + chunk] + tail + w.uuid() + b'"}\n')
        if first:
            # the first token goes out at once
            first = False
            w.flush()
    w.obj(
        {
            "type": "assistant",
            "message": dict(message, content=[{"type": "text", "text": text}], context_management=None),
            "parent_tool_use_id": None,
        }
    )
    w.event({"type": "content_block_stop", "index": 0})
    w.event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": out_tokens},
        }
    )
    w.event({"type": "message_stop"})
    w.obj({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed", "isUsingOverage": False}})
    ms = int((time.monotonic() - started) * 1000)
    w.obj(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "api_error_status": None,
            "duration_ms": ms,
            "duration_api_ms": ms,
            "num_turns": 1,
            "result": text,
            "stop_reason": "end_turn",
            "total_cost_usd": 0.0,
            "usage": {
                "input_tokens": 11,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": out_tokens,
            },
            "modelUsage": {model: {"inputTokens": 11, "outputTokens": out_tokens}},
            "permission_denials": [],
            "terminal_reason": "completed",
        }
    )
    w.flush()


def _size(prompt: str, default: int) -> int:
    if prompt.startswith("bytes="):
        value = prompt[len("bytes=") :].split(":", 1)[0]
        if value.isdigit():
            return int(value)
    return default


def main(argv: list[str]) -> int:
    model = _model(argv)
    nbytes = int(os.environ.get("FAKECLI_BYTES", "1000"))
    chunk = max(1, int(os.environ.get("FAKECLI_CHUNK", "100")))
    w = Writer()
    turn = 0
    try:
        for line in sys.stdin.buffer:
            if not line.strip():
                continue
            if b'"control_request"' in line:
                # the daemon's readiness probe, answered as the CLI does
                request = json.loads(line)
                response = {"subtype": "success", "request_id": request.get("request_id"), "response": {}}
                w.raw((json.dumps({"type": "control_response", "response": response}) + "\n").encode())
                w.flush()
                continue
            turn += 1
            prompt = _last_text(line)
            answer(w, model, turn, prompt, _size(prompt, nbytes), chunk)
    except (BrokenPipeError, KeyboardInterrupt):
        os._exit(0)
    return 0


if __name__ == "__main__":
    if "--version" in sys.argv[1:]:
        sys.stdout.write("0.0.0 (fakecli)\n")
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
