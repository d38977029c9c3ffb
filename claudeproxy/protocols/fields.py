"""
Field checks every protocol's request parsing shares.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..engine.errors import bad_request
from ..engine.tools import NAME_RE, ToolSpec


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


__all__ = ["declared_name", "objects", "required_objects"]
