"""
Keeping the user's own Claude Code set-up out of API requests: the CLI's
flags and environment, what the daemon reports finding, the -p login
probe, and a CLI that compacts anyway.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.config import Config
from claudeproxy.engine import loginprobe
from claudeproxy.engine.isolation import isolation_args, isolation_env, reports_compaction
from claudeproxy.engine.process import CLIProcess, SpawnKey, build_argv, build_env
from claudeproxy.engine.streaming import Retry, Timeouts, TurnRun
from claudeproxy.engine.turn import TurnState
from claudeproxy.engine.usersetup import UserSetup, scan
from claudeproxy.service import build
from tests import realhome
from tests.fakes import FakeTransport, RecordingOutput


class FlagsTests(SynchronousTestCase):
    def test_default_is_isolated(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet"))
        i = argv.index("--setting-sources")
        self.assertEqual(argv[i + 1], "")
        self.assertNotIn("--settings", argv)

    def test_opt_in(self) -> None:
        argv = build_argv("/opt/claude", SpawnKey("sonnet"), settings=isolation_args(True))
        i = argv.index("--setting-sources")
        self.assertEqual(argv[i + 1], "user")
        overrides = json.loads(argv[argv.index("--settings") + 1])
        self.assertEqual(overrides, {"disableAllHooks": True, "outputStyle": "default"})

    def test_env(self) -> None:
        env = build_env({"PATH": "/bin", "DISABLE_COMPACT": "0"}, False, 0)
        self.assertEqual(env["DISABLE_COMPACT"], "1", "the user's own value does not switch compaction back on")
        self.assertEqual(env["CLAUDE_CODE_DISABLE_AUTO_MEMORY"], "1")
        self.assertEqual(int(env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"]), 1_000_000_000)
        self.assertEqual(env["ENABLE_CLAUDEAI_MCP_SERVERS"], "false")
        self.assertNotIn("CLAUDE_CODE_DISABLE_CLAUDE_MDS", env, "no settings source reads CLAUDE.md anyway")
        self.assertEqual(isolation_env(True)["CLAUDE_CODE_DISABLE_CLAUDE_MDS"], "1")

    def test_service_passes_the_mode_on(self) -> None:
        for use in (False, True):
            daemon = build(Clock(), Config(claude="/opt/claude", use_claude_settings=use, watchdog=False), {})
            self.assertEqual(list(daemon.manager.settings), isolation_args(use))
            self.assertEqual(daemon.manager.env.get("CLAUDE_CODE_DISABLE_CLAUDE_MDS"), "1" if use else None)


class CompactionLineTests(SynchronousTestCase):
    def test_lines(self) -> None:
        self.assertTrue(reports_compaction({"type": "system", "subtype": "status", "status": "compacting"}))
        self.assertTrue(reports_compaction({"type": "system", "subtype": "compact_boundary"}))
        self.assertTrue(reports_compaction({"type": "system", "subtype": "microcompact_boundary"}))
        self.assertFalse(reports_compaction({"type": "system", "subtype": "status", "status": None}))
        self.assertFalse(reports_compaction({"type": "system", "subtype": "init"}))
        self.assertFalse(reports_compaction({"type": "user", "subtype": "compact_boundary"}))


class CompactingRunTests(SynchronousTestCase):
    """
    A turn whose CLI reports compacting: the process is ended and the
    client sees nothing of the summary's answer.
    """

    def run_turn(self, retry: bool) -> tuple[Any, CLIProcess, RecordingOutput]:
        killed: list[int] = []
        proc = CLIProcess(killed.append)
        proc.makeConnection(FakeTransport(4242))
        output = RecordingOutput()
        run = TurnRun(
            Clock(), proc, TurnState(model="sonnet"), output, Timeouts(60, 600), retry=Retry(compaction=retry)
        )
        outcomes: list[Any] = []
        run.start(b'{"type":"user"}\n').addCallback(outcomes.append)
        run.cli_line({"type": "system", "subtype": "init", "model": "claude-sonnet-5"})
        run.cli_line({"type": "system", "subtype": "status", "status": "compacting"})
        run.cli_line({"type": "assistant", "message": {"content": [{"type": "text", "text": "from the summary"}]}})
        self.assertEqual(killed, [4242])
        self.assertEqual(proc.kill_cause, "compacted")
        return outcomes[0], proc, output

    def test_retried_on_a_fresh_process(self) -> None:
        outcome, _, output = self.run_turn(retry=True)
        self.assertTrue(outcome.retry)
        self.assertTrue(outcome.compacted)
        self.assertEqual(output.of("failed"), [])

    def test_second_time_is_context_length_exceeded(self) -> None:
        outcome, _, output = self.run_turn(retry=False)
        self.assertFalse(outcome.retry)
        (error,) = output.of("failed")
        self.assertEqual((error.status, error.code), (400, "context_length_exceeded"))


class UserSetupTests(SynchronousTestCase):
    def test_realistic_home(self) -> None:
        home = realhome.make(self.mktemp())
        realhome.add_memory(home, "/tmp/somewhere")
        setup = scan({"HOME": home})
        self.assertEqual(setup.config_dir, os.path.join(home, ".claude"))
        self.assertEqual(
            (setup.claude_md, setup.rules, setup.hooks, setup.output_style, setup.env, setup.plugins),
            (3, 1, len(realhome.HOOK_EVENTS) + 1, "Explanatory", 2, 1),
        )
        self.assertEqual((setup.skills, setup.agents, setup.commands, setup.memory), (1, 1, 1, 1))
        self.assertEqual(
            setup.items(),
            [
                "3 CLAUDE.md files",
                "1 rules file",
                "7 hooks",
                "output style Explanatory",
                "2 settings env variables",
                "1 plugin",
                "1 skill",
                "1 agent",
                "1 command",
                "1 auto memory file",
            ],
        )
        self.assertTrue(setup.summary(False).endswith("— not applied to API requests"))

    def test_config_dir_variable(self) -> None:
        root = self.mktemp()
        os.makedirs(root)
        with open(os.path.join(root, "settings.json"), "w") as f:
            json.dump({"apiKeyHelper": "/bin/key", "hooks": {"Stop": [{"hooks": [{}, {}]}]}}, f)
        setup = scan({"HOME": "/nowhere", "CLAUDE_CONFIG_DIR": root})
        self.assertEqual(setup, UserSetup(config_dir=root, hooks=2, api_key_helper=True))
        self.assertEqual(setup.items(), ["2 hooks", "apiKeyHelper"])

    def test_nothing(self) -> None:
        setup = scan({"HOME": self.mktemp()})
        self.assertEqual(setup.items(), [])
        self.assertIn("nothing of your Claude Code set-up found", setup.summary(False))

    def test_unreadable_settings(self) -> None:
        home = self.mktemp()
        os.makedirs(os.path.join(home, ".claude"))
        with open(os.path.join(home, ".claude", "settings.json"), "w") as f:
            f.write("{not json")
        self.assertEqual(scan({"HOME": home}).hooks, 0)


class LoginProbeTests(SynchronousTestCase):
    def result(self, text: str, is_error: bool = True) -> str:
        return json.dumps({"type": "result", "is_error": is_error, "result": text})

    def test_verdicts(self) -> None:
        self.assertEqual(loginprobe.verdict(self.result("Not logged in · Please run /login")), loginprobe.REFUSED)
        self.assertEqual(
            loginprobe.verdict(self.result("API Error: Unable to connect to API (ConnectionRefused)")),
            loginprobe.ACCEPTED,
        )
        self.assertEqual(
            loginprobe.verdict(self.result("API Error: Connection refused — a firewall or proxy (ECONNREFUSED)")),
            loginprobe.ACCEPTED,
        )
        self.assertEqual(loginprobe.verdict(self.result("OK", False)), loginprobe.ACCEPTED)
        self.assertEqual(loginprobe.verdict("Segmentation fault"), loginprobe.UNKNOWN)
        self.assertEqual(loginprobe.verdict(self.result("something else")), loginprobe.UNKNOWN)

    def test_nothing_reaches_anthropic(self) -> None:
        env = loginprobe.probe_env({"ANTHROPIC_BASE_URL": "https://api.anthropic.com", "CLAUDE_CODE_MAX_RETRIES": "5"})
        self.assertEqual(env["ANTHROPIC_BASE_URL"], "http://127.0.0.1:1")
        self.assertEqual(env["CLAUDE_CODE_MAX_RETRIES"], "0")
        argv = loginprobe.probe_argv("/opt/claude", isolation_args(False))
        self.assertEqual(argv[:2], ["/opt/claude", "-p"])
        self.assertIn("--setting-sources", argv)
