"""
The package as pip installs it: the wheel built from this checkout holds
every module of claudeproxy (setup.cfg finds the packages, so a new one needs
no listing), the twistd plugin, and nothing else (no tests, no bench).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile

from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.harness import ROOT

#: what a build copies of the checkout (the rest is caches and test output)
IGNORED = shutil.ignore_patterns(
    ".git", "_trial_temp*", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"
)


def copy_checkout(dest: str) -> str:
    """
    A copy of the checkout at C{dest}, so a build writes nothing into it.
    """
    shutil.copytree(ROOT, dest, ignore=IGNORED)
    return dest


def modules_under(top: str) -> set[str]:
    """
    The C{.py} files under C{top} in the checkout, as wheel paths.
    """
    found = set()
    for dirpath, dirnames, files in os.walk(os.path.join(ROOT, top)):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                found.add(os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/"))
    return found


class PackagingTests(TestCase):
    timeout = 300

    async def test_wheel_holds_the_package_and_the_plugin(self) -> None:
        work = tempfile.mkdtemp(prefix="cp-wheel-")
        self.addCleanup(shutil.rmtree, work, True)
        source = copy_checkout(os.path.join(work, "source"))
        dist = os.path.join(work, "dist")
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "build", "--wheel", "--outdir", dist, source], env=dict(os.environ), path=source
        )
        self.assertEqual(code, 0, (out + err).decode("utf-8", "replace")[-4000:])
        [wheel] = [n for n in os.listdir(dist) if n.endswith(".whl")]
        with zipfile.ZipFile(os.path.join(dist, wheel)) as z:
            in_wheel = {n for n in z.namelist() if ".dist-info/" not in n}

        self.assertEqual(in_wheel, modules_under("claudeproxy") | {"twisted/plugins/claudeproxy_plugin.py"})
        # the plugin directory is Twisted's: the wheel must not own its package files
        self.assertNotIn("twisted/__init__.py", in_wheel)
        self.assertNotIn("twisted/plugins/__init__.py", in_wheel)
