"""
C{claudeproxy launchd ...}: the daemon as a macOS LaunchAgent.

The agent is written to C{~/Library/LaunchAgents/LABEL.plist} with
absolute paths only (launchd gives a job almost no environment), and
loaded into the user's GUI domain with C{launchctl bootstrap gui/UID}.
C{launchd/com.claudeproxy.plist} in the source tree is the same agent as a
template to fill by hand.
"""

from __future__ import annotations

import os
import plistlib
from typing import Any, TextIO

import attrs

from .servicespec import Runner, ServiceSpec

DEFAULT_LABEL = "com.claudeproxy"
THROTTLE_INTERVAL = 10


@attrs.frozen
class Agent:
    """
    One LaunchAgent: its label, the service it runs, and the user it
    belongs to.
    """

    label: str
    spec: ServiceSpec
    uid: int

    @property
    def plist_path(self) -> str:
        return plist_path(self.spec.home, self.label)

    @property
    def log_dir(self) -> str:
        return log_dir(self.spec.home)

    @property
    def domain(self) -> str:
        return "gui/%d" % (self.uid,)

    @property
    def target(self) -> str:
        return "%s/%s" % (self.domain, self.label)


def plist_path(home: str, label: str = DEFAULT_LABEL) -> str:
    return os.path.join(home, "Library", "LaunchAgents", label + ".plist")


def log_dir(home: str) -> str:
    return os.path.join(home, "Library", "Logs", "claudeproxy")


def plist_dict(label: str, spec: ServiceSpec) -> dict[str, Any]:
    logs = log_dir(spec.home)
    return {
        "Label": label,
        "ProgramArguments": list(spec.argv),
        "EnvironmentVariables": spec.environment,
        "RunAtLoad": True,
        "KeepAlive": True,
        "ThrottleInterval": THROTTLE_INTERVAL,
        "StandardOutPath": os.path.join(logs, "claudeproxy.log"),
        "StandardErrorPath": os.path.join(logs, "claudeproxy.err.log"),
    }


def plist_bytes(label: str, spec: ServiceSpec) -> bytes:
    return plistlib.dumps(plist_dict(label, spec), fmt=plistlib.FMT_XML, sort_keys=False)


def print_plist(agent: Agent, out: TextIO) -> int:
    out.write(plist_bytes(agent.label, agent.spec).decode("utf-8"))
    return 0


def _show(out: TextIO, argv: list[str]) -> None:
    out.write("$ %s\n" % (" ".join(argv),))


def install(agent: Agent, runner: Runner, out: TextIO) -> int:
    """
    Write the plist, create the log directory, and (re)load the agent.
    """
    os.makedirs(os.path.dirname(agent.plist_path), exist_ok=True)
    os.makedirs(agent.log_dir, exist_ok=True)
    tmp = agent.plist_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(plist_bytes(agent.label, agent.spec))
    os.replace(tmp, agent.plist_path)
    out.write("wrote %s\n" % (agent.plist_path,))
    if not os.access(agent.spec.twistd, os.X_OK):
        out.write("warning: %s is not executable; the agent will fail to start\n" % (agent.spec.twistd,))
    if agent.spec.claude is None:
        out.write(
            "warning: `claude` is not on PATH; install it (npm install -g @anthropic-ai/claude-code) "
            "or pass -- --claude /path/to/claude\n"
        )
    # an agent already loaded is unloaded first, so the new plist is read
    bootout = ["launchctl", "bootout", agent.target]
    runner(bootout, timeout=30)
    bootstrap = ["launchctl", "bootstrap", agent.domain, agent.plist_path]
    _show(out, bootstrap)
    done = runner(bootstrap, timeout=30)
    if not done.ok:
        out.write(done.stdout + done.stderr)
        out.write(
            "launchctl bootstrap failed (status %d). If the old agent was still stopping, run it again:\n"
            "  launchctl bootstrap %s %s\n" % (done.returncode, agent.domain, agent.plist_path)
        )
        return 1
    out.write(
        "loaded %s: it runs now and at every login.\nlogs: %s\ncheck: claudeproxy doctor\n"
        % (agent.label, agent.log_dir)
    )
    return 0


def uninstall(agent: Agent, runner: Runner, out: TextIO) -> int:
    """
    Unload the agent (if loaded) and remove its plist.
    """
    bootout = ["launchctl", "bootout", agent.target]
    _show(out, bootout)
    done = runner(bootout, timeout=30)
    if not done.ok:
        out.write("(not loaded: %s)\n" % ((done.stderr or done.stdout).strip() or "status %d" % done.returncode,))
    if os.path.exists(agent.plist_path):
        os.remove(agent.plist_path)
        out.write("removed %s\n" % (agent.plist_path,))
    else:
        out.write("%s was not installed\n" % (agent.plist_path,))
    return 0


@attrs.frozen
class LaunchdState:
    """
    What C{launchctl print} says about the agent.
    """

    installed: bool
    loaded: bool
    state: str = ""
    pid: str = ""
    last_exit: str = ""
    output: str = ""


def _field(text: str, name: str) -> str:
    prefix = name + " = "
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    return ""


def query(agent: Agent, runner: Runner) -> LaunchdState:
    installed = os.path.exists(agent.plist_path)
    done = runner(["launchctl", "print", agent.target], timeout=30)
    if not done.ok:
        return LaunchdState(installed, False, output=done.stderr or done.stdout)
    text = done.stdout
    return LaunchdState(
        installed,
        True,
        state=_field(text, "state"),
        pid=_field(text, "pid"),
        last_exit=_field(text, "last exit code"),
        output=text,
    )


def status(agent: Agent, runner: Runner, out: TextIO) -> int:
    """
    Whether the agent is installed, loaded and running; 0 only when it
    runs.
    """
    st = query(agent, runner)
    out.write("plist: %s (%s)\n" % (agent.plist_path, "installed" if st.installed else "not installed"))
    if not st.loaded:
        out.write("launchd: %s is not loaded\n" % (agent.target,))
        if st.installed:
            out.write("load it: launchctl bootstrap %s %s\n" % (agent.domain, agent.plist_path))
        else:
            out.write("install it: claudeproxy launchd install\n")
        return 3
    out.write(
        "launchd: %s loaded, state = %s%s%s\n"
        % (
            agent.target,
            st.state or "?",
            ", pid = %s" % (st.pid,) if st.pid else "",
            ", last exit code = %s" % (st.last_exit,) if st.last_exit else "",
        )
    )
    out.write("logs: %s\n" % (agent.log_dir,))
    return 0 if st.state == "running" else 3
