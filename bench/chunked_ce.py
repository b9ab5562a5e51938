"""Memory and speed of the chunked head + loss (`cut_cross_entropy`) against the plain loss.

Two measurements, each way in its own process (`_child.run_child`), float32 on the CPU:

* `head`: forward + backward of the output layer + cross-entropy alone, for `--tokens` tokens
  (default 2,048, one SmolLM2-length row) at SmolLM2's shape (hidden 576, vocabulary 49,152),
  the head's weight trained (the chunked path's worst case: it also builds the weight's
  gradient). `plain` is `token_sum_loss` on the full logits, `chunked` is
  `chunked_cross_entropy_sum` + `step_share`, as the trainer runs them. 10% of the labels are
  -100 (a prompt).
* `train`: whole optimizer steps of `build_trainer` (LoRA on every linear layer, the head
  frozen as LoRA leaves it) on a 2-layer model of the same hidden size and vocabulary, one
  `--tokens`-long row a step, `cut_cross_entropy` off and on.

Memory: `peak_delta_mb` is the growth of the child's peak RSS (`resource.getrusage(RUSAGE_SELF)
.ru_maxrss`) from just before the first measured loss to the end: what the loss computation
itself adds on top of the model, inputs and imports. `peak_rss_mb` is the child's whole peak RSS
(`ru_maxrss` from `os.wait4`). Speed: `tokens_per_s` over `--iters` timed iterations after one
warm-up (head), or over the whole `trainer.train()` of `--steps` steps (train). `loss` lets the
ways be compared: they compute the same number.

Prints one JSON line:
    {"bench": "chunked_ce", "device": "cpu", "threads": ..., "shape": {...}, "memory": "...",
     "head": {"plain": {...}, "chunked": {...}}, "train": {"plain": {...}, "chunked": {...}},
     "ratios": {...}}

Usage: .venv/bin/python bench/chunked_ce.py [--tokens 2048] [--hidden 576] [--vocab 49152]
    [--iters 3] [--steps 3] [--threads 2] [--only head|train]
(`--tokens 256 --vocab 4096 --hidden 64` is a seconds-long smoke run.)
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from _child import print_result, run_child

SCRIPT = str(Path(__file__).resolve())


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _labels(tokens: int, vocab: int) -> Any:
    import torch

    labels = torch.randint(6, vocab, (1, tokens))
    labels[:, : tokens // 10] = -100
    return labels


def head_child(opts: dict[str, Any]) -> dict[str, Any]:
    import torch

    from honer.train.chunked_loss import chunk_tokens, chunked_cross_entropy_sum
    from honer.train.trainer import step_share, token_sum_loss

    torch.manual_seed(0)
    tokens, hidden, vocab = opts["tokens"], opts["hidden"], opts["vocab"]
    head = torch.nn.Linear(hidden, vocab, bias=False)
    states = torch.randn(1, tokens, hidden, requires_grad=True)
    labels = _labels(tokens, vocab)

    def step() -> float:
        if opts["way"] == "plain":
            loss = token_sum_loss({"logits": head(states)}, labels)
        else:
            total = chunked_cross_entropy_sum(states, labels, head, [head.weight], vocab_size=vocab)
            loss = step_share(total, labels, None)
        loss.backward()
        states.grad = head.weight.grad = None
        return float(loss.detach())

    base = _maxrss_mb()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(opts["iters"]):
        loss = step()
    seconds = time.perf_counter() - start
    return {
        "tokens_per_s": round(tokens * opts["iters"] / seconds, 1),
        "s_per_iter": round(seconds / opts["iters"], 3),
        "peak_delta_mb": round(_maxrss_mb() - base, 1),
        "loss": loss,
        "chunk": chunk_tokens(vocab) if opts["way"] == "chunked" else None,
    }


def _model_dir(opts: dict[str, Any]) -> Path:
    """A 2-layer Llama of the benched hidden size and vocabulary + the tiny tokenizer, saved."""
    from honer.testing.tiny_model import build_model, build_tokenizer

    folder = Path(opts["out"]) / "model"
    if not (folder / "config.json").is_file():
        hidden = opts["hidden"]
        model = build_model(
            opts["vocab"],
            hidden_size=hidden,
            num_layers=2,
            num_heads=max(1, hidden // 64),
            num_kv_heads=max(1, hidden // 192),
            intermediate_size=hidden * 8 // 3,
        )
        model.save_pretrained(folder)
        build_tokenizer().save_pretrained(folder)
    return folder


def train_child(opts: dict[str, Any]) -> dict[str, Any]:
    import json as _json

    import torch
    from datasets import Dataset
    from rich.console import Console

    from honer.config.load import config_from_dict
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import build_trainer

    tokens, steps = opts["tokens"], opts["steps"]
    folder = _model_dir(opts)
    out = Path(opts["out"]) / opts["way"]
    cfg = config_from_dict(
        {
            "base_model": str(folder),
            "datasets": [{"path": "unused.jsonl", "type": "completion"}],
            "output_dir": str(out),
            "adapter": "lora",
            "lora_target_linear": True,
            "micro_batch_size": 1,
            "max_steps": steps,
            "learning_rate": 1e-4,
            "lr_scheduler": "constant",
            "logging_steps": 1,
            "save_steps": 10_000,
            "sequence_len": tokens,
            "seed": 0,
            "cut_cross_entropy": opts["way"] == "chunked",
        }
    )
    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    torch.manual_seed(0)
    rows = [_labels(tokens, opts["vocab"])[0].tolist() for _ in range(steps)]
    ids = [[1, *(abs(x) % opts["vocab"] for x in row[1:])] for row in rows]
    data = Dataset.from_dict({"input_ids": ids, "labels": [[-100] * 10 + r[10:] for r in ids]})
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives as long as the child
    trainer, _ = build_trainer(cfg, model, tokenizer, data, None, quiet)
    base = _maxrss_mb()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    losses = [
        r["loss"]
        for r in map(_json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if r["kind"] == "train"
    ]
    return {
        "tokens_per_s": round(tokens * steps / seconds, 1),
        "s_per_step": round(seconds / steps, 3),
        "peak_delta_mb": round(_maxrss_mb() - base, 1),
        "losses": losses,
    }


def child(opts: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(opts["threads"])
    figures = head_child(opts) if opts["part"] == "head" else train_child(opts)
    print_result(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child")
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--vocab", type=int, default=49_152)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["head", "train"])
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    parts = [args.only] if args.only else ["head", "train"]
    result: dict[str, Any] = {
        "bench": "chunked_ce",
        "device": "cpu",
        "threads": args.threads,
        "shape": {"tokens": args.tokens, "hidden": args.hidden, "vocab": args.vocab},
        "memory": "peak_delta_mb: growth of the child's ru_maxrss during the measured loss "
        "iterations / training; peak_rss_mb: the child's whole peak RSS (os.wait4)",
    }
    with tempfile.TemporaryDirectory(prefix="honer-bench-cce-") as tmp:
        for part in parts:
            result[part] = {}
            for way in ("plain", "chunked"):
                opts = {**vars(args), "part": part, "way": way, "out": tmp}
                opts.pop("child")
                figures, rss_kb = run_child(SCRIPT, opts)
                result[part][way] = {**figures, "peak_rss_mb": round(rss_kb / 1024, 1)}
    ratios = {}
    for part in parts:
        plain, chunked = result[part]["plain"], result[part]["chunked"]
        ratios[f"{part}_memory_delta_chunked_vs_plain"] = round(
            chunked["peak_delta_mb"] / max(plain["peak_delta_mb"], 1e-9), 3
        )
        ratios[f"{part}_speed_chunked_vs_plain"] = round(
            chunked["tokens_per_s"] / plain["tokens_per_s"], 3
        )
    if "head" in parts:
        ratios["head_loss_abs_diff"] = abs(
            result["head"]["plain"]["loss"] - result["head"]["chunked"]["loss"]
        )
    if "train" in parts:
        pairs = zip(
            result["train"]["plain"]["losses"], result["train"]["chunked"]["losses"], strict=True
        )
        ratios["train_loss_max_abs_diff"] = max(abs(a - b) for a, b in pairs)
    result["ratios"] = ratios
    print(json.dumps(result))


if __name__ == "__main__":
    main()
