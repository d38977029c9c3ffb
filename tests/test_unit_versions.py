"""
L{claudeproxy.engine.versions}: reading the CLI's version and the warning
for one outside the tested range.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.engine.versions import NEWEST_TESTED, OLDEST_TESTED, TESTED, parse_version, version_warning


class ParseTests(SynchronousTestCase):
    def test_claude_output(self) -> None:
        self.assertEqual(parse_version("2.1.197 (Claude Code)"), (2, 1, 197))

    def test_numeric_not_lexical(self) -> None:
        v = parse_version("2.1.1000")
        w = parse_version("2.1.999")
        assert v is not None and w is not None
        self.assertGreater(v, w)

    def test_none(self) -> None:
        self.assertIsNone(parse_version("Claude Code"))


class WarningTests(SynchronousTestCase):
    def test_table(self) -> None:
        self.assertEqual(TESTED[0][0], OLDEST_TESTED)
        self.assertIn(NEWEST_TESTED, [v for v, _ in TESTED])
        low, high = parse_version(OLDEST_TESTED), parse_version(NEWEST_TESTED)
        assert low is not None and high is not None
        self.assertLessEqual(low, high)

    def test_in_range(self) -> None:
        self.assertIsNone(version_warning(OLDEST_TESTED))
        self.assertIsNone(version_warning(NEWEST_TESTED))
        for v in ("2.1.197", "2.1.332", "2.1.200 (Claude Code)"):
            self.assertIsNone(version_warning(v, "2.1.197", "2.1.332"), v)

    def test_unknown(self) -> None:
        self.assertIsNone(version_warning(None))

    def test_older(self) -> None:
        warning = version_warning("2.1.99 (Claude Code)", "2.1.197", "2.1.332")
        assert warning is not None
        self.assertIn("2.1.99, older than the oldest tested (2.1.197)", warning)
        self.assertIn("2.1.197 to 2.1.332", warning)

    def test_newer(self) -> None:
        warning = version_warning("2.2.0", "2.1.197", "2.1.332")
        assert warning is not None
        self.assertIn("2.2.0, newer than the newest tested (2.1.332)", warning)
        self.assertIn("2.1.197 to 2.1.332", warning)

    def test_unreadable(self) -> None:
        warning = version_warning("weird", "2.1.197", "2.1.332")
        assert warning is not None
        self.assertIn("could not read", warning)
        self.assertIn("2.1.197 to 2.1.332", warning)
