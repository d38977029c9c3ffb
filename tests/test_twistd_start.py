"""
The daemon as twistd starts it: without a usable CLI it still starts
(/health says why, completions get 503), and with twistd's default pid file
it stops cleanly and removes it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile

import treq
from twisted.trial.unittest import TestCase

from tests.harness import CONSOLE_SCRIPT, ROOT, TwistdProcess, reactor, start_twistd


class TwistdStartTests(TestCase):
    timeout = 60

    async def test_starts_without_cli_and_removes_its_pid_file(self) -> None:
        cwd = tempfile.mkdtemp(prefix="cp-twistd-")
        args = ["claudeproxy", "--listen", "tcp:{port}:interface=127.0.0.1", "--claude", "/nonexistent/claude"]
        daemon = await start_twistd(self, os.environ, args, cwd, pid_file=True)
        resp = await treq.get(daemon.url + "/health", persistent=False)
        health = json.loads(await resp.content())
        self.assertEqual(health["status"], "degraded")
        self.assertIn("/nonexistent/claude", health["cli"]["error"])
        resp = await treq.post(
            daemon.url + "/v1/chat/completions",
            json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}).encode(),
            persistent=False,
        )
        body = json.loads(await resp.content())
        self.assertEqual((resp.code, body["error"]["code"]), (503, "cli_unavailable"))
        self.assertIn("npm install -g @anthropic-ai/claude-code", body["error"]["message"])
        self.assertTrue(os.path.exists(os.path.join(cwd, "twistd.pid")))
        daemon.transport.signalProcess(signal.SIGTERM)
        await daemon.proto.ended
        self.assertFalse(os.path.exists(os.path.join(cwd, "twistd.pid")))
        self.assertNotIn("Traceback", daemon.output())
        os.rmdir(cwd)


class ServeTests(TestCase):
    """
    C{claudeproxy serve}: the daemon in the foreground, as C{twistd -n
    claudeproxy} runs it, from the package's own command.
    """

    timeout = 60

    async def test_serve_runs_the_daemon(self) -> None:
        """
        C{claudeproxy serve --listen ...} answers /health with the plugin's
        options applied, writes twistd's pid file in its directory, and a
        SIGTERM stops it cleanly and removes that file.
        """
        cwd = tempfile.mkdtemp(prefix="cp-serve-")
        args = ["serve", "--listen", "tcp:{port}:interface=127.0.0.1", "--claude", "/nonexistent/claude", "--warm", "0"]
        daemon = await start_twistd(self, os.environ, args, cwd, command=CONSOLE_SCRIPT)
        resp = await treq.get(daemon.url + "/health", persistent=False)
        health = json.loads(await resp.content())
        self.assertEqual(health["status"], "degraded")
        self.assertIn("/nonexistent/claude", health["cli"]["error"])
        self.assertTrue(os.path.exists(os.path.join(cwd, "twistd.pid")))
        daemon.transport.signalProcess(signal.SIGTERM)
        # as twistd does: the reactor stops, then the process ends by the signal it got
        self.assertEqual(await daemon.proto.ended, -signal.SIGTERM)
        self.assertFalse(os.path.exists(os.path.join(cwd, "twistd.pid")))
        self.assertNotIn("Traceback", daemon.output())
        os.rmdir(cwd)

    async def run_command(self, *args: str) -> tuple[int, str]:
        proto = TwistdProcess()
        reactor.spawnProcess(
            proto,
            sys.executable,
            [sys.executable, *CONSOLE_SCRIPT, *args],
            env=dict(os.environ, PYTHONPATH=ROOT),
            path=tempfile.gettempdir(),
        )
        status = await proto.ended
        assert status is not None
        return status, bytes(proto.output).decode("utf-8", "replace")

    async def test_serve_help(self) -> None:
        """
        C{claudeproxy serve --help} prints the plugin's options and exits 0;
        C{claudeproxy --help} names the command.
        """
        status, output = await self.run_command("serve", "--help")
        self.assertEqual(status, 0, output)
        for option in ("--listen=", "--claude=", "--api-key=", "--warm=", "--state-dir="):
            self.assertIn(option, output)
        status, output = await self.run_command("--help")
        self.assertEqual(status, 0, output)
        self.assertIn("serve", output)
        self.assertIn("twistd -n", output)

    async def test_serve_bad_option(self) -> None:
        """
        An option the plugin does not know is a usage error naming it, exit
        status 1, and nothing starts.
        """
        status, output = await self.run_command("serve", "--warm", "lots")
        self.assertEqual(status, 1, output)
        self.assertIn("claudeproxy serve:", output)
        self.assertIn("--warm", output)
        self.assertNotIn("Traceback", output)
