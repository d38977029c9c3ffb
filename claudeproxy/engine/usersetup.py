"""
What the user's own Claude Code set-up holds (their C{~/.claude}, or
C{$CLAUDE_CONFIG_DIR}): CLAUDE.md files, rules, hooks, output style,
plugins, skills, agents, commands, auto memory and the settings' C{env}.
The daemon keeps all of it out of API requests
(L{claudeproxy.engine.isolation}); this says what was found, for
C{doctor}, C{/health} and the start-up log.  It only reads file names and
settings, never the login.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import attrs

#: the settings files of the user's scope
SETTINGS_FILES = ("settings.json", "settings.local.json")


@attrs.frozen
class UserSetup:
    """
    What a config dir holds.  Counts are of files or entries.
    """

    config_dir: str
    claude_md: int = 0
    rules: int = 0
    hooks: int = 0
    output_style: Optional[str] = None
    env: int = 0
    plugins: int = 0
    skills: int = 0
    agents: int = 0
    commands: int = 0
    memory: int = 0
    api_key_helper: bool = False

    def items(self) -> list[str]:
        """
        What was found, in words ("CLAUDE.md", "4 hooks", ...).
        """

        def n(count: int, word: str) -> Optional[str]:
            if not count:
                return None
            return "%d %s%s" % (count, word, "" if count == 1 else "s")

        found = [
            ("CLAUDE.md" if self.claude_md == 1 else n(self.claude_md, "CLAUDE.md file")),
            n(self.rules, "rules file"),
            n(self.hooks, "hook"),
            ("output style %s" % (self.output_style,)) if self.output_style else None,
            n(self.env, "settings env variable"),
            "apiKeyHelper" if self.api_key_helper else None,
            n(self.plugins, "plugin"),
            n(self.skills, "skill"),
            n(self.agents, "agent"),
            n(self.commands, "command"),
            n(self.memory, "auto memory file"),
        ]
        return [f for f in found if f]

    def summary(self, use_settings: bool) -> str:
        """
        One line: what was found and what the daemon does with it.
        """
        where = _tilde(self.config_dir)
        found = self.items()
        if not found:
            return "%s: nothing of your Claude Code set-up found" % (where,)
        if use_settings:
            verdict = (
                "your settings apply (--use-claude-settings); CLAUDE.md, hooks, output style and auto memory "
                "are not applied to API requests"
            )
        else:
            verdict = "not applied to API requests"
        return "%s: %s — %s" % (where, ", ".join(found), verdict)

    def to_json(self, use_settings: bool) -> dict[str, Any]:
        found = attrs.asdict(self)
        found.pop("config_dir")
        return {
            "config_dir": self.config_dir,
            "found": found,
            "settings_applied": use_settings,
            "summary": self.summary(use_settings),
        }


def config_dir(env: Mapping[str, str]) -> str:
    """
    The CLI's config dir: C{$CLAUDE_CONFIG_DIR}, else C{~/.claude}.
    """
    explicit = env.get("CLAUDE_CONFIG_DIR")
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".claude")


def _tilde(path: str) -> str:
    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if home not in ("", "/") and path.startswith(home + os.sep) else path


def _json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _files(root: str, suffix: str = ".md", name: Optional[str] = None) -> int:
    count = 0
    for _, _, files in os.walk(root):
        count += sum(1 for f in files if (f == name if name else f.endswith(suffix)))
    return count


def count_hooks(settings: Mapping[str, Any]) -> int:
    """
    The hook commands a settings (or plugin hooks.json) object declares.
    """
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return 0
    count = 0
    for matchers in hooks.values():
        for matcher in matchers if isinstance(matchers, list) else []:
            inner = matcher.get("hooks") if isinstance(matcher, dict) else None
            count += len(inner) if isinstance(inner, list) else 0
    return count


def _plugin_hooks(root: str, enabled: Mapping[str, Any]) -> tuple[int, int]:
    """
    (enabled plugins, hooks they declare), from installed_plugins.json.
    """
    installed = _json(os.path.join(root, "plugins", "installed_plugins.json")).get("plugins")
    if not isinstance(installed, dict):
        return sum(1 for v in enabled.values() if v), 0
    plugins = hooks = 0
    for name, installs in installed.items():
        if not enabled.get(name):
            continue
        plugins += 1
        for install in installs if isinstance(installs, list) else []:
            path = install.get("installPath") if isinstance(install, dict) else None
            if isinstance(path, str):
                hooks += count_hooks(_json(os.path.join(path, "hooks", "hooks.json")))
    return plugins, hooks


def scan(env: Mapping[str, str]) -> UserSetup:
    """
    Read what the user's config dir holds (a missing dir holds nothing).
    """
    root = config_dir(env)
    home = os.path.dirname(root) if not env.get("CLAUDE_CONFIG_DIR") else ""
    settings: dict[str, Any] = {}
    hooks = 0
    env_keys: set[str] = set()
    enabled: dict[str, Any] = {}
    for name in SETTINGS_FILES:
        one = _json(os.path.join(root, name))
        hooks += count_hooks(one)
        if isinstance(one.get("env"), dict):
            env_keys |= set(one["env"])
        if isinstance(one.get("enabledPlugins"), dict):
            enabled.update(one["enabledPlugins"])
        settings.update(one)
    plugins, plugin_hooks = _plugin_hooks(root, enabled)
    claude_md = sum(os.path.isfile(os.path.join(root, f)) for f in ("CLAUDE.md", "CLAUDE.local.md"))
    if home:
        claude_md += sum(os.path.isfile(os.path.join(home, f)) for f in ("CLAUDE.md", "CLAUDE.local.md"))
    style = settings.get("outputStyle")
    return UserSetup(
        config_dir=root,
        claude_md=claude_md,
        rules=_files(os.path.join(root, "rules")),
        hooks=hooks + plugin_hooks,
        output_style=str(style) if style and str(style).lower() != "default" else None,
        env=len(env_keys),
        plugins=plugins,
        skills=_files(os.path.join(root, "skills"), name="SKILL.md"),
        agents=_files(os.path.join(root, "agents")),
        commands=_files(os.path.join(root, "commands")),
        memory=_files(os.path.join(root, "projects"), name="MEMORY.md"),
        api_key_helper=bool(settings.get("apiKeyHelper")),
    )
