#!/usr/bin/env bash
# Offline quickstart: build a tiny base model and a synthetic dataset, validate and preprocess the
# config, train, and compare held-out accuracy before and after. Nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
CONFIG=examples/quickstart/config.yml
python examples/quickstart/build_base.py examples/quickstart/tiny-base
python examples/quickstart/make_data.py --out examples/quickstart/data
honer validate "$CONFIG"
honer preprocess "$CONFIG" --debug --debug-samples 1
rm -rf examples/quickstart/outputs  # a fresh run: honer refuses to start over old checkpoints
honer train "$CONFIG"
echo "held-out accuracy of the untrained base model:"
python examples/quickstart/evaluate.py "$CONFIG" examples/quickstart/tiny-base --show 0
echo "held-out accuracy after training:"
python examples/quickstart/evaluate.py "$CONFIG" examples/quickstart/outputs
