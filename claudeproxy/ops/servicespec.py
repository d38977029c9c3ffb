"""
What a service manager (launchd, systemd) needs to run the daemon: the
absolute twistd of this environment, the arguments, HOME and a PATH on
which the daemon finds C{claude} and node.  Also the small process runner
every C{claudeproxy} subcommand uses, injectable so tests record argv
instead of running C{launchctl} or C{systemctl}.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Mapping, Optional, Protocol, Sequence

import attrs

#: Where the daemon looks when no PATH entry has it: Homebrew on Apple
#: silicon and Intel, then the system.
DARWIN_BINS = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
LINUX_BINS = ("/usr/local/bin", "/usr/bin", "/bin")

#: Options of C{twistd claudeproxy} whose value is a file name: made
#: absolute when written into a service definition, because the service
#: does not run in the directory the command was typed in.
PATH_OPTIONS = ("--api-key-file", "--claude")


@attrs.frozen
class Completed:
    """
    How a command ended: exit status (127 when it could not be started,
    124 when it ran out of time) and its output.
    """

    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner(Protocol):
    def __call__(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        cwd: Optional[str] = None,
    ) -> Completed: ...


def run_process(
    argv: Sequence[str],
    env: Optional[Mapping[str, str]] = None,
    timeout: Optional[float] = None,
    cwd: Optional[str] = None,
) -> Completed:
    """
    Run C{argv} to its end with no stdin and its output captured.
    """
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        return Completed(127, "", "%s: %s" % (argv[0], e))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return Completed(124, out, "%s did not finish within %s seconds" % (argv[0], timeout))
    return Completed(done.returncode, done.stdout or "", done.stderr or "")


@attrs.frozen
class ServiceSpec:
    """
    The daemon as a service runs it: C{twistd -n --pidfile= claudeproxy
    ARGS} with C{HOME} and C{PATH} set.
    """

    twistd: str
    args: tuple[str, ...]
    home: str
    path: str
    claude: Optional[str] = None

    @property
    def argv(self) -> tuple[str, ...]:
        return (self.twistd, "-n", "--pidfile=", "claudeproxy", *self.args)

    @property
    def environment(self) -> dict[str, str]:
        return {"PATH": self.path, "HOME": self.home, "PYTHONUNBUFFERED": "1"}


def twistd_beside(executable: str) -> str:
    """
    The twistd of the environment C{executable} belongs to (the venv's
    bin directory; symlinks are not followed, so a venv stays a venv).
    """
    return os.path.join(os.path.dirname(os.path.abspath(executable)), "twistd")


def home_of(env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    if home:
        return home
    return os.path.expanduser("~")


def absolute_args(args: Sequence[str], cwd: str, home: str) -> tuple[str, ...]:
    """
    C{args} with the values of L{PATH_OPTIONS} made absolute (C{~} is
    expanded against C{home}, relative names against C{cwd}).
    """

    def absolute(value: str) -> str:
        if value == "~" or value.startswith("~/"):
            value = home + value[1:]
        return os.path.normpath(os.path.join(cwd, value))

    out: list[str] = []
    pending = False
    for arg in args:
        if pending:
            out.append(absolute(arg))
            pending = False
            continue
        name, sep, value = arg.partition("=")
        if name in PATH_OPTIONS:
            if sep:
                out.append("%s=%s" % (name, absolute(value)))
            else:
                out.append(arg)
                pending = True
            continue
        out.append(arg)
    return tuple(out)


def _gives_claude(args: Sequence[str]) -> bool:
    return any(a == "--claude" or a.startswith("--claude=") for a in args)


def service_path(
    env: Mapping[str, str],
    home: str,
    claude: Optional[str],
    node: Optional[str],
    system_bins: Sequence[str],
) -> str:
    """
    The PATH a service gets: the directories of C{claude} and node, the npm
    global bin (C{$NPM_CONFIG_PREFIX/bin} when set), C{~/.local/bin} (where
    Claude Code's native installer puts it), then C{system_bins}.
    """
    dirs: list[str] = []
    if claude is not None:
        dirs.append(os.path.dirname(claude))
    if node is not None:
        dirs.append(os.path.dirname(node))
    prefix = env.get("NPM_CONFIG_PREFIX") or env.get("npm_config_prefix")
    if prefix:
        dirs.append(os.path.join(prefix, "bin"))
    dirs.append(os.path.join(home, ".local", "bin"))
    dirs.extend(system_bins)
    seen: list[str] = []
    for d in dirs:
        if d and d not in seen:
            seen.append(d)
    return ":".join(seen)


def plan(
    env: Mapping[str, str],
    executable: str,
    extra: Sequence[str],
    cwd: str,
    system_bins: Sequence[str],
    twistd: Optional[str] = None,
) -> ServiceSpec:
    """
    The service for this environment: its twistd, the C{claude} and node
    found on C{env}'s PATH, and C{extra} passed on to C{twistd
    claudeproxy} (with C{--claude} added when C{claude} was found and
    C{extra} does not name one).
    """
    home = home_of(env)
    search = env.get("PATH", os.defpath)
    args = absolute_args(extra, cwd, home)
    claude: Optional[str] = None
    if not _gives_claude(args):
        found = shutil.which("claude", path=search)
        if found is not None:
            claude = os.path.abspath(found)
            args = ("--claude", claude, *args)
    node = shutil.which("node", path=search)
    path = service_path(env, home, claude, os.path.abspath(node) if node else None, system_bins)
    return ServiceSpec(
        twistd=twistd if twistd is not None else twistd_beside(executable),
        args=args,
        home=home,
        path=path,
        claude=claude,
    )
