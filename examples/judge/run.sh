#!/usr/bin/env bash
# Level-1 checks, an LLM judge, the expert's sheet, and the agreement figures (offline).
# Needs ./quickstart.sh to have run once (the linked GGUF base and the held-out data).
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
J=examples/judge
rm -rf "$J/outputs"
printf '\n== evaluate the base model: level-1 checks + the judge, then export the sheet\n'
honer evaluate "$J/config.yml" --base-model-only --data examples/quickstart/data/heldout.jsonl \
    --export-critiques "$J/outputs/critiques.csv"
printf '\n== align the judge with the expert sheet shipped with the example\n'
honer evaluate "$J/config.yml" --base-model-only --align "$J/critiques.filled.csv"
