"""
The package as pip installs it: every package directory is listed in
setup.cfg (a missing one installs a daemon that cannot start).
"""

from __future__ import annotations

import configparser
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PackagingTests(SynchronousTestCase):
    def test_every_package_is_listed(self) -> None:
        cfg = configparser.ConfigParser()
        cfg.read(os.path.join(ROOT, "setup.cfg"))
        listed = {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}
        found = set()
        for dirpath, _, files in os.walk(os.path.join(ROOT, "claudeproxy")):
            if "__init__.py" in files:
                found.add(os.path.relpath(dirpath, ROOT).replace(os.sep, "."))
        self.assertEqual(found - listed, set())
