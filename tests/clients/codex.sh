#!/usr/bin/env bash
# Codex CLI with docs/clients.md's config.toml (default tools, nothing turned off):
# plain, a resumed (multi-turn) turn, a tool loop (exec_command), the JSON
# event stream (--json), structured output (--output-schema).
set -uo pipefail
CODEX="$1"
export CODEX_HOME="$(mktemp -d)"
cat > "$CODEX_HOME/config.toml" <<TOML
model = "claude-sonnet-4"
model_provider = "claudeproxy"

[model_providers.claudeproxy]
name = "claudeproxy"
base_url = "$CLAUDEPROXY_URL/v1"
wire_api = "responses"
env_key = "CLAUDEPROXY_KEY"
TOML
export CLAUDEPROXY_KEY=unused
cd "$(mktemp -d)"
FAKE="Hello from the fake upstream."
failed=0
check() { # name ok output
  if [ "$2" = 1 ]; then printf '   %-24s ok\n' "$1"; else printf '   %-24s FAILED\n' "$1"; echo "$3" | tail -25 | sed 's/^/      /'; failed=1; fi
}
x() { timeout 180 "$CODEX" exec --skip-git-repo-check "$@" </dev/null 2>&1; }
out=$(x "hi"); ok=0; [ $? = 0 ] && echo "$out" | grep -qF "$FAKE" && ok=1; check plain $ok "$out"
sid=$(echo "$out" | sed -n 's/^session id: *//p' | head -1)
out=$(x resume "$sid" "again"); ok=0; [ $? = 0 ] && echo "$out" | grep -qF "$FAKE" && ok=1; check multi-turn $ok "$out"
out=$(x --json "hi"); ok=0; echo "$out" | grep -q '"type":"turn.completed"' && echo "$out" | grep -qF "$FAKE" && ok=1; check stream-json $ok "$out"
out=$(x --json "Use the tool for Bern."); ok=0
echo "$out" | grep -q '"type":"command_execution"' && echo "$out" | grep -q '"type":"turn.completed"' && echo "$out" | grep -qF "$FAKE" && ok=1
check tool-loop $ok "$out"
echo '{"type":"object","properties":{"name":{"type":"string"},"population":{"type":"integer"}},"required":["name","population"],"additionalProperties":false}' > schema.json
out=$(x --output-schema schema.json -o last.txt "A city?"); ok=0
python3 -c 'import json,sys; d=json.load(open("last.txt")); sys.exit(0 if set(d)=={"name","population"} else 1)' 2>/dev/null && ok=1
check structured $ok "$out $(cat last.txt 2>/dev/null)"
exit $failed
