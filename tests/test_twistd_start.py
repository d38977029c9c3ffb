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

from tests.harness import ROOT, TwistdProcess, free_port, reactor, sleep


class TwistdStartTests(TestCase):
    timeout = 60

    async def test_starts_without_cli_and_removes_its_pid_file(self) -> None:
        cwd = tempfile.mkdtemp(prefix="cp-twistd-")
        port = free_port()
        env = dict(os.environ, PYTHONPATH=ROOT)
        argv = [
            sys.executable,
            "-c",
            "import sys; from twisted.scripts.twistd import run; sys.exit(run())",
            "-n",
            "claudeproxy",
            "--listen",
            "tcp:%d:interface=127.0.0.1" % (port,),
            "--claude",
            "/nonexistent/claude",
        ]
        proto = TwistdProcess()
        transport = reactor.spawnProcess(proto, sys.executable, argv, env=env, path=cwd)
        self.addCleanup(lambda: proto.ended if proto.running else None)
        self.addCleanup(lambda: transport.signalProcess("KILL") if proto.running else None)
        url = "http://127.0.0.1:%d" % (port,)
        health = None
        for _ in range(200):
            if not proto.running:
                raise AssertionError("twistd exited: %s" % (proto.output.decode(errors="replace"),))
            try:
                resp = await treq.get(url + "/health", persistent=False)
                health = json.loads(await resp.content())
                break
            except Exception:
                await sleep(0.1)
        assert health is not None
        self.assertEqual(health["status"], "degraded")
        self.assertIn("/nonexistent/claude", health["cli"]["error"])
        resp = await treq.post(
            url + "/v1/chat/completions",
            json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}).encode(),
            persistent=False,
        )
        body = json.loads(await resp.content())
        self.assertEqual((resp.code, body["error"]["code"]), (503, "cli_unavailable"))
        self.assertIn("npm install -g @anthropic-ai/claude-code", body["error"]["message"])
        self.assertTrue(os.path.exists(os.path.join(cwd, "twistd.pid")))
        transport.signalProcess(signal.SIGTERM)
        await proto.ended
        self.assertFalse(os.path.exists(os.path.join(cwd, "twistd.pid")))
        self.assertNotIn(b"Traceback", bytes(proto.output))
        os.rmdir(cwd)
