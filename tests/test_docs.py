"""
The README and the pages in C{docs/}: the front page stays short, every
relative link (a file, and a C{#anchor} in it) leads somewhere, and the
options table is the one L{Config} makes.
"""

from __future__ import annotations

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from claudeproxy.config import Config
from claudeproxy.optionspec import options_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def markdown_files() -> list[str]:
    docs = os.path.join(ROOT, "docs")
    return [os.path.join(ROOT, "README.md")] + sorted(
        os.path.join(docs, name) for name in os.listdir(docs) if name.endswith(".md")
    )


def anchors(text: str) -> set[str]:
    """
    The anchors GitHub gives a page's headings: lower case, punctuation
    dropped, spaces as hyphens, repeats numbered.
    """
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", text).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if heading is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else "%s-%d" % (slug, n))
    return found


def relative_links(text: str) -> list[str]:
    return [
        target
        for target in LINK.findall(FENCE.sub("", text))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


class DocsTests(SynchronousTestCase):
    def test_front_page_short(self) -> None:
        """
        The README is a front page of at most 400 lines that links at least
        three pages in C{docs/}.
        """
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        self.assertLessEqual(len(text.splitlines()), 400)
        pages = {t.split("#")[0] for t in relative_links(text) if t.startswith("docs/") and ".md" in t}
        self.assertGreaterEqual(len(pages), 3, pages)

    def test_links_resolve(self) -> None:
        """
        Every relative link in the README and C{docs/*.md} names a file that
        exists, and its anchor, if any, is a heading of that file.
        """
        broken = []
        for path in markdown_files():
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for target in relative_links(text):
                name, _, anchor = target.partition("#")
                goal = os.path.normpath(os.path.join(os.path.dirname(path), name)) if name else path
                where = "%s: %s" % (os.path.relpath(path, ROOT), target)
                if not os.path.exists(goal):
                    broken.append(where + " (no such file)")
                elif anchor and goal.endswith(".md"):
                    with open(goal, encoding="utf-8") as f:
                        if anchor not in anchors(f.read()):
                            broken.append(where + " (no such heading)")
        self.assertEqual(broken, [])

    def test_options_table_from_config(self) -> None:
        """
        docs/options.md lists every option as C{Config}'s fields say: name,
        default and meaning (C{python -m claudeproxy.config} prints the
        table).
        """
        with open(os.path.join(ROOT, "docs", "options.md"), encoding="utf-8") as f:
            text = f.read()
        table = options_table(Config)
        self.assertIn(table, text, "docs/options.md's table is not Config's: python -m claudeproxy.config")
        self.assertIn("| `--max-cli-processes` | `24` |", table)
