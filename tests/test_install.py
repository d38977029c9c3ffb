"""
The package as a user installs it: the sdist and the wheel built from it
(C{python -m build}), the wheel installed into a fresh virtualenv (no system
site-packages; its dependencies from the package index or pip's cache),
then, with no C{twistd} on PATH and not from this checkout,
C{claudeproxy serve} answers C{/health}, and the venv's C{twistd} finds the
plugin.  Slow-ish (about 20-30 s: a build and a pip install), so once per
suite run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import zipfile
from typing import Mapping, Sequence

import treq
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from claudeproxy import __version__
from tests.harness import free_port, launch
from tests.test_packaging import copy_checkout


def user_env(home: str, path: str) -> dict[str, str]:
    """
    The environment of a user's shell: no PYTHONPATH (nothing from this
    checkout or the test venv), the given PATH and HOME, pip's index
    settings and cache kept.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=path, HOME=home)
    env.setdefault("PIP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "pip"))
    return env


class InstallTests(TestCase):
    timeout = 600

    async def check(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> str:
        out, err, code = await getProcessOutputAndValue(argv[0], list(argv[1:]), env=dict(env), path=cwd)
        text = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, "%s failed:\n%s" % (" ".join(argv), text[-4000:]))
        return text

    async def test_wheel_installs_and_serves(self) -> None:
        work = tempfile.mkdtemp(prefix="cp-install-")
        self.addCleanup(shutil.rmtree, work, True)
        home = os.path.join(work, "home")
        os.mkdir(home)
        # pip's own config (index, find-links) lives in the real HOME
        conf = os.path.join(os.path.expanduser("~"), ".config", "pip", "pip.conf")
        if os.path.exists(conf):
            os.makedirs(os.path.join(home, ".config", "pip"))
            shutil.copy(conf, os.path.join(home, ".config", "pip", "pip.conf"))
        source = copy_checkout(os.path.join(work, "source"))
        dist = os.path.join(work, "dist")
        system_path = os.pathsep.join(
            d
            for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not os.path.exists(os.path.join(d, "twistd"))
        )
        env = user_env(home, system_path)

        # the sdist, then the wheel built from it (python -m build's default)
        await self.check([sys.executable, "-m", "build", "--outdir", dist, source], env, source)
        [sdist] = [n for n in os.listdir(dist) if n.endswith(".tar.gz")]
        [wheel] = [n for n in os.listdir(dist) if n.endswith(".whl")]
        with tarfile.open(os.path.join(dist, sdist)) as t:
            in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
        for name in (
            "README.md",
            "docs/service.md",
            "launchd/com.claudeproxy.plist",
            "twisted/plugins/claudeproxy_plugin.py",
        ):
            self.assertIn(name, in_sdist)
        with zipfile.ZipFile(os.path.join(dist, wheel)) as z:
            in_wheel = set(z.namelist())
        self.assertIn("twisted/plugins/claudeproxy_plugin.py", in_wheel)
        self.assertIn("claudeproxy/engine/watchdog.py", in_wheel)
        # the plugin directory is Twisted's: the wheel must not own its package files
        self.assertNotIn("twisted/__init__.py", in_wheel)
        self.assertNotIn("twisted/plugins/__init__.py", in_wheel)

        venv = os.path.join(work, "venv")
        await self.check([sys.executable, "-m", "venv", venv], env, work)
        bin_dir = os.path.join(venv, "bin")
        await self.check(
            [os.path.join(bin_dir, "pip"), "install", "-q", "--disable-pip-version-check", os.path.join(dist, wheel)],
            env,
            work,
        )
        where = await self.check(
            [os.path.join(bin_dir, "python"), "-c", "import claudeproxy, sys; print(claudeproxy.__file__)"], env, home
        )
        self.assertTrue(where.strip().startswith(venv), where)
        plugins = (
            await self.check(
                [os.path.join(bin_dir, "python"), "-c", "import twisted.plugins as p; print(p.__path__[0])"], env, home
            )
        ).strip()
        cache = os.path.join(plugins, "dropin.cache")
        self.assertFalse(os.path.exists(cache))

        # the installed command, with no twistd on PATH
        port = free_port()
        argv = [os.path.join(bin_dir, "claudeproxy"), "serve", "--listen", "tcp:%d:interface=127.0.0.1" % (port,)]
        argv += ["--claude", "/nonexistent/claude", "--warm", "0", "--state-dir", os.path.join(home, "state")]
        daemon = await launch(self, argv, env, home, port)
        proto, transport = daemon.proto, daemon.transport
        resp = await treq.get(daemon.url + "/health", persistent=False)
        health = json.loads(await resp.content())
        self.assertEqual((health["version"], health["status"]), (__version__, "degraded"))
        self.assertIn("/nonexistent/claude", health["cli"]["error"])
        transport.signalProcess(signal.SIGTERM)
        await proto.ended
        output = bytes(proto.output).decode("utf-8", "replace")
        self.assertNotIn("Traceback", output)
        self.assertNotIn("plugin cache", output)
        # serve scans no plugin directory, so it never needs to write one
        # (a read-only site-packages is fine)
        self.assertFalse(os.path.exists(cache))

        # the venv's twistd finds the plugin
        listing = await self.check([os.path.join(bin_dir, "twistd"), "--help"], env, home)
        self.assertIn("claudeproxy", listing)
        self.assertIn("The OpenAI HTTP API on loopback", listing)
        # twistd scans the plugin directories and writes their cache (where it
        # can): what serve did not need
        self.assertTrue(os.path.exists(cache))
