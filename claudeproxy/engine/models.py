"""
Model names: what clients may ask for and what the CLI's C{--model} gets.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional

import attrs

from .errors import ProxyError

#: Family ids clients see, mapped to the CLI alias for the newest model of
#: that family.
FAMILIES: Mapping[str, str] = {
    "claude-opus-4": "opus",
    "claude-sonnet-4": "sonnet",
    "claude-haiku-4": "haiku",
}
CLI_ALIASES = ("opus", "sonnet", "haiku")
DEFAULT_MODEL = "sonnet"
#: the entry C{/v1/models} lists first unless C{--default-model} names another
#: (clients such as Open WebUI preselect the first model)
DEFAULT_LISTED = "claude-sonnet-4"
#: the order the family ids are listed in, after the default
LISTED_FAMILIES = ("claude-sonnet-4", "claude-opus-4", "claude-haiku-4")

#: each model's real context window and most output tokens, as the CLI's own
#: model table has them (the C{context.window} and C{max_output_tokens.upper}
#: of the table in CLI 2.1.332's bundled JS, a superset of 2.1.197's; ids as
#: the API knows them).  The CLI reports its own idea of the window in
#: C{modelUsage}, which the daemon overrides (L{isolation.NO_LOCAL_WINDOW}),
#: so that figure is never the model's.
KNOWN_LIMITS: Mapping[str, tuple[int, int]] = {
    "claude-3-5-haiku-20241022": (200_000, 8_192),
    "claude-haiku-4-5-20251001": (200_000, 64_000),
    "claude-haiku-5-5": (1_000_000, 128_000),
    "claude-3-5-sonnet-20241022": (200_000, 8_192),
    "claude-3-7-sonnet-20250219": (200_000, 64_000),
    "claude-sonnet-4-20250514": (200_000, 64_000),
    "claude-sonnet-4-5-20250929": (200_000, 64_000),
    "claude-sonnet-4-6": (200_000, 128_000),
    "claude-sonnet-5": (1_000_000, 128_000),
    "claude-sonnet-5-5": (1_000_000, 128_000),
    "claude-opus-4-20250514": (200_000, 32_000),
    "claude-opus-4-1-20250805": (200_000, 32_000),
    "claude-opus-4-5-20251101": (200_000, 64_000),
    "claude-opus-4-6": (200_000, 128_000),
    "claude-opus-4-7": (1_000_000, 128_000),
    "claude-opus-4-8": (1_000_000, 128_000),
    "claude-opus-5": (1_000_000, 128_000),
    "claude-opus-5-5": (1_000_000, 128_000),
    "claude-fable-5": (1_000_000, 128_000),
    "claude-fable-5-1": (1_000_000, 128_000),
    "claude-fable-5-2": (1_000_000, 128_000),
    "claude-mythos-5": (1_000_000, 128_000),
    "claude-mythos-5-1": (1_000_000, 128_000),
    "claude-mythos-5-2": (1_000_000, 128_000),
}
#: a context window the CLI reports that is the daemon's own setting
#: (C{CLAUDE_CODE_MAX_CONTEXT_TOKENS}), not a model's: never learned
DAEMON_WINDOW_FLOOR = 100_000_000
CREATED = 1735689600
#: a full model id, passed to --model as is (e.g. claude-sonnet-4-5-20250929,
#: claude-sonnet-4[1m])
FULL_ID = re.compile(r"claude-[A-Za-z0-9._:@/\[\]-]{1,200}")


def known_ids(aliases: Iterable[tuple[str, str]]) -> list[str]:
    return [*FAMILIES, *CLI_ALIASES, *(name for name, _ in aliases)]


def resolve(name: Any, aliases: Iterable[tuple[str, str]]) -> str:
    """
    The C{--model} value for a requested model, or a 404 naming the valid
    ids.  Configured aliases are looked up first, then family ids, CLI
    aliases, and any full C{claude-*} id, passed as is.
    """
    alias_map = dict(aliases)
    if not isinstance(name, str) or not name:
        raise ProxyError(
            400, "'model' is required and must be a string", "invalid_request_error", "invalid_model", "model"
        )
    if any(ord(c) < 32 for c in name):
        # it would be a command-line argument of the CLI
        raise ProxyError(
            400, "'model' must not contain control characters", "invalid_request_error", "invalid_model", "model"
        )
    target = alias_map.get(name, name)
    if target in FAMILIES:
        return FAMILIES[target]
    if target in CLI_ALIASES or FULL_ID.fullmatch(target):
        return target
    raise ProxyError(
        404,
        "The model '%s' does not exist. Valid ids: %s, or any full claude-* model id."
        % (name, ", ".join(known_ids(aliases))),
        "invalid_request_error",
        "model_not_found",
        "model",
    )


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "anthropic"}


def listed_ids(
    aliases: Iterable[tuple[str, str]], catalog: Optional[ModelCatalog] = None, default: str = DEFAULT_LISTED
) -> list[str]:
    """
    The ids C{/v1/models} lists, each model once, in an order that what
    the daemon learns never changes: the default first, then the family
    ids but one that names the same C{--model} as an entry before it, the
    C{--model-alias} names as configured, and last the ids the CLI was seen
    to serve that no entry before resolves to.
    """
    aliases = list(aliases)
    names = [name for name, _ in aliases]
    out: list[str] = []
    targets: set[str] = set()
    for model_id in (default, *LISTED_FAMILIES, *names):
        if model_id in out:
            continue
        try:
            target = resolve(model_id, aliases)
        except ProxyError:
            target = model_id
        if target in targets and model_id not in names:
            continue
        targets.add(target)
        out.append(model_id)
    if catalog is not None:
        served = {catalog.resolved.get(t, t) for t in targets}
        out.extend(m for m in catalog.ids() if m not in served and m not in out)
    return out


def list_models(
    aliases: Iterable[tuple[str, str]], catalog: Optional[ModelCatalog] = None, default: str = DEFAULT_LISTED
) -> dict[str, Any]:
    """
    The model list (see L{listed_ids}), with what is known of each model
    (with a C{catalog}).
    """
    aliases = list(aliases)
    ids = listed_ids(aliases, catalog, default)
    if catalog is None:
        return {"object": "list", "data": [model_object(m) for m in ids]}
    return {"object": "list", "data": [catalog.describe(m, aliases) for m in ids]}


def get_model(
    model_id: str, aliases: Iterable[tuple[str, str]], catalog: Optional[ModelCatalog] = None
) -> dict[str, Any]:
    aliases = list(aliases)
    if model_id in known_ids(aliases) or FULL_ID.fullmatch(model_id):
        return catalog.describe(model_id, aliases) if catalog is not None else model_object(model_id)
    try:
        resolve(model_id, aliases)
    except ProxyError as e:
        if catalog is None or not catalog.ids():
            raise
        raise attrs.evolve(
            e, message=e.message.replace(". Valid ids: ", ". Valid ids: %s, " % (", ".join(catalog.ids()),), 1)
        )
    raise AssertionError("unreachable")


class ModelCatalog:
    """
    The models the CLI actually serves, learned as traffic flows: the id
    its C{system/init} line reports for each C{--model} value (so C{sonnet}
    → C{claude-sonnet-…}), and each id's context window and maximum output
    from the C{modelUsage} of its C{result} line.  C{on_learn} is told of
    every change (to keep them across restarts).
    """

    def __init__(self, on_learn: Any = None) -> None:
        #: --model value (an alias) -> the id it resolved to
        self.resolved: dict[str, str] = {}
        #: id -> {"context_window": n, "max_output_tokens": n}
        self.limits: dict[str, dict[str, int]] = {}
        self.on_learn = on_learn

    def load(self, rows: Iterable[tuple[str, Any, Any, Any]]) -> None:
        """
        Rows (id, alias or None, context window, max output) kept earlier.
        """
        for model_id, alias, window, max_out in rows:
            self._set(model_id, alias, window, max_out)

    def _set(self, model_id: str, alias: Any, window: Any, max_out: Any) -> bool:
        changed = False
        if isinstance(alias, str) and alias and alias != model_id and self.resolved.get(alias) != model_id:
            self.resolved[alias] = model_id
            changed = True
        limits = self.limits.setdefault(model_id, {})
        if isinstance(window, int) and window >= DAEMON_WINDOW_FLOOR:
            # the daemon's CLAUDE_CODE_MAX_CONTEXT_TOKENS, not the model's
            window = None
        for key, value in (("context_window", window), ("max_output_tokens", max_out)):
            if isinstance(value, int) and value > 0 and limits.get(key) != value:
                limits[key] = value
                changed = True
        return changed

    def learn(self, cli_model: str, served: str, model_usage: Any) -> None:
        """
        A turn run with C{--model cli_model} was served by C{served}, and
        its result's C{modelUsage} was C{model_usage}.
        """
        if not served or not FULL_ID.fullmatch(served):
            return
        usage = model_usage.get(served) if isinstance(model_usage, Mapping) else None
        usage = usage if isinstance(usage, Mapping) else {}
        alias = cli_model if cli_model in CLI_ALIASES else None
        if self._set(served, alias, usage.get("contextWindow"), usage.get("maxOutputTokens")) and self.on_learn:
            self.on_learn(served, alias, self.limits[served])

    def ids(self) -> list[str]:
        return sorted(self.limits)

    def describe(self, model_id: str, aliases: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
        """
        The model object for C{model_id}, with what is known of it: the id
        it resolves to (an alias, a family id or a C{--model-alias}) and
        the limits of that id.
        """
        out = model_object(model_id)
        target = model_id
        try:
            target = resolve(model_id, aliases)
        except ProxyError:
            pass
        real = self.resolved.get(target, target)
        if real != model_id:
            out["resolves_to"] = real if real in self.limits else target
        out.update(self.limits_of(real))
        return out

    def limits_of(self, model_id: str) -> dict[str, int]:
        """
        The model's real context window and most output: the CLI's model
        table's figures where it has the model, else what the CLI reported.
        """
        limits = dict(self.limits.get(model_id) or {})
        known = KNOWN_LIMITS.get(model_id)
        if known is not None:
            limits.update(context_window=known[0], max_output_tokens=known[1])
        return limits
