"""
Field checks every protocol's request parsing shares.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from ..engine.errors import bad_request


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


__all__ = ["objects", "required_objects"]
