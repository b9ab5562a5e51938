"""End-to-end training on the tiny model: each mode learns, saves, and reloads to the same logits."""

from __future__ import annotations

import json

import pytest

from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow

STEPS = 24


def _train(cfg, data, eval_data=None):
    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import train

    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    result = train(cfg, model, tokenizer, data, eval_data)
    return model, tokenizer, result


def _losses(output_dir):
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"]


def _logits(model, input_ids):
    import torch

    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids.to(model.device)).logits.float().cpu()


def _reload(cfg, output_dir):
    """Load the saved result the way a user would: full model, or base + adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from honer.model.load import load_model, load_tokenizer

    if cfg.adapter is None:
        return AutoModelForCausalLM.from_pretrained(output_dir)
    base = load_model(cfg, load_tokenizer(cfg))
    return PeftModel.from_pretrained(base, output_dir)


# Adapters on every linear layer, rank 16: on a random-init model an attention-only rank-8
# adapter learns too slowly to show a clear fall in 24 steps.
_LORA = {"adapter": "lora", "lora_target_linear": True, "lora_r": 16, "lora_alpha": 32}
MODES = {
    "full": {"learning_rate": 3e-3},
    "lora": {**_LORA, "learning_rate": 1e-2},
    "qlora": {**_LORA, "adapter": "qlora", "load_in_4bit": True, "learning_rate": 1e-2},
    "lora_8bit": {**_LORA, "load_in_8bit": True, "learning_rate": 1e-2},
    "dora": {**_LORA, "peft_use_dora": True, "learning_rate": 1e-2},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_mode_learns_saves_and_reloads(mode, tiny_model_dir, tmp_path, train_rows):
    import torch

    out = tmp_path / "out"
    cfg = config(tiny_model_dir, out, max_steps=STEPS, **MODES[mode])
    model, _, result = _train(cfg, train_rows)

    assert result.global_step == STEPS
    losses = _losses(out)
    assert len(losses) == STEPS
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.4, f"{mode}: loss did not fall ({first:.3f} → {last:.3f})"

    weights = "model.safetensors" if mode == "full" else "adapter_model.safetensors"
    assert (out / weights).is_file()
    assert (out / "tokenizer.json").is_file() and (out / "config.yml").is_file()
    assert not (out / "training_args.bin").exists()
    if mode == "dora":
        assert json.loads((out / "adapter_config.json").read_text())["use_dora"] is True

    input_ids = torch.tensor([[1, *range(20, 40)]])
    expected = _logits(model, input_ids)
    again = _reload(cfg, out)
    if not (cfg.load_in_4bit or cfg.load_in_8bit):  # quantized loads are placed already
        again = again.to(model.device)
    reloaded = _logits(again, input_ids)
    assert torch.equal(expected, reloaded) or float((expected - reloaded).abs().max()) <= 1e-5


def test_metrics_eval_lines_and_resolved_config(tiny_model_dir, tmp_path, train_rows, monkeypatch):
    """metrics.jsonl holds train, eval and end lines; config.yml reloads and holds no secrets."""
    from honer.config.load import load_config

    monkeypatch.setenv("WANDB_API_KEY", "secret-wandb-key-123")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_456")
    out = tmp_path / "out"
    cfg = config(
        tiny_model_dir,
        out,
        adapter="lora",
        max_steps=8,
        logging_steps=2,
        evals_per_epoch=2,
        val_set_size=8,
        micro_batch_size=8,
        learning_rate=None,
        lr_scheduler="cosine",
    )
    _train(cfg, train_rows, dataset(12, seed=9))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_lines] == [2, 4, 6, 8]
    for r in train_lines:
        assert set(r) >= {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "time"}
        assert r["tokens_per_s"] > 0 and r["trained_tokens_per_s"] > 0
    # 64 samples / 8 = 8 steps per epoch; 2 evals per epoch → every 4 steps.
    assert [r["step"] for r in records if r["kind"] == "eval"] == [4, 8]
    assert all(r["eval_loss"] > 0 for r in records if r["kind"] == "eval")
    assert records[-1]["kind"] == "train_end" and records[-1]["step"] == 8

    text = (out / "config.yml").read_text()
    for path in out.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert b"secret-wandb-key-123" not in blob and b"hf_secret_token_456" not in blob
    reloaded = load_config(out / "config.yml")
    assert reloaded.learning_rate == 2e-4  # the adapter default, resolved
    assert reloaded.evals_per_epoch == 2 and reloaded.adapter == "lora"
    assert "\nresume_from_checkpoint" not in text


def test_full_finetune_config_reloads_without_lora_keys(tiny_model_dir, tmp_path):
    from honer.config.dump import resolved_config_yaml
    from honer.config.load import load_config

    cfg = config(tiny_model_dir, tmp_path)
    path = tmp_path / "config.yml"
    path.write_text(resolved_config_yaml(cfg))
    assert "lora_r" not in path.read_text()
    assert load_config(path).learning_rate == cfg.resolved_learning_rate


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("mode", ["lora", "qlora", "full"])
def test_bf16_on_gpu(mode, tiny_model_dir, tmp_path, train_rows):
    """Only where a GPU is present (never in CI): bf16 weights, mixed precision, loss falls."""
    if not _cuda():
        pytest.skip("needs a CUDA GPU")
    import torch

    out = tmp_path / "out"
    cfg = config(tiny_model_dir, out, max_steps=STEPS, bf16=True, tf32=True, **MODES[mode])
    model, _, _ = _train(cfg, train_rows)
    if mode == "qlora":  # k-bit preparation keeps norms/embeddings in float32; matmuls run in bf16
        q_proj = next(m for n, m in model.named_modules() if n.endswith("self_attn.q_proj"))
        assert q_proj.base_layer.compute_dtype == torch.bfloat16
    else:
        assert model.get_input_embeddings().weight.dtype == torch.bfloat16
    losses = _losses(out)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.4
