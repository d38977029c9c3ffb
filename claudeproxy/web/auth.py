"""
API keys and the clients they name.

Each configured key belongs to a client name (C{--api-key NAME=KEY}; a plain
C{--api-key KEY} is C{default}).  A presented key is compared with every
configured key in constant time (L{hmac.compare_digest}, no early exit), so
the time taken tells nothing about which key or how much of it matched.
Keys are never logged or shown: only names leave this module.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Callable, Iterable, Optional

from twisted.web.server import Request

from ..config import Config
from ..store.budgets import TRAILING, Budget, parse_budget

#: what a client name may be
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
#: the name requests are recorded under when no keys are configured
ANONYMOUS = "-"
DEFAULT_NAME = "default"


def parse_key(value: str) -> tuple[str, str]:
    """
    C{NAME=KEY} as (name, key); a value that is not of that form is a plain
    key, named C{default}.  Raises ValueError for an empty key.
    """
    value = value.strip()
    name, sep, key = value.partition("=")
    if sep and NAME.fullmatch(name.strip()) and key.strip().strip("="):
        return name.strip(), key.strip()
    if not value:
        raise ValueError("an API key must not be empty")
    return DEFAULT_NAME, value


def parse_key_file(text: str) -> list[tuple[str, str]]:
    """
    The keys of an API key file: one per line, C{NAME=KEY} or a plain key,
    then optionally its budgets (L{parse_budgets}); blank lines and lines
    starting with C{#} are skipped.
    """
    return [key for key, _ in _key_lines(text)]


def parse_budgets(text: str) -> list[Budget]:
    """
    The budgets of an API key file: after a key, space-separated
    C{PERIOD:AMOUNT} items (C{agent=sk-1 daily:200req weekly:$25
    monthly:5000000tok}).  Raises ValueError for an item it cannot read.
    """
    return [b for _, budgets in _key_lines(text) for b in budgets]


def _key_lines(text: str) -> list[tuple[tuple[str, str], list[Budget]]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = TRAILING.search(line)
        items = m.group(0).split() if m else []
        key = parse_key(line[: m.start()] if m else line)
        out.append((key, [parse_budget(key[0], item) for item in items]))
    return out


def check_keys(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """
    C{keys}, or ValueError if a name or a key is given twice.
    """
    keys = list(keys)
    names = [name for name, _ in keys]
    for name in names:
        if names.count(name) > 1:
            raise ValueError("the client name %r is given to more than one API key" % (name,))
    values = [key for _, key in keys]
    if len(set(values)) != len(values):
        raise ValueError("the same API key is given twice")
    return keys


class ClientKeys:
    """
    The configured keys.  L{match} names the client a key belongs to.
    """

    def __init__(self, keys: Iterable[tuple[str, str]]) -> None:
        self._keys = [(name, key.encode("utf-8")) for name, key in keys]

    @classmethod
    def from_config(cls, config: Config) -> ClientKeys:
        keys = list(config.api_keys)
        if config.api_key is not None:
            keys.append((DEFAULT_NAME, config.api_key))
        return cls(keys)

    @property
    def required(self) -> bool:
        return bool(self._keys)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._keys]

    def match(self, token: bytes) -> Optional[str]:
        """
        The name of the client whose key is C{token}, or None.  Every key
        is compared, whatever matched.
        """
        found: Optional[str] = None
        for name, key in self._keys:
            if hmac.compare_digest(token, key) and found is None:
                found = name
        return found


def presented_key(request: Request) -> bytes:
    """
    The key a request presents: C{Authorization: Bearer KEY}, else
    C{x-api-key} (Anthropic's header).
    """
    header = request.getHeader(b"authorization") or b""
    token = request.getHeader(b"x-api-key") or b""
    if header[:7].lower() == b"bearer ":
        token = header[7:].strip()
    return token


class Sessions:
    """
    Dashboard logins: a random token per login, kept in memory (a restart
    logs everyone out), each valid for C{lifetime} seconds.  At most
    C{keep} are kept (the oldest go first).
    """

    def __init__(self, clock: Callable[[], float], lifetime: float = 7 * 86400.0, keep: int = 256) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.keep = keep
        self._tokens: dict[str, tuple[str, float]] = {}

    def issue(self, name: str) -> str:
        now = self.clock()
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        while len(self._tokens) >= self.keep:
            del self._tokens[next(iter(self._tokens))]
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (name, now + self.lifetime)
        return token

    def lookup(self, token: str) -> Optional[str]:
        found = None
        now = self.clock()
        for known, (name, expires) in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode("utf-8", "replace")) and expires > now:
                found = name
        return found

    def end(self, token: str) -> None:
        self._tokens.pop(token, None)
