"""4-bit layers keep passing gradients after an eval-mode forward (honer.model.kbit).

On a CPU with AVX512-BF16, bitsandbytes 0.50 repacks a `Linear4bit` weight at its first eval-mode,
no-grad forward, and the packed matmul has no autograd kernel: the layer then passes no gradient
to its input. Elsewhere bitsandbytes never repacks, so these tests skip (they would prove nothing).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honer.errors import ModelError
from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def _needs_avx512bf16() -> None:
    from bitsandbytes.functional import has_avx512bf16

    if not has_avx512bf16():
        pytest.skip(
            "this CPU has no AVX512-BF16: bitsandbytes does not repack 4-bit weights here, so the "
            "eval-forward hazard cannot be shown"
        )


def _qlora_cfg(tiny_model_dir, out, **overrides):
    keys = {"adapter": "qlora", "load_in_4bit": True, "lora_target_linear": True, **overrides}
    return config(tiny_model_dir, out, **keys)


def _base(cfg):
    from honer.model.load import load_model, load_tokenizer

    return load_model(cfg, load_tokenizer(cfg))


def _unguarded(model):
    """The model as bitsandbytes leaves it (honer's loader switches the repack off)."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = True
    return model


def _first_4bit(model):
    import bitsandbytes as bnb

    return next(m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))


def _input_gradient(layer):
    import torch

    x = torch.randn(3, layer.in_features, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    layer(x).sum().backward()
    return x.grad


def _eval_forward(model):
    import torch

    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    model.train()


def test_every_4bit_load_keeps_the_plain_layout(tiny_model_dir, tmp_path):
    """Training, evaluation and inference share one numeric path: the packed CPU kernel would
    answer differently from the model that was trained (logits up to 4e-3 apart here)."""
    model = _base(_qlora_cfg(tiny_model_dir, tmp_path))
    _eval_forward(model)
    assert not getattr(_first_4bit(model).weight.quant_state, "packing_format_for_cpu", False)
    assert _input_gradient(_first_4bit(model)) is not None


def test_gradient_through_a_4bit_layer_is_unchanged_by_an_eval_forward(tiny_model_dir, tmp_path):
    _needs_avx512bf16()
    from honer.model.adapters import build_adapter

    cfg = _qlora_cfg(tiny_model_dir, tmp_path)
    model = build_adapter(cfg, _base(cfg), verbose=False)
    layer = _first_4bit(model)
    before = _input_gradient(layer)
    _eval_forward(model)
    after = _input_gradient(layer)
    assert before is not None and before.norm() > 0
    assert after is not None
    assert (after - before).abs().max().item() == 0.0


def test_an_unguarded_4bit_layer_loses_its_gradient(tiny_model_dir, tmp_path):
    """The hazard the guard removes is real here (so the test above can fail)."""
    _needs_avx512bf16()
    model = _unguarded(_base(_qlora_cfg(tiny_model_dir, tmp_path)))
    layer = _first_4bit(model)
    assert _input_gradient(layer) is not None
    _eval_forward(model)
    with pytest.warns(UserWarning, match="autograd kernel was not registered"):
        assert _input_gradient(layer) is None


def test_the_start_up_check_fails_loudly_on_an_unguarded_model(tiny_model_dir, tmp_path):
    _needs_avx512bf16()
    from honer.model import kbit

    model = _unguarded(_base(_qlora_cfg(tiny_model_dir, tmp_path)))
    with pytest.raises(ModelError) as err:
        kbit.check_gradients_flow(model)
    message = str(err.value)
    assert "passes no gradient to its input" in message
    assert "truncated gradients" in message and "Linear4bit" in message


def test_the_start_up_check_leaves_the_layer_as_it_was(tiny_model_dir, tmp_path):
    import torch

    from honer.model import kbit

    model = _base(_qlora_cfg(tiny_model_dir, tmp_path))
    layer = _first_4bit(model)
    layer.eval()
    data = layer.weight.data.clone()
    dtype, dtype_set = layer.compute_dtype, layer.compute_type_is_set
    kbit.check_gradients_flow(model)  # passes: the guard is on
    assert not layer.training
    assert torch.equal(layer.weight.data, data)
    assert (layer.compute_dtype, layer.compute_type_is_set) == (dtype, dtype_set)


def test_an_already_packed_model_is_unpacked_for_training(tiny_model_dir, tmp_path):
    _needs_avx512bf16()
    from honer.model import kbit

    model = _unguarded(_base(_qlora_cfg(tiny_model_dir, tmp_path)))
    _eval_forward(model)  # packs every 4-bit layer the forward reached
    assert getattr(_first_4bit(model).weight.quant_state, "packing_format_for_cpu", False)
    assert kbit.keep_4bit_weights_unpacked(model) > 0
    kbit.check_gradients_flow(model)
    assert _input_gradient(_first_4bit(model)) is not None


def _train_losses(cfg, train, evals):
    from honer.model.adapters import build_adapter
    from honer.model.load import load_tokenizer
    from honer.train.trainer import train as run

    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, _base(cfg), verbose=False)
    run(cfg, model, tokenizer, train, evals)
    lines = (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r["loss"] for r in records if r["kind"] == "train"], [
        r for r in records if "eval_loss" in r
    ]


@pytest.mark.parametrize("adapter", ["qlora", "lora"])
def test_a_run_with_evaluations_trains_exactly_like_one_without(tiny_model_dir, tmp_path, adapter):
    """The issue's symptom: two QLoRA configs that differ only in `eval_steps` diverged after
    the first evaluation (grad_norm 0.166 vs 0.408 at the next step on SmolLM2): the repacked
    4-bit weights passed no gradient. Plain LoRA diverged too, less: each evaluation drew from
    the training RNG (its DataLoader's seed), shifting every later dropout mask."""
    train, evals = dataset(48, seed=0), dataset(8, seed=1)
    common = dict(max_steps=8, learning_rate=1e-2, lora_r=16, lora_alpha=32, lora_dropout=0.1)
    if adapter == "lora":
        common.update(adapter="lora", load_in_4bit=None)
    plain, no_evals = _train_losses(
        _qlora_cfg(tiny_model_dir, tmp_path / "plain", **common), train, None
    )
    with_eval, eval_lines = _train_losses(
        _qlora_cfg(tiny_model_dir, tmp_path / "eval", eval_steps=2, val_set_size=8, **common),
        train,
        evals,
    )
    assert not no_evals and len(eval_lines) == 4  # the second run really evaluated, 4 times
    assert len(plain) == len(with_eval) == 8
    assert with_eval == plain
