"""
The layers import downwards only: C{claudeproxy.web} knows no wire
protocol (the protocols' apps are mounted above it, in
L{claudeproxy.app}), and the engine knows neither HTTP nor a protocol.
Checked on the source, by the imports each module states, and for the
engine also by the words it uses: a protocol's vocabulary belongs to the
protocol.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules_under(package: str) -> dict[str, str]:
    """
    Every module of C{package} (dotted), by its dotted name, with its path.
    """
    found = {}
    base = os.path.join(ROOT, *package.split("."))
    for dirpath, _, files in os.walk(base):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                dotted = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[: -len(".__init__")]
                found[dotted] = path
    return found


def imported(module: str, path: str) -> set[str]:
    """
    The absolute names of the modules C{module} imports (relative imports
    resolved; C{from X import Y} gives C{X} and C{X.Y}), wherever in its
    source (a function's local import included).
    """
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                source = base + ("." + node.module if node.module else "")
            else:
                source = node.module or ""
            names.add(source)
            names.update(source + "." + alias.name for alias in node.names)
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module, path in sorted(modules_under(package).items()):
        for name in sorted(imported(module, path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append("%s imports %s" % (module, name))
    return found


#: names that belong to a protocol's wire vocabulary, not the engine's
PROTOCOL_NAMES = frozenset({"to_openai", "to_anthropic", "finish_reason", "openai_call_id", "chatcmpl"})
#: wire words no engine string or name contains
PROTOCOL_WORDS = ("chat.completion", "response.output", "finish_reason", "chatcmpl-", "image_url")


def vocabulary(package: str) -> list[str]:
    """
    Where a module of C{package} names a protocol's vocabulary: a name in
    L{PROTOCOL_NAMES}, or a name or string (docstrings included) holding
    one of L{PROTOCOL_WORDS}.
    """
    found = []
    for module, path in sorted(modules_under(package).items()):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type not in (tokenize.NAME, tokenize.STRING):
                continue
            if token.string in PROTOCOL_NAMES or any(w in token.string for w in PROTOCOL_WORDS):
                found.append("%s:%d %s" % (module, token.start[0], token.string[:60]))
    return found


class LayerTests(SynchronousTestCase):
    def test_resolves_relative_imports(self) -> None:
        """
        The scan sees what the app module imports, relative or not: the
        protocols' routes and the web layer.
        """
        names = imported("claudeproxy.app", os.path.join(ROOT, "claudeproxy", "app.py"))
        self.assertIn("claudeproxy.protocols.chat.routes", names)
        self.assertIn("claudeproxy.web.app.DaemonApp", names)

    def test_web_imports_no_protocol(self) -> None:
        """
        No module under C{claudeproxy/web} imports C{claudeproxy.protocols}.
        """
        self.assertEqual(offenders("claudeproxy.web", ("claudeproxy.protocols", "claudeproxy.app")), [])

    def test_engine_imports_no_web_or_protocol(self) -> None:
        """
        The engine knows no HTTP and no protocol.
        """
        forbidden = ("claudeproxy.web", "claudeproxy.protocols", "claudeproxy.app", "klein", "treq", "twisted.web")
        self.assertEqual(offenders("claudeproxy.engine", forbidden), [])

    def test_engine_speaks_no_protocol(self) -> None:
        """
        The engine's names and strings hold no protocol's vocabulary: stop
        reasons, errors and tool ids are the engine's own, and each
        protocol maps them to its wire names.
        """
        self.assertEqual(vocabulary("claudeproxy.engine"), [])

    def test_vocabulary_is_seen(self) -> None:
        """
        The vocabulary scan finds protocol words where they are: in the
        protocols.
        """
        found = vocabulary("claudeproxy.protocols.chat")
        self.assertTrue(any("finish_reason" in f for f in found), found)
        self.assertTrue(any("chat.completion" in f for f in found), found)

    def test_protocols_import_no_other_protocol_or_app(self) -> None:
        """
        A protocol package imports no other protocol and not the app that
        composes them.
        """
        found = []
        for name in ("anthropic", "chat", "responses"):
            others = tuple("claudeproxy.protocols." + o for o in ("anthropic", "chat", "responses") if o != name)
            found += offenders("claudeproxy.protocols." + name, others + ("claudeproxy.app",))
        self.assertEqual(found, [])
