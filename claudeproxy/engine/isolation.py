"""
What keeps the user's own Claude Code set-up (C{~/.claude}: CLAUDE.md
files, hooks, output style, plugins, auto memory, the settings' C{env})
out of API requests, and what keeps the CLI from compacting or trimming a
conversation on its own.  Pure data; checked against CLI 2.1.197 and
2.1.332 (docs/CLI-NOTES.md, "A real user's ~/.claude").

The login is not a setting: the credentials file, the macOS keychain and
C{CLAUDE_CODE_OAUTH_TOKEN} keep working with all of this.
"""

from __future__ import annotations

import json

#: the conversation window the CLI is told it has.  With C{DISABLE_COMPACT}
#: set, C{CLAUDE_CODE_MAX_CONTEXT_TOKENS} replaces the CLI's own idea of
#: the model's window, so it never refuses a turn as "Prompt is too long"
#: by its own count: the API decides, with the real history.
NO_LOCAL_WINDOW = 1_000_000_000

#: with the opt-in (C{--use-claude-settings}): the user's settings apply
#: (their C{env}, C{apiKeyHelper}, proxy), but not what would reach the
#: model or run commands
OPT_IN_OVERRIDES = {"disableAllHooks": True, "outputStyle": "default"}


def isolation_args(use_settings: bool) -> list[str]:
    """
    The CLI flags.  By default no settings source is read at all (user,
    project, local; plugins are enabled only by settings).  With the
    opt-in, only the user's settings, with hooks and the output style
    overridden.
    """
    if use_settings:
        return ["--setting-sources", "user", "--settings", json.dumps(OPT_IN_OVERRIDES, separators=(",", ":"))]
    return ["--setting-sources", ""]


def isolation_env(use_settings: bool) -> dict[str, str]:
    """
    The CLI's environment additions, the same in both modes but for the
    CLAUDE.md switch (no settings source reads CLAUDE.md files by default).
    """
    env = {
        # auto memory (~/.claude/projects/<key>/memory/MEMORY.md) is read
        # whatever --setting-sources says
        "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
        # no compaction, automatic (at a share of the window, or while
        # idle) or manual; 2.1.197 and 2.1.332 both honour it
        "DISABLE_COMPACT": "1",
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(NO_LOCAL_WINDOW),
        # claude.ai connectors are neither fetched nor offered
        "ENABLE_CLAUDEAI_MCP_SERVERS": "false",
    }
    if use_settings:
        # the user's settings bring their CLAUDE.md back otherwise
        env["CLAUDE_CODE_DISABLE_CLAUDE_MDS"] = "1"
    return env


#: C{system} lines of the CLI's that report it compacting or trimming the
#: conversation it holds
COMPACTION_SUBTYPES = frozenset({"compact_boundary", "microcompact_boundary"})


def reports_compaction(line: object) -> bool:
    """
    Whether a stream-json line says the CLI is compacting (or has
    compacted, or cleared old tool results from) its conversation.
    """
    if not isinstance(line, dict) or line.get("type") != "system":
        return False
    if line.get("subtype") in COMPACTION_SUBTYPES:
        return True
    return line.get("subtype") == "status" and line.get("status") == "compacting"
