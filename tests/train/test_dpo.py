"""Preference tuning (`rl: dpo` / `rl: ipo`) on the tiny model, through the whole run.

The toy preference: for "Add i and 1", the chosen answer is the right sum and the rejected one
the same wrong word every time, so the preference is learnable in a few dozen steps and the
held-out pairs (the validation split) measure it: DPO must raise their chosen-minus-rejected
reward margin and the share of pairs it ranks right.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PAIRS = [
    {
        "messages": [{"role": "user", "content": f"Add {i} and 1"}],
        "chosen": str(i + 1),
        "rejected": "zebra",
    }
    for i in range(48)
]


def _config(
    tmp: Path, base: Path, extra: str = "", rows: list[dict] | None = None, rl: str = "dpo"
) -> Path:
    data = tmp / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows or PAIRS))
    cfg = tmp / "dpo.yml"
    cfg.write_text(
        f"base_model: {base}\n"
        f"rl: {rl}\n"
        f"datasets:\n  - path: {data}\n    type: chat_template.default\n"
        "chat_template: tokenizer_default\n"
        f"dataset_prepared_path: {tmp / 'prepared'}\n"
        f"output_dir: {tmp / 'out'}\n"
        "sequence_len: 64\nlogging_steps: 1\nseed: 3\n"
        + ("" if "micro_batch_size" in extra else "micro_batch_size: 4\n")
        + extra
    )
    return cfg


def _records(out: Path, kind: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def test_dpo_lora_learns_the_preference(tiny_model_dir: Path, tmp_path: Path) -> None:
    import honer

    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 24\n"
        "val_set_size: 8\neval_steps: 12\nwarmup_steps: 2\n"
    )
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra))
    run = honer.train_model(cfg)
    assert run.global_step == 24
    out = tmp_path / "out"
    train = _records(out, "train")
    assert [r["step"] for r in train] == list(range(1, 25))
    assert train[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference: ln 2
    assert {"rewards/margins", "rewards/accuracies", "logps/chosen"} <= set(train[0])
    assert all(r["tokens_per_s"] > 0 and r["trained_tokens_per_s"] > 0 for r in train)
    evals = _records(out, "eval")
    assert [r["step"] for r in evals] == [12, 24]
    # Held-out pairs: the margin rises from 0 and the ranking beats chance.
    assert evals[-1]["eval_rewards/margins"] > 0.5
    assert evals[-1]["eval_rewards/accuracies"] >= 0.75
    assert evals[-1]["eval_loss"] < 0.6931 - 0.1
    # The result is the trained adapter alone: TRL's reference copy is never saved.
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "ref").exists()
    assert "<h2>Preference / RL metrics</h2>" in (out / "report.html").read_text()
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(tiny_model_dir)
    assert (out / "report.html").is_file() and (out / "README.md").is_file()


def test_ipo_runs_and_lowers_its_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    import honer

    extra = "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 12\n"
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra, rl="ipo"))
    honer.train_model(cfg)
    losses = [r["loss"] for r in _records(tmp_path / "out", "train")]
    # IPO's loss at the start is (0 - 1/(2 beta))^2 = 25 for beta 0.1, and falls.
    assert losses[0] == pytest.approx(25.0, rel=1e-3)
    assert losses[-1] < losses[0] * 0.8


def test_orpo_learns_the_preference_without_a_reference(tiny_model_dir: Path, tmp_path) -> None:
    import math

    import honer

    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 16\n"
        "orpo_alpha: 0.2\nval_set_size: 8\neval_steps: 16\nwarmup_steps: 2\n"
    )
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra, rl="orpo"))
    honer.train_model(cfg)
    out = tmp_path / "out"
    train = _records(out, "train")
    first = train[0]
    # TRL's ORPO loss: the chosen answers' NLL minus orpo_alpha x log sigmoid(log odds ratio).
    assert first["loss"] == pytest.approx(
        first["nll_loss"] - 0.2 * first["log_odds_ratio"], rel=1e-4
    )
    assert train[-1]["loss"] < first["loss"] - 0.5  # mostly the NLL of a random-init model
    assert train[-1]["rewards/margins"] > first["rewards/margins"]
    assert all(r["tokens_per_s"] > 0 for r in train)
    (evaluation,) = _records(out, "eval")
    assert evaluation["eval_rewards/accuracies"] >= 0.75
    assert evaluation["eval_rewards/margins"] > 0
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "ref").exists()
    assert math.isfinite(evaluation["eval_loss"])


def test_simpo_runs_and_lowers_its_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    import math

    import honer

    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 12\n"
        "micro_batch_size: 1\nrl_beta: 2.0\nsimpo_gamma: 0.5\ncpo_alpha: 0.25\n"
    )
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra, rl="simpo"))
    honer.train_model(cfg)
    train = _records(tmp_path / "out", "train")
    first = train[0]
    # One pair per step: loss = -log sigmoid(beta (avg logp chosen - avg logp rejected) - gamma)
    # + cpo_alpha x NLL, where rewards/margins is beta (avg logp chosen - avg logp rejected).
    expected = -math.log(1 / (1 + math.exp(-(first["rewards/margins"] - 0.5))))
    assert first["loss"] == pytest.approx(expected + 0.25 * first["nll_loss"], rel=1e-4)
    early = sum(r["loss"] for r in train[:4]) / 4
    late = sum(r["loss"] for r in train[-4:]) / 4
    assert late < early * 0.8


def test_full_fine_tuning_dpo_uses_a_frozen_reference(tiny_model_dir: Path, tmp_path) -> None:
    import honer

    extra = "learning_rate: 0.001\nmax_steps: 4\n"
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra))
    honer.train_model(cfg)
    train = _records(tmp_path / "out", "train")
    assert train[0]["loss"] == pytest.approx(0.6931, abs=1e-3)
    assert train[-1]["loss"] < train[0]["loss"]
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_dpo_resume_ends_with_the_uninterrupted_adapter(tiny_model_dir: Path, tmp_path) -> None:
    """A run resumed from its step-3 checkpoint ends with the same adapter as one that never
    stopped (the checkpoint is what a killed run leaves)."""
    from safetensors.torch import load_file

    import honer

    extra = "adapter: lora\nlearning_rate: 0.005\nmax_steps: 6\nsave_steps: 3\n"
    whole = tmp_path / "whole"
    whole.mkdir()
    honer.train_model(honer.load_config(_config(whole, tiny_model_dir, extra)))
    part = tmp_path / "part"
    part.mkdir()
    cfg = honer.load_config(_config(part, tiny_model_dir, extra))
    (part / "out").mkdir()
    shutil.copytree(whole / "out" / "checkpoint-3", part / "out" / "checkpoint-3")
    run = honer.train_model(cfg, resume=True)
    assert run.resumed_from == part / "out" / "checkpoint-3" and run.global_step == 6
    a = load_file(whole / "out" / "adapter_model.safetensors")
    b = load_file(part / "out" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    steps = [r["step"] for r in _records(part / "out", "train")]
    assert steps == [4, 5, 6]  # the resumed run logs from the step after its checkpoint


def test_a_pair_whose_answers_are_equal_is_a_data_error(tiny_model_dir, tmp_path) -> None:
    import honer
    from honer.errors import DataError

    rows = [*PAIRS[:3], {**PAIRS[3], "rejected": PAIRS[3]["chosen"]}]
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, "adapter: lora\n", rows))
    with pytest.raises(DataError, match=r"datasets\[0\] \(.*pairs.jsonl\) row 3: "):
        honer.train_model(cfg)


def test_the_documented_dpo_example_runs(capsys) -> None:
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "preference.md"
    [code] = [
        b for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S) if "rl: dpo" in b
    ]
    exec(compile(code, str(doc), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    [line] = [x for x in out if re.fullmatch(r"24 [-0-9.]+ [0-9.]+", x)]
    _, margin, accuracy = line.split()
    assert float(margin) > 0.5 and float(accuracy) >= 0.75


LORA_RUN = "adapter: lora\nlora_target_linear: true\nlora_dropout: 0.0\n"


@pytest.mark.parametrize(
    ("engine", "adapter", "setting"),
    [
        ("ddp", True, ""),
        ("deepspeed_zero2", True, "deepspeed: zero2\n"),
        ("fsdp2", True, "fsdp: [full_shard, auto_wrap]\n"),
        ("deepspeed_zero3", False, "deepspeed: zero3\n"),  # full fine-tune: a frozen reference
    ],
)
def test_dpo_on_two_processes_trains_like_one(
    engine: str, adapter: bool, setting: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Two CPU processes (gloo) × 2 pairs under each engine against one process × 4 pairs: the
    same losses and the same weights. LoRA dropout 0: dropout masks differ per rank by design."""
    from safetensors.torch import load_file

    from tests.train.test_distributed import _honer

    outs = {}
    for processes in (1, 2):
        tmp = tmp_path / f"p{processes}"
        tmp.mkdir()
        extra = (
            (LORA_RUN if adapter else "")
            + f"learning_rate: 0.005\nmax_steps: 4\nmicro_batch_size: {4 // processes}\n"
            + (setting if processes > 1 else "")
        )
        cfg = _config(tmp, tiny_model_dir, extra)
        args = ["train", str(cfg)] + (["--num-processes", "2"] if processes > 1 else [])
        proc = _honer(*args)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        outs[processes] = tmp / "out"
    report = json.loads((outs[2] / "parallel.json").read_text())
    assert (report["engine"], report["world_size"]) == (engine, 2)
    one, two = _records(outs[1], "train"), _records(outs[2], "train")
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-4
        assert abs(a["rewards/margins"] - b["rewards/margins"]) <= 1e-4
    weights = "adapter_model.safetensors" if adapter else "model.safetensors"
    a, b = load_file(outs[1] / weights), load_file(outs[2] / weights)
    assert sorted(a) == sorted(b)
    # Adam on every weight turns the ranks' reduction-order rounding into ~1e-5 differences.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= (1e-5 if adapter else 1e-4)


