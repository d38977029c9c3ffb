"""
The C{claudeproxy} command: run the daemon in the foreground or as a
launchd or systemd service, and diagnose a setup.

    claudeproxy serve [TWISTD-PLUGIN-OPTIONS...]
    claudeproxy launchd install|uninstall|status|print [--label L] [-- TWISTD-ARGS...]
    claudeproxy systemd install|uninstall|status|print [--unit NAME] [-- TWISTD-ARGS...]
    claudeproxy doctor [--port 3456] [--claude PATH]
    claudeproxy status [--port 3456] [--window day|week|month] [--api-key-file FILE]

The daemon itself is C{twistd -n claudeproxy}; C{claudeproxy serve} runs
exactly that (the same options, the same service) for installs that put only
this command on PATH (pipx, uv tool).  Everything else this module
touches (the process runner, the environment, the output, the platform,
the user id, the interpreter) is passed in, so tests need no patching.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping, NoReturn, Optional, Sequence, TextIO

from twisted.python import usage

from .. import __version__
from ..web.auth import parse_key_file
from . import doctor, launchd, status, systemd
from .servicespec import DARWIN_BINS, LINUX_BINS, Runner, ServiceSpec, home_of, plan, run_process

ACTIONS = ("install", "uninstall", "status", "print")


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """
    An argument parser that writes to the given stream and returns
    instead of exiting.
    """

    out: TextIO = sys.stdout

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            self.out.write(message)

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        if message:
            self.out.write(message)
        raise _Exit(status)


def _parser(out: TextIO) -> _Parser:
    # a class per call (subparsers are made from the parser's class), so
    # no stream is shared between calls
    bound: type[_Parser] = type("_BoundParser", (_Parser,), {"out": out})
    parser = bound(
        prog="claudeproxy",
        description="Run claudeproxy (twistd -n claudeproxy) as a service, and check a setup.",
        epilog="Arguments after `--` are passed to `twistd claudeproxy`, e.g. "
        "`claudeproxy launchd install -- --api-key-file ~/.claudeproxy-key`.",
    )
    parser.add_argument("--version", action="version", version="claudeproxy %s" % (__version__,))
    sub = parser.add_subparsers(dest="command", metavar="{serve,launchd,systemd,doctor,status}")
    sub.required = True

    # listed for --help only: main() hands `serve ...` to twistd before parsing
    sub.add_parser(
        "serve",
        help="run the daemon in the foreground, as `twistd -n claudeproxy` does "
        "(`claudeproxy serve --help` lists its options)",
    )

    ld = sub.add_parser("launchd", help="a macOS LaunchAgent (~/Library/LaunchAgents/LABEL.plist)")
    ld.add_argument("action", choices=ACTIONS)
    ld.add_argument("--label", default=launchd.DEFAULT_LABEL, help="the agent's label (default: %(default)s)")
    ld.add_argument("--twistd", default=None, help="twistd to run (default: the one beside this Python)")

    sd = sub.add_parser("systemd", help="a systemd user unit (~/.config/systemd/user/NAME.service)")
    sd.add_argument("action", choices=ACTIONS)
    sd.add_argument("--unit", default=systemd.DEFAULT_UNIT, help="the unit's name (default: %(default)s)")
    sd.add_argument("--twistd", default=None, help="twistd to run (default: the one beside this Python)")

    dr = sub.add_parser("doctor", help="check the CLI, its login, the port and the service")
    dr.add_argument("--claude", default=None, help="the CLI to check (default: `claude` on PATH)")
    dr.add_argument("--host", default="127.0.0.1", help="where the daemon listens (default: %(default)s)")
    dr.add_argument("--port", type=int, default=3456, help="its port (default: %(default)s)")
    dr.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for /health (default: %(default)s)")
    dr.add_argument(
        "--cli-timeout", type=float, default=60.0, help="seconds to wait for each CLI call (default: %(default)s)"
    )
    dr.add_argument("--keep-api-key", action="store_true", help="check the CLI with ANTHROPIC_API_KEY kept")
    dr.add_argument(
        "--use-claude-settings",
        action="store_true",
        help="check the CLI as a daemon started with --use-claude-settings runs it",
    )
    dr.add_argument("--label", default=launchd.DEFAULT_LABEL, help="the LaunchAgent's label (default: %(default)s)")
    dr.add_argument("--unit", default=systemd.DEFAULT_UNIT, help="the systemd unit's name (default: %(default)s)")

    st = sub.add_parser("status", help="the dashboard's summary: usage per client, quota, live figures, errors")
    st.add_argument("--host", default="127.0.0.1", help="where the daemon listens (default: %(default)s)")
    st.add_argument("--port", type=int, default=3456, help="its port (default: %(default)s)")
    st.add_argument("--window", choices=("day", "week", "month"), default="day", help="(default: %(default)s)")
    st.add_argument("--api-key-file", default=None, help="a file whose first key is used (else $CLAUDEPROXY_API_KEY)")
    st.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (default: %(default)s)")
    return parser


def serve(argv: Sequence[str], out: TextIO) -> int:
    """
    Run the daemon in the foreground exactly as C{twistd -n claudeproxy
    ARGV...} does: twistd's own option parser finds the plugin, makes its
    service and runs it (reactor, logging, pid file, signals) until it stops.
    Returns the exit status; C{--help} prints the plugin's options.

    The plugin is handed to twistd's options directly instead of being
    looked up among every installed plugin: the same L{ServiceMaker}, but
    no plugin directory is scanned and no C{dropin.cache} written, so a
    read-only site-packages (a system or image install) is never written to.
    """
    from twisted.scripts.twistd import ServerOptions, runApp

    from ..plugin import SERVICE_MAKER

    class _Options(ServerOptions):
        @staticmethod
        def _getPlugins(interface: Any, package: Any = None) -> list[Any]:
            return [SERVICE_MAKER]

    config = _Options()
    try:
        config.parseOptions(["--nodaemon", "claudeproxy", *argv])
    except usage.UsageError as e:
        sub = config.subOptions if config.subOptions is not None else config
        out.write("%s\nclaudeproxy serve: %s\n" % (sub, e))
        return 1
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0
    runApp(config)
    return 0


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def _spec(
    args: argparse.Namespace,
    extra: Sequence[str],
    env: Mapping[str, str],
    executable: str,
    cwd: str,
    bins: Sequence[str],
) -> ServiceSpec:
    twistd = os.path.abspath(os.path.expanduser(args.twistd)) if args.twistd else None
    return plan(env, executable, extra, cwd, bins, twistd=twistd)


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    runner: Runner = run_process,
    env: Optional[Mapping[str, str]] = None,
    out: Optional[TextIO] = None,
    platform: Optional[str] = None,
    uid: Optional[int] = None,
    executable: Optional[str] = None,
    cwd: Optional[str] = None,
    fetch: status.Fetch = status.fetch_usage,
) -> int:
    """
    The C{claudeproxy} command; returns its exit status.
    """
    if argv is None:
        argv = sys.argv[1:]
    stream: TextIO = out if out is not None else sys.stdout
    environ: Mapping[str, str] = env if env is not None else dict(os.environ)
    system = platform if platform is not None else sys.platform
    user = uid if uid is not None else os.getuid()
    python = executable if executable is not None else sys.executable
    here = cwd if cwd is not None else os.getcwd()

    if argv and argv[0] == "serve":
        return serve(argv[1:], stream)

    own, extra = _split(argv)
    parser = _parser(stream)
    try:
        args = parser.parse_args(own)
        if extra and (args.command in ("doctor", "status") or args.action in ("uninstall", "status")):
            parser.error("arguments after -- are only for install and print")
    except _Exit as e:
        return e.status

    if args.command == "status":
        key = environ.get("CLAUDEPROXY_API_KEY") or None
        if args.api_key_file:
            try:
                with open(os.path.expanduser(args.api_key_file), encoding="utf-8") as f:
                    keys = parse_key_file(f.read())
            except (OSError, ValueError) as e:
                stream.write("cannot read --api-key-file: %s\n" % (e,))
                return 2
            key = keys[0][1] if keys else None
        return status.run(args.host, args.port, key, args.timeout, args.window, stream, fetch)

    if args.command == "doctor":
        config = doctor.DoctorConfig(
            env=environ,
            host=args.host,
            port=args.port,
            claude=args.claude,
            timeout=args.timeout,
            cli_timeout=args.cli_timeout,
            keep_api_key=args.keep_api_key,
            use_claude_settings=args.use_claude_settings,
            platform=system,
            uid=user,
            executable=python,
            label=args.label,
            unit=args.unit,
        )
        return doctor.run(config, runner, stream)

    if args.command == "launchd":
        spec = _spec(args, extra, environ, python, here, DARWIN_BINS)
        agent = launchd.Agent(args.label, spec, user)
        if args.action == "print":
            return launchd.print_plist(agent, stream)
        if system != "darwin":
            stream.write(
                "launchd is macOS only (this is %s); `claudeproxy launchd print` shows the plist anyway%s.\n"
                % (
                    system,
                    ", and `claudeproxy systemd install` is the Linux equivalent" if system.startswith("linux") else "",
                )
            )
            return 2
        if args.action == "install":
            return launchd.install(agent, runner, stream)
        if args.action == "uninstall":
            return launchd.uninstall(agent, runner, stream)
        return launchd.status(agent, runner, stream)

    spec = _spec(args, extra, environ, python, here, LINUX_BINS)
    unit = systemd.Unit(args.unit, spec, systemd.config_home(environ, home_of(environ)))
    if args.action == "print":
        return systemd.print_unit(unit, stream)
    if not system.startswith("linux"):
        stream.write(
            "systemd user units are for Linux (this is %s); `claudeproxy systemd print` shows the unit anyway%s.\n"
            % (system, ", and `claudeproxy launchd install` is the macOS equivalent" if system == "darwin" else "")
        )
        return 2
    if args.action == "install":
        return systemd.install(unit, runner, stream)
    if args.action == "uninstall":
        return systemd.uninstall(unit, runner, stream)
    return systemd.status(unit, runner, stream)


if __name__ == "__main__":
    sys.exit(main())
