"""
Parked tool waits: processes waiting inside their tool call(s) for the
client's results, each with its own timer.  A request that brings exactly
those results gets the process back; one that goes another way ends the
wait at once.
"""

from __future__ import annotations

from typing import Optional

import attrs
from twisted.internet.interfaces import IDelayedCall

from .continuity import Continuation, HistoryDigest, assistant_digest, is_transient
from .conversation import Conversation, Message
from .held import Held
from .process import CLIProcess, SpawnKey
from .tools import ToolCall


@attrs.define(eq=False)
class ToolWait:
    """
    A process waiting inside its MCP call(s) for the client's results.
    C{given} are the calls the client was handed; C{held} those of the same
    assistant message not handed yet (C{parallel_tool_calls: false}).
    """

    proc: CLIProcess
    key: SpawnKey
    given: frozenset[str]
    held: tuple[ToolCall, ...] = ()
    timer: Optional[IDelayedCall] = None
    #: the conversation the process holds: the request's messages, then
    #: the assistant message with the calls (by digest); None when unknown
    holds: Optional[Continuation] = None
    #: the same without the request's transient context, which the client
    #: drops from its next request (the process cannot drop it)
    also: Optional[Continuation] = None
    #: when it was parked
    since: float = 0.0


def passes_over(messages: tuple[Message, ...], wait: ToolWait) -> bool:
    """
    Whether C{messages} are the conversation C{wait}'s process holds up to
    its calls, then go on with a message other than the calls.
    """
    for held in (wait.holds, wait.also):
        if held is None:
            continue
        n = len(held.messages)
        if len(messages) > n and messages[:n] == held.messages and not held.answered_by(assistant_digest(messages[n])):
            return True
    return False


class ToolWaits(Held[ToolWait]):
    """
    At most C{limit} parked waits, each for C{ttl} seconds; the oldest
    goes first.  C{ended} is told of each wait ended here, with why.
    """

    expired = "tool_wait_expired"

    def park(self, wait: ToolWait) -> None:
        self._hold(wait)

    def take(self, key: SpawnKey, conversation: Conversation) -> Optional[ToolWait]:
        """
        The wait for exactly the tool results that end C{conversation},
        when its process holds exactly the conversation before them.
        """
        last = [b for m in conversation.last_turn for b in m.blocks]
        # the results, then at most the client's transient context
        n = 0
        while n < len(last) and last[n].get("type") == "tool_result":
            n += 1
        if not n or not all(is_transient(b) for b in last[n:]):
            return None
        ids = frozenset(str(b.get("tool_use_id")) for b in last[:n])
        history = HistoryDigest(conversation.history)

        def holds(wait: ToolWait) -> bool:
            if wait.holds is None:
                return True
            return history.continues(wait.holds) or (wait.also is not None and history.continues(wait.also))

        for wait in list(self._entries.values()):
            if wait.key == key and wait.given == ids and holds(wait):
                return self._taken(wait)
        return None

    def end_abandoned(self, key: SpawnKey, conversation: Conversation) -> None:
        """
        A request that went another way than the calls a process waits on
        ends that wait at once: its history answers (or passes over) those
        calls, or it is the same conversation up to the calls and then has
        something else where the calls were (a framework that sends tool
        results back as text, or a client that gave up on them).
        """
        called = {
            str(b.get("id"))
            for m in conversation.messages
            if m.role == "assistant"
            for b in m.blocks
            if b.get("type") == "tool_use"
        }
        messages = conversation.messages
        for wait in list(self._entries.values()):
            if wait.given & called or (wait.key == key and passes_over(messages, wait)):
                self.end(wait, "tool_wait_abandoned")
