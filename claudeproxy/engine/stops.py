"""
Stop sequences applied by the daemon to streamed text.
"""

from __future__ import annotations


class StopScanner:
    """
    Feed text as it streams; get back what may be sent now.  Text that
    might be the start of a stop sequence is held back until it is known not
    to be.  Once a stop sequence is seen, nothing after it is sent.
    """

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        #: the stop sequence that ended the text
        self.matched: str | None = None

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        if not self._stops:
            return text
        buf = self._held + text
        # the stop sequence that completes first wins, however text is chunked
        ends = [(i + len(s), i, s) for i, s in ((buf.find(s), s) for s in self._stops) if i != -1]
        if ends:
            _, cut, self.matched = min(ends)
            self.stopped = True
            self._held = ""
            return buf[:cut]
        keep = 0
        for s in self._stops:
            for k in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held
