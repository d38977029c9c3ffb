"""
Field checks every protocol's request parsing shares: the body as a JSON
object, boolean flags, token limits, arrays of objects, declared
tool names.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from ..engine.errors import bad_request
from ..engine.tools import NAME_RE, ToolSpec


def load_json(raw: bytes) -> dict[str, Any]:
    """
    A request body as a JSON object, or a 400 (also for nesting too deep to
    parse).
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request("The request body is not valid JSON: %s" % (e,), None, "invalid_json")
    except RecursionError:
        raise bad_request("The request body is not valid JSON: nested too deeply", None, "invalid_json")
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object", None, "invalid_json")
    return body


def flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    """
    The boolean field C{name} (C{stream}, C{parallel_tool_calls}): absent
    or null is C{default}; anything but a boolean is a 400.
    """
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request("'%s' must be a boolean" % (name,), name)
    return value


def positive_int(value: object, param: str) -> Optional[int]:
    """
    A token limit: None when absent, else a positive integer or a 400.
    """
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("'%s' must be a positive integer" % (param,), param)
    return value


def objects(items: Sequence[Any], where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """
    Each element of the JSON array C{items} with its path (C{where[i]}),
    in order; a 400 naming the first that is not an object.
    """
    for i, item in enumerate(items):
        path = "%s[%d]" % (where, i)
        if not isinstance(item, Mapping):
            raise bad_request("%s must be an object" % (path,), path)
        yield path, item


def required_objects(items: Any, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """
    L{objects} of the field C{name}, which must be a non-empty array (a 400
    at once when it is not).
    """
    if not isinstance(items, list) or not items:
        raise bad_request("'%s' must be a non-empty array" % (name,), name)
    return objects(items, name)


def declared_name(name: Any, where: str, field: str, declared: Iterable[ToolSpec], noun: str) -> str:
    """
    The name of the tool declared at C{where} (given in its C{field}): 1 to
    64 letters, digits, C{_} or C{-}, and not declared before; a 400 naming
    the field otherwise.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise bad_request("%s%s must match ^[A-Za-z0-9_-]{1,64}$" % (where, field), where + field)
    if any(s.name == name for s in declared):
        raise bad_request("%s: %s %r is declared twice" % (where, noun, name), where + field)
    return name


__all__ = ["declared_name", "flag", "load_json", "objects", "positive_int", "required_objects"]
