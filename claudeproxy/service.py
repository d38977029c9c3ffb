"""
The daemon as a Twisted service: the listening port plus the shutdown that
ends in-flight streams, fails the queue and kills every CLI group.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional

import attrs
from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.utils import getProcessOutput
from twisted.logger import ILogObserver, Logger, jsonFileLogObserver
from twisted.web.server import Site

from .app import ProxyApp
from .config import Config
from .engine.loginprobe import read_stored_login
from .engine.models import DEFAULT_MODEL
from .engine.pool import Limiter, ProcessManager
from .engine.process import Killer, Spawner, SpawnKey, group_spawner, kill_group, tool_timeout_ms
from .engine.reaper import ChildGuard, GroupRecord, own_identity, sweep
from .engine.usageprobe import UsageChecker, ask, refresh_due
from .engine.versions import cli_retries, version_warning
from .store.db import open_state
from .store.schema import MIGRATIONS
from .web.guard import Guard
from .web.httpio import limited_request
from .web.mcp import McpServer


def remove_workdir(workdir: str) -> None:
    """
    Remove the daemon's private directory: the system prompt files it wrote
    and the directory itself, if nothing else is in it.
    """
    try:
        for name in os.listdir(workdir):
            if name.startswith("system-") and name.endswith(".txt"):
                os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)
    except OSError:
        pass


class _Core(Service):
    """
    Ends work before the reactor stops: stops accepting requests, ends the
    running ones with an error event, kills every CLI process group and
    waits (at most C{grace} seconds) for them to be reaped.
    """

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        proxy: ProxyApp,
        manager: ProcessManager,
        mcp: McpServer,
        env: Mapping[str, str],
        grace: float,
    ) -> None:
        self.reactor = reactor
        self.mcp = mcp
        self.mcp_port: Any = None
        self.enter_workdir = False
        self._left_cwd: Optional[str] = None
        self.proxy = proxy
        self.manager = manager
        self.env = env
        self.grace = grace
        self.cli_version: Optional[str] = None
        #: --upstream-retries: given to the CLI once its version is known
        #: to honour upstream's x-should-retry (L{cli_retries})
        self.upstream_retries = 0
        self._version_check: Optional[Deferred[None]] = None
        #: records the CLI process groups; its watchdog kills them when the
        #: daemon ends (None: not guarded)
        self.guard: Optional[ChildGuard] = None
        self.state_dir = ""
        #: the groups an earlier daemon left, killed at start
        self.swept: list[int] = []
        #: asks the CLI for the subscription's usage while idle (None: never)
        self.usage_checker: Optional[UsageChecker] = None

    def _guard_children(self) -> None:
        """
        Kill what earlier daemons left (from their records in the state
        directory), start this daemon's record and its watchdog.
        """
        if self.state_dir:
            try:
                self.swept = sweep(self.state_dir)
                if self.swept:
                    self.log.warn(
                        "killed {n} CLI process group(s) an earlier daemon left: {groups}",
                        n=len(self.swept),
                        groups=self.swept,
                    )
                if self.guard is not None:
                    self.guard.record = GroupRecord(self.state_dir, os.getpid(), own_identity())
            except OSError as e:
                self.log.warn("cannot keep a record in {dir}: {e}", dir=self.state_dir, e=e)
        if self.guard is not None:
            self.guard.start()

    def startService(self) -> None:
        super().startService()
        self._guard_children()
        if self.proxy.state is not None:
            self.proxy.state.start()
        if self.proxy.usage is not None:
            # old usage rows are pruned now and then every hour
            self.proxy.usage.start()
        if self.enter_workdir:
            self._left_cwd = os.getcwd()
            os.chdir(self.manager.workdir)
        site = Site(self.mcp.resource())
        site.noisy = False
        self.mcp_port = self.reactor.listenTCP(0, site, interface="127.0.0.1")
        self.mcp.port = self.mcp_port.getHost().port
        self.manager.start()
        if self.usage_checker is not None:
            self.usage_checker.start()
        claude = self.manager.claude
        if claude is not None and os.access(claude, os.X_OK):
            # a CLI that cannot be started must not stop the daemon: /health
            # and the 503s say why
            d = maybeDeferred(
                getProcessOutput,
                claude,
                ["--version"],
                env=dict(self.env),
                path=self.manager.workdir,
                reactor=self.reactor,
                errortoo=True,
            )

            def got(out: bytes) -> None:
                self.version_read(out.decode("utf-8", "replace"))

            def failed(f: Any) -> None:
                self.cli_version = None
                self.log.warn("could not read the CLI version: {f}", f=f.getErrorMessage())

            d.addCallbacks(got, failed)
            self._version_check = d

    def version_read(self, text: str) -> None:
        """
        C{claude --version} printed C{text}.
        """
        self.cli_version = text.strip() or None
        # session files carry the version; binding late needs a known one
        self.manager.cli_known(self.cli_version)
        # processes started from now on retry upstream as the policy says
        self.manager.env["CLAUDE_CODE_MAX_RETRIES"] = str(cli_retries(self.upstream_retries, self.cli_version))
        untested = version_warning(self.cli_version)
        if untested is not None:
            # (not "warning": the legacy log observers read that
            # key as a Python warning)
            self.log.warn("CLI version: {untested}", untested=untested)
        self.proxy.cli_version_known()

    def stopService(self) -> Deferred[Any]:
        """
        End in-flight requests with an error, kill every CLI group, and
        fire once all are reaped (or C{grace} seconds have passed).
        """
        super().stopService()
        self.proxy.shutdown()
        if self.proxy.usage is not None:
            self.proxy.usage.stop()
        reaped: Deferred[Any] = self.manager.shutdown()
        waits = [reaped] + list(self.proxy.background)
        checking = self.usage_checker.stop() if self.usage_checker is not None else None
        if checking is not None:
            waits.append(checking)
        if self._version_check is not None and not self._version_check.called:
            waits.append(self._version_check)
        if len(waits) > 1:
            # a login check still running finishes first (~1 s)
            reaped = DeferredList(waits, consumeErrors=True)
        done: Deferred[None] = Deferred()

        def close() -> None:
            if done.called:
                return
            port, self.mcp_port = self.mcp_port, None
            stopped = maybeDeferred(port.stopListening) if port is not None else succeed(None)
            stopped.addBoth(lambda _: None if done.called else done.callback(None))

        def grace_over() -> None:
            self.log.warn("CLI processes did not end within {grace}s of shutdown", grace=self.grace)
            close()

        call = self.reactor.callLater(self.grace, grace_over)

        def finished(_: Any) -> None:
            if self._left_cwd is not None:
                # back where twistd started us (it removes its pid file
                # by a relative path once we are done)
                os.chdir(self._left_cwd)
                self._left_cwd = None
            remove_workdir(self.manager.workdir)
            if call.active():
                call.cancel()
            if self.proxy.state is not None:
                # the queued writes are finished first
                self.proxy.state.stop()
            close()

        reaped.addBoth(finished)
        if self.guard is None:
            return done
        guard = self.guard
        # the watchdog goes last: it kills whatever was not reaped in time
        return done.addCallback(lambda _: guard.stop())


def json_log_observer() -> Any:
    """
    twisted.logger's JSON observer on standard output: one JSON event a
    line.
    """
    return jsonFileLogObserver(sys.stdout)


class DaemonService(MultiService):
    """
    The top service.  Given a log observer, it installs it as the
    application's (twistd then logs through it instead of its text log).
    """

    def __init__(self, log_observer: Any = None) -> None:
        super().__init__()
        self.log_observer = log_observer

    def setServiceParent(self, parent: Any) -> Any:
        result = super().setServiceParent(parent)
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.log_observer)
        return result


@attrs.frozen
class Daemon:
    """
    The parts of a built daemon: C{top} is the service twistd runs (C{core}
    plus the listening port); tests start C{core} and listen on C{site}
    themselves.
    """

    top: DaemonService
    core: _Core
    proxy: ProxyApp
    manager: ProcessManager
    site: Site


def build(
    reactor: Any,
    config: Config,
    env: Mapping[str, str],
    spawner: Optional[Spawner] = None,
    killer: Killer = kill_group,
) -> Daemon:
    """
    The daemon's service tree, its routes and its site.
    """
    from .engine.isolation import isolation_args
    from .engine.process import build_env
    from .engine.usersetup import scan as scan_user_setup

    # no retries by the CLI until its version says it honours upstream's
    # x-should-retry (set when the version is known, see _Core)
    cli_env = build_env(env, config.keep_api_key, 0, config.tool_wait, config.use_claude_settings)
    guard = ChildGuard(reactor) if config.watchdog else None
    spawner = spawner if spawner is not None else group_spawner(reactor)
    if guard is not None:
        spawner = guard.wrap(spawner)
    mcp = McpServer(reactor, tool_timeout_ms(config.tool_wait))
    manager = ProcessManager(
        reactor,
        config.claude,
        config.claude_missing_reason,
        cli_env,
        config.workdir,
        spawner,
        killer,
        warm=config.warm,
        warm_ttl=config.warm_ttl,
        session_ttl=config.session_ttl,
        max_sessions=config.max_sessions,
        max_processes=config.max_cli_processes,
        default_key=SpawnKey(DEFAULT_MODEL, None, config.system_prompt_mode),
        bridges=mcp,
        tool_wait=config.tool_wait,
        settings=tuple(isolation_args(config.use_claude_settings)),
        binding=config.late_binding,
    )
    limiter = Limiter(config.max_concurrent, config.max_queued)
    core: Optional[_Core] = None
    state = open_state(reactor, config.state_dir, MIGRATIONS)
    proxy = ProxyApp(reactor, config, manager, limiter, lambda: core.cli_version if core else None, state=state)
    proxy.user_setup = scan_user_setup(env)
    core = _Core(reactor, proxy, manager, mcp, cli_env, config.shutdown_grace)
    core.enter_workdir = config.enter_workdir
    core.upstream_retries = config.upstream_retries
    core.guard = guard
    core.state_dir = config.state_dir
    claude = config.claude
    if config.usage_check > 0 and claude is not None and os.access(claude, os.X_OK):
        usage_spawner = spawner
        core.usage_checker = UsageChecker(
            reactor,
            lambda: ask(
                reactor, usage_spawner, claude, cli_env, manager.settings, manager.workdir, proxy.wallclock, killer
            ),
            lambda: limiter.running > 0 or limiter.queued > 0,
            proxy.usage_reported,
            config.usage_check,
            # the stored login's access token is refreshed by the check's CLI ahead of its expiry
            (lambda: None)
            if cli_env.get("CLAUDE_CODE_OAUTH_TOKEN")
            else lambda: refresh_due(read_stored_login(cli_env, proxy.wallclock()), proxy.wallclock()),
        )
    site = Site(Guard(proxy.resource(), config.allowed_hosts, config.cors_origins))
    site.requestFactory = limited_request(config.max_body)
    site.displayTracebacks = False
    site.noisy = False
    top = DaemonService(json_log_observer() if config.log_format == "json" else None)
    # services stop in reverse order: the port first, then the core
    core.setServiceParent(top)
    port = strports.service(config.listen, site, reactor=reactor)
    port.setServiceParent(top)
    return Daemon(top, core, proxy, manager, site)


__all__ = ["build", "succeed", "DeferredList"]
