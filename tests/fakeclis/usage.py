#!/usr/bin/env python3
"""
A stand-in for a Claude Code CLI that answers the stream-json control
request C{get_usage} exactly as 2.1.197 or 2.1.332 does (the version from
C{CLAUDEPROXY_FAKE_CLI_VERSION}), with the C{rate_limits} from
C{CLAUDEPROXY_FAKE_USAGE} (JSON; absent: null, as without a login that can
read them).  Every stdin line is appended to C{CLAUDEPROXY_FAKE_CLI_LOG}
if set.  A user line gets an error result (the tests never send one).
"""

from __future__ import annotations

import json
import os
import sys

VERSION = os.environ.get("CLAUDEPROXY_FAKE_CLI_VERSION", "2.1.197")


def behaviors(skip: bool) -> object:
    """
    The local transcript scan: 2.1.332 skips it when asked (null), 2.1.197
    always sends it; 2.1.332's adds recommendations.
    """
    if VERSION != "2.1.197" and skip:
        return None
    one: dict[str, object] = {
        "request_count": 0,
        "session_count": 0,
        "behaviors": [],
        "agents": [],
        "skills": [],
        "plugins": [],
        "mcp_servers": [],
    }
    if VERSION != "2.1.197":
        one = {"recommendations": [], **one}
    return {"day": one, "week": dict(one)}


def usage_answer(request_id: str, skip: bool) -> dict[str, object]:
    raw = os.environ.get("CLAUDEPROXY_FAKE_USAGE")
    limits = json.loads(raw) if raw else None
    return {
        "type": "control_response",
        "response": {
            "subtype": "success",
            "request_id": request_id,
            "response": {
                "session": {
                    "total_cost_usd": 0,
                    "total_api_duration_ms": 0,
                    "total_duration_ms": 397,
                    "total_lines_added": 0,
                    "total_lines_removed": 0,
                    "model_usage": {},
                },
                "subscription_type": "max" if limits is not None else None,
                "rate_limits_available": limits is not None,
                "rate_limits": limits,
                "behaviors": behaviors(skip),
            },
        },
    }


def main(args: list[str]) -> int:
    if "--version" in args:
        print("%s (Claude Code)" % (VERSION,))
        return 0
    log = os.environ.get("CLAUDEPROXY_FAKE_CLI_LOG")
    for line in sys.stdin:
        if not line.strip():
            continue
        if log:
            with open(log, "a") as f:
                f.write(line)
        msg = json.loads(line)
        if msg.get("type") == "control_request":
            request = msg.get("request") or {}
            if request.get("subtype") == "get_usage":
                out = usage_answer(msg["request_id"], bool(request.get("skip_behaviors")))
            else:
                out = {
                    "type": "control_response",
                    "response": {"subtype": "success", "request_id": msg["request_id"], "response": {}},
                }
            print(json.dumps(out), flush=True)
        elif msg.get("type") == "user":
            print(
                json.dumps(
                    {
                        "type": "result",
                        "subtype": "success",
                        "is_error": True,
                        "api_error_status": None,
                        "result": "this fake CLI answers only get_usage",
                    }
                ),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
