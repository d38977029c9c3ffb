#!/usr/bin/env python3
"""
A stand-in for a Claude Code CLI that refuses the subscription login in
-p mode (as a future --bare default would): C{auth status} says logged in,
every -p run answers "Not logged in" before any request.
"""

from __future__ import annotations

import json
import sys

REFUSAL = "Not logged in · Please run /login"


def result() -> str:
    return json.dumps(
        {"type": "result", "subtype": "success", "is_error": True, "api_error_status": None, "result": REFUSAL}
    )


def main(args: list[str]) -> int:
    if "--version" in args:
        print("2.9.0 (Claude Code)")
        return 0
    if args[:1] == ["auth"]:
        if "--help" in args:
            print("Usage: claude auth [command]\n\nCommands:\n  status   Show authentication status")
            return 0
        print(json.dumps({"loggedIn": True, "authMethod": "claude.ai", "subscriptionType": "max"}))
        return 0
    if "stream-json" in args:
        for line in sys.stdin:
            if line.strip():
                print(json.dumps({"type": "system", "subtype": "init", "model": "claude-sonnet-5"}))
                print(result(), flush=True)
        return 1
    print(result())
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
