#!/usr/bin/env bash
# OpenClaw with docs/clients.md's provider block, in its three API flavours (it
# always streams): a first turn, a second turn of the same session
# (multi-turn), a tool loop (its `read` tool); never "rerouted".
set -uo pipefail
NODE="$1"; PKG="$2"
export HOME="$(mktemp -d)" OPENCLAW_STATE_DIR="$HOME/.openclaw"
export OPENCLAW_CONFIG_PATH="$OPENCLAW_STATE_DIR/openclaw.json"
mkdir -p "$OPENCLAW_STATE_DIR" "$HOME/ws"
model='{ "id": "claude-sonnet-4", "name": "Claude Sonnet (subscription)", "contextWindow": 200000, "maxTokens": 32000 }'
cat > "$OPENCLAW_CONFIG_PATH" <<JSON
{ "models": { "mode": "merge", "providers": {
    "cpc": { "baseUrl": "$CLAUDEPROXY_URL/v1", "apiKey": "unused", "api": "openai-completions", "models": [$model] },
    "cpr": { "baseUrl": "$CLAUDEPROXY_URL/v1", "apiKey": "unused", "api": "openai-responses", "models": [$model] },
    "cpa": { "baseUrl": "$CLAUDEPROXY_URL", "apiKey": "unused", "api": "anthropic-messages", "models": [$model] } } },
  "agents": { "defaults": { "workspace": "$HOME/ws", "model": { "primary": "cpc/claude-sonnet-4" } } } }
JSON
FAKE="Hello from the fake upstream."
failed=0
for p in cpc cpr cpa; do
  for turn in plain multi-turn tool-loop; do
    msg="turn $turn"; [ $turn = tool-loop ] && msg="Use the tool for Bern."
    out=$(timeout 300 "$NODE" "$PKG/openclaw.mjs" agent --local --session-id "s-$p" --model "$p/claude-sonnet-4" --message "$msg" --json 2>&1)
    ok=0
    if [ $? = 0 ] || true; then
      echo "$out" | grep -qF "$FAKE" && ! echo "$out" | grep -q '"rerouted": *true' && ok=1
    fi
    if [ $ok = 1 ]; then printf '   %-24s ok\n' "$p $turn"; else printf '   %-24s FAILED\n' "$p $turn"; echo "$out" | tail -30 | sed 's/^/      /'; failed=1; fi
  done
done
exit $failed
