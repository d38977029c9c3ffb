"""
The engine: conversations and turns, the Claude Code CLI processes that
serve them (warm pool, live sessions, parked tool calls), and the tool
bridge.  It knows nothing of HTTP or of any protocol's wire format; each
protocol translates its requests into a L{TurnSpec} and renders a turn
through a L{TurnOutput}.
"""

from .conversation import Conversation, Message
from .errors import ProxyError
from .pool import Limiter, ProcessManager
from .serve import TurnServer
from .spec import TurnSpec
from .streaming import Outcome, TurnOutput

__all__ = [
    "Conversation",
    "Limiter",
    "Message",
    "Outcome",
    "ProcessManager",
    "ProxyError",
    "TurnOutput",
    "TurnServer",
    "TurnSpec",
]
