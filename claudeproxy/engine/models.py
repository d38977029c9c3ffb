"""
Model names: what clients may ask for and what the CLI's C{--model} gets.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

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


def list_models(aliases: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in known_ids(aliases)]}


def get_model(model_id: str, aliases: Iterable[tuple[str, str]]) -> dict[str, Any]:
    aliases = list(aliases)
    if model_id in known_ids(aliases) or FULL_ID.fullmatch(model_id):
        return model_object(model_id)
    resolve(model_id, aliases)
    raise AssertionError("unreachable")
