"""
L{claudeproxy.engine.spec}: a request's L{TurnSettings} as the engine reads
them (the process's key, the turn's policy, the spec as served).
"""

from __future__ import annotations

from typing import Any, cast

import attrs
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.config import Config
from claudeproxy.engine.conversation import Conversation, Message, text_block
from claudeproxy.engine.process import SpawnKey
from claudeproxy.engine.serve import TurnServer, spawn_key
from claudeproxy.engine.spec import TurnPolicy, TurnSettings, TurnSpec
from claudeproxy.engine.tools import ToolUse
from claudeproxy.engine.tools import spec as tool_spec

WEATHER = tool_spec("get_weather", "Weather", {"type": "object"})
HI = Conversation("Be brief.", [Message("user", [text_block("hi")])])


class SettingsTests(SynchronousTestCase):
    def test_spawn_key(self) -> None:
        tools = ToolUse((WEATHER,), "required", parallel=False, web_search=True, skipped=("code_interpreter",))
        settings = TurnSettings(("END",), "high", tools, '{"type":"object"}', 100)
        key = spawn_key(TurnSpec("gpt-4o", "sonnet", HI, settings=settings), Config())
        self.assertEqual(
            key,
            SpawnKey(
                "sonnet",
                "Be brief.",
                Config().system_prompt_mode,
                "high",
                tools=(WEATHER,),
                json_schema='{"type":"object"}',
                max_tokens=100,
                web_search=True,
            ),
        )

    def test_policy(self) -> None:
        tools = ToolUse((WEATHER,), "get_weather", parallel=False)
        spec = TurnSpec("m", "sonnet", HI, stream=True, settings=TurnSettings(("END",), tools=tools, json_schema="{}"))
        self.assertEqual(spec.policy, TurnPolicy(("END",), False, True, True, True))
        self.assertEqual(TurnSpec("m", "sonnet", HI).policy, TurnPolicy())

    def test_tool_required(self) -> None:
        self.assertFalse(ToolUse((WEATHER,)).required)
        self.assertFalse(ToolUse((), "required").required)
        self.assertTrue(ToolUse((WEATHER,), "required").required)

    def test_history_tools_offered_the_rest_kept(self) -> None:
        """
        A history with tool calls and no tools declared is served with the
        tools it names; the request's other settings stay as they were.
        """
        turns = TurnServer(MemoryReactorClock(), Config(), cast(Any, None), lambda: 0.0)
        call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
        result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
        history = Conversation(
            None, [Message("user", [text_block("hi")]), Message("assistant", [call]), Message("user", [result])]
        )
        settings = TurnSettings(effort="low", tools=ToolUse(parallel=False, skipped=("x",)), max_tokens=5)
        served = turns.prepared(TurnSpec("m", "sonnet", history, settings=settings))
        offered = served.settings.tools
        self.assertEqual([t.name for t in offered.specs], ["get_weather"])
        self.assertEqual(attrs.evolve(served.settings, tools=attrs.evolve(offered, specs=())), settings)
        plain = TurnSpec("m", "sonnet", HI, settings=settings)
        self.assertIs(turns.prepared(plain), plain)
