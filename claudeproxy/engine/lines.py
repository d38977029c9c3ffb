"""
Incremental splitting of a byte stream into lines, without a line-length
limit below C{max_line} (stream-json lines are often far over 16 KiB).

A line that grows past C{elide_after} bytes without a newline may be read
in a leaner way: when the buffer's C{elide} callback, shown the line's head,
says so, the rest of the line goes through a L{StringElider}, which keeps
the JSON structure but drops the contents of long string values as they
arrive.  The CLI's last lines of a turn repeat the whole reply text (the
C{assistant} message and C{result}); read this way they cost kilobytes, not
the reply's size twice over.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Optional

MAX_LINE = 256 * 1024 * 1024
#: a line is considered for eliding once this much of it is buffered
ELIDE_AFTER = 256 * 1024
#: string values longer than this (in raw JSON bytes) are dropped when eliding
LONG_STRING = 64 * 1024

_QUOTE = 0x22
_BACKSLASH = 0x5C


class LineTooLong(Exception):
    """
    A line grew past the buffer's limit without a newline.
    """


class Elided(bytes):
    """
    A line read by a L{StringElider}: C{dropped} bytes of long string
    values were left out (those strings are empty in it).
    """

    dropped: int = 0


class StringElider:
    """
    Feed the bytes of one JSON text in pieces (split anywhere); get back
    the same JSON with the contents of every string longer than C{limit}
    raw bytes emptied.  Strings are found with C{bytes.find}, so long
    strings cost no Python-level work per byte; escapes (an escaped quote,
    runs of backslashes) and pieces split inside a string or an escape are
    handled.
    """

    def __init__(self, limit: int = LONG_STRING) -> None:
        self.limit = limit
        #: the bytes kept so far
        self._out: list[bytes] = []
        self.kept = 0
        self.dropped = 0
        self._in_string = False
        #: the string content before this piece ended in an odd run of
        #: backslashes: the piece's first byte is escaped
        self._escaped = False
        self._string: list[bytes] = []
        self._string_len = 0
        self._dropping = False

    def feed(self, data: bytes) -> None:
        i = 0
        n = len(data)
        while i < n:
            if not self._in_string:
                q = data.find(b'"', i)
                if q == -1:
                    self._keep(data[i:] if i else data)
                    return
                self._keep(data[i : q + 1])
                self._in_string = True
                self._escaped = False
                self._string = []
                self._string_len = 0
                self._dropping = False
                i = q + 1
                continue
            end = self._closing_quote(data, i)
            piece = data[i : n if end == -1 else end]
            self._string_part(piece)
            if end == -1:
                return
            if self._string:
                self._keep(b"".join(self._string))
            self._keep(b'"')
            self._in_string = False
            self._string = []
            i = end + 1

    def _closing_quote(self, data: bytes, start: int) -> int:
        """
        The index of the quote ending the string that continues at
        C{start}, or -1 (and C{_escaped} set for the next piece) when it
        does not end in C{data}.
        """
        lo = start
        carry = self._escaped
        n = len(data)
        while True:
            q = data.find(b'"', lo)
            if q == -1:
                # how the piece ends: an odd run of backslashes escapes the
                # next piece's first byte
                k = n
                while k > lo and data[k - 1] == _BACKSLASH:
                    k -= 1
                run = n - k
                self._escaped = bool((run + carry) % 2) if k == lo else bool(run % 2)
                return -1
            k = q
            while k > lo and data[k - 1] == _BACKSLASH:
                k -= 1
            run = q - k
            odd = (run + carry) % 2 if k == lo else run % 2
            if not odd:
                self._escaped = False
                return q
            # an escaped quote: the run of backslashes ends at it
            lo = q + 1
            carry = False

    def _string_part(self, piece: bytes) -> None:
        if not piece:
            return
        if self._dropping:
            self.dropped += len(piece)
            return
        self._string_len += len(piece)
        if self._string_len > self.limit:
            self._dropping = True
            self.dropped += self._string_len
            self._string = []
            return
        self._string.append(piece)

    def _keep(self, data: bytes) -> None:
        if data:
            self._out.append(data)
            self.kept += len(data)

    def size(self) -> int:
        """
        The bytes held: kept so far and a short string being read.
        """
        return self.kept + (0 if self._dropping else self._string_len)

    def so_far(self) -> bytes:
        """
        The bytes kept so far (without a short string being read).
        """
        return b"".join(self._out)

    def finish(self) -> Elided:
        """
        The JSON read, long strings emptied.  (A string left open is
        closed as far as it got.)
        """
        if self._in_string and self._string:
            self._keep(b"".join(self._string))
        line = Elided(b"".join(self._out))
        line.dropped = self.dropped
        self._out = []
        self._string = []
        return line


_TOKEN = re.compile(
    rb'\s*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([{}\[\]:,])|([^{}\[\]:,"\s]+))',
    re.DOTALL,
)


def head_fields(head: bytes, depth: int = 2, max_tokens: int = 4096) -> dict[tuple[str, ...], Any]:
    """
    The scalar values at object paths up to C{depth} keys deep (not inside
    arrays) found in the complete part of C{head}, the start of a JSON
    object: C{{("type",): "assistant", ("message", "id"): "msg_1", ...}}.
    Whatever is cut off at the end, inside a string that has not ended, or
    after the first C{max_tokens} tokens, is not seen.
    """
    fields: dict[tuple[str, ...], Any] = {}
    #: open containers: [b"{" or b"[", the current key]
    stack: list[list[Any]] = []
    pos = 0
    for _ in range(max_tokens):
        m = _TOKEN.match(head, pos)
        if m is None:
            break
        pos = m.end()
        string, punct, literal = m.groups()
        if punct is not None:
            if punct in (b"{", b"["):
                stack.append([punct, None])
            elif punct in (b"}", b"]"):
                if not stack:
                    break
                stack.pop()
            elif punct == b"," and stack and stack[-1][0] == b"{":
                stack[-1][1] = None
            continue
        if not stack:
            break
        top = stack[-1]
        token = string if string is not None else literal
        if string is not None and top[0] == b"{" and top[1] is None:
            try:
                top[1] = json.loads(string)
            except ValueError:
                break
            continue
        if len(stack) <= depth and all(f[0] == b"{" for f in stack):
            try:
                value = json.loads(token)
            except ValueError:
                continue
            fields[tuple(str(f[1]) for f in stack)] = value
    return fields


class LineBuffer:
    """
    Feed bytes in, get complete lines (without the newline) out.

    With C{elide}: once a line passes C{elide_after} bytes without a
    newline, C{elide(head)} (C{head} is all of the line so far) is asked
    once whether the line may lose its long strings; if so, the rest of it
    is read through a L{StringElider} and the line comes out as an
    L{Elided}.
    """

    def __init__(
        self,
        max_line: int = MAX_LINE,
        elide: Optional[Callable[[bytes], bool]] = None,
        elide_after: int = ELIDE_AFTER,
        long_string: int = LONG_STRING,
    ) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_line
        self._elide = elide
        self._elide_after = elide_after
        self._long_string = long_string
        self._decided = False
        self._elider: Optional[StringElider] = None

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl == -1:
                break
            piece = data[start:nl]
            if self._elider is not None:
                self._elider.feed(piece)
                elided = self._elider.finish()
                self._elider = None
                line = Elided(elided.rstrip(b"\r"))
                line.dropped = elided.dropped
                piece = line
            else:
                if self._parts:
                    self._parts.append(piece)
                    piece = b"".join(self._parts)
                    self._parts = []
                piece = piece.rstrip(b"\r")
            self._size = 0
            self._decided = False
            lines.append(piece)
            start = nl + 1
        rest = data[start:] if start else data
        if rest:
            if self._elider is not None:
                self._elider.feed(rest)
                self._size = self._elider.size()
            else:
                self._parts.append(rest)
                self._size += len(rest)
                if not self._decided and self._elide is not None and self._size > self._elide_after:
                    self._decided = True
                    head = b"".join(self._parts)
                    self._parts = [head]
                    if self._elide(head):
                        self._elider = StringElider(self._long_string)
                        self._elider.feed(head)
                        self._parts = []
                        self._size = self._elider.size()
            if self._size > self._max:
                self._parts = []
                self._size = 0
                self._elider = None
                self._decided = False
                raise LineTooLong(self._max)
        return lines

    @property
    def size(self) -> int:
        """
        The bytes held of the line being read.
        """
        return self._size

    def pending(self) -> bytes:
        """
        Whatever has arrived after the last newline (as elided so far).
        """
        if self._elider is not None:
            return self._elider.so_far()
        return b"".join(self._parts)
