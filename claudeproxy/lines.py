"""
Incremental splitting of a byte stream into lines, without a line-length
limit below C{max_line} (stream-json lines are often far over 16 KiB).
"""

from __future__ import annotations

MAX_LINE = 256 * 1024 * 1024


class LineTooLong(Exception):
    """
    A line grew past the buffer's limit without a newline.
    """


class LineBuffer:
    """
    Feed bytes in, get complete lines (without the newline) out.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl == -1:
                break
            piece = data[start:nl]
            if self._parts:
                self._parts.append(piece)
                piece = b"".join(self._parts)
                self._parts = []
                self._size = 0
            lines.append(piece.rstrip(b"\r"))
            start = nl + 1
        rest = data[start:]
        if rest:
            self._parts.append(rest)
            self._size += len(rest)
            if self._size > self._max:
                self._parts = []
                self._size = 0
                raise LineTooLong(self._max)
        return lines

    def pending(self) -> bytes:
        """
        Whatever has arrived after the last newline.
        """
        return b"".join(self._parts)
