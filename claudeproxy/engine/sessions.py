"""
Live sessions: processes kept after a clean reply, holding their
conversation, so the next request of that conversation writes only its
new turn.  Kept by worth: when there are more than C{limit}, a one-shot
(a conversation of one exchange, such as a title or tags task that is
never continued) goes before a conversation the user is still in, and the
least recently used goes first among equals.  A one-shot whose settings'
one-shots are often continued (a chat's first message, where every new
chat starts with one) counts as a conversation: it is the start of one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable, Deque, Optional

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from .continuity import Continuation, HistoryDigest
from .held import Held
from .process import CLIProcess, SpawnKey


@attrs.define(eq=False)
class Fate:
    """
    Whether a one-shot was continued: its session and its settings' record
    share it.
    """

    continued: bool = False


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
    #: for a one-shot: whether it was continued
    fate: Fate = attrs.field(factory=Fate)

    @property
    def one_shot(self) -> bool:
        """
        A conversation of one exchange: nothing says it will go on.
        """
        return not any(m.role == "assistant" for m in self.held.messages)


#: how many of each settings' recent one-shots are remembered
ONE_SHOTS_SEEN = 16
#: the share of a settings' one-shots continued from which a new one
#: counts as the start of a conversation
STARTS_CONVERSATIONS = 0.25
#: how many settings' one-shots are remembered
KEYS_SEEN = 32


class LiveSessions(Held[Session]):
    """
    At most C{limit} live sessions, each for C{ttl} seconds.  C{ended} is
    told of each session ended here (expired or pushed out), with why.
    """

    def __init__(
        self, reactor: IReactorTime, limit: int, ttl: float, ended: Callable[[Session, str], Optional[bool]]
    ) -> None:
        super().__init__(reactor, limit, ttl, ended)
        #: of each key's recent one-shots, whether each was continued
        self._one_shots: OrderedDict[SpawnKey, Deque[Fate]] = OrderedDict()

    def keep(self, session: Session) -> None:
        if session.one_shot and not session.prepared:
            seen = self._one_shots
            record = seen.setdefault(session.key, deque(maxlen=ONE_SHOTS_SEEN))
            seen.move_to_end(session.key)
            while len(seen) > KEYS_SEEN:
                seen.popitem(last=False)
            record.append(session.fate)
        self._hold(session)

    def _first_out(self) -> Session:
        return self.least_worth()

    def starts_conversations(self, key: SpawnKey) -> bool:
        """
        Whether one-shots with C{key}'s settings are often continued: at
        least L{STARTS_CONVERSATIONS} of the recent ones.
        """
        record = self._one_shots.get(key, ())
        continued = sum(1 for fate in record if fate.continued)
        return continued > 0 and continued >= STARTS_CONVERSATIONS * len(record)

    def is_task(self, session: Session) -> bool:
        """
        A one-shot that is likely never continued: its settings' one-shots
        seldom are (a title, tags or follow-up task).
        """
        return session.one_shot and not self.starts_conversations(session.key)

    def least_worth(self) -> Session:
        """
        The session to push out first: a task (L{is_task}) before a
        conversation, then the least recently used.
        """
        return min(self._entries.values(), key=lambda s: (not self.is_task(s), s.since))

    def holds(self, key: SpawnKey, held: Continuation) -> bool:
        return any(s.key == key and s.held == held for s in self._entries.values())

    def take_one_shot(self, key: SpawnKey) -> Optional[Session]:
        """
        The least recently used one-shot session started for C{key} (not
        one started ahead on a conversation), taken out: its process can
        be cleared for a new conversation with the same settings.
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
        C{key}: a new conversation's own reply would end it anyway.
        """
        if not self._entries or len(self._entries) < self.limit:
            return None
        session = self.least_worth()
        if session.key != key or session.prepared:
            return None
        return self._taken(session)

    def take(self, key: SpawnKey, history: HistoryDigest) -> Optional[Session]:
        """
        The session whose conversation C{history} continues, taken out.
        """
        for session in reversed(self._entries.values()):
            if session.key == key and history.continues(session.held):
                session.fate.continued = True
                return self._taken(session)
        return None
