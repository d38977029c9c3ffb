"""
The daemon's configuration, fixed at start.
"""

from __future__ import annotations

from typing import Optional

import attrs


@attrs.frozen
class Config:
    """
    Everything the options decide.  Built by L{claudeproxy._tap.makeService}.
    """

    listen: str = "tcp:3456:interface=127.0.0.1"
    claude: Optional[str] = None
    claude_missing_reason: str = ""
    max_concurrent: int = 4
    max_queued: int = 16
    request_timeout: float = 600.0
    idle_timeout: float = 120.0
    system_prompt_mode: str = "replace"
    api_key: Optional[str] = None
    #: named API keys, (name, key): each client its own key, its usage
    #: recorded under its name (C{api_key}, if set, is one more, "default")
    api_keys: tuple[tuple[str, str], ...] = ()
    #: the named keys' budgets, (client, period, kind, amount): see L{claudeproxy.store.budgets}
    budgets: tuple[tuple[str, str, str, float], ...] = ()
    #: days the usage history is kept
    usage_retention: float = 90.0
    #: the subscription plan (a key of L{claudeproxy.store.pricing.PLANS}) "saved" is
    #: reckoned against, when the CLI's login does not say
    plan: Optional[str] = None
    #: "deny": once the CLI reports the plan's own limit reached (a window
    #: rejected, or extra usage in use), API requests get 429
    #: plan_limit_reached instead of spending extra usage; "allow": they go on
    extra_usage: str = "deny"
    #: percent of every limit window kept for the user's own use: API
    #: requests get 429 reserve_reached once a window reaches 100 - reserve %
    reserve: float = 0.0
    #: seconds between the checks of the subscription's usage (the CLI's
    #: get_usage, no quota spent) while no request runs; the first is at
    #: start (0: never)
    usage_check: float = 300.0
    model_aliases: tuple[tuple[str, str], ...] = ()
    #: the model C{/v1/models} lists first
    default_model: str = "claude-sonnet-4"
    max_body: int = 32 * 1024 * 1024
    upstream_retries: int = 2
    keep_api_key: bool = False
    #: let the CLI read the user's own settings (their env, apiKeyHelper);
    #: CLAUDE.md, hooks and the output style stay out even then
    use_claude_settings: bool = False
    warm: int = 8
    #: warm processes are generic, bound to each request when it arrives
    late_binding: bool = True
    warm_ttl: float = 600.0
    session_ttl: float = 300.0
    max_sessions: int = 8
    #: CLI processes at most, whatever they do (0: no limit)
    max_cli_processes: int = 24
    tool_wait: float = 300.0
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    log_format: str = "text"
    #: move the daemon into C{workdir} at start, so CLI processes (which run
    #: there) can be started with posix_spawn instead of a fork
    enter_workdir: bool = False
    workdir: str = ""
    shutdown_grace: float = 3.0
    #: where the daemon records the CLI process groups it starts (so that
    #: the next daemon can kill what this one left); "" records nothing
    state_dir: str = ""
    #: run a watchdog that kills every CLI process group when the daemon
    #: ends, however it ends (see L{claudeproxy.engine.reaper})
    watchdog: bool = True
