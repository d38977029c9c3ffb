"""
JSON as the daemon writes it: compact UTF-8, whoever reads it (a response
body, a server-sent event, a stream-json line).
"""

from __future__ import annotations

import json
from typing import Any


def json_bytes(obj: Any) -> bytes:
    """
    Compact UTF-8 JSON; text that is not valid Unicode (a lone surrogate
    from upstream) is escaped rather than failing.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


__all__ = ["json_bytes"]
