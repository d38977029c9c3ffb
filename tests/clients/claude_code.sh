#!/usr/bin/env bash
# Claude Code as a client of /v1/messages, configured as docs/clients.md says
# (ANTHROPIC_BASE_URL at the daemon): plain, streamed (stream-json),
# multi-turn (--resume), a tool loop (its Read tool), structured output
# (--json-schema).  It sends context_management, mid-conversation system
# messages and count_tokens as it does against the API.
set -uo pipefail
CLAUDE="$1"
export HOME="$(mktemp -d)" ANTHROPIC_BASE_URL="$CLAUDEPROXY_URL" ANTHROPIC_API_KEY=unused
unset CLAUDE_CODE_OAUTH_TOKEN
cd "$(mktemp -d)"
FAKE="Hello from the fake upstream."
failed=0
check() { # name ok output
  if [ "$2" = 1 ]; then printf '   %-24s ok\n' "$1"; else printf '   %-24s FAILED\n' "$1"; echo "$3" | tail -25 | sed 's/^/      /'; failed=1; fi
}
c() { timeout 180 "$CLAUDE" -p "$@" </dev/null 2>&1; }
out=$(c "hi"); ok=0; [ "$out" = "$FAKE" ] && ok=1; check plain $ok "$out"
out=$(c --output-format stream-json --verbose "hi"); ok=0
echo "$out" | grep '"type":"result"' | grep -q '"subtype":"success"' && echo "$out" | grep -qF "$FAKE" && ok=1; check stream $ok "$out"
sid=$(echo "$out" | sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' | tail -1)
out=$(c --resume "$sid" "again"); ok=0; [ "$out" = "$FAKE" ] && ok=1; check multi-turn $ok "$out"
out=$(c --output-format stream-json --verbose "Use the tool for Bern."); ok=0
echo "$out" | grep -q '"type":"tool_result"' && echo "$out" | grep -q '"subtype":"success"' && ok=1; check tool-loop $ok "$out"
schema='{"type":"object","properties":{"name":{"type":"string"},"population":{"type":"integer"}},"required":["name","population"]}'
out=$(c --output-format json --json-schema "$schema" "A city?"); ok=0
echo "$out" | grep -q '"structured_output":{"name"' && ok=1; check structured $ok "$out"
exit $failed
