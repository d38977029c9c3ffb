#!/usr/bin/env bash
# opencode with docs/clients.md's opencode.json: plain, streamed (--format json
# events), multi-turn (--continue), a tool loop (its read tool).
set -uo pipefail
OPENCODE="$1"
export HOME="$(mktemp -d)" OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1
cd "$(mktemp -d)"
cat > opencode.json <<JSON
{
  "\$schema": "https://opencode.ai/config.json",
  "provider": {
    "claudeproxy": {
      "npm": "@ai-sdk/openai-compatible",
      "options": { "baseURL": "$CLAUDEPROXY_URL/v1", "apiKey": "unused" },
      "models": { "claude-sonnet-4": {}, "claude-opus-4": {} }
    }
  },
  "model": "claudeproxy/claude-sonnet-4"
}
JSON
FAKE="Hello from the fake upstream."
failed=0
check() { # name ok output
  if [ "$2" = 1 ]; then printf '   %-24s ok\n' "$1"; else printf '   %-24s FAILED\n' "$1"; echo "$3" | tail -25 | sed 's/^/      /'; failed=1; fi
}
o() { timeout 180 "$OPENCODE" run "$@" </dev/null 2>&1; }
out=$(o "hi"); ok=0; echo "$out" | grep -qF "$FAKE" && ok=1; check plain $ok "$out"
out=$(o --format json "hi"); ok=0; echo "$out" | grep -qF "$FAKE" && ok=1; check stream $ok "$out"
out=$(o --continue "again"); ok=0; echo "$out" | grep -qF "$FAKE" && ok=1; check multi-turn $ok "$out"
out=$(o --format json "Use the tool for Bern."); ok=0
echo "$out" | grep -q '"tool_use"\|"type":"tool"' && echo "$out" | grep -qF "$FAKE" && ok=1; check tool-loop $ok "$out"
exit $failed