KTO_ROWS = [
    {
        "prompt": f"Add {i} and 1",
        "completion": str(i + 1) if i % 2 else "zebra",
        "label": i % 2 == 1,
    }
    for i in range(48)
]


def test_kto_runs_and_lowers_its_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    import honer

    data = tmp_path / "kto.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in KTO_ROWS))
    cfg_path = tmp_path / "kto.yml"
    cfg_path.write_text(
        f"base_model: {tiny_model_dir}\nrl: kto\n"
        f"datasets:\n  - path: {data}\n    type: chatml.prompt_pairs\n"
        f"dataset_prepared_path: {tmp_path / 'prepared'}\noutput_dir: {tmp_path / 'out'}\n"
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 12\n"
        "micro_batch_size: 4\nsequence_len: 64\nlogging_steps: 1\nseed: 3\n"
    )
    run = honer.train_model(honer.load_config(cfg_path))
    assert run.global_step == 12
    train = _records(tmp_path / "out", "train")
    assert [r["step"] for r in train] == list(range(1, 13))
    # The policy starts as its reference: every reward is 0, so KTO's loss is 1 - sigmoid(0).
    assert train[0]["loss"] == pytest.approx(0.5, abs=1e-3)
    assert sum(r["loss"] for r in train[-3:]) / 3 < 0.45
    # Rows are shuffled once when prepared, so batches mix both labels (KTO reads in order):
    # desirable answers gain reward against the reference, undesirable ones lose it.
    assert all("rewards/chosen" in r and "rewards/rejected" in r for r in train[1:])
    assert train[-1]["rewards/chosen"] > 0 and train[-1]["rewards/rejected"] < -0.3
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "out" / "ref").exists()


