"""
Live sessions: processes kept after a clean reply, holding their
conversation, so the next request of that conversation writes only its
new turn.  Kept by worth: when there are more than C{limit}, a one-shot
(a conversation of one exchange, such as a title or tags task that is
never continued) goes before a conversation the user is still in, and the
least recently used goes first among equals.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.interfaces import IDelayedCall

from .binding import switchable
from .continuity import Continuation, HistoryDigest
from .held import Held
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


class LiveSessions(Held[Session]):
    """
    At most C{limit} live sessions, each for C{ttl} seconds.  C{ended} is
    told of each session ended here (expired or pushed out), with why.
    """

    def keep(self, session: Session) -> None:
        self._hold(session)

    def _first_out(self) -> Session:
        return self.least_worth()

    def least_worth(self) -> Session:
        """
        The session to push out first: a one-shot before a conversation,
        then the least recently used.
        """
        return min(self._entries.values(), key=lambda s: (not s.one_shot, s.since))

    def holds(self, key: SpawnKey, held: Continuation) -> bool:
        return any(s.key == key and s.held == held for s in self._entries.values())

    def take_one_shot(self, key: SpawnKey) -> Optional[Session]:
        """
        The least recently used one-shot session started for C{key} (not
        one started ahead on a conversation), taken out: its process can
        be cleared for a new conversation with the same settings.  Never
        one of other settings, even switchable: its user may go on with
        it, another model or effort included.
        """
        for session in list(self._entries.values()):
            if session.key == key and session.one_shot and not session.prepared:
                taken = self._taken(session)
                if taken is not None:
                    return taken
        return None

    def take_next_out(self, key: SpawnKey) -> Optional[Session]:
        """
        When there are C{limit} sessions, the one the next kept session
        would push out (L{least_worth}), taken out if it was started for
        C{key} or for settings it can be switched from: a new
        conversation's own reply would end it anyway.
        """
        if not self._entries or len(self._entries) < self.limit:
            return None
        session = self.least_worth()
        if (session.key != key and not switchable(session.key, key)) or session.prepared:
            return None
        return self._taken(session)

    def take(self, key: SpawnKey, history: HistoryDigest) -> Optional[Session]:
        """
        The session whose conversation C{history} continues, taken out.
        """
        for session in reversed(self._entries.values()):
            if session.key == key and history.continues(session.held):
                return self._taken(session)
        return None
