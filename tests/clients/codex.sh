#!/usr/bin/env bash
# Codex CLI with the README's config.toml: a first request and a resumed turn.
set -euo pipefail
CODEX="$1"
export CODEX_HOME="$(mktemp -d)"
cat > "$CODEX_HOME/config.toml" <<TOML
model = "claude-sonnet-4"
model_provider = "claudeproxy"
approval_policy = "never"
sandbox_mode = "read-only"
[model_providers.claudeproxy]
name = "claudeproxy"
base_url = "$CLAUDEPROXY_URL/v1"
wire_api = "responses"
env_key = "CLAUDEPROXY_KEY"
TOML
export CLAUDEPROXY_KEY=x
cd "$(mktemp -d)"
out=$("$CODEX" exec --skip-git-repo-check "hi" </dev/null 2>&1) || { echo "$out" | tail -20; exit 1; }
echo "$out" | grep -q "Hello from the fake upstream" || { echo "$out" | tail -20; exit 1; }
