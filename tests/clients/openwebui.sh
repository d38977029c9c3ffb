#!/usr/bin/env bash
# Open WebUI against the daemon at $CLAUDEPROXY_URL, with docs/clients.md's
# config (OPENAI_API_BASE_URL, a key, no Ollama, no login) and everything that
# would reach the internet off, in a fresh DATA_DIR; driven in a headless
# chromium by openwebui.py.  Then the daemon's log lines of the run: how each
# request was served, the upstream 529s per overloaded request, the upstream
# calls cut before their end, the upstream requests carrying the image.
#
#   openwebui.sh VENV DAEMON_LOG
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$1"
LOG="$2"
PORT="${CLAUDEPROXY_OPENWEBUI_PORT:-34562}"
for b in "${CLAUDEPROXY_CHROMIUM:-/usr/bin/chromium}" "${CLAUDEPROXY_CHROMEDRIVER:-/usr/bin/chromedriver}"; do
    if [ ! -x "$b" ]; then echo "   no $b (apt-get install -y chromium chromium-driver)"; exit 1; fi
done
DATA="$(mktemp -d /tmp/cp-openwebui-XXXXXX)"
env DATA_DIR="$DATA" \
    OPENAI_API_BASE_URL="$CLAUDEPROXY_URL/v1" OPENAI_API_KEY=unused ENABLE_OPENAI_API=True \
    ENABLE_OLLAMA_API=False WEBUI_AUTH=False WEBUI_SECRET_KEY=claudeproxy-clients \
    OFFLINE_MODE=true HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    RAG_EMBEDDING_ENGINE=openai RAG_OPENAI_API_BASE_URL="$CLAUDEPROXY_URL/v1" RAG_OPENAI_API_KEY=unused \
    BYPASS_EMBEDDING_AND_RETRIEVAL=true \
    RAG_EMBEDDING_MODEL_AUTO_UPDATE=False WHISPER_MODEL_AUTO_UPDATE=False \
    ENABLE_WEB_SEARCH=false ENABLE_IMAGE_GENERATION=false ENABLE_CODE_INTERPRETER=false \
    ENABLE_EVALUATION_ARENA_MODELS=false ENABLE_VERSION_UPDATE_CHECK=false \
    ANONYMIZED_TELEMETRY=false DO_NOT_TRACK=true SCARF_NO_ANALYTICS=true \
    "$VENV/bin/open-webui" serve --host 127.0.0.1 --port "$PORT" >"$DATA/open-webui.log" 2>&1 &
OWUI=$!
trap 'kill $OWUI 2>/dev/null; wait $OWUI 2>/dev/null' EXIT
start=$(date +%s)
up=0
for _ in $(seq 360); do
    if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then up=1; break; fi
    kill -0 $OWUI 2>/dev/null || break
    sleep 0.5
done
if [ $up = 0 ]; then
    echo "   Open WebUI did not start ($DATA/open-webui.log):"
    tail -20 "$DATA/open-webui.log" | sed 's/^/      /'
    exit 1
fi
echo "   Open WebUI $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("open-webui"))') up in $(( $(date +%s) - start )) s (data, log and screenshots in $DATA)"
before=$(wc -l <"$LOG")
start=$(date +%s)
"$VENV/bin/python" "$HERE/openwebui.py" "http://127.0.0.1:$PORT" "$DATA/shots"
rc=$?
echo "   browser scenario $(( $(date +%s) - start )) s"
sleep 1
run="$(tail -n +"$((before + 1))" "$LOG")"
echo "   served: $(echo "$run" | grep -o 'served=[a-z_]*' | sort | uniq -c | awk '{printf "%s%s=%s", sep, substr($2, 8), $1; sep=" "}')"
echo "   ended: $(echo "$run" | grep 'first_token_ms=' | grep -o 'ended=[a-z_]*' | sort | uniq -c | awk '{printf "%s%s=%s", sep, substr($2, 7), $1; sep=" "}')"
overloaded=$(echo "$run" | grep -c 'error=upstream_overloaded')
calls=$(echo "$run" | grep -c '"POST /v1/messages[^"]*" 529 ')
echo "   overloaded requests $overloaded, upstream 529s $calls"
cut=$(echo "$run" | grep -c 'cut before its end')
stopped=$(echo "$run" | grep 'first_token_ms=' | grep -c 'ended=client_gone')
echo "   stopped (client_gone) $stopped, upstream calls cut $cut"
if [ $rc = 0 ] && { [ "$overloaded" -lt 1 ] || [ "$calls" != "$overloaded" ]; }; then
    echo "   FAILED: each overloaded request must cost 1 upstream call"; rc=1
fi
images=$(echo "$run" | grep -c 'upstream #[0-9]*: tools=[0-9]* images=[1-9]')
echo "   upstream requests with the image $images"
if [ $rc = 0 ] && [ "$images" -lt 1 ]; then
    echo "   FAILED: the image did not reach upstream"; rc=1
fi
if [ $rc = 0 ] && [ "$cut" -lt 1 ]; then
    echo "   FAILED: the stopped generation's upstream call was not cut"; rc=1
fi
exit $rc