def test_a_dpo_run_is_evaluated_and_prompted_as_it_was_trained(tiny_model_dir, tmp_path) -> None:
    """`honer evaluate` scores the held-out pairs' chosen answers (loss, and the checks on
    generations from their prompts); inference prompts the way the pairs were written."""
    import honer
    from honer.infer.prompt import PromptFormatter

    extra = (
        "adapter: lora\nlearning_rate: 0.01\nmax_steps: 4\nval_set_size: 8\n"
        "evals:\n  checks:\n    - {type: regex, pattern: '^[0-9]+$', name: digits}\n"
        "  max_new_tokens: 3\n"
    )
    cfg = honer.load_config(_config(tmp_path, tiny_model_dir, extra))
    honer.train_model(cfg)
    scores = honer.evaluate_model(cfg)
    assert scores.evaluated["samples"] == 8 and scores.loss > 0
    cases = [json.loads(x) for x in (scores.output_dir / "cases.jsonl").read_text().splitlines()]
    assert len(cases) == 8
    assert all(c["prompt"].startswith("user\nAdd ") for c in cases)  # ChatML, specials skipped
    assert {c["expected"] for c in cases} <= {str(i + 1) for i in range(48)}
    # Literal-marker formats prompt with their markers and stop at their end-of-turn token.
    from honer.config.load import config_from_dict

    literal = config_from_dict(
        {
            "base_model": str(tiny_model_dir),
            "rl": "dpo",
            "datasets": [{"path": "p.jsonl", "type": "chatml.intel"}],
        }
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    fmt = PromptFormatter(literal, tokenizer, system="Be brief.")
    text = fmt.text([{"role": "user", "content": "Add 2 and 3"}])
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nAdd 2 and 3<|im_end|>\n<|im_start|>assistant\n"
    )
    assert fmt.ids([{"role": "user", "content": "Add 2 and 3"}])[0] == 1  # BOS, as TRL
    assert fmt.stop_ids == {2, 5}  # </s> and <|im_end|>


def test_a_named_reference_model_is_the_reference(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`rl_reference_model`: a LoRA run against another model. With the base model itself named,
    the run equals the default (adapter disabled) one; with a different model the first loss
    is no longer ln 2, since policy and reference differ."""
    from transformers import AutoModelForCausalLM

    import honer

    other = tmp_path / "scaled-base"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    for p in model.parameters():
        p.data.mul_(1.5)
    model.save_pretrained(other)
    losses = {}
    for name, ref in (
        ("default", ""),
        ("same", f"rl_reference_model: {tiny_model_dir}\n"),
        ("other", f"rl_reference_model: {other}\n"),
    ):
        tmp = tmp_path / name
        tmp.mkdir()
        extra = "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 2\n" + ref
        honer.train_model(honer.load_config(_config(tmp, tiny_model_dir, extra)))
        losses[name] = [r["loss"] for r in _records(tmp / "out", "train")]
    assert losses["same"] == pytest.approx(losses["default"], abs=1e-6)
    assert losses["default"][0] == pytest.approx(0.6931, abs=1e-3)
    assert abs(losses["other"][0] - losses["default"][0]) > 1e-3
