"""DPO speed: honer's `rl: dpo` run against TRL's `DPOTrainer` called directly, same everything.

Both train the same LoRA (every linear layer, r 16, dropout 0) on the same base, the same
preference pairs, seed, batch, steps, optimizer and schedule, in float32 on the CPU. honer runs
the whole `honer.train_model` (its own tokenization, reference = adapter-disabled base); TRL gets
the same prompt/chosen/rejected texts honer renders and tokenizes them itself (honer's ids equal
TRL's: tests/data/test_preference_formats.py), with `peft_config` so it builds the same adapter
and also uses the adapter-disabled base as reference. Speed is answer tokens (chosen + rejected,
what DPO scores) per second of `train_runtime`, the Trainer's own clock around the training loop;
data preparation and model loading are not in it for either. One run each, honer first.

Prints one JSON line: {"bench": "dpo_throughput", "honer": {...}, "trl": {...},
"ratio_honer_over_trl": ...}.

Usage: .venv/bin/python bench/dpo_throughput.py [--pairs 64] [--steps 12] [--batch 4]
    [--hidden 256] [--layers 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def _pairs(n: int) -> list[dict]:
    words = "the a of to in and is it that for on with as by at from".split()
    rows = []
    for i in range(n):
        question = " ".join(words[(i + k) % len(words)] for k in range(8 + i % 24))
        rows.append(
            {
                "messages": [{"role": "user", "content": f"Repeat: {question}"}],
                "chosen": question,
                "rejected": " ".join(reversed(question.split())) + " no",
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()

    import torch

    torch.set_num_threads(opts.threads)
    import honer
    from honer.data.formats.context import format_context
    from honer.data.preference import preference_texts
    from honer.data.tokenize import TokenizerView
    from honer.testing import tiny_model

    work = Path(tempfile.mkdtemp(prefix="dpo-bench-"))
    base = tiny_model(
        work / "base", hidden_size=opts.hidden, num_layers=opts.layers, num_heads=4, num_kv_heads=2
    )
    rows = _pairs(opts.pairs)
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "dpo.yml").write_text(
        f"base_model: {base}\nrl: dpo\n"
        f"datasets:\n  - path: {work / 'pairs.jsonl'}\n    type: chat_template.default\n"
        "chat_template: tokenizer_default\n"
        f"dataset_prepared_path: {work / 'prepared'}\noutput_dir: {work / 'honer'}\n"
        "adapter: lora\nlora_r: 16\nlora_alpha: 32\nlora_dropout: 0.0\nlora_target_linear: true\n"
        f"sequence_len: 256\nmicro_batch_size: {opts.batch}\nmax_steps: {opts.steps}\n"
        "learning_rate: 0.0005\nlr_scheduler: constant\nlogging_steps: 1\nseed: 0\n"
        "optimizer: adamw_torch\nshuffle_merged_datasets: false\n"
    )
    cfg = honer.load_config(work / "dpo.yml")
    honer.train_model(cfg)
    metrics = [json.loads(x) for x in (work / "honer" / "metrics.jsonl").read_text().splitlines()]
    honer_runtime = next(m["train_runtime"] for m in metrics if m["kind"] == "train_end")

    # TRL directly, on the same texts.
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(base)
    ds = cfg.datasets[0]
    ctx = format_context(cfg, ds, tokenizer)
    view = TokenizerView(tokenizer)
    texts = [preference_texts(r, ds, ctx, view) for r in rows]
    data = Dataset.from_dict(
        {
            "prompt": [t[0] for t in texts],
            "chosen": [t[1] for t in texts],
            "rejected": [t[2] for t in texts],
        }
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base)
    args = DPOConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=opts.batch,
        max_steps=opts.steps,
        learning_rate=5e-4,
        lr_scheduler_type="constant",
        logging_steps=1,
        seed=0,
        optim="adamw_torch",
        max_length=256,
        report_to="none",
        bf16=False,
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    peft_config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trl_runtime = trainer.train().metrics["train_runtime"]

    prepared = honer.load_config(work / "dpo.yml")
    from honer.data.prepare import load_or_prepare

    pairs = load_or_prepare(prepared, tokenizer).train
    per_pair = [
        len(c) + len(r) for c, r in zip(pairs["chosen_ids"], pairs["rejected_ids"], strict=True)
    ]
    # Both samplers shuffle with seed 0; the answer tokens of steps × batch pairs are counted at
    # the set's average (the same figure for both, so the ratio is the ratio of runtimes).
    tokens = opts.steps * opts.batch * sum(per_pair) / len(per_pair)
    honer_tps, trl_tps = tokens / honer_runtime, tokens / trl_runtime
    print(
        json.dumps(
            {
                "bench": "dpo_throughput",
                "device": "cpu",
                "threads": opts.threads,
                "shape": {"hidden": opts.hidden, "layers": opts.layers, "vocab": len(tokenizer)},
                "pairs": opts.pairs,
                "steps": opts.steps,
                "batch": opts.batch,
                "honer": {
                    "train_runtime_s": round(honer_runtime, 3),
                    "answer_tokens_per_s": round(honer_tps, 1),
                },
                "trl": {
                    "train_runtime_s": round(trl_runtime, 3),
                    "answer_tokens_per_s": round(trl_tps, 1),
                },
                "ratio_honer_over_trl": round(honer_tps / trl_tps, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
