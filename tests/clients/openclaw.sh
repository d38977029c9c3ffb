#!/usr/bin/env bash
# OpenClaw with the README's provider config, in its three API flavours: two turns each.
set -euo pipefail
NODE="$1"; PKG="$2"
export HOME="$(mktemp -d)" OPENCLAW_STATE_DIR="$HOME/.openclaw"
export OPENCLAW_CONFIG_PATH="$OPENCLAW_STATE_DIR/openclaw.json"
mkdir -p "$OPENCLAW_STATE_DIR" "$HOME/ws"
model='{ "id": "claude-sonnet-4", "name": "Claude Sonnet", "contextWindow": 200000, "maxTokens": 32000 }'
cat > "$OPENCLAW_CONFIG_PATH" <<JSON
{ "models": { "mode": "merge", "providers": {
    "cpc": { "baseUrl": "$CLAUDEPROXY_URL/v1", "apiKey": "x", "api": "openai-completions", "models": [$model] },
    "cpr": { "baseUrl": "$CLAUDEPROXY_URL/v1", "apiKey": "x", "api": "openai-responses", "models": [$model] },
    "cpa": { "baseUrl": "$CLAUDEPROXY_URL", "apiKey": "x", "api": "anthropic-messages", "models": [$model] } } },
  "agents": { "defaults": { "workspace": "$HOME/ws", "model": { "primary": "cpc/claude-sonnet-4" } } } }
JSON
for p in cpc cpr cpa; do
  for turn in one two; do
    out=$("$NODE" "$PKG/openclaw.mjs" agent --local --session-id "s-$p" --model "$p/claude-sonnet-4" --message "turn $turn" --json 2>&1) \
      || { echo "$out" | tail -20; exit 1; }
    echo "$out" | grep -q "Hello from the fake upstream" || { echo "$p: $out" | tail -20; exit 1; }
    echo "$out" | grep -q '"rerouted": *true' && { echo "$p: rerouted"; exit 1; }
  done
done
