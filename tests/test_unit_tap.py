"""
Unit tests for L{claudeproxy._tap}: the C{twistd claudeproxy} options, the
service they make, finding the CLI, and the twistd plugin.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from claudeproxy._tap import DEFAULT_LISTEN, OPTIONS, Options, config_from_options, find_claude, makeService
from claudeproxy.config import DEFAULTS
from claudeproxy.optionspec import option, options_of, options_table, positive_int


def parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        o = parse()
        self.assertEqual(o["listen"], DEFAULT_LISTEN)
        self.assertEqual(DEFAULT_LISTEN, "tcp:3456:interface=127.0.0.1")
        self.assertIsNone(o["claude"])
        self.assertEqual(o["max-concurrent"], 4)
        self.assertEqual(o["max-queued"], 16)
        self.assertEqual(o["request-timeout"], 600.0)
        self.assertEqual(o["idle-timeout"], 120.0)
        self.assertEqual(o["system-prompt-mode"], "replace")
        self.assertIsNone(o["api-key"])
        self.assertIsNone(o["api-key-file"])
        self.assertEqual(o["model-alias"], [])
        self.assertEqual(o["max-body"], 32 * 1024 * 1024)
        self.assertEqual(o["upstream-retries"], 2)
        self.assertFalse(o["keep-api-key"])
        self.assertFalse(o["use-claude-settings"])

    def test_use_claude_settings(self) -> None:
        """
        The opt-in reaches the config (off by default).
        """
        env = {"PATH": "/nowhere", "HOME": "/h"}
        self.assertFalse(config_from_options(parse(), env, "/w").use_claude_settings)
        self.assertTrue(config_from_options(parse("--use-claude-settings"), env, "/w").use_claude_settings)

    def test_every_option(self) -> None:
        o = parse(
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--claude",
            "/opt/claude",
            "--max-concurrent",
            "2",
            "--max-queued",
            "0",
            "--request-timeout",
            "30.5",
            "--idle-timeout",
            "5",
            "--system-prompt-mode",
            "append",
            "--api-key",
            "sekrit",
            "--model-alias",
            "gpt-4o=sonnet",
            "--model-alias",
            " gpt-4 = claude-opus-4 ",
            "--max-body",
            "1024",
            "--upstream-retries",
            "0",
            "--keep-api-key",
        )
        self.assertEqual(o["listen"], "tcp:0:interface=127.0.0.1")
        self.assertEqual(o["claude"], "/opt/claude")
        self.assertEqual(o["max-concurrent"], 2)
        self.assertEqual(o["max-queued"], 0)
        self.assertEqual(o["request-timeout"], 30.5)
        self.assertEqual(o["idle-timeout"], 5.0)
        self.assertEqual(o["system-prompt-mode"], "append")
        self.assertEqual(o["api-key"], "sekrit")
        self.assertEqual(o["model-alias"], [("gpt-4o", "sonnet"), ("gpt-4", "claude-opus-4")])
        self.assertEqual(o["max-body"], 1024)
        self.assertEqual(o["upstream-retries"], 0)
        self.assertTrue(o["keep-api-key"])

    def test_equals_form(self) -> None:
        o = parse("--max-concurrent=8", "--idle-timeout=0.5")
        self.assertEqual(o["max-concurrent"], 8)
        self.assertEqual(o["idle-timeout"], 0.5)

    def test_model_alias_full_id_target(self) -> None:
        self.assertEqual(parse("--model-alias", "big=claude-opus-4-8")["model-alias"], [("big", "claude-opus-4-8")])

    def test_model_alias_bad_forms(self) -> None:
        for bad in ("gpt-4o", "=sonnet", "gpt-4o=", " = ", "gpt-4o: sonnet"):
            e = self.assertRaises(usage.UsageError, parse, "--model-alias", bad)
            self.assertIn("NAME=TARGET", str(e))

    def test_model_alias_unknown_target(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--model-alias", "gpt-4o=gpt-5")
        self.assertIn("not a Claude model", str(e))

    def test_default_model(self) -> None:
        self.assertEqual(config_from_options(parse(), {}, "/tmp").default_model, "claude-sonnet-4")
        options = parse("--default-model", "big", "--model-alias", "big=opus")
        self.assertEqual(config_from_options(options, {}, "/tmp").default_model, "big")
        e = self.assertRaises(usage.UsageError, parse, "--default-model", "gpt-5")
        self.assertIn("--default-model gpt-5", str(e))

    def test_numbers_validated(self) -> None:
        for args in (
            ("--max-concurrent", "0"),
            ("--max-concurrent", "two"),
            ("--max-queued", "-1"),
            ("--request-timeout", "0"),
            ("--request-timeout", "-3"),
            ("--idle-timeout", "nan"),
            ("--idle-timeout", "soon"),
            ("--max-body", "0"),
            ("--upstream-retries", "-1"),
            ("--upstream-retries", "1.5"),
        ):
            self.assertRaises(usage.UsageError, parse, *args)

    def test_system_prompt_mode(self) -> None:
        self.assertEqual(parse("--system-prompt-mode", "replace")["system-prompt-mode"], "replace")
        e = self.assertRaises(usage.UsageError, parse, "--system-prompt-mode", "prepend")
        self.assertIn("replace or append", str(e))

    def test_api_key_empty(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--api-key", "   ")

    def test_api_key_file(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("  file-key  \n")
        o = parse("--api-key-file", path)
        self.assertEqual(o["api-key"], "file-key")
        self.assertEqual(o["api-keys"], [("default", "file-key")])

    def test_api_key_file_missing(self) -> None:
        e = self.assertRaises(usage.UsageError, parse, "--api-key-file", self.mktemp())
        self.assertIn("cannot read --api-key-file", str(e))

    def test_api_key_file_empty(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n")
        e = self.assertRaises(usage.UsageError, parse, "--api-key-file", path)
        self.assertIn("empty", str(e))

    def test_api_key_and_file(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("k\n")
        # two plain keys would both be "default": name them
        e = self.assertRaises(usage.UsageError, parse, "--api-key", "k2", "--api-key-file", path)
        self.assertIn("more than one API key", str(e))

    def test_named_api_keys(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("# my tools\neditor=e-key\n\nscripts=s-key\n")
        o = parse("--api-key", "agent=a-key", "--api-key", "plain", "--api-key-file", path)
        self.assertEqual(
            o["api-keys"], [("agent", "a-key"), ("default", "plain"), ("editor", "e-key"), ("scripts", "s-key")]
        )
        config = config_from_options(o, {"PATH": "/nowhere", "HOME": "/h"}, "/w")
        self.assertEqual(config.api_keys, tuple(o["api-keys"]))
        self.assertIsNone(config.api_key)
        self.assertRaises(usage.UsageError, parse, "--api-key", "a=1", "--api-key", "a=2")
        self.assertRaises(usage.UsageError, parse, "--api-key", "a=1", "--api-key", "b=1")

    def test_usage_retention(self) -> None:
        self.assertEqual(parse()["usage-retention"], 90.0)
        o = parse("--usage-retention", "7")
        self.assertEqual(config_from_options(o, {"PATH": "/nowhere", "HOME": "/h"}, "/w").usage_retention, 7.0)
        self.assertRaises(usage.UsageError, parse, "--usage-retention", "0")

    def test_unknown_option(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--no-such-option")

    def test_every_field_an_option(self) -> None:
        """
        Each option field of L{Config} is an option whose default is the
        field's, and what is given reaches the field.
        """
        env = {"PATH": "/nowhere", "HOME": "/h"}
        text = str(Options())
        config = config_from_options(parse(), env, "/w")
        decided = {"claude", "state_dir"}
        for each in OPTIONS:
            self.assertIn("--" + each.name, text)
            if each.field not in decided:
                self.assertEqual(getattr(config, each.field), getattr(DEFAULTS, each.field), each.name)
        given = config_from_options(
            parse(
                "--late-binding", "off", "--max-cli-processes", "3", "--cors-origin", "http://a:1", "--warm-ttl", "9"
            ),
            env,
            "/w",
        )
        self.assertEqual(
            (given.late_binding, given.max_cli_processes, given.cors_origins, given.warm_ttl),
            (False, 3, ("http://a:1",), 9.0),
        )

    def test_a_field_is_an_option(self) -> None:
        """
        A field made with C{option} is all an option needs: its name, kind,
        default, help and the docs' row follow from it.
        """

        @attrs.frozen
        class Small:
            max_widgets: int = option(3, help="Widgets at most.", parse=positive_int)
            loud: bool = option(False, help="Shout.")
            not_an_option: str = ""

        (widgets, loud) = options_of(Small)
        self.assertEqual((widgets.name, widgets.kind, widgets.default), ("max-widgets", "param", 3))
        self.assertEqual(widgets.read("7"), 7)
        self.assertRaises(ValueError, widgets.read, "0")
        self.assertEqual((loud.name, loud.kind, loud.to_config(1)), ("loud", "flag", True))
        self.assertIn("| `--max-widgets` | `3` | Widgets at most. |", options_table(Small))
        self.assertIn("| `--loud` | off | Shout. |", options_table(Small))

    def test_help_mentions_options(self) -> None:
        text = str(Options())
        for name in ("--listen", "--claude", "--max-concurrent", "--model-alias", "--keep-api-key", "--api-key-file"):
            self.assertIn(name, text)


def fake_claude(test: SynchronousTestCase, mode: int = 0o755) -> str:
    directory = os.path.abspath(test.mktemp())
    os.makedirs(directory)
    path = os.path.join(directory, "claude")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(path, mode)
    return path


class FindClaudeTests(SynchronousTestCase):
    def test_on_path(self) -> None:
        claude = fake_claude(self)
        path, why = find_claude(None, {"PATH": "/nonexistent:" + os.path.dirname(claude)})
        self.assertEqual((path, why), (claude, ""))

    def test_not_on_path(self) -> None:
        path, why = find_claude(None, {"PATH": "/nonexistent-a:/nonexistent-b"})
        self.assertIsNone(path)
        self.assertIn("not found on PATH", why)
        self.assertIn("/nonexistent-a", why)

    def test_not_executable_on_path_is_not_found(self) -> None:
        claude = fake_claude(self, 0o644)
        path, why = find_claude(None, {"PATH": os.path.dirname(claude)})
        self.assertIsNone(path)

    def test_given(self) -> None:
        claude = fake_claude(self)
        self.assertEqual(find_claude(claude, {"PATH": ""}), (claude, ""))

    def test_given_relative_made_absolute(self) -> None:
        claude = fake_claude(self)
        relative = os.path.relpath(claude)
        self.assertEqual(find_claude(relative, {}), (claude, ""))

    def test_given_missing(self) -> None:
        missing = os.path.abspath(self.mktemp())
        path, why = find_claude(missing, {})
        self.assertEqual(path, missing)
        self.assertIn("missing or not executable", why)

    def test_given_not_executable(self) -> None:
        claude = fake_claude(self, 0o644)
        path, why = find_claude(claude, {})
        self.assertEqual(path, claude)
        self.assertIn("not executable", why)


def children(service: Any) -> list[Any]:
    return list(service)


class MakeServiceTests(SynchronousTestCase):
    def make(self, *args: str, env: Optional[dict[str, str]] = None) -> MultiService:
        options = parse(*args)
        service = makeService(options, reactor=MemoryReactorClock(), env=env or {"PATH": "/nonexistent"})
        for child in children(service):
            manager = getattr(child, "manager", None)
            if manager is not None and manager.workdir:
                self.addCleanup(self._rmdir, manager.workdir)
        self.assertIsInstance(service, MultiService)
        return service  # type: ignore[return-value]

    @staticmethod
    def _rmdir(path: str) -> None:
        try:
            os.rmdir(path)
        except OSError:
            pass

    def test_service_tree(self) -> None:
        service = self.make("--listen", "tcp:0:interface=127.0.0.1")
        self.assertTrue(IService.providedBy(service))
        kids = children(service)
        self.assertTrue(any(isinstance(k, StreamServerEndpointService) for k in kids))
        self.assertGreaterEqual(len(kids), 2)
        self.assertFalse(service.running)

    def test_with_claude_found(self) -> None:
        claude = fake_claude(self)
        service = self.make(env={"PATH": os.path.dirname(claude)})
        self.assertTrue(any(isinstance(k, StreamServerEndpointService) for k in children(service)))


class PluginTests(SynchronousTestCase):
    def test_plugin(self) -> None:
        from twisted.plugins import claudeproxy_plugin

        maker = claudeproxy_plugin.claudeproxy
        self.assertEqual(maker.tapname, "claudeproxy")
        self.assertEqual(maker.module, "claudeproxy._tap")
        self.assertTrue(maker.description)
        self.assertIs(maker.options, Options)

    def test_plugin_discovered(self) -> None:
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        names = [p.tapname for p in getPlugins(IServiceMaker)]
        self.assertIn("claudeproxy", names)
