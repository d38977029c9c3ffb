"""
The LaunchAgent template in C{launchd/}: filled the way docs/service.md says,
it is a valid plist with the keys launchd needs, every path absolute, and
the same keys C{claudeproxy launchd install} writes.
"""

from __future__ import annotations

import os
import plistlib
import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.ops import launchd
from claudeproxy.ops.servicespec import ServiceSpec

TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "launchd", "com.claudeproxy.plist")
HOME = "/Users/someone"
TWISTD = HOME + "/.claudeproxy/bin/twistd"
NPM_BIN = HOME + "/.npm-global/bin"


def fill(text: str, **values: str) -> str:
    for name, value in values.items():
        text = text.replace("__%s__" % (name,), value)
    return text


class TemplateTests(SynchronousTestCase):
    def setUp(self) -> None:
        with open(TEMPLATE, encoding="utf-8") as f:
            self.raw = f.read()
        self.filled = fill(self.raw, TWISTD=TWISTD, HOME=HOME, PATH=NPM_BIN)
        self.plist: dict[str, Any] = plistlib.loads(self.filled.encode("utf-8"))

    def test_placeholders(self) -> None:
        """
        The template uses exactly the placeholders docs/service.md fills, and
        filling them leaves none behind.
        """
        outside_comment = re.sub(r"<!--.*?-->", "", self.raw, flags=re.S)
        self.assertEqual(set(re.findall(r"__[A-Z]+__", outside_comment)), {"__TWISTD__", "__HOME__", "__PATH__"})
        self.assertNotIn("__", re.sub(r"<!--.*?-->", "", self.filled, flags=re.S))

    def test_runs_twistd_in_the_foreground(self) -> None:
        self.assertEqual(self.plist["Label"], "com.claudeproxy")
        self.assertEqual(self.plist["ProgramArguments"], [TWISTD, "-n", "--pidfile=", "claudeproxy"])

    def test_lifecycle(self) -> None:
        self.assertIs(self.plist["KeepAlive"], True)
        self.assertIs(self.plist["RunAtLoad"], True)
        self.assertIsInstance(self.plist["ThrottleInterval"], int)
        self.assertGreaterEqual(self.plist["ThrottleInterval"], 5)

    def test_logs(self) -> None:
        for key in ("StandardOutPath", "StandardErrorPath"):
            self.assertTrue(self.plist[key].startswith(HOME + "/Library/Logs/claudeproxy/"), self.plist[key])
        self.assertNotEqual(self.plist["StandardOutPath"], self.plist["StandardErrorPath"])

    def test_environment(self) -> None:
        """
        PATH starts with the filled directory (where claude and node are)
        and holds Homebrew's and the system's bins; HOME is set.
        """
        env = self.plist["EnvironmentVariables"]
        self.assertEqual(env["HOME"], HOME)
        path = env["PATH"].split(":")
        self.assertEqual(path[0], NPM_BIN)
        for d in ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"):
            self.assertIn(d, path)
        for d in path:
            self.assertTrue(os.path.isabs(d), d)

    def test_all_paths_absolute(self) -> None:
        self.assertTrue(os.path.isabs(self.plist["ProgramArguments"][0]))
        for key in ("StandardOutPath", "StandardErrorPath"):
            self.assertTrue(os.path.isabs(self.plist[key]))

    def test_same_keys_as_generated(self) -> None:
        """
        The template and what C{claudeproxy launchd install} writes do
        not drift apart.
        """
        spec = ServiceSpec(twistd=TWISTD, args=(), home=HOME, path="/usr/bin:/bin")
        generated = launchd.plist_dict("com.claudeproxy", spec)
        self.assertEqual(set(generated), set(self.plist))
        self.assertEqual(set(generated["EnvironmentVariables"]), set(self.plist["EnvironmentVariables"]))
        for key in ("KeepAlive", "RunAtLoad", "ThrottleInterval", "StandardOutPath", "StandardErrorPath"):
            self.assertEqual(generated[key], self.plist[key], key)
        self.assertEqual(generated["ProgramArguments"], self.plist["ProgramArguments"])
