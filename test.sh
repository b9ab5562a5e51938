#!/usr/bin/env bash
# Set up the test environment (virtual environment, torch, honer with its test extras, the SmolLM2
# model) and run the linters and the whole test suite. Idempotent; CI runs exactly this.
# Arguments go to pytest (e.g. ./test.sh -m "not slow").
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
setup_env "test"
# Chromium + its driver for the Gradio browser test (tests/infer/test_gradio_browser.py). A failed
# install is not a failure: that test then skips and says why.
if ! command -v chromedriver >/dev/null; then
  say "installing chromium for the browser test (optional)"
  { command -v apt-get >/dev/null && SUDO=$([ "$(id -u)" = 0 ] || echo "sudo -n") &&
    { $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
      { $SUDO apt-get update -qq >/dev/null 2>&1 &&
        $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; }; }; } ||
    say "chromium/chromium-driver not installed; the Gradio browser test will be skipped"
fi
say "ruff check / ruff format --check"
ruff check .
ruff format --check .
say "pytest"
pytest -q "$@"
