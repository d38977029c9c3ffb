"""
Live sessions: processes kept after a clean reply, holding their
conversation, so the next request of that conversation writes only its
new turn.  Kept by worth: when there are more than C{limit}, a one-shot
(a conversation of one exchange, such as a title or tags task that is
never continued) goes before a conversation the user is still in, and the
least recently used goes first among equals.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator, Optional

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .continuity import Continuation, HistoryDigest
from .process import CLIProcess, SpawnKey


@attrs.define(eq=False)
class Session:
    proc: CLIProcess
    key: SpawnKey
    held: Continuation
    #: started ahead on the conversation the client was expected to send
    prepared: bool = False
    timer: Optional[IDelayedCall] = None
    #: when it became idle
    since: float = 0.0

    @property
    def one_shot(self) -> bool:
        """
        A conversation of one exchange: nothing says it will go on.
        """
        return not any(m.role == "assistant" for m in self.held.messages)


def _cancel(call: Optional[IDelayedCall]) -> None:
    if call is not None and call.active():
        call.cancel()


class LiveSessions:
    """
    At most C{limit} live sessions, each for C{ttl} seconds.  C{ended} is
    told of each session ended here (expired or pushed out), with why.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        limit: int,
        ttl: float,
        ended: Callable[[Session, str], None],
    ) -> None:
        self.reactor = reactor
        self.limit = limit
        self.ttl = ttl
        self._ended = ended
        self._sessions: OrderedDict[CLIProcess, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def keep(self, session: Session) -> None:
        session.since = self.reactor.seconds()
        session.timer = self.reactor.callLater(self.ttl, self._expired, session.proc)
        self._sessions[session.proc] = session
        while len(self._sessions) > self.limit:
            self.end(self.least_worth(), "evicted")

    def least_worth(self) -> Session:
        """
        The session to push out first: a one-shot before a conversation,
        then the least recently used.
        """
        return min(self._sessions.values(), key=lambda s: (not s.one_shot, s.since))

    def holds(self, key: SpawnKey, held: Continuation) -> bool:
        return any(s.key == key and s.held == held for s in self._sessions.values())

    def take(self, key: SpawnKey, history: HistoryDigest) -> Optional[Session]:
        """
        The session whose conversation C{history} continues, taken out.
        """
        for proc, session in reversed(self._sessions.items()):
            if session.key == key and history.continues(session.held):
                self.remove(session)
                if proc.is_ended or proc.killed:
                    return None
                return session
        return None

    def remove(self, session: Session) -> None:
        self._sessions.pop(session.proc, None)
        _cancel(session.timer)

    def discard(self, proc: CLIProcess) -> None:
        session = self._sessions.pop(proc, None)
        if session is not None:
            _cancel(session.timer)

    def end(self, session: Session, cause: str) -> None:
        self.remove(session)
        self._ended(session, cause)
        session.proc.kill(cause)

    def _expired(self, proc: CLIProcess) -> None:
        session = self._sessions.get(proc)
        if session is not None:
            self.end(session, "expired")

    def clear(self) -> None:
        for session in self._sessions.values():
            _cancel(session.timer)
        self._sessions.clear()
