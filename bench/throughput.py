"""Trained tokens per second: honer packed vs honer padded vs TRL `SFTTrainer` (padded).

One run trains the same tiny Llama (hidden 256, 4 layers by default, random init, built offline
with `honer.testing.tiny_model`) on the same generated alpaca-style data (instruction, optional
input, output; log-normal lengths with a long tail, tokenized by honer's `alpaca` format, so
the prompt is masked and the answer + EOS trained), for one epoch over the same samples with the
same seed, three ways:

* `honer_packed`:   `sample_packing: true`, rows of `sequence_len` tokens.
* `honer_padded`:   `sample_packing: false`, each micro-batch padded to its longest sample.
* `trl_padded`:     TRL `SFTTrainer` on the same pre-tokenized input_ids/labels, default
                    (per-batch) padding.

Like with like: float32 everywhere, no gradient checkpointing (TRL turns both bf16 and
checkpointing on by default; both are switched off here and stated in the output), AdamW, constant
LR, no checkpoints saved, no evaluation. On CPU with sdpa, honer's packed run uses its per-sample
causal sdpa (`honer.data.packing.segment_sdpa_forward`), as `honer train` does. Each way runs in its own process so that its peak RSS
(`ru_maxrss` from `os.wait4`) is its own. `train_s` times `trainer.train()` only; `setup_s` is
the trainer's construction (honer packs the data there, TRL prepares its dataset there), and
`wall_s` the whole child process, imports included. Trained tokens are the tokens with a label,
as the causal loss sees them: the same count for the three ways.

Prints one JSON line:
    {"bench": "throughput", "samples": ..., "sequence_len": ..., "settings": {...},
     "runs": {"honer_packed": {"trained_tokens_per_s": ..., "train_s": ..., "setup_s": ...,
     "wall_s": ..., "peak_rss_mb": ..., "steps": ..., "packing_efficiency": ...}, ...},
     "ratios": {"packed_vs_trl": ..., "packed_vs_padded": ..., "padded_vs_trl": ...}}

Usage: .venv/bin/python bench/throughput.py [--samples 2000] [--sequence-len 1024]
    [--hidden 256] [--layers 4] [--micro-batch-size 4] [--packed-micro-batch-size 1]
    [--device cpu|cuda] [--attn sdpa|eager|flash_attention_2] [--bf16] [--only NAME,...]
(`--samples 40 --sequence-len 256 --hidden 64 --layers 2` is a seconds-long smoke run.)
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

WAYS = ("honer_packed", "honer_padded", "trl_padded")
WORDS = (
    "the a of to and in is it that for on with as was be by this are from or at an not have "
    "data model train token learn rate loss batch layer weight bias value query answer question "
    "write explain list name city river colour number water light sound music story book time "
    "summarize translate describe compare classify rewrite poem email recipe history science"
).split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words))).capitalize() + "."


def alpaca_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Alpaca-like rows: short instructions, an input on ~40% of rows, outputs from a few words
    to several hundred (log-normal), as in the Stanford Alpaca data."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = {
            "instruction": _text(rng, int(rng.lognormvariate(2.6, 0.5))),
            "input": _text(rng, int(rng.lognormvariate(3.0, 0.8))) if rng.random() < 0.4 else "",
            "output": _text(rng, int(rng.lognormvariate(4.0, 0.9))),
        }
        rows.append(row)
    return rows


def tokenize(rows: list[dict[str, str]], model_dir: Path, sequence_len: int) -> dict[str, list]:
    """Tokenize with honer's alpaca format; samples over `sequence_len` are dropped (as the
    default `excess_length_strategy: drop` does)."""
    from transformers import AutoTokenizer

    from honer.config.schema import DatasetConfig
    from honer.data.formats import alpaca
    from honer.data.formats.context import FormatContext
    from honer.data.tokenize import TokenizerView

    tok = TokenizerView(AutoTokenizer.from_pretrained(model_dir))
    ctx = FormatContext(DatasetConfig(path="bench.jsonl", type="alpaca"), sequence_len=sequence_len)
    out: dict[str, list] = {"input_ids": [], "labels": []}
    for row in rows:
        for sample in alpaca.tokenize_row(row, tok, ctx):
            if len(sample.input_ids) <= sequence_len:
                out["input_ids"].append(sample.input_ids)
                out["labels"].append(sample.labels)
    return out


def trained_tokens(labels: list[list[int]]) -> int:
    return sum(sum(1 for x in lab[1:] if x != -100) for lab in labels)


# --- one way, in a child process --------------------------------------------------------------


def _honer(opts: dict[str, Any], data: Any, packed: bool) -> tuple[Any, float, dict[str, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.config.load import config_from_dict
    from honer.train.trainer import build_trainer

    cfg = config_from_dict(
        {
            "base_model": opts["model_dir"],
            "datasets": [{"path": "bench.jsonl", "type": "alpaca"}],
            "output_dir": opts["out"],
            "sequence_len": opts["sequence_len"],
            "sample_packing": packed,
            "micro_batch_size": opts["packed_mbs"] if packed else opts["mbs"],
            "num_epochs": 1,
            "learning_rate": 1e-4,
            "lr_scheduler": "constant",
            "optimizer": "adamw_torch",
            "logging_steps": 10,
            "save_steps": 10**9,
            "seed": opts["seed"],
            "bf16": opts["bf16"],
        }
    )
    model = AutoModelForCausalLM.from_pretrained(
        opts["model_dir"], attn_implementation=opts["attn"], dtype="float32"
    ).to(opts["device"])
    tokenizer = AutoTokenizer.from_pretrained(opts["model_dir"])
    start = time.perf_counter()
    trainer, _ = build_trainer(cfg, model, tokenizer, data)
    setup = time.perf_counter() - start
    extra = {}
    if trainer.packing_stats is not None:
        extra["packing_efficiency"] = round(trainer.packing_stats.efficiency, 4)
        extra["rows"] = trainer.packing_stats.rows
    return trainer, setup, extra


def _trl(opts: dict[str, Any], data: Any) -> tuple[Any, float, dict[str, Any]]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    args = trl_padded_config(
        opts,
        per_device_train_batch_size=opts["mbs"],
        optim="adamw_torch",
        logging_steps=10,
        gradient_checkpointing=False,
        dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(
        opts["model_dir"], attn_implementation=opts["attn"], dtype="float32"
    )
    tokenizer = AutoTokenizer.from_pretrained(opts["model_dir"])
    start = time.perf_counter()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    return trainer, time.perf_counter() - start, {}


def child(opts: dict[str, Any]) -> None:
    """Run one way and print its figures as a JSON line (the parent adds the peak RSS)."""
    begin = time.perf_counter()
    import torch
    from datasets import Dataset

    torch.manual_seed(opts["seed"])
    if opts["threads"]:
        torch.set_num_threads(opts["threads"])
    rows = json.loads(Path(opts["data"]).read_text())
    data = Dataset.from_dict(rows)
    way = opts["way"]
    if way == "trl_padded":
        trainer, setup, extra = _trl(opts, data)
    else:
        trainer, setup, extra = _honer(opts, data, packed=way == "honer_packed")
    if opts["device"] == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    output = trainer.train()
    if opts["device"] == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - start
    tokens = trained_tokens(rows["labels"])
    figures = {
        "trained_tokens": tokens,
        "trained_tokens_per_s": round(tokens / train_s, 1),
        "train_s": round(train_s, 2),
        "setup_s": round(setup, 2),
        "wall_s": round(time.perf_counter() - begin, 2),
        "steps": output.global_step,
        "final_loss": round(float(output.training_loss), 4),
        **extra,
    }
    if opts["device"] == "cuda":
        figures["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print_result(figures)


def run_way(opts: dict[str, Any]) -> dict[str, Any]:
    """Run one way in a fresh process; its peak RSS is its own (`_child.run_child`)."""
    result, maxrss_kb = run_child(__file__, opts)
    result["peak_rss_mb"] = round(maxrss_kb / 1024, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--sequence-len", type=int, default=1024)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--micro-batch-size", type=int, default=4, help="padded ways")
    p.add_argument("--packed-micro-batch-size", type=int, default=1, help="rows per micro-batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--attn", choices=["sdpa", "eager", "flash_attention_2"], default="sdpa")
    p.add_argument("--bf16", action="store_true", help="bf16 mixed precision for all ways")
    p.add_argument("--only", default=",".join(WAYS), help="comma-separated ways to run")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return

    from honer.testing import tiny_model

    with tempfile.TemporaryDirectory(prefix="honer-bench-") as tmp:
        root = Path(tmp)
        model_dir = tiny_model(
            root / "model", hidden_size=args.hidden, num_layers=args.layers, seed=args.seed
        )
        data = tokenize(alpaca_rows(args.samples, args.seed), model_dir, args.sequence_len)
        (root / "data.json").write_text(json.dumps(data))
        lengths = sorted(len(x) for x in data["input_ids"])
        runs: dict[str, Any] = {}
        for way in args.only.split(","):
            opts = {
                "way": way,
                "model_dir": str(model_dir),
                "data": str(root / "data.json"),
                "out": str(root / way),
                "sequence_len": args.sequence_len,
                "mbs": args.micro_batch_size,
                "packed_mbs": args.packed_micro_batch_size,
                "seed": args.seed,
                "threads": args.threads,
                "device": args.device,
                "attn": args.attn,
                "bf16": args.bf16,
            }
            runs[way] = run_way(opts)

    def ratio(a: str, b: str) -> float | None:
        if a in runs and b in runs:
            return round(runs[a]["trained_tokens_per_s"] / runs[b]["trained_tokens_per_s"], 3)
        return None

    print(
        json.dumps(
            {
                "bench": "throughput",
                "samples": len(lengths),
                "sequence_len": args.sequence_len,
                "sample_tokens": {
                    "min": lengths[0],
                    "median": lengths[len(lengths) // 2],
                    "p90": lengths[int(0.9 * (len(lengths) - 1))],
                    "max": lengths[-1],
                    "total": sum(lengths),
                },
                "settings": {
                    "model": f"tiny Llama hidden {args.hidden}, {args.layers} layers, random init",
                    "device": args.device,
                    "attn": args.attn,
                    "honer_packed_attn": "honer_segment_sdpa (causal sdpa per packed sample)"
                    if args.device == "cpu" and args.attn == "sdpa"
                    else args.attn,
                    "precision": "bf16 mixed" if args.bf16 else "fp32",
                    "gradient_checkpointing": False,
                    "epochs": 1,
                    "seed": args.seed,
                    "micro_batch_size_padded": args.micro_batch_size,
                    "micro_batch_size_packed_rows": args.packed_micro_batch_size,
                    "gradient_accumulation_steps": 1,
                    "optimizer": "adamw_torch, constant lr 1e-4",
                    "threads": args.threads or "torch default",
                },
                "runs": runs,
                "ratios": {
                    "packed_vs_trl": ratio("honer_packed", "trl_padded"),
                    "packed_vs_padded": ratio("honer_packed", "honer_padded"),
                    "padded_vs_trl": ratio("honer_padded", "trl_padded"),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
