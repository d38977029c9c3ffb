"""
The daemon's configuration, fixed at start, and the one place its options
are written: a field made with L{option} is a daemon option (its name, type,
default and help), and C{twistd claudeproxy}'s options, C{claudeproxy serve
--help} and the table in docs/options.md follow from it.  Adding an option
is adding a field here.
"""

from __future__ import annotations

from typing import Optional

import attrs

from . import optionspec as o
from .optionspec import option


@attrs.frozen
class Config:
    """
    Everything the options decide.  Built by L{claudeproxy._tap.makeService}.
    The options come first, in the order the docs list them.
    """

    listen: str = option(
        "tcp:3456:interface=127.0.0.1",
        help="Where to listen, as a strports endpoint description.",
        doc="Where to listen, as a Twisted strports endpoint description.",
    )
    claude: Optional[str] = option(
        None,
        help="Path of the Claude Code CLI (default: `claude` found on PATH at start).",
        doc="Path of the Claude Code CLI.",
        shown="`claude` on PATH at start",
    )
    max_concurrent: int = option(4, help="Requests served at once.", parse=o.positive_int)
    max_queued: int = option(
        16,
        help="Requests waiting beyond that; more get 429 with Retry-After.",
        doc="Requests waiting beyond that; more get 429 with `Retry-After`.",
        parse=o.non_negative_int,
    )
    request_timeout: float = option(
        600.0, help="Seconds a request may take in all before it ends with 504.", parse=o.positive_float
    )
    idle_timeout: float = option(
        120.0, help="Seconds without output from the CLI before the request ends with 504.", parse=o.positive_float
    )
    system_prompt_mode: str = option(
        "replace",
        help="replace: the client's system text becomes the CLI's --system-prompt; append: it goes to "
        "--append-system-prompt and Claude Code's own prompt stays.",
        doc="`replace`: the client's system text becomes the CLI's `--system-prompt`; `append`: it goes to "
        "`--append-system-prompt` and Claude Code's own prompt stays.",
        choices=(("replace", "replace"), ("append", "append")),
    )
    #: named API keys, (name, key): each client its own key, its usage
    #: recorded under its name (C{api_key}, if set, is one more, "default")
    api_keys: tuple[tuple[str, str], ...] = option(
        (),
        help="NAME=KEY or KEY: require 'Authorization: Bearer KEY' (or x-api-key) on every /v1/* request "
        '(repeatable: each client its own key; its usage is recorded under NAME, "default" for a plain KEY).',
        doc="Require `Authorization: Bearer KEY` (or `x-api-key`) on every `/v1/*` request. Repeatable: "
        "`NAME=KEY` gives each client its own key, and its usage is recorded under `NAME` (a plain `KEY` is "
        "`default`).",
        parse=o.api_key,
        repeat=True,
        name="api-key",
        key="api-keys",
        metavar="[NAME=]KEY",
    )
    #: the file C{api_keys} (and C{budgets}) were read from, if any
    api_key_file: Optional[str] = option(
        None,
        help="Read API keys from this file: one a line, NAME=KEY or a plain KEY ('#' starts a comment).",
        doc="Read keys from this file: one a line, `NAME=KEY` or a plain key, then optional budgets "
        "(`daily:200req weekly:$25 monthly:5000000tok`, see [budgets](dashboard.md)); `#` starts a comment. "
        "Combines with `--api-key`.",
    )
    #: the subscription plan (a key of L{claudeproxy.store.pricing.PLANS}) "saved" is
    #: reckoned against, when the CLI's login does not say
    plan: Optional[str] = option(
        None,
        help="The subscription plan 'saved' is reckoned against when the CLI's login does not name it:"
        " pro, max5 or max20.",
        doc='The subscription plan "saved" is reckoned against when `claude auth status` does not name it: '
        "`pro`, `max5` or `max20`.",
        parse=o.plan,
        shown="from the login",
    )
    #: "deny": once the CLI reports the plan's own limit reached (a window
    #: rejected, or extra usage in use), API requests get 429
    #: plan_limit_reached instead of spending extra usage; "allow": they go on
    extra_usage: str = option(
        "deny",
        help="deny: once the CLI reports the plan's own limit reached (a window used up, or extra usage in use), "
        "API requests get 429 plan_limit_reached until the window resets, instead of spending extra usage "
        "(paid beyond the plan); allow: they go on and may spend it.",
        doc="`deny`: once the CLI reports the plan's own limit reached (a window used up, or extra usage paying "
        "for a request), API requests get `429` `plan_limit_reached` (with `Retry-After` until the window's "
        "reset and `x-should-retry: false`) before anything reaches upstream, until the window resets or a "
        "later report or usage check says the plan allows again. `allow`: they go on, and may spend extra "
        "usage (paid beyond the plan). See [the plan guard](dashboard.md#the-plan-guard).",
        choices=(("deny", "deny"), ("allow", "allow")),
    )
    #: percent of every limit window kept for the user's own use: API
    #: requests get 429 reserve_reached once a window reaches 100 - reserve %
    reserve: float = option(
        0.0,
        help="Percent of every limit window kept for your own Claude Code: API requests get 429 reserve_reached "
        "once a window's utilization reaches 100 - P percent (0: none).",
        doc="Keep `P` % of every limit window for your own Claude Code: API requests get `429` `reserve_reached` "
        "once any window's utilization reaches `100 - P` %.",
        parse=o.percentage,
        metavar="P",
    )
    #: seconds between the checks of the subscription's usage (the CLI's
    #: get_usage, no quota spent) while no request runs; the first is at
    #: start (0: never)
    usage_check: float = option(
        300.0,
        help="Seconds between checks of the subscription's limits while no request runs (the CLI's get_usage, "
        "which spends no quota; the first at start). 0: never.",
        doc="Seconds between checks of the subscription's limits while no request runs, the first at start: a "
        "short-lived CLI of its own is asked `get_usage` (the CLI's `/usage`, no quota spent) and killed. The "
        "dashboard, `/v1/usage` and `claudeproxy status` then show the windows and extra usage before any "
        "request, and the plan guard and `--reserve` use them. Needs the CLI's stored login (a "
        "`CLAUDE_CODE_OAUTH_TOKEN` cannot read them) and nonessential traffic allowed (not "
        "`CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`). `0`: never.",
        parse=o.non_negative_float,
    )
    #: days the usage history is kept
    usage_retention: float = option(
        90.0,
        help="Days the usage history (one row per request, in the state directory) is kept.",
        doc="Days the usage history (one row per request, in the state directory) is kept; older rows are "
        "pruned every hour.",
        parse=o.positive_float,
    )
    max_body: int = option(
        32 * 1024 * 1024,
        help="Largest request body in bytes; larger gets 413.",
        parse=o.positive_int,
        shown="`33554432` (32 MiB)",
    )
    upstream_retries: int = option(
        2,
        help="How often the CLI retries an upstream 5xx/529 (CLAUDE_CODE_MAX_RETRIES), on CLIs that honour "
        "upstream's x-should-retry: false (2.1.332 and newer; older ones: 0).",
        doc="How often the CLI retries an upstream 5xx or 529 (`CLAUDE_CODE_MAX_RETRIES`), on CLIs that honour "
        "upstream's `x-should-retry: false` (2.1.332 and newer; older ones get `0`). The client is then told "
        "not to retry (see [One layer of retries](api.md#one-layer-of-retries)).",
        parse=o.non_negative_int,
    )
    #: the model C{/v1/models} lists first
    default_model: str = option(
        "claude-sonnet-4",
        help="The model /v1/models lists first (clients such as Open WebUI preselect it): any model id a "
        "request may name.",
        doc="The model `/v1/models` lists first: clients such as Open WebUI and LibreChat-style UIs preselect "
        "the first model, so this is the one they start with. Any id a request may name (a family id, an "
        "alias, a `--model-alias` name or a full `claude-*` id).",
        metavar="MODEL",
    )
    model_aliases: tuple[tuple[str, str], ...] = option(
        (),
        help="NAME=TARGET: also accept model NAME, served as TARGET (repeatable; e.g. gpt-4o=sonnet).",
        doc="Also accept model `NAME`, served as `TARGET` (repeatable; e.g. `gpt-4o=sonnet`, for clients that "
        "insist on an OpenAI model name).",
        parse=o.model_alias,
        repeat=True,
        name="model-alias",
        metavar="NAME=TARGET",
    )
    keep_api_key: bool = option(
        False,
        help="Pass ANTHROPIC_API_KEY on to the CLI (by default it is removed so the subscription login is used, "
        "not per-token billing).",
        doc="Pass `ANTHROPIC_API_KEY` on to the CLI. By default it is removed, so the subscription login is used "
        "and not per-token API billing.",
    )
    #: let the CLI read the user's own settings (their env, apiKeyHelper);
    #: CLAUDE.md, hooks and the output style stay out even then
    use_claude_settings: bool = option(
        False,
        help="Let the CLI read your ~/.claude/settings.json (its env, apiKeyHelper, proxy settings). "
        "Off by default: no settings, CLAUDE.md, hooks, output style or plugins of yours apply to API requests; "
        "with it, CLAUDE.md, hooks and the output style still stay out.",
        doc="Let the CLI read your `~/.claude/settings.json` (its `env`, `apiKeyHelper`, a proxy). Your "
        "CLAUDE.md, hooks, output style and auto memory stay out even then. See "
        "[your-claude-setup.md](your-claude-setup.md).",
    )
    warm: int = option(
        8,
        help="Most idle CLI processes kept started and waiting (0 disables). How many are kept follows demand: "
        "the recent peak of new conversations at once, plus one, at least two, within this bound and a "
        "quarter of the machine's memory at ~300 MB each.",
        doc="The most idle CLI processes kept started and waiting on stdin (`0` disables). How many are kept "
        "follows demand: one more than the recent peak of requests that needed a fresh process at once (or "
        "closer together than a process takes to start), at least two, within this bound and a quarter of "
        "the machine's memory at ~300 MB each (24 GiB: 20, 8 GiB: 6). The peak ages out after `--warm-ttl`.",
        parse=o.non_negative_int,
    )
    #: warm processes starting at once (0: one a core)
    max_starting: int = option(
        0,
        help="Warm processes starting at once, the next when one is ready (0: as many as the machine has "
        "cores). Each start keeps a core busy for ~0.7 s.",
        doc="Warm processes starting at once; the next starts when one is ready (`0`: as many as the machine "
        "has cores). A start keeps a core busy for ~0.7 s: more at once than there are cores slow each other "
        "and the turns being served.",
        parse=o.non_negative_int,
    )
    #: warm processes are generic, bound to each request when it arrives
    late_binding: bool = option(
        True,
        help="auto: warm processes are generic and take each request's system prompt, model, effort, output "
        "limit, schema, tools and history when it arrives (CLIs that lack the control requests fall back); "
        "off: each warm process is started for one combination of settings.",
        doc="`auto`: warm processes are generic, and each request's system prompt, model, effort, output limit, "
        "JSON schema, tools and history reach a running process when it arrives (see "
        "[performance.md](performance.md#every-request-on-a-running-process)); a CLI that lacks the control "
        "requests, or is older than 2.1.197, falls back to `off`, and `/health` and `doctor` say so. `off`: "
        "each warm process is started for one combination of settings, those used most recently.",
        choices=(("auto", True), ("off", False)),
    )
    warm_ttl: float = option(
        600.0,
        help="Seconds an idle warm process lives before it ends.",
        doc="Seconds an idle warm process lives; after this long with no request, no process is kept warm.",
        parse=o.positive_float,
    )
    session_ttl: float = option(
        300.0, help="Seconds a finished conversation's process stays alive for a follow-up.", parse=o.positive_float
    )
    max_sessions: int = option(
        8,
        help="Live conversations kept at most (one-shot requests such as title tasks go first, then the least "
        "recently used; 0 disables).",
        doc="Live conversations kept at most (`0` disables). When more finish, one-shot requests (one exchange, "
        "such as a title or tags task) are ended first, then the least recently used; a conversation ended "
        "anyway keeps its process, cleared for the next new conversation with its settings, and comes back on "
        "a running process with its history written into it.",
        parse=o.non_negative_int,
    )
    #: CLI processes at most, whatever they do (0: no limit)
    max_cli_processes: int = option(
        24,
        help="CLI processes at most, serving, warm, live or parked (each ~250-300 MB; the oldest idle or parked "
        "one makes room; 0: no limit).",
        doc="CLI processes at most, serving, warm, live or parked (each ~250-300 MB; the oldest idle or parked "
        "one makes room; `0`: no limit).",
        parse=o.non_negative_int,
    )
    tool_wait: float = option(
        300.0,
        help="Seconds a CLI process waits for the client to come back with tool results.",
        doc="Seconds a CLI process waits inside a tool call for the client to come back with the result.",
        parse=o.positive_float,
    )
    cors_origins: tuple[str, ...] = option(
        (),
        help="A web origin (e.g. http://localhost:8080) whose pages may call the API; CORS headers go only to "
        "these (repeatable). Requests from any other origin are refused.",
        doc="A web origin (e.g. `http://localhost:8080`) whose pages may call the API (repeatable). Requests "
        "carrying any other `Origin` are refused.",
        parse=o.origin,
        repeat=True,
        name="cors-origin",
        metavar="ORIGIN",
    )
    allowed_hosts: tuple[str, ...] = option(
        (),
        help="A Host name accepted besides loopback names (repeatable), e.g. when reached through a reverse proxy.",
        doc="A `Host` name accepted besides loopback names (repeatable), e.g. behind a reverse proxy.",
        parse=o.host,
        repeat=True,
        name="allowed-host",
        metavar="NAME",
    )
    log_format: str = option(
        "text",
        help="text, or json (twisted.logger's JSON observer, one event a line).",
        doc="`text`, or `json` (twisted.logger's JSON observer, one event a line).",
        choices=(("text", "text"), ("json", "json")),
    )
    #: where the daemon records the CLI process groups it starts (so that
    #: the next daemon can kill what this one left); "" records nothing
    state_dir: str = option(
        "",
        help="Where the daemon records the CLI processes it starts, so that the next start kills any an "
        "earlier daemon left (default: $XDG_STATE_HOME/claudeproxy or ~/.local/state/claudeproxy; "
        "~/Library/Application Support/claudeproxy on macOS).",
        doc="Where the daemon records the CLI process groups it starts, so that the next start kills any an "
        "earlier daemon left (see [Nothing outlives the daemon](design.md#nothing-outlives-the-daemon)).",
        shown="`$XDG_STATE_HOME/claudeproxy` (`~/.local/state/claudeproxy`); macOS "
        "`~/Library/Application Support/claudeproxy`",
        unset=None,
    )

    # -- decided at start, not options ---------------------------------------------

    claude_missing_reason: str = ""
    api_key: Optional[str] = None
    #: the named keys' budgets, (client, period, kind, amount): see L{claudeproxy.store.budgets}
    budgets: tuple[tuple[str, str, str, float], ...] = ()
    #: move the daemon into C{workdir} at start, so CLI processes (which run
    #: there) can be started with posix_spawn instead of a fork
    enter_workdir: bool = False
    workdir: str = ""
    shutdown_grace: float = 3.0
    #: run a watchdog that kills every CLI process group when the daemon
    #: ends, however it ends (see L{claudeproxy.engine.reaper})
    watchdog: bool = True


#: the defaults, for the parts that repeat them (e.g. the engine's own)
DEFAULTS = Config()


if __name__ == "__main__":
    # the table in docs/options.md: python -m claudeproxy.config
    from .optionspec import options_table

    print(options_table(Config), end="")
