"""`honer train CONFIG [--resume]` from YAML and JSONL to a saved adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from honer import hardware
from honer.errors import ConfigError
from honer.runs.hub import HubError

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

runner = CliRunner()


def _write(tmp_path: Path, model_dir: Path, extra: str = "") -> Path:
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"Add {i} and 1", "output": str(i + 1)}) + "\n"
            for i in range(24)
        )
    )
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        f"base_model: {model_dir}\n"
        f"datasets:\n  - path: {data}\n    type: alpaca\n"
        f"dataset_prepared_path: {tmp_path / 'prepared'}\n"
        f"output_dir: {tmp_path / 'out'}\n"
        "adapter: lora\nmicro_batch_size: 4\nsequence_len: 128\nval_set_size: 4\n"
        "max_steps: 6\nsaves_per_epoch: 2\nevals_per_epoch: 1\nlogging_steps: 1\n"
        "flash_attention: true\nbf16: auto\n" + extra
    )
    return cfg


def test_train_command_end_to_end(tiny_model_dir, tmp_path):
    from honer.cli.train import train

    cfg = _write(tmp_path, tiny_model_dir)
    train(cfg, resume=False)
    out = tmp_path / "out"
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "config.yml",
        "metrics.jsonl",
    ):
        assert (out / name).is_file(), name
    kinds = [json.loads(line)["kind"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert kinds.count("train") == 6 and "eval" in kinds and kinds[-1] == "train_end"
    # 20 training rows / 4 = 5 steps per epoch; 2 saves per epoch → every 2 steps.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert (tmp_path / "prepared").is_dir()  # preprocessing ran and cached

    # --resume continues from the last checkpoint to a larger max_steps.
    cfg.write_text(cfg.read_text().replace("max_steps: 6", "max_steps: 8"))
    result = runner.invoke(_app(), ["train", str(cfg), "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming from" in result.output and "checkpoint-6" in result.output
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 6] and sorted(set(steps)) == list(range(1, 9))


def _app():
    from honer.cli.main import app

    return app


@pytest.mark.parametrize(
    ("extra", "error", "text"),
    [
        (
            "hub_model_id: me/model\n",
            HubError,
            "hub_model_id is set but the Hub cannot be reached: HF_HUB_OFFLINE=1 is set",
        ),
        ("bf16: true\n", ConfigError, "bf16: true, but this machine has no GPU"),
        (
            "lr_scheduler: constant\nwarmup_steps: 3\n",
            ConfigError,
            "warmup_steps: `lr_scheduler: constant` has no warm-up",
        ),
        ("report_to: [wandb]\n", ConfigError, "report_to: `wandb` needs the wandb package"),
    ],
)
def test_train_refuses_before_loading_anything(
    extra, error, text, tiny_model_dir, tmp_path, monkeypatch
):

    monkeypatch.setattr(hardware, "bf16_supported", lambda: False)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    cfg = _write(tmp_path, tiny_model_dir, extra)
    cfg.write_text(
        cfg.read_text().replace("bf16: auto\n", "") if "bf16" in extra else cfg.read_text()
    )
    result = runner.invoke(_app(), ["train", str(cfg)])
    assert isinstance(result.exception, error)
    assert text in str(result.exception)
    assert not (tmp_path / "prepared").exists()
