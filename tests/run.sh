#!/usr/bin/env bash
# The test command: installs everything the tests need (a virtualenv with the
# package and its test extras, and the pinned Claude Code CLI from npm, both
# cached outside the checkout), then runs ruff, mypy and the trial suite.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${CLAUDEPROXY_CACHE:-$HOME/.cache/claudeproxy}
# the pinned CLI is the oldest tested version (claudeproxy/engine/versions.py);
# CLAUDEPROXY_CLI_VERSION=X.Y.Z (or "latest": the newest on npm) runs against
# another one, installed beside it in the cache
PINNED=$(sed -n 's/^OLDEST_TESTED = "\(.*\)"$/\1/p' claudeproxy/engine/versions.py)
CLI_VERSION=${CLAUDEPROXY_CLI_VERSION:-$PINNED}
if [ "$CLI_VERSION" = latest ]; then
    CLI_VERSION=$(npm view @anthropic-ai/claude-code version)
fi
CLI_DIR=$CACHE/cli-$CLI_VERSION
VENV=${CLAUDEPROXY_VENV:-$CACHE/venv}

mkdir -p "$CACHE"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check ".[test]"

if [ ! -x "$CLI_DIR/node_modules/.bin/claude" ]; then
    echo "installing @anthropic-ai/claude-code@$CLI_VERSION into $CLI_DIR"
    npm install --prefix "$CLI_DIR" --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$CLI_VERSION"
fi
# the dashboard's browser test drives Debian's chromium (selenium comes with
# the test extras); installed quietly, only when missing
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium and chromium-driver"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

export CLAUDEPROXY_TEST_CLI=$CLI_DIR/node_modules/.bin/claude
"$CLAUDEPROXY_TEST_CLI" --version

if [ -z "${CLAUDEPROXY_SKIP_LINT:-}" ]; then
    "$VENV/bin/ruff" format --check claudeproxy tests twisted bench
    "$VENV/bin/ruff" check claudeproxy tests twisted bench
    # claudeproxy, the twistd plugin, tests and bench (pyproject.toml's [tool.mypy] files)
    "$VENV/bin/mypy"
fi

export PYTHONPATH=$ROOT
LOG=$(mktemp)
set +e
"$VENV/bin/python" -m twisted.trial "${@:-tests}" 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}
set -e
# a plain closing line for any CI that reads one
python3 - "$LOG" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
ran = re.findall(r"^Ran (\d+) tests?", text, re.M)
counts = {k: int(v) for k, v in re.findall(r"(failures|errors|successes|skips|expectedFailures|unexpectedSuccesses)=(\d+)", text.splitlines()[-1] if text.splitlines() else "")}
failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
print("%d passed, %d failed, %d skipped" % (passed, failed, counts.get("skips", 0)))
PY
rm -f "$LOG"
exit "$status"
