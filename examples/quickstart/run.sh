#!/usr/bin/env bash
# Offline quickstart: build a tiny base model and a synthetic dataset, then validate and
# preprocess the config. Run from anywhere; nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CONFIG=examples/quickstart/config.yml
python examples/quickstart/build_base.py examples/quickstart/tiny-base
python examples/quickstart/make_data.py --out examples/quickstart/data
honer validate "$CONFIG"
honer preprocess "$CONFIG" --debug --debug-samples 1
