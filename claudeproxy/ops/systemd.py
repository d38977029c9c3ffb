"""
C{claudeproxy systemd ...}: the daemon as a systemd user service on Linux,
C{~/.config/systemd/user/claudeproxy.service}, managed with C{systemctl
--user}.  Its log goes to the journal (C{journalctl --user -u
claudeproxy}).
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence, TextIO

import attrs

from .servicespec import Runner, ServiceSpec

DEFAULT_UNIT = "claudeproxy"
RESTART_SEC = 5

_BARE = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")


def quote(word: str) -> str:
    """
    One word of a unit file command line or assignment: bare when safe,
    otherwise double-quoted with C{\\} and C{"} escaped; C{%} (specifiers)
    and C{$} (variable expansion) are always escaped.
    """
    word = word.replace("%", "%%").replace("$", "$$")
    if word and _BARE.match(word.replace("%%", "").replace("$$", "")):
        return word
    return '"%s"' % (word.replace("\\", "\\\\").replace('"', '\\"'),)


def exec_line(argv: Sequence[str]) -> str:
    return " ".join(quote(a) for a in argv)


@attrs.frozen
class Unit:
    """
    One user unit: its name (without C{.service}), the service it runs,
    and the directory unit files go to.
    """

    name: str
    spec: ServiceSpec
    config_home: str

    @property
    def service(self) -> str:
        return self.name + ".service"

    @property
    def path(self) -> str:
        return os.path.join(self.config_home, "systemd", "user", self.service)


def config_home(env: Mapping[str, str], home: str) -> str:
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return xdg
    return os.path.join(home, ".config")


def unit_text(spec: ServiceSpec) -> str:
    env_lines = "".join("Environment=%s\n" % (quote("%s=%s" % kv),) for kv in spec.environment.items())
    return (
        "[Unit]\n"
        "Description=claudeproxy: the OpenAI HTTP API on loopback, answered by the Claude Code CLI\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        "ExecStart=%s\n"
        "%s"
        "Restart=always\n"
        "RestartSec=%d\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    ) % (exec_line(spec.argv), env_lines, RESTART_SEC)


def print_unit(unit: Unit, out: TextIO) -> int:
    out.write(unit_text(unit.spec))
    return 0


def _run(runner: Runner, out: TextIO, argv: list[str]) -> bool:
    out.write("$ %s\n" % (" ".join(argv),))
    done = runner(argv, timeout=60)
    if done.stdout or done.stderr:
        out.write(done.stdout + done.stderr)
    return done.ok


def install(unit: Unit, runner: Runner, out: TextIO) -> int:
    """
    Write the unit, reload systemd, enable and start it (restart it when
    it was already running, so the new unit takes effect).
    """
    was_active = runner(["systemctl", "--user", "is-active", "--quiet", unit.service], timeout=30).ok
    os.makedirs(os.path.dirname(unit.path), exist_ok=True)
    tmp = unit.path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(unit_text(unit.spec))
    os.replace(tmp, unit.path)
    out.write("wrote %s\n" % (unit.path,))
    if not os.access(unit.spec.twistd, os.X_OK):
        out.write("warning: %s is not executable; the service will fail to start\n" % (unit.spec.twistd,))
    if unit.spec.claude is None:
        out.write(
            "warning: `claude` is not on PATH; install it (npm install -g @anthropic-ai/claude-code) "
            "or pass -- --claude /path/to/claude\n"
        )
    if not _run(runner, out, ["systemctl", "--user", "daemon-reload"]):
        return 1
    if not _run(runner, out, ["systemctl", "--user", "enable", "--now", unit.service]):
        return 1
    if was_active and not _run(runner, out, ["systemctl", "--user", "restart", unit.service]):
        return 1
    out.write(
        "started %s: it runs now and at every login.\n"
        "logs: journalctl --user -u %s -e\n"
        "to keep it running while you are logged out: loginctl enable-linger $USER\n"
        "check: claudeproxy doctor\n" % (unit.service, unit.name)
    )
    return 0


def uninstall(unit: Unit, runner: Runner, out: TextIO) -> int:
    """
    Stop and disable the unit, remove its file, reload systemd.
    """
    _run(runner, out, ["systemctl", "--user", "disable", "--now", unit.service])
    if os.path.exists(unit.path):
        os.remove(unit.path)
        out.write("removed %s\n" % (unit.path,))
    else:
        out.write("%s was not installed\n" % (unit.path,))
    _run(runner, out, ["systemctl", "--user", "daemon-reload"])
    return 0


def status(unit: Unit, runner: Runner, out: TextIO) -> int:
    """
    C{systemctl --user status}, passed through with its exit status.
    """
    out.write("unit: %s (%s)\n" % (unit.path, "installed" if os.path.exists(unit.path) else "not installed"))
    done = runner(["systemctl", "--user", "status", "--no-pager", unit.service], timeout=30)
    out.write(done.stdout + done.stderr)
    return done.returncode
