"""merge-lora: merged logits equal the adapter model's; QLoRA in both base modes; safety checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honer.errors import ModelError, NotSupportedError
from tests.merge.adapter_util import logits, make_adapter


def _load(folder: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder)


@pytest.mark.parametrize("rslora", [False, True])
def test_lora_merge_equals_adapter_logits(tiny_model_dir, tmp_path, rslora) -> None:
    from honer.runs.merge import merge as merge_from_config

    cfg, adapted = make_adapter(tiny_model_dir, tmp_path / "run", peft_use_rslora=rslora)
    result = merge_from_config(cfg, None, tmp_path / "merged", max_shard_size=200_000)
    assert result.shards > 1 and (tmp_path / "merged" / "model.safetensors.index.json").is_file()
    assert result.merged_tensors == 14  # 7 linear layers × 2 decoder layers
    merged = _load(tmp_path / "merged")
    gap = (logits(merged) - logits(adapted)).abs().max().item()
    base_gap = (logits(_load(tiny_model_dir)) - logits(adapted)).abs().max().item()
    print(f"LoRA (rslora={rslora}) merge logit gap: {gap:.2e} (adapter vs base: {base_gap:.2e})")
    assert gap <= 1e-4
    assert base_gap > 1e-2  # the adapter really changes the model
    card = (tmp_path / "merged" / "README.md").read_text()
    assert str(tiny_model_dir) in card and "unused.jsonl" in card
    assert (tmp_path / "merged" / "tokenizer.json").is_file()
    assert (tmp_path / "merged" / "generation_config.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]  # no staging left


def test_qlora_merge_both_bases(tiny_model_dir, tmp_path) -> None:
    from honer.runs.merge import merge as merge_from_config

    cfg, adapted = make_adapter(
        tiny_model_dir, tmp_path / "run", adapter="qlora", load_in_4bit=True
    )
    # Before any forward: bitsandbytes' CPU kernel repacks 4-bit weights at the first matmul.
    expected = _dequantized_plus_delta(adapted)
    want = logits(adapted)
    gaps = {}
    for mode in ("dequantized", "original"):
        merge_from_config(cfg, None, tmp_path / mode, qlora_base=mode)
        gaps[mode] = (logits(_load(tmp_path / mode)) - want).abs().max().item()
        assert "QLoRA" in (tmp_path / mode / "README.md").read_text()
    print(f"QLoRA merge logit gap: {json.dumps(gaps)} (logit scale {want.abs().max().item():.2f})")
    # The weights are exact (below); the logit gap left in `dequantized` mode is bitsandbytes'
    # CPU 4-bit matmul, which differs from an fp32 matmul of the same de-quantized weights by
    # ~3e-3 here. `original` adds the quantization error of the base itself (~8e-2 here).
    assert gaps["dequantized"] <= 1e-2
    assert gaps["original"] > 5 * gaps["dequantized"]
    from safetensors.torch import load_file

    merged = load_file(str(tmp_path / "dequantized" / "model.safetensors"))
    for key, weight in expected.items():
        diff = (merged[key] - weight).abs().max().item()
        assert diff <= 1e-6, f"{key}: {diff}"
    assert "quantization_config" not in json.loads((tmp_path / "original/config.json").read_text())


def test_refuses_non_empty_output_without_force(tiny_model_dir, tmp_path) -> None:
    from honer.runs.merge import merge as merge_from_config

    cfg, _ = make_adapter(tiny_model_dir, tmp_path / "run")
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ModelError, match="--force"):
        merge_from_config(cfg, None, out)
    assert (out / "keep.txt").is_file()
    merge_from_config(cfg, None, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


@pytest.mark.parametrize("quantized", [False, True], ids=["dora", "qdora"])
def test_dora_merge_equals_adapter_logits(tiny_model_dir, tmp_path, quantized) -> None:
    from safetensors.torch import load_file

    from honer.runs.merge import DORA_NOTE
    from honer.runs.merge import merge as merge_from_config

    keys = {"adapter": "qlora", "load_in_4bit": True} if quantized else {}
    cfg, adapted = make_adapter(tiny_model_dir, tmp_path / "run", peft_use_dora=True, **keys)
    rescaled, plain = _dora_expectations(adapted)
    want = logits(adapted)
    result = merge_from_config(cfg, None, tmp_path / "merged")
    assert result.merged_tensors == 14
    assert DORA_NOTE in (tmp_path / "merged" / "README.md").read_text()
    weights = load_file(str(tmp_path / "merged" / "model.safetensors"))
    for key, weight in rescaled.items():
        diff = (weights[key] - weight).abs().max().item()
        assert diff <= 1e-5, f"{key}: {diff}"
        # make_adapter moved the magnitudes off their initial ‖W‖: without the DoRA rescale
        # (a plain LoRA merge) the weights would be visibly different.
        assert (weights[key] - plain[key]).abs().max().item() > 1e-3
    gap = (logits(_load(tmp_path / "merged")) - want).abs().max().item()
    print(f"DoRA (quantized={quantized}) merge logit gap: {gap:.2e}")
    assert gap <= 1e-4


def _dora_expectations(adapted) -> tuple[dict, dict]:
    """Per adapted weight: peft's DoRA merge formula `m / ‖W + ΔW‖ · (W + ΔW)` (rows) on the
    layer's (de-quantized) base, and the plain `W + ΔW`. Taken before any forward."""
    from peft.utils.integrations import dequantize_module_weight

    rescaled, plain = {}, {}
    for name, module in adapted.named_modules():
        if not (hasattr(module, "lora_magnitude_vector") and "default" in module.lora_A):
            continue
        key = name.removeprefix("base_model.model.") + ".weight"
        base = dequantize_module_weight(module.get_base_layer()).float()
        combined = (base + module.get_delta_weight("default").float()).detach()
        magnitude = module.lora_magnitude_vector["default"].weight.detach().float()
        rescaled[key] = (magnitude / combined.norm(dim=1)).view(-1, 1) * combined
        plain[key] = combined
    assert len(rescaled) == 14
    return rescaled, plain


