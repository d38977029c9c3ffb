"""
C{twistd claudeproxy}: the options and the service they make.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Mapping, Optional

import attrs
from twisted.application.service import IService
from twisted.python import usage

from .config import Config
from .service import build
from .store.pricing import PLANS

DEFAULT_LISTEN = "tcp:3456:interface=127.0.0.1"


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise ValueError("must be at least 1")
    return n


def _non_negative_int(value: str) -> int:
    n = int(value)
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


def _late_binding(value: str) -> str:
    if value not in ("auto", "off"):
        raise ValueError("must be auto or off")
    return value


def _plan(value: str) -> str:
    if value not in PLANS:
        raise ValueError("not a plan: %r (one of %s)" % (value, ", ".join(PLANS)))
    return value


def _extra_usage(value: str) -> str:
    from .engine.planguard import EXTRA_USAGE_MODES

    if value not in EXTRA_USAGE_MODES:
        raise ValueError("must be deny or allow")
    return value


def _reserve(value: str) -> float:
    n = float(value)
    if not 0 <= n < 100:
        raise ValueError("must be a percentage from 0 to less than 100")
    return n


def _non_negative_float(value: str) -> float:
    n = float(value)
    if not n >= 0:
        raise ValueError("must be 0 or more")
    return n


def _positive_float(value: str) -> float:
    n = float(value)
    if not n > 0:
        raise ValueError("must be more than 0")
    return n


class Options(usage.Options):
    """
    Options for C{twistd claudeproxy}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the OpenAI HTTP API on loopback, answering with the Claude Code CLI "
        "(and so with the Claude subscription it is logged in to)."
    )
    optFlags = [
        [
            "keep-api-key",
            None,
            "Pass ANTHROPIC_API_KEY on to the CLI (by default it is removed so the subscription login is used, not per-token billing).",
        ],
        [
            "use-claude-settings",
            None,
            "Let the CLI read your ~/.claude/settings.json (its env, apiKeyHelper, proxy settings). "
            "Off by default: no settings, CLAUDE.md, hooks, output style or plugins of yours apply to API requests; "
            "with it, CLAUDE.md, hooks and the output style still stay out.",
        ],
    ]
    optParameters = [
        ["listen", None, DEFAULT_LISTEN, "Where to listen, as a strports endpoint description."],
        ["claude", None, None, "Path of the Claude Code CLI (default: `claude` found on PATH at start)."],
        ["max-concurrent", None, 4, "Requests served at once.", _positive_int],
        ["max-queued", None, 16, "Requests waiting beyond that; more get 429 with Retry-After.", _non_negative_int],
        ["request-timeout", None, 600.0, "Seconds a request may take in all before it ends with 504.", _positive_float],
        [
            "idle-timeout",
            None,
            120.0,
            "Seconds without output from the CLI before the request ends with 504.",
            _positive_float,
        ],
        [
            "system-prompt-mode",
            None,
            "replace",
            "replace: the client's system text becomes the CLI's --system-prompt; append: it goes to --append-system-prompt and Claude Code's own prompt stays.",
        ],
        ["log-format", None, "text", "text, or json (twisted.logger's JSON observer, one event a line)."],
        [
            "state-dir",
            None,
            None,
            "Where the daemon records the CLI processes it starts, so that the next start kills any an "
            "earlier daemon left (default: $XDG_STATE_HOME/claudeproxy or ~/.local/state/claudeproxy; "
            "~/Library/Application Support/claudeproxy on macOS).",
        ],
        [
            "api-key-file",
            None,
            None,
            "Read API keys from this file: one a line, NAME=KEY or a plain KEY ('#' starts a comment).",
        ],
        [
            "usage-retention",
            None,
            90.0,
            "Days the usage history (one row per request, in the state directory) is kept.",
            _positive_float,
        ],
        [
            "plan",
            None,
            None,
            "The subscription plan 'saved' is reckoned against when the CLI's login does not name it:"
            " pro, max5 or max20.",
            _plan,
        ],
        [
            "extra-usage",
            None,
            "deny",
            "deny: once the CLI reports the plan's own limit reached (a window used up, or extra usage in use), "
            "API requests get 429 plan_limit_reached until the window resets, instead of spending extra usage "
            "(paid beyond the plan); allow: they go on and may spend it.",
            _extra_usage,
        ],
        [
            "reserve",
            None,
            0.0,
            "Percent of every limit window kept for your own Claude Code: API requests get 429 reserve_reached once "
            "a window's utilization reaches 100 - P percent (0: none).",
            _reserve,
        ],
        [
            "usage-check",
            None,
            300.0,
            "Seconds between checks of the subscription's limits while no request runs (the CLI's get_usage, "
            "which spends no quota; the first at start). 0: never.",
            _non_negative_float,
        ],
        ["max-body", None, 32 * 1024 * 1024, "Largest request body in bytes; larger gets 413.", _positive_int],
        [
            "warm",
            None,
            8,
            "Most idle CLI processes kept started and waiting (0 disables). How many are kept follows demand: "
            "the recent peak of new conversations at once, plus one, at least two, within this bound and a "
            "quarter of the machine's memory at ~300 MB each.",
            _non_negative_int,
        ],
        [
            "late-binding",
            None,
            "auto",
            "auto: warm processes are generic and take each request's system prompt, model, effort, output "
            "limit, schema, tools and history when it arrives (CLIs that lack the control requests fall back); "
            "off: each warm process is started for one combination of settings.",
            _late_binding,
        ],
        ["warm-ttl", None, 600.0, "Seconds an idle warm process lives before it ends.", _positive_float],
        [
            "session-ttl",
            None,
            300.0,
            "Seconds a finished conversation's process stays alive for a follow-up.",
            _positive_float,
        ],
        [
            "max-sessions",
            None,
            8,
            "Live conversations kept at most (one-shot requests such as title tasks go first, then the least "
            "recently used; 0 disables).",
            _non_negative_int,
        ],
        [
            "max-cli-processes",
            None,
            24,
            "CLI processes at most, serving, warm, live or parked (each ~250-300 MB; the oldest idle or parked "
            "one makes room; 0: no limit).",
            _non_negative_int,
        ],
        [
            "tool-wait",
            None,
            300.0,
            "Seconds a CLI process waits for the client to come back with tool results.",
            _positive_float,
        ],
        [
            "default-model",
            None,
            "claude-sonnet-4",
            "The model /v1/models lists first (clients such as Open WebUI preselect it): any model id a "
            "request may name.",
        ],
        [
            "upstream-retries",
            None,
            2,
            "How often the CLI retries an upstream 5xx/529 (CLAUDE_CODE_MAX_RETRIES), on CLIs that honour "
            "upstream's x-should-retry: false (2.1.332 and newer; older ones: 0).",
            _non_negative_int,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["model-alias"] = []
        self["cors-origin"] = []
        self["allowed-host"] = []
        self["api-key"] = None
        self["api-keys"] = []

    def opt_api_key(self, value: str) -> None:
        """
        NAME=KEY or KEY: require 'Authorization: Bearer KEY' (or x-api-key) on every /v1/* request (repeatable: each client its own key; its usage is recorded under NAME, "default" for a plain KEY).
        """
        from .web.auth import parse_key

        try:
            name, key = parse_key(value)
        except ValueError:
            raise usage.UsageError("--api-key must not be empty")
        if name == "default" and self["api-key"] is None:
            self["api-key"] = key
        self["api-keys"].append((name, key))

    def opt_cors_origin(self, value: str) -> None:
        """
        A web origin (e.g. http://localhost:8080) whose pages may call the API; CORS headers go only to these (repeatable). Requests from any other origin are refused.
        """
        if "://" not in value:
            raise usage.UsageError("--cors-origin takes an origin like http://localhost:8080, got %r" % (value,))
        self["cors-origin"].append(value)

    def opt_allowed_host(self, value: str) -> None:
        """
        A Host name accepted besides loopback names (repeatable), e.g. when reached through a reverse proxy.
        """
        if not value.strip():
            raise usage.UsageError("--allowed-host must not be empty")
        self["allowed-host"].append(value.strip())

    def opt_model_alias(self, value: str) -> None:
        """
        NAME=TARGET: also accept model NAME, served as TARGET (repeatable; e.g. gpt-4o=sonnet).
        """
        name, sep, target = value.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise usage.UsageError("--model-alias takes NAME=TARGET, got %r" % (value,))
        self["model-alias"].append((name.strip(), target.strip()))

    def postOptions(self) -> None:
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError("--log-format must be text or json")
        if self["system-prompt-mode"] not in ("replace", "append"):
            raise usage.UsageError("--system-prompt-mode must be replace or append")
        self["budgets"] = []
        if self["api-key-file"] is not None:
            from .web.auth import parse_budgets, parse_key_file

            try:
                with open(self["api-key-file"], encoding="utf-8") as f:
                    text = f.read()
                found = parse_key_file(text)
                self["budgets"] = [attrs.astuple(b) for b in parse_budgets(text)]
            except OSError as e:
                raise usage.UsageError("cannot read --api-key-file: %s" % (e,))
            except ValueError as e:
                raise usage.UsageError("--api-key-file %s: %s" % (self["api-key-file"], e))
            if not found:
                raise usage.UsageError("--api-key-file %s is empty" % (self["api-key-file"],))
            if len(found) == 1 and found[0][0] == "default" and self["api-key"] is None:
                self["api-key"] = found[0][1]
            self["api-keys"].extend(found)
        from .web.auth import check_keys

        try:
            check_keys(self["api-keys"])
        except ValueError as e:
            raise usage.UsageError("--api-key: %s" % (e,))
        from .engine.errors import ProxyError
        from .engine.models import resolve

        for name, target in self["model-alias"]:
            try:
                resolve(target, ())
            except ProxyError:
                raise usage.UsageError("--model-alias %s=%s: %s is not a Claude model" % (name, target, target))
        try:
            resolve(self["default-model"], self["model-alias"])
        except ProxyError:
            raise usage.UsageError("--default-model %s is not a model a request may name" % (self["default-model"],))


def find_claude(value: Optional[str], env: Mapping[str, str]) -> tuple[Optional[str], str]:
    """
    The CLI's absolute path, or None and why not.
    """
    if value is not None:
        path = os.path.abspath(os.path.expanduser(value))
        if not os.access(path, os.X_OK):
            return path, "%s is missing or not executable" % (path,)
        return path, ""
    found = shutil.which("claude", path=env.get("PATH", os.defpath))
    if found is None:
        return None, "`claude` was not found on PATH (%s)" % (env.get("PATH", ""),)
    return os.path.abspath(found), ""


def default_state_dir(env: Mapping[str, str], platform: str = sys.platform) -> str:
    """
    The daemon's state directory when C{--state-dir} is not given.
    """
    home = env.get("HOME") or os.path.expanduser("~")
    if platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "claudeproxy")
    base = env.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(base, "claudeproxy")


def config_from_options(options: Options, env: Mapping[str, str], workdir: str) -> Config:
    claude, why = find_claude(options["claude"], env)
    state_dir = options["state-dir"]
    return Config(
        listen=options["listen"],
        claude=claude,
        claude_missing_reason=why,
        max_concurrent=options["max-concurrent"],
        max_queued=options["max-queued"],
        request_timeout=options["request-timeout"],
        idle_timeout=options["idle-timeout"],
        system_prompt_mode=options["system-prompt-mode"],
        api_keys=tuple(options["api-keys"]),
        usage_retention=options["usage-retention"],
        plan=options["plan"],
        extra_usage=options["extra-usage"],
        reserve=options["reserve"],
        usage_check=options["usage-check"],
        budgets=tuple(options.get("budgets") or ()),
        model_aliases=tuple(options["model-alias"]),
        default_model=options["default-model"],
        max_body=options["max-body"],
        upstream_retries=options["upstream-retries"],
        keep_api_key=bool(options["keep-api-key"]),
        use_claude_settings=bool(options["use-claude-settings"]),
        warm=options["warm"],
        late_binding=options["late-binding"] == "auto",
        warm_ttl=options["warm-ttl"],
        session_ttl=options["session-ttl"],
        max_sessions=options["max-sessions"],
        max_cli_processes=options["max-cli-processes"],
        tool_wait=options["tool-wait"],
        cors_origins=tuple(options["cors-origin"]),
        allowed_hosts=tuple(options["allowed-host"]),
        log_format=options["log-format"],
        workdir=workdir,
        state_dir=os.path.abspath(os.path.expanduser(state_dir)) if state_dir else default_state_dir(env),
    )


def makeService(options: Options, reactor: Any = None, env: Optional[Mapping[str, str]] = None) -> IService:
    """
    The daemon for C{options}.  The CLI runs in a private empty directory.
    """
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    if env is None:
        env = dict(os.environ)
    config = config_from_options(options, env, "")
    config = attrs.evolve(config, workdir=tempfile.mkdtemp(prefix="claudeproxy-"), enter_workdir=True)
    return build(reactor, config, env).top
