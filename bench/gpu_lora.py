"""LoRA / QLoRA throughput and MFU on a real architecture: honer (packed) vs TRL `SFTTrainer`.

Builds a random-init model with the shapes of a real one (`--shape llama3-8b`: hidden 4096,
32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128256; `qwen2.5-7b`; or `toy` for
a CPU smoke run), saves it once, and trains it in a fresh process per way on the same synthetic
token data (lengths spread 64 … 2048, seeded):

* `honer_lora` / `honer_qlora`: honer's own loading (bitsandbytes NF4 for QLoRA), adapter and
  trainer, `sample_packing: true` into rows of `--sequence-len` (4096) tokens.
* `trl_lora` / `trl_qlora`: TRL `SFTTrainer` on the same pre-tokenized rows, its default
  per-batch padding (no packing), the same LoRA settings and 4-bit base.

Like with like: bf16 (float32 on CPU), gradient checkpointing on, sdpa or flash-attention 2
(`--attn`), AdamW, the same LoRA (r 16 on every linear layer), the same number of samples and
seed. Figures per way: tokens/s (real, non-padding tokens) and trained tokens/s, MFU =
6 · N · tokens/s / peak (N: the model's parameters; peak: a measured bf16 matmul on this device,
float32 on CPU), peak memory (CUDA max allocated, or the child's peak RSS on CPU).

Prints one JSON line. Usage:
    python bench/gpu_lora.py                           # on a GPU: llama3-8b, 4k packed rows
    python bench/gpu_lora.py --shape toy --samples 32  # CPU smoke size (what CI checks)
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from _child import print_result, run_child, trl_padded_config

SHAPES = {
    # hidden, layers, heads, kv heads, intermediate, vocab
    "llama3-8b": (4096, 32, 32, 8, 14336, 128256),
    "qwen2.5-7b": (3584, 28, 28, 4, 18944, 152064),
    "toy": (128, 2, 4, 2, 256, 2048),
}
WAYS = ("honer_lora", "honer_qlora", "trl_lora", "trl_qlora")


def build_model(shape: str, dest: Path, device: str) -> Path:
    """Random-init model of `shape` (bf16 on GPU), saved with the tiny tokenizer.

    The model is `honer.testing.tiny_model.build_model` at the real shape, built directly on
    `device` (an 8B model built on the CPU in float32 would need 32 GB of RAM first)."""
    import torch

    from honer.testing.tiny_model import build_model as llama_of_shape
    from honer.testing.tiny_model import build_tokenizer

    if (dest / "config.json").is_file():
        return dest
    hidden, layers, heads, kv, inter, vocab = SHAPES[shape]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = llama_of_shape(
            vocab,
            hidden_size=hidden,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=kv,
            intermediate_size=inter,
            max_positions=8192,
            seed=0,
        ).to(dtype)
    tokenizer = build_tokenizer(vocab_size=min(vocab, 2048), seed=0)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def token_rows(
    samples: int, vocab: int, pad_ids: set[int], seed: int, longest: int
) -> dict[str, list]:
    """Synthetic samples: a masked prompt then a trained answer, lengths 64 … `longest`
    (log-uniform)."""
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(samples):
        n = int(round(64 * (longest / 64) ** rng.random()))
        row = [rng.randrange(10, vocab) for _ in range(n)]
        row = [t if t not in pad_ids else 10 for t in row]
        cut = n // 3
        ids.append(row)
        labels.append([-100] * cut + row[cut:])
    return {"input_ids": ids, "labels": labels}


def matmul_peak(device: str) -> float:
    """Measured dense matmul FLOP/s: bf16 8192² on a GPU, float32 1024² on CPU."""
    import torch

    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    reps = 20 if device == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _honer_trainer(opts: dict[str, Any], data: Any) -> Any:
    from honer.config.load import config_from_dict
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import build_trainer

    qlora = opts["way"].endswith("qlora")
    raw = {
        "base_model": opts["model_dir"],
        "datasets": [{"path": "bench.jsonl", "type": "completion"}],
        "output_dir": opts["out"],
        "sequence_len": opts["sequence_len"],
        "sample_packing": True,
        "micro_batch_size": 1,
        "num_epochs": 1,
        "learning_rate": 1e-4,
        "lr_scheduler": "constant",
        "logging_steps": 5,
        "save_steps": 10**9,
        "seed": opts["seed"],
        "adapter": "qlora" if qlora else "lora",
        "load_in_4bit": qlora,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "lora_target_linear": True,
        "gradient_checkpointing": True,
        "bf16": opts["bf16"],
        "attn_implementation": opts["attn"],
    }
    cfg = config_from_dict(raw)
    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    trainer, _ = build_trainer(cfg, model, tokenizer, data)
    stats = trainer.packing_stats
    return trainer, {"packing_efficiency": round(stats.efficiency, 4), "rows": stats.rows}


def _trl_trainer(opts: dict[str, Any], data: Any) -> Any:
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    from trl import SFTTrainer

    qlora = opts["way"].endswith("qlora")
    dtype = torch.bfloat16 if opts["bf16"] else torch.float32
    quant = (
        BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        if qlora
        else None
    )
    model = AutoModelForCausalLM.from_pretrained(
        opts["model_dir"], dtype=dtype, attn_implementation=opts["attn"], quantization_config=quant
    )
    args = trl_padded_config(
        opts,
        per_device_train_batch_size=opts["trl_mbs"],
        logging_steps=5,
        gradient_checkpointing=True,
    )
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    tokenizer = AutoTokenizer.from_pretrained(opts["model_dir"])
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return trainer, {}


def child(opts: dict[str, Any]) -> None:
    import torch
    from datasets import Dataset

    torch.manual_seed(opts["seed"])
    rows = json.loads(Path(opts["data"]).read_text())
    data = Dataset.from_dict(rows)
    build = _trl_trainer if opts["way"].startswith("trl") else _honer_trainer
    trainer, extra = build(opts, data)
    sync = torch.cuda.synchronize if opts["device"] == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    output = trainer.train()
    sync()
    seconds = time.perf_counter() - start
    tokens = sum(len(x) for x in rows["input_ids"])
    trained = sum(sum(1 for t in y[1:] if t != -100) for y in rows["labels"])
    figures = {
        "tokens_per_s": round(tokens / seconds, 1),
        "trained_tokens_per_s": round(trained / seconds, 1),
        "train_s": round(seconds, 2),
        "steps": output.global_step,
        **extra,
    }
    if opts["device"] == "cuda":
        figures["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print_result(figures)


def run_way(opts: dict[str, Any]) -> dict[str, Any]:
    """One way in a fresh process; on CPU its peak memory is the child's peak RSS."""
    result, maxrss_kb = run_child(__file__, opts)
    if opts["device"] == "cpu":
        result["peak_memory_gb"] = round(maxrss_kb / 2**20, 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), default="llama3-8b")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--sequence-len", type=int, default=4096)
    parser.add_argument("--trl-micro-batch-size", type=int, default=1)
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "flash_attention_2"])
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--workdir", default=None, help="Keep the built model here.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="honer-gpu-lora-"))
    model_dir = build_model(args.shape, work / f"model-{args.shape}", device)
    vocab = SHAPES[args.shape][5]
    pad = {0, 1, 2, 3}  # the tiny tokenizer's special tokens
    data = work / "data.json"
    data.write_text(
        json.dumps(
            token_rows(args.samples, vocab, pad, seed=0, longest=min(2048, args.sequence_len))
        )
    )
    params = _count(model_dir)
    peak = matmul_peak(device)
    runs = {}
    for way in args.ways.split(","):
        opts = {
            "way": way,
            "model_dir": str(model_dir),
            "data": str(data),
            "out": str(work / f"out-{way}"),
            "sequence_len": args.sequence_len,
            "trl_mbs": args.trl_micro_batch_size,
            "seed": 0,
            "device": device,
            "bf16": device == "cuda",
            "attn": args.attn,
        }
        result = run_way(opts)
        result["mfu"] = round(6 * params * result["tokens_per_s"] / peak, 4)
        runs[way] = result

    def ratio(a: str, b: str) -> float | None:
        if a in runs and b in runs:
            return round(runs[a]["tokens_per_s"] / runs[b]["tokens_per_s"], 3)
        return None

    print(
        json.dumps(
            {
                "bench": "gpu_lora",
                "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                "shape": args.shape,
                "params": params,
                "matmul_peak_tflops": round(peak / 1e12, 2),
                "settings": {
                    "precision": "bf16" if device == "cuda" else "fp32",
                    "gradient_checkpointing": True,
                    "attn": args.attn,
                    "sequence_len": args.sequence_len,
                    "samples": args.samples,
                    "lora": "r16 alpha32 all linear",
                },
                "runs": runs,
                "ratios": {
                    "lora_honer_vs_trl": ratio("honer_lora", "trl_lora"),
                    "qlora_honer_vs_trl": ratio("honer_qlora", "trl_qlora"),
                },
            }
        )
    )


def _count(model_dir: Path) -> int:
    """Parameters of the saved model, from its safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(f, "pt") as st:
            for key in st.keys():  # noqa: SIM118 (safe_open is not iterable)
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


if __name__ == "__main__":
    main()
