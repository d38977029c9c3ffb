"""
What the process manager is started with, as two values: how a CLI
process is started (L{CLISetup}) and how many processes are kept, for how
long (L{PoolLimits}).
"""

from __future__ import annotations

from typing import Mapping, Optional

import attrs

from ..config import DEFAULTS
from .binding import HISTORY_WRITE_MAX
from .process import ISOLATED, SpawnKey


@attrs.frozen
class CLISetup:
    """
    How the daemon starts CLI processes.

    @ivar claude: the CLI's executable, or None when there is none.
    @ivar missing_reason: why there is none (the 503 a request gets says it).
    @ivar env: the environment processes start with.
    @ivar workdir: the directory processes start in.
    @ivar settings: the CLI flags that keep the user's own set-up out (or
        let their settings in: --use-claude-settings).
    @ivar default_key: the settings warm processes start with (None: the
        CLI's own).
    @ivar binding: warm processes are generic, bound to a request's
        settings and history when it arrives (else each is started with
        one request's settings).
    """

    claude: Optional[str]
    missing_reason: str = ""
    env: Mapping[str, str] = attrs.field(factory=dict)
    workdir: str = "."
    settings: tuple[str, ...] = ISOLATED
    default_key: Optional[SpawnKey] = None
    binding: bool = False


@attrs.frozen
class PoolLimits:
    """
    How many CLI processes the manager keeps, and for how long (seconds).

    @ivar warm: the most warm processes kept started ahead.
    @ivar warm_cap: the most warm processes memory allows (None:
        L{claudeproxy.engine.warm.memory_cap}).
    @ivar warm_ttl: how long a warm process waits unused.
    @ivar max_sessions: the most live conversations kept.
    @ivar session_ttl: how long a live conversation is kept.
    @ivar max_tool_waits: the most processes parked on tool calls.
    @ivar tool_wait: how long a parked tool call waits for its results.
    @ivar max_processes: the most CLI processes, serving, idle or parked
        (0: no limit); the oldest idle or parked one makes room.
    @ivar max_starting: the most warm processes starting at once (0:
        L{claudeproxy.engine.warm.start_slots}, one a core).
    @ivar history_write_max: the most user turns of history written into a
        running process (more go in a session file); set again when the
        CLI's version is known.
    """

    warm: int = 0
    warm_cap: Optional[int] = None
    warm_ttl: float = DEFAULTS.warm_ttl
    max_sessions: int = 0
    session_ttl: float = DEFAULTS.session_ttl
    max_tool_waits: int = 64
    tool_wait: float = DEFAULTS.tool_wait
    max_processes: int = 0
    history_write_max: int = HISTORY_WRITE_MAX
    max_starting: int = 0
