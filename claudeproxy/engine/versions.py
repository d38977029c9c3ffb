"""
The Claude Code CLI versions claudeproxy is tested with, and the warning
given when the installed CLI is outside that range.

The CLI updates itself on users' machines, and its stream-json output, its
flags and what it sends upstream change between versions (see
docs/CLI-NOTES.md).  CI runs the integration tests against the pinned
oldest version (tests/run.sh) and against the newest one published
(.ci/run, C{CLAUDEPROXY_CLI_VERSION=latest}); when a newer CLI passes, it
becomes L{NEWEST_TESTED}.
"""

from __future__ import annotations

import re
from typing import Optional

#: the version tests/run.sh installs and the suite runs against
OLDEST_TESTED = "2.1.197"
#: the newest version the integration tests passed with (the newest on
#: npm in Nov 2026)
NEWEST_TESTED = "2.1.332"

#: every version checked, oldest first, with the result
TESTED: tuple[tuple[str, str], ...] = (
    (OLDEST_TESTED, "the whole suite passes (pinned in tests/run.sh)"),
    (NEWEST_TESTED, "the integration tests pass (.ci/run runs them against npm's latest)"),
)

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> Optional[tuple[int, int, int]]:
    """
    The first C{X.Y.Z} in C{text} (C{claude --version} prints
    C{"2.1.197 (Claude Code)"}), as numbers; None if there is none.
    """
    found = _VERSION.search(text)
    if found is None:
        return None
    return (int(found.group(1)), int(found.group(2)), int(found.group(3)))


def version_warning(
    installed: Optional[str], oldest: str = OLDEST_TESTED, newest: str = NEWEST_TESTED
) -> Optional[str]:
    """
    Why the CLI that reports C{installed} as its version may not work as
    claudeproxy expects (older than the oldest tested, newer than the
    newest, or unreadable), naming both; None when it is in the tested
    range.
    """
    if installed is None:
        return None
    found = parse_version(installed)
    low, high = parse_version(oldest), parse_version(newest)
    assert low is not None and high is not None
    tested = "claudeproxy is tested with %s to %s" % (oldest, newest)
    if found is None:
        return "could not read the CLI's version from %r; %s" % (installed.strip()[:100], tested)
    shown = "%d.%d.%d" % found
    if found < low:
        return (
            "the CLI is %s, older than the oldest tested (%s); %s: update it with "
            % (
                shown,
                oldest,
                tested,
            )
            + "`npm install -g @anthropic-ai/claude-code@latest`"
        )
    if found > high:
        return "the CLI is %s, newer than the newest tested (%s); %s: if something breaks, report it" % (
            shown,
            newest,
            tested,
        )
    return None


#: the oldest CLI seen to honour upstream's C{x-should-retry: false} on a
#: 529 (2.1.197 retried it as often as C{CLAUDE_CODE_MAX_RETRIES} allows;
#: 2.1.332 makes one call).  Neither honours it on a 500 or 503.
HONOURS_NO_RETRY = "2.1.332"


def cli_retries(configured: int, installed: Optional[str], since: str = HONOURS_NO_RETRY) -> int:
    """
    How often the CLI may retry an upstream 5xx/529 itself
    (C{CLAUDE_CODE_MAX_RETRIES}): C{configured} (C{--upstream-retries}) for
    a CLI that honours upstream's C{x-should-retry: false}, else 0, so that
    a 529 upstream forbids retrying costs exactly one call.  The CLI is the
    only one that sees upstream's headers: its result line does not say
    whether a retry was allowed, so the daemon does not retry on its own.
    """
    found = parse_version(installed) if installed is not None else None
    low = parse_version(since)
    assert low is not None
    if found is None or found < low:
        return 0
    return configured
