"""
A HOME that looks like a real Claude Code user's: a global CLAUDE.md and
one in the home directory, a CLAUDE.local.md, rules, an output style, the
settings' C{env} and model, hooks that record that they ran (and print a
marker the model would see), a plugin with a hook of its own (installed as
C{claude plugin install} leaves it), skills, agents, commands and auto
memory.  Every piece carries a marker, so a test can say that none of it
reached upstream.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

#: every marker begins with this
MARKER = "REALHOME-MARKER"
#: the hook events the fixture's hooks (the user's and the plugin's) cover
HOOK_EVENTS = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "Stop", "PreCompact")
#: what the settings' env sets: a value the CLI would send upstream
ENV_MAX_OUTPUT_TOKENS = 1234
#: the output style's words upstream
OUTPUT_STYLE_TEXT = "output style is active"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _hook(log: str, name: str) -> dict[str, Any]:
    command = "echo %s >> %s; echo %s-HOOK-%s" % (name, shlex.quote(log), MARKER, name.upper())
    return {"hooks": [{"type": "command", "command": command}]}


def make(home: str) -> str:
    """
    Fill C{home} (made if missing) and return it.  Hooks that run append
    their event's name to L{hooks_log}.
    """
    claude = os.path.join(home, ".claude")
    log = hooks_log(home)
    _write(os.path.join(claude, "CLAUDE.md"), "%s-CLAUDEMD-USER Always answer in pirate speak.\n" % (MARKER,))
    _write(os.path.join(home, "CLAUDE.md"), "%s-CLAUDEMD-HOME Use tabs.\n" % (MARKER,))
    _write(os.path.join(home, "CLAUDE.local.md"), "%s-CLAUDEMD-LOCAL Sign every answer.\n" % (MARKER,))
    _write(os.path.join(claude, "rules", "style.md"), "%s-RULES Never use semicolons.\n" % (MARKER,))
    _write(os.path.join(claude, "commands", "ship.md"), "%s-COMMAND ship it\n" % (MARKER,))
    _write(
        os.path.join(claude, "agents", "reviewer.md"),
        "---\nname: reviewer\ndescription: %s-AGENT reviews code\n---\nReview.\n" % (MARKER,),
    )
    _write(
        os.path.join(claude, "skills", "deploy", "SKILL.md"),
        "---\nname: deploy\ndescription: %s-SKILL deploys\n---\nDeploy.\n" % (MARKER,),
    )
    # a plugin with a hook, as `claude plugin install hooky@localmkt` leaves it
    plugin = os.path.join(claude, "plugins", "cache", "localmkt", "hooky", "1.0.0")
    _write(os.path.join(plugin, ".claude-plugin", "plugin.json"), json.dumps({"name": "hooky", "version": "1.0.0"}))
    _write(
        os.path.join(plugin, "hooks", "hooks.json"),
        json.dumps({"hooks": {"UserPromptSubmit": [_hook(log, "PluginUserPromptSubmit")]}}),
    )
    market = os.path.join(home, "mkt")
    _write(
        os.path.join(market, ".claude-plugin", "marketplace.json"),
        json.dumps({"name": "localmkt", "owner": {"name": "me"}, "plugins": [{"name": "hooky", "source": "./hooky"}]}),
    )
    _write(
        os.path.join(claude, "plugins", "known_marketplaces.json"),
        json.dumps({"localmkt": {"source": {"source": "directory", "path": market}, "installLocation": market}}),
    )
    _write(
        os.path.join(claude, "plugins", "installed_plugins.json"),
        json.dumps(
            {
                "version": 2,
                "plugins": {
                    "hooky@localmkt": [
                        {
                            "scope": "user",
                            "installPath": plugin,
                            "version": "1.0.0",
                            "installedAt": "2026-12-01T00:00:00.000Z",
                            "lastUpdated": "2026-12-01T00:00:00.000Z",
                        }
                    ]
                },
            }
        ),
    )
    hooks = {event: [_hook(log, event)] for event in HOOK_EVENTS}
    hooks["PreToolUse"][0]["matcher"] = "*"
    hooks["PostToolUse"][0]["matcher"] = "*"
    settings = {
        "outputStyle": "Explanatory",
        "model": "opus",
        "env": {"CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(ENV_MAX_OUTPUT_TOKENS), "REALHOME_ENV": MARKER},
        "permissions": {"allow": ["Bash(*)", "Read(*)"]},
        "hooks": hooks,
        "enabledPlugins": {"hooky@localmkt": True},
        "extraKnownMarketplaces": {"localmkt": {"source": {"source": "directory", "path": market}}},
    }
    _write(os.path.join(claude, "settings.json"), json.dumps(settings, indent=2))
    return home


def add_memory(home: str, workdir: str) -> None:
    """
    Auto memory for the project the CLI runs in (C{workdir}): the CLI
    keys it by the directory, every non-alphanumeric character a dash.
    """
    key = re.sub(r"[^A-Za-z0-9]", "-", os.path.realpath(workdir))
    _write(os.path.join(home, ".claude", "projects", key, "memory", "MEMORY.md"), "%s-MEMORY remember\n" % (MARKER,))


def hooks_log(home: str) -> str:
    return os.path.join(home, "hooks-ran.log")


def hooks_ran(home: str) -> list[str]:
    """
    The hook events that ran, in order.
    """
    try:
        with open(hooks_log(home), encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        return []


def markers_in(body: Any) -> list[str]:
    """
    What of the user's set-up an upstream request body carries.
    """
    text = json.dumps(body)
    found = sorted(set(re.findall(MARKER + r"-[A-Z-]+[A-Z]", text)))
    if OUTPUT_STYLE_TEXT in text:
        found.append("output style")
    if "claudeMd" in text:
        found.append("claudeMd")
    if body.get("max_tokens") == ENV_MAX_OUTPUT_TOKENS:
        found.append("settings env (max_tokens %d)" % (ENV_MAX_OUTPUT_TOKENS,))
    return found
