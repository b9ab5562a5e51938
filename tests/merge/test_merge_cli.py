"""`honer merge-lora` end to end: merged model answers like base + adapter; flag errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from honer.errors import HonerError
from tests.merge.adapter_util import make_adapter


def _invoke(args: list[str]):
    from honer.cli.main import app

    return CliRunner().invoke(app, args)


def test_merge_then_chat_with_merged_model(tiny_model_dir, tmp_path) -> None:
    make_adapter(tiny_model_dir, tmp_path / "out")
    cfg = tmp_path / "c.yml"
    body = "datasets:\n  - path: d.jsonl\n    type: chat_template\n"
    cfg.write_text(
        f"base_model: {tiny_model_dir}\n{body}output_dir: {tmp_path / 'out'}\n"
        "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n"
    )
    res = _invoke(["merge-lora", str(cfg), "--max-shard-size", "300KB", "--dtype", "float32"])
    assert res.exit_code == 0, res.output
    merged = tmp_path / "out" / "merged"
    assert (merged / "model.safetensors.index.json").is_file()
    again = _invoke(["merge-lora", str(cfg)])
    assert isinstance(again.exception, HonerError) and "--force" in str(again.exception)

    merged_cfg = tmp_path / "m.yml"
    merged_cfg.write_text(f"base_model: {merged}\n{body}output_dir: {tmp_path / 'none'}\n")
    args = ["--prompt", "hello world", "--max-new-tokens", "10"]
    with_adapter = _invoke(["inference", str(cfg), *args])
    from_merged = _invoke(["inference", str(merged_cfg), "--base-model-only", *args])
    assert with_adapter.exit_code == 0 and from_merged.exit_code == 0, from_merged.output
    assert with_adapter.stdout == from_merged.stdout


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--qlora-base", "exact"], "--qlora-base"),
        (["--qlora-base", "original"], "--qlora-base"),
        (["--dtype", "int8"], "--dtype"),
        (["--max-shard-size", "big"], "--max-shard-size"),
    ],
)
def test_merge_flag_errors(tiny_model_dir, tmp_path, args, flag) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"base_model: {tiny_model_dir}\ndatasets:\n  - path: d.jsonl\n    type: alpaca\n"
        f"output_dir: {tmp_path / 'out'}\nadapter: lora\n"
    )
    res = _invoke(["merge-lora", str(cfg), *args])
    assert isinstance(res.exception, HonerError), res.output
    assert flag in str(res.exception)


def test_merge_defaults_to_the_training_dtype_not_the_stored_one(tiny_model_dir, tmp_path) -> None:
    """A base stored in bf16 and trained in float32 (the default on CPU) merges in float32: the
    adapter was trained against float32 weights, and a bf16 merge rounds them."""
    import json

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bf16_base = tmp_path / "bf16-base"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(
        bf16_base
    )
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(bf16_base)
    make_adapter(bf16_base, tmp_path / "out")
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"base_model: {bf16_base}\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n"
        f"output_dir: {tmp_path / 'out'}\nadapter: lora\nlora_r: 4\nlora_alpha: 8\n"
        "lora_target_linear: true\n"
    )
    res = _invoke(["merge-lora", str(cfg)])
    assert res.exit_code == 0, res.output
    merged = tmp_path / "out" / "merged"
    with safe_open(str(merged / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118
    assert dtypes == {"F32"}
    assert json.loads((merged / "config.json").read_text())["dtype"] == "float32"
