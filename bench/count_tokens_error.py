"""
The error of claudeproxy's count_tokens estimate (claudeproxy/engine/tokens.py)
against Anthropic's published legacy tokenizer (the tokenizer.json bundled in
the anthropic SDK up to 0.38; Claude 3+ tokenizers are not published), over
captured client traffic (system prompts, tool definitions, messages) and this
repository's docs and code.  Run in a venv with `anthropic==0.34.2 tokenizers`:

    python bench/count_tokens_error.py [CAPTURES_DIR]
"""

import glob
import importlib.util as U
import json
import os
import sys

CAPTURES = sys.argv[1] if len(sys.argv) > 1 else "/work/research/clients/captures"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = U.spec_from_file_location("tokens", os.path.join(ROOT, "claudeproxy", "engine", "tokens.py"))
assert spec is not None and spec.loader is not None
tokens = U.module_from_spec(spec)
spec.loader.exec_module(tokens)
from anthropic._tokenizers import sync_get_tokenizer  # noqa: E402

tok = sync_get_tokenizer()


def real(t: str) -> int:
    return len(tok.encode(t).ids)


#: (kind, text)
Piece = tuple[str, str]
#: (kind, characters, estimated tokens, real tokens, error)
Row = tuple[str, int, int, int, float]

pieces: list[Piece] = []
for f in sorted(glob.glob(os.path.join(CAPTURES, "*.json"))):
    r = json.load(open(f))[-1]["body"]
    sysp = r.get("system")
    if isinstance(sysp, list):
        pieces.append(("system", "\n\n".join(b["text"] for b in sysp)))
    for m in r.get("messages") or r.get("input") or []:
        c = m.get("content")
        if isinstance(c, str):
            pieces.append((m.get("role"), c))
        elif isinstance(c, list):
            for b in c:
                t = b.get("text") if isinstance(b, dict) else None
                if t:
                    pieces.append((m.get("role"), t))
    for t in r.get("tools") or []:
        pieces.append(("tool", json.dumps(t, separators=(",", ":"))))
for p in [
    os.path.join(ROOT, p)
    for p in (
        # the README as it was measured, now split into the front page and these pages
        "README.md",
        "docs/clients.md",
        "docs/api.md",
        "docs/conversations.md",
        "docs/options.md",
        "docs/security.md",
        "docs/dashboard.md",
        "docs/service.md",
        "docs/design.md",
        "docs/performance.md",
        "claudeproxy/engine/pool.py",
        "docs/CLI-NOTES.md",
    )
]:
    txt = open(p).read()
    for i in range(0, len(txt), 4000):
        pieces.append((p.split("/")[-1], txt[i : i + 4000]))
seen: set[str] = set()
rows: list[Row] = []
for kind, t in pieces:
    if t in seen or len(t) < 200:
        continue
    seen.add(t)
    a, b = tokens.text_tokens(t), real(t)
    rows.append((kind, len(t), a, b, (a - b) / b))
errs = [r[4] for r in rows]
tot_a = sum(r[2] for r in rows)
tot_b = sum(r[3] for r in rows)
print("pieces", len(rows), "chars/token real", sum(r[1] for r in rows) / tot_b)
print("per-piece error min %.3f max %.3f" % (min(errs), max(errs)))
print("total est %d real %d err %.3f" % (tot_a, tot_b, (tot_a - tot_b) / tot_b))
by: dict[str, list[Row]] = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
for k, v in by.items():
    a = sum(x[2] for x in v)
    b = sum(x[3] for x in v)
    print(k, len(v), "err %.3f" % ((a - b) / b), "cpt %.2f" % (sum(x[1] for x in v) / b))