def test_dora_on_embeddings_is_refused(tiny_model_dir, tmp_path) -> None:
    from honer.runs.merge import merge as merge_from_config

    cfg, _ = make_adapter(
        tiny_model_dir,
        tmp_path / "run",
        peft_use_dora=True,
        lora_target_linear=False,
        lora_target_modules=["q_proj", "embed_tokens"],
    )
    with pytest.raises(NotSupportedError, match="DoRA on embedding layers"):
        merge_from_config(cfg, None, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize(
    "tamper, error",
    [
        ("drop_magnitude", "DoRA magnitude vectors do not match the LoRA pairs (missing for"),
        ("config_without_dora", "holds DoRA magnitude vectors but its config has no `use_dora"),
        ("short_magnitude", "output features: was the adapter trained on this base?"),
    ],
)
def test_inconsistent_dora_adapter_is_an_error(tiny_model_dir, tmp_path, tamper, error) -> None:
    from safetensors.torch import load_file, save_file

    from honer.runs.merge import merge as merge_from_config

    cfg, _ = make_adapter(tiny_model_dir, tmp_path / "run", peft_use_dora=True)
    weights_path = tmp_path / "run" / "adapter_model.safetensors"
    weights = load_file(str(weights_path))
    magnitude = sorted(k for k in weights if k.endswith(".lora_magnitude_vector"))[0]
    if tamper == "drop_magnitude":
        del weights[magnitude]
    elif tamper == "short_magnitude":
        weights[magnitude] = weights[magnitude][:-1].clone()
    else:
        config_path = tmp_path / "run" / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["use_dora"] = False
        config_path.write_text(json.dumps(config))
    save_file(weights, str(weights_path))
    with pytest.raises(ModelError) as err:
        merge_from_config(cfg, None, tmp_path / "merged")
    assert error in str(err.value)
    assert not (tmp_path / "merged").exists()


def test_missing_adapter_names_the_flag(tiny_model_dir, tmp_path) -> None:
    from honer.runs.merge import merge as merge_from_config

    cfg, _ = make_adapter(tiny_model_dir, tmp_path / "run")
    with pytest.raises(ModelError, match="--lora-model-dir"):
        merge_from_config(cfg, tmp_path / "nowhere", tmp_path / "merged")


def _dequantized_plus_delta(adapted) -> dict:
    """Each adapted weight as the QLoRA model computes it: dequantize(4-bit) + peft's delta."""
    import bitsandbytes.functional as bnbf

    out = {}
    for name, module in adapted.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            weight = module.base_layer.weight
            key = name.removeprefix("base_model.model.") + ".weight"
            out[key] = bnbf.dequantize_4bit(weight.data, weight.quant_state) + (
                module.get_delta_weight("default").detach()
            )
    assert len(out) == 14
    return out


def test_modules_to_save_replace_the_base_tensor(tiny_model_dir, tmp_path) -> None:
    import torch

    from honer.runs.merge import merge as merge_from_config

    cfg, adapted = make_adapter(tiny_model_dir, tmp_path / "run", lora_modules_to_save=["lm_head"])
    with torch.no_grad():  # a trained head differs from the base's
        adapted.base_model.model.lm_head.modules_to_save["default"].weight.add_(0.1)
    adapted.save_pretrained(tmp_path / "run")
    merge_from_config(cfg, None, tmp_path / "merged")
    gap = (logits(_load(tmp_path / "merged")) - logits(adapted)).abs().max().item()
    assert gap <= 1e-4
