"""
The daemon's embedded state: one SQLite file in its state directory
(C{claudeproxy.sqlite3}), written off the reactor thread.  The Responses
store lives here; each kind of state has a module of its own.
"""

from .db import StateDB, open_state

__all__ = ["StateDB", "open_state"]
