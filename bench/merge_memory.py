"""Peak RAM of `honer merge-lora` (shard by shard) vs peft's merge_and_unload, on a sharded model.

Builds a random Llama saved in several safetensors shards plus a LoRA adapter on every linear
layer, then merges it in a fresh child process per method and reads the child's peak RSS
(VmHWM). `import_rss` is the RSS after imports (torch alone is a few hundred MB), so
`merge_extra / model` is the figure that matters: RAM the merge itself needed per byte of model.
Prints one JSON line. `--size medium` is the size CI runs (at `small`, fixed
allocator overheads of ~20 MB are as large as the model).

    python bench/merge_memory.py            # ~430 MB fp32 model in 9 shards
    python bench/merge_memory.py --size small
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # hidden, layers, intermediate, shard size
    "small": (256, 4, 1024, "2MB"),
    "medium": (512, 4, 2048, "8MB"),
    "large": (1024, 8, 2816, "50MB"),
}

# Peak RSS is read from /proc/self/status (VmHWM), not ru_maxrss: on Linux ru_maxrss survives
# fork + exec, so a child would report the parent's peak (the parent holds the built model).
CHILD = r"""
import json, sys, time
from pathlib import Path
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
method, base, adapter, out, shard = sys.argv[1:6]
import torch, safetensors, transformers, peft  # imports first: the baseline counts them
from honer.model.merge import merge_lora
import_rss = hwm()
t = time.perf_counter()
if method == "honer":
    merge_lora(Path(base), Path(adapter), Path(out), max_shard_size=int(shard))
else:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    model.merge_and_unload().save_pretrained(out, max_shard_size=int(shard))
peak = hwm()
print(json.dumps({"import_rss": import_rss, "peak_rss": peak, "seconds": time.perf_counter() - t}))
"""


def build(root: Path, size: str, shard_override: str | None) -> tuple[Path, Path, int, int]:
    """A sharded random Llama and a random LoRA on all its linear layers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from honer.model.merge import parse_size

    hidden, layers, inter, shard = SIZES[size]
    shard = shard_override or shard
    config = LlamaConfig(
        vocab_size=2048,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(root / "base", max_shard_size=shard)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    lora = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    )
    lora.save_pretrained(root / "adapter")
    del lora, model
    return root / "base", root / "adapter", model_bytes, parse_size(shard)


def measure(method: str, base: Path, adapter: Path, out: Path, shard: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-c", CHILD, method, str(base), str(adapter), str(out), str(shard)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--methods", default="honer,peft", help="comma list of honer, peft")
    parser.add_argument("--max-shard-size", default=None, help="override the size's shard size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="merge-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        base, adapter, model_bytes, shard = build(root, args.size, args.max_shard_size)
        shards = len(list(base.glob("*.safetensors")))
        result: dict = {
            "bench": "merge_memory",
            "size": args.size,
            "model_bytes": model_bytes,
            "base_shards": shards,
            "max_shard_bytes": shard,
            "build_seconds": round(time.perf_counter() - start, 1),
        }
        for method in args.methods.split(","):
            m = measure(method, base, adapter, root / f"out-{method}", shard)
            extra = m["peak_rss"] - m["import_rss"]
            result[method] = {
                "peak_rss": m["peak_rss"],
                "import_rss": m["import_rss"],
                "merge_extra": extra,
                "peak_over_model": round(m["peak_rss"] / model_bytes, 3),
                "extra_over_model": round(extra / model_bytes, 3),
                "seconds": round(m["seconds"], 2),
            }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
