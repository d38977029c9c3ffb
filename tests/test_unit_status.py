"""
C{claudeproxy status}: the summary printed from /v1/usage (the daemon's
answer is given by a fake fetch; tests/test_integration_dashboard.py asks
a real daemon).
"""

from __future__ import annotations

import io
import json
from typing import Any, Optional

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.ops import cli

T = 1_800_000_000.0


def figures() -> dict[str, Any]:
    hour = int(T // 3600) * 3600
    client = {
        "requests": 3,
        "errors": 1,
        "input_tokens": 1200,
        "output_tokens": 40,
        "cache_read_tokens": 5000,
        "cache_write_tokens": 0,
        "cost": 0.0123,
        "unpriced": 1,
    }
    return {
        "object": "usage",
        "version": "0.1",
        "now": T,
        "cli": {
            "version": "2.1.197 (Claude Code)",
            "login": {"logged_in": True, "stored": {"expires_at": T + 7200, "refreshable": True}},
        },
        "quota": {"status": "allowed_warning", "resetsAt": T + 3600, "observed_at": T - 5},
        "plan": {"name": "max20", "source": "option", "monthly_price": 200.0},
        "limits": {
            "windows": {
                "seven_day": {
                    "status": "allowed_warning",
                    "utilization": 0.8,
                    "resetsAt": T + 86400,
                    "reached_at": T + 3600,
                }
            },
            "overage": {"overageStatus": "rejected", "isUsingOverage": False},
        },
        "live": {"in_flight": 1, "queued": 0, "warm": 2, "conversations": 1, "tool_waits": 0, "served": 9},
        "history": {
            "rows": 3,
            "windows": {
                w: {
                    "hours": [dict(client, hour=hour, client="agent")],
                    "clients": {"agent": client},
                    "models": {"claude-sonnet-5": client},
                    "total": client,
                    "saved": -6.65,
                }
                for w in ("day", "week", "month")
            },
            "errors": [
                {
                    "time": T - 60,
                    "client": "agent",
                    "endpoint": "/v1/chat/completions",
                    "status": 504,
                    "error_code": "timeout",
                    "total_ms": 120000.0,
                }
            ],
            "recent": [],
        },
    }


class StatusTests(SynchronousTestCase):
    def run_status(
        self, answer: tuple[int, bytes], *args: str, env: Optional[dict[str, str]] = None
    ) -> tuple[int, str, list[Any]]:
        calls: list[Any] = []

        def fetch(host: str, port: int, key: Optional[str], timeout: float) -> tuple[int, bytes]:
            calls.append((host, port, key))
            return answer

        out = io.StringIO()
        code = cli.main(["status", *args], out=out, env=env or {}, fetch=fetch)
        return code, out.getvalue(), calls

    def test_summary(self) -> None:
        code, text, calls = self.run_status((200, json.dumps(figures()).encode()), "--port", "4000")
        self.assertEqual(code, 0, text)
        self.assertEqual(calls, [("127.0.0.1", 4000, None)])
        self.assertIn("CLI 2.1.197 (Claude Code), logged in", text)
        self.assertIn("login: access token expires ", text)
        self.assertIn("(the CLI refreshes it itself)", text)
        self.assertIn("quota: allowed_warning", text)
        self.assertIn("1 in flight, 0 queued, 2 warm, 1 live conversations", text)
        self.assertIn("agent", text)
        self.assertIn("1,200", text)
        self.assertIn("504 timeout", text)
        self.assertIn("$0.0123 (+1 unpriced)", text)
        self.assertIn(
            "API-equivalent cost $0.0123 (+1 unpriced); against the max20 plan's $200.00/month: the plan cost $6.65 more",
            text,
        )
        self.assertIn("claude-sonnet-5: 3 requests, $0.0123 (+1 unpriced)", text)
        self.assertIn("limit seven_day: allowed_warning, 80% used, resets ", text)
        self.assertIn(", at this rate reached ", text)
        self.assertIn("extra usage: not in use (rejected)", text)

    def test_key_from_env_and_file(self) -> None:
        body = json.dumps(figures()).encode()
        _, _, calls = self.run_status((200, body), env={"CLAUDEPROXY_API_KEY": "env-key"})
        self.assertEqual(calls[0][2], "env-key")
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("agent=file-key\n")
        _, _, calls = self.run_status((200, body), "--api-key-file", path)
        self.assertEqual(calls[0][2], "file-key")

    def test_needs_key(self) -> None:
        code, text, _ = self.run_status((401, b"{}"))
        self.assertEqual(code, 1)
        self.assertIn("--api-key-file", text)

    def test_not_running(self) -> None:
        def refused(host: str, port: int, key: Optional[str], timeout: float) -> tuple[int, bytes]:
            raise ConnectionRefusedError("refused")

        out = io.StringIO()
        self.assertEqual(cli.main(["status"], out=out, env={}, fetch=refused), 1)
        self.assertIn("no claudeproxy answers", out.getvalue())

    def test_no_history(self) -> None:
        f = figures()
        f["history"] = None
        code, text, _ = self.run_status((200, json.dumps(f).encode()))
        self.assertEqual(code, 0)
        self.assertIn("no usage history", text)
