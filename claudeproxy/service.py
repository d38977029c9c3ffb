"""
The daemon as a Twisted service: C{build} makes its tree of services (see
L{claudeproxy.services}), its routes and its site.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Optional

import attrs
from twisted.application import strports
from twisted.logger import ILogObserver, Logger, jsonFileLogObserver
from twisted.web.server import Site

from .app import ProxyApp
from .config import Config
from .engine.loginprobe import read_stored_login
from .engine.models import DEFAULT_MODEL
from .engine.pool import Limiter, ProcessManager
from .engine.poolsettings import CLISetup, PoolLimits
from .engine.process import Killer, Spawner, SpawnKey, group_spawner, kill_group, tool_timeout_ms
from .engine.reaper import ChildGuard
from .engine.usageprobe import UsageChecker, ask, refresh_due
from .engine.versions import cli_retries, version_warning
from .services import (
    ChildReaper,
    CliVersion,
    Engine,
    McpPort,
    Sequence,
    StateService,
    UsageCheck,
    WithinGrace,
    Workdir,
    usage_pruner,
)
from .store.db import open_state
from .store.schema import MIGRATIONS
from .web.guard import Guard
from .web.httpio import limited_request
from .web.mcp import McpServer
from .web.serving import Serving

log = Logger()


def json_log_observer() -> Any:
    """
    twisted.logger's JSON observer on standard output: one JSON event a
    line.
    """
    return jsonFileLogObserver(sys.stdout)


class DaemonService(Sequence):
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
    themselves.  C{cli} owns the CLI's version.
    """

    top: DaemonService
    core: Sequence
    proxy: Serving
    manager: ProcessManager
    site: Site
    cli: CliVersion
    #: the watchdog that kills every CLI group when the daemon ends (None: not guarded)
    guard: Optional[ChildGuard]
    #: asks the CLI for the subscription's usage while idle (None: never)
    usage_checker: Optional[UsageChecker]


def build(
    reactor: Any,
    config: Config,
    env: Mapping[str, str],
    spawner: Optional[Spawner] = None,
    killer: Killer = kill_group,
) -> Daemon:
    """
    The daemon's service tree, its routes and its site.

    The tree, in start order (it stops in the reverse order, each part once
    the one after it has stopped)::

        top (DaemonService)
          core
            the child reaper (and the watchdog)
            the state database
            the usage pruner
            the CLI's working directory
            the MCP port
            work (stops within the shutdown grace, all at once)
              the engine: CLI processes, running requests
              the usage check
              the CLI version probe
          the listening port
    """
    from .engine.isolation import isolation_args
    from .engine.process import build_env
    from .engine.usersetup import scan as scan_user_setup

    # no retries by the CLI until its version says it honours upstream's
    # x-should-retry (set when the version is known)
    cli_env = build_env(env, config.keep_api_key, 0, config.tool_wait, config.use_claude_settings)
    guard = ChildGuard(reactor) if config.watchdog else None
    spawner = spawner if spawner is not None else group_spawner(reactor)
    if guard is not None:
        spawner = guard.wrap(spawner)
    mcp = McpServer(reactor, tool_timeout_ms(config.tool_wait))
    manager = ProcessManager(
        reactor,
        CLISetup(
            config.claude,
            config.claude_missing_reason,
            cli_env,
            config.workdir,
            tuple(isolation_args(config.use_claude_settings)),
            SpawnKey(DEFAULT_MODEL, None, config.system_prompt_mode),
            config.late_binding,
        ),
        spawner,
        PoolLimits(
            warm=config.warm,
            warm_ttl=config.warm_ttl,
            max_sessions=config.max_sessions,
            session_ttl=config.session_ttl,
            tool_wait=config.tool_wait,
            max_processes=config.max_cli_processes,
            max_starting=config.max_starting,
        ),
        killer,
        bridges=mcp,
    )
    limiter = Limiter(config.max_concurrent, config.max_queued)

    def version_known(version: Optional[str]) -> None:
        # session files carry the version; binding late needs a known one
        manager.cli_known(version)
        # processes started from now on retry upstream as the policy says
        manager.env["CLAUDE_CODE_MAX_RETRIES"] = str(cli_retries(config.upstream_retries, version))
        untested = version_warning(version)
        if untested is not None:
            # (not "warning": the legacy log observers read that
            # key as a Python warning)
            log.warn("CLI version: {untested}", untested=untested)
        proxy.cli_version_known()

    cli = CliVersion(reactor, config.claude, cli_env, config.workdir, version_known)
    state = open_state(reactor, config.state_dir, MIGRATIONS)
    proxy = Serving(reactor, config, manager, limiter, lambda: cli.version, state=state)
    proxy.user_setup = scan_user_setup(env)
    usage_checker: Optional[UsageChecker] = None
    claude = config.claude
    if config.usage_check > 0 and claude is not None and os.access(claude, os.X_OK):
        usage_spawner = spawner
        usage_checker = UsageChecker(
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

    core = Sequence()
    ChildReaper(guard, config.state_dir).setServiceParent(core)
    if state is not None:
        StateService(state).setServiceParent(core)
    if proxy.usage is not None:
        # old usage rows are pruned now and then every hour
        usage_pruner(proxy.usage, reactor).setServiceParent(core)
    Workdir(config.workdir, config.enter_workdir).setServiceParent(core)
    McpPort(reactor, mcp).setServiceParent(core)
    work = WithinGrace(reactor, config.shutdown_grace)
    Engine(proxy, manager).setServiceParent(work)
    if usage_checker is not None:
        UsageCheck(usage_checker).setServiceParent(work)
    cli.setServiceParent(work)
    work.setServiceParent(core)

    site = Site(Guard(ProxyApp(proxy).resource(), config.allowed_hosts, config.cors_origins))
    site.requestFactory = limited_request(config.max_body)
    site.displayTracebacks = False
    site.noisy = False
    top = DaemonService(json_log_observer() if config.log_format == "json" else None)
    core.setServiceParent(top)
    # the port stops first
    strports.service(config.listen, site, reactor=reactor).setServiceParent(top)
    return Daemon(top, core, proxy, manager, site, cli, guard, usage_checker)
