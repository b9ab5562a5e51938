#!/usr/bin/env bash
# Set up everything (virtual environment .venv, torch, honer, the SmolLM2 model) and run the
# quickstart: SmolLM2-135M-Instruct learns English → SQL with LoRA, held-out accuracy before and
# after. Run it again any time: the set-up step reuses what is installed.
set -euo pipefail
cd "$(dirname "$0")"
. scripts/setup-env.sh
start=$(date +%s)
setup_env ""
say "set-up done in $(( $(date +%s) - start )) s; running examples/quickstart/run.sh"
bash examples/quickstart/run.sh
