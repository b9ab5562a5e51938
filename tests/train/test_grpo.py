"""GRPO (`rl: grpo`) on the tiny model: rewards are the config's checks or the user's Python.

The verifiable toy task: the reward is a `regex` check that the completion contains the letter
"a". A random model writes one in about a quarter of its 4-token completions; GRPO must raise
that share over its steps (seeded, so the numbers are the same on every run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PROMPTS = [
    {"prompt": [{"role": "user", "content": f"Add {i} and 1"}], "answer": str(i + 1)}
    for i in range(32)
]


def _config(tmp: Path, base: Path, extra: str, rows: list[dict] | None = None) -> Path:
    data = tmp / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows or PROMPTS))
    cfg = tmp / "grpo.yml"
    cfg.write_text(
        f"base_model: {base}\nrl: grpo\n"
        f"datasets:\n  - path: {data}\n    type: prompt\n"
        "chat_template: tokenizer_default\n"
        f"dataset_prepared_path: {tmp / 'prepared'}\noutput_dir: {tmp / 'out'}\n"
        "sequence_len: 64\nlogging_steps: 1\nseed: 3\n" + extra
    )
    return cfg


def _train_records(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "train"]


def test_grpo_raises_the_reward_of_a_regex_check(tiny_model_dir: Path, tmp_path: Path) -> None:
    import honer

    extra = (
        "learning_rate: 0.01\nmax_steps: 40\nmicro_batch_size: 16\n"
        "trl:\n  num_generations: 4\n  max_completion_length: 4\n"
        "  reward_funcs:\n    - {type: regex, pattern: a, name: has_a}\n"
    )
    run = honer.train_model(honer.load_config(_config(tmp_path, tiny_model_dir, extra)))
    assert run.global_step == 40
    train = _train_records(tmp_path / "out")
    assert [r["step"] for r in train] == list(range(1, 41))
    # The check's reward is logged under its name, and is the whole reward here.
    assert all(r["rewards/has_a/mean"] == r["reward"] for r in train)
    assert all(r["completions/mean_length"] <= 4 for r in train)
    assert all(r["tokens_per_s"] > 0 and r["trained_tokens_per_s"] > 0 for r in train)
    first = sum(r["reward"] for r in train[:10]) / 10
    last = sum(r["reward"] for r in train[-10:]) / 10
    assert first < 0.45
    assert last > first + 0.3
    assert (tmp_path / "out" / "model.safetensors").is_file()
    # The report draws the reward curves (and an SFT run's report has no such section).
    from honer.evaluate.report import rl_metrics_png

    assert "<h2>Preference / RL metrics</h2>" in (tmp_path / "out" / "report.html").read_text()
    assert rl_metrics_png([{"step": 1, "loss": 2.0}, {"step": 1, "eval_loss": 2.1}]) == ""


REWARD_MODULE = """
SEEN = []


def transform(cfg):
    def to_prompt(example):
        return {
            "prompt": [{"role": "user", "content": example["question"]}],
            "answer": example["solution"].split("####")[-1].strip(),
        }

    return to_prompt, {"remove_columns": ["question", "solution"]}


def right_answer(completions, answer, **kwargs):
    SEEN.extend(answer)
    return [1.0 if a in c[0]["content"] else 0.0 for c, a in zip(completions, answer)]
"""


def test_axolotl_style_transform_and_python_reward(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """`type: module.function` transforms the rows and `module.function` rewards get the
    conversational completions and every remaining column, as in Axolotl and TRL."""
    import honer

    (tmp_path / "my_rewards.py").write_text(REWARD_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"question": f"Add {i} and 1", "solution": f"so #### {i + 1}"} for i in range(8)]
    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 2\n"
        "micro_batch_size: 4\n"
        "trl:\n  num_generations: 2\n  max_completion_length: 4\n"
        "  reward_funcs: [my_rewards.right_answer, {type: contains}]\n"
        "  reward_weights: [1.0, 0.5]\n"
    )
    path = _config(tmp_path, tiny_model_dir, extra, rows)
    path.write_text(path.read_text().replace("type: prompt", "type: my_rewards.transform"))
    cfg = honer.load_config(path)
    assert (cfg.datasets[0].type, cfg.datasets[0].transform) == ("prompt", "my_rewards.transform")
    honer.train_model(cfg)
    import my_rewards

    # Each of the 2 steps scored 2 prompts x 2 completions; the answers came from the transform.
    assert len(my_rewards.SEEN) == 8
    assert set(my_rewards.SEEN) <= {str(i + 1) for i in range(8)}
    train = _train_records(tmp_path / "out")
    assert {"rewards/right_answer/mean", "rewards/contains/mean"} <= set(train[0])
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_the_documented_grpo_example_runs(capsys) -> None:
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "preference.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    [code] = [b for b in blocks if "rl: grpo" in b]
    exec(compile(code, str(doc), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    [line] = [x for x in out if re.fullmatch(r"40 [0-9.]+ [0-9.]+", x)]
    _, first, last = line.split()
    assert float(first) < 0.45 and float(last) > 0.6


def test_grpo_runs_on_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """DDP (gloo, 2 CPU processes): each rank samples its share of the groups; the run logs
    every step once, with its rewards."""
    from tests.train.test_distributed import _honer

    extra = (
        "adapter: lora\nlora_target_linear: true\nlearning_rate: 0.01\nmax_steps: 3\n"
        "micro_batch_size: 4\n"
        "trl:\n  num_generations: 4\n  max_completion_length: 4\n"
        "  reward_funcs:\n    - {type: regex, pattern: a}\n"
    )
    proc = _honer("train", str(_config(tmp_path, tiny_model_dir, extra)), "--num-processes", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "parallel.json").read_text())
    assert (report["engine"], report["world_size"]) == ("ddp", 2)
    train = _train_records(tmp_path / "out")
    assert [r["step"] for r in train] == [1, 2, 3]
    assert all("rewards/regex/mean" in r for r in train)
