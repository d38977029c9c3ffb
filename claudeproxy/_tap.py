"""
C{twistd claudeproxy}: the options and the service they make.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Callable, Mapping, Optional

import attrs
from twisted.application.service import IService
from twisted.python import usage

from .config import DEFAULTS, Config
from .optionspec import Option, options_of
from .service import build

DEFAULT_LISTEN = DEFAULTS.listen

#: the daemon's options, from L{Config}'s fields
OPTIONS = options_of(Config)


def _repeatable(option: Option) -> Callable[[usage.Options, str], None]:
    """
    The C{opt_} method of a repeatable option: each value given is read and
    kept.
    """

    def given(self: usage.Options, value: str) -> None:
        try:
            self[option.key].append(option.read(value))
        except ValueError as e:
            raise usage.UsageError("--%s %s" % (option.name, e))

    given.__doc__ = option.opt.help
    return given


class Options(usage.Options):
    """
    Options for C{twistd claudeproxy}, one for each option field of L{Config}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve the OpenAI HTTP API on loopback, answering with the Claude Code CLI "
        "(and so with the Claude subscription it is logged in to)."
    )
    optFlags = [[o.name, None, o.opt.help] for o in OPTIONS if o.kind == "flag"]
    optParameters = [[o.name, None, o.default, o.opt.help, o.read] for o in OPTIONS if o.kind == "param"]

    def __init__(self) -> None:
        super().__init__()
        for o in OPTIONS:
            if o.kind == "repeat":
                self[o.key] = []
        self["api-key"] = None

    def postOptions(self) -> None:
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
            self["api-keys"].extend(found)
        # the plain key, if any (at most one: check_keys)
        self["api-key"] = next((key for name, key in self["api-keys"] if name == "default"), None)
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


# a repeatable option is an opt_ method
for _option in OPTIONS:
    if _option.kind == "repeat":
        setattr(Options, "opt_" + _option.name.replace("-", "_"), _repeatable(_option))


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
    """
    The config C{options} make: each option's field, and what is decided at
    start (the CLI found, the state directory, the keys' budgets).
    """
    claude, why = find_claude(options["claude"], env)
    state_dir = options["state-dir"]
    given = {o.field: o.to_config(options[o.key]) for o in OPTIONS}
    return attrs.evolve(
        Config(**given),
        claude=claude,
        claude_missing_reason=why,
        budgets=tuple(options.get("budgets") or ()),
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
