"""Quantized (bitsandbytes) layers: keep them trainable, and prove it before a run starts.

Why this module exists: on a CPU with AVX512-BF16, bitsandbytes (0.50) rewrites a `Linear4bit`
weight into a packed inference layout at the layer's first eval-mode, no-grad forward (an
in-training evaluation, an eval-table generation, `honer evaluate`). From then on its matmul goes
through `bitsandbytes::gemv_4bit`, which has no autograd kernel: the frozen base layer passes no
gradient to its input, and every LoRA layer below it trains on a truncated gradient. Nothing fails;
the only sign is a PyTorch UserWarning (and a run that looks twice as fast). peft's DoRA, which
de-quantizes the base weight at every forward, also misreads the packed layout.

The packed kernel also rounds differently (bf16 scales: logits up to 4e-3 away from the plain
layout's on the tiny test model), so an adapter would answer at inference unlike it trained. So
`honer.model.load.load_model` switches the repack off for every 4-bit load (training, evaluation,
inference), and `check_gradients_flow` runs one layer through eval → train before training and
fails loudly if gradients stop, so a future bitsandbytes that breaks this again is caught in
seconds, not after a run. The cost is CPU 4-bit inference speed; on a GPU nothing changes.

Under FSDP2 (QLoRA + FSDP) the same switch is what keeps training right, and the probe runs
before sharding, on the layer as bitsandbytes built it. After `fully_shard` each 4-bit weight is
a float DTensor shard (see `bnb_4bit_quant_storage` in `honer.model.load`); at every forward
FSDP all-gathers it into a plain tensor and bitsandbytes rebuilds the `Params4bit` around it
from the layer's own `quant_state` (`fix_4bit_weight_quant_state_from_module`), so that copy
must stay the unpacked one. With the repack left on, an in-training evaluation rewrites the
gathered weight in place and training after it goes wrong (measured on two CPU ranks: the loss
of the step after the first evaluation 7.62 instead of 7.52, its gradient norm 0.99 instead of
1.61); `tests/train/test_fsdp_qlora.py` evaluates mid-run to keep that covered.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from honer.errors import ModelError

if TYPE_CHECKING:
    from torch import nn


def is_quantized(model: nn.Module) -> bool:
    """True for a base loaded in 4 or 8 bits (transformers marks the model)."""
    return bool(
        getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
    )


def quantized_layers(model: nn.Module) -> list[nn.Module]:
    """Every bitsandbytes linear layer (4-bit and 8-bit) of `model`, in module order."""
    return [m for m in model.modules() if type(m).__module__.startswith("bitsandbytes.")]


def _is_4bit(module: nn.Module) -> bool:
    return hasattr(module, "support_avx512bf16_for_cpu")  # bitsandbytes Linear4bit and subclasses


def four_bit_layers(model: nn.Module) -> list[nn.Module]:
    """Every bitsandbytes 4-bit linear layer of `model` (also once FSDP2 has sharded it: the
    layer keeps its class, its weight becomes a DTensor shard)."""
    return [m for m in quantized_layers(model) if _is_4bit(m)]


def keep_4bit_weights_unpacked(model: nn.Module) -> int:
    """Stop bitsandbytes repacking 4-bit weights for its CPU inference kernel; returns how many
    layers were already packed (and were unpacked again, which bitsandbytes calls best-effort:
    the nested absmax constants are re-quantized)."""
    unpacked = 0
    for module in quantized_layers(model):
        if not _is_4bit(module):
            continue
        module.support_avx512bf16_for_cpu = False
        weight = module.weight
        state = getattr(weight, "quant_state", None)
        if getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                weight.data, state
            )
            if getattr(module, "quant_state", None) is state:
                # FSDP2 all-gathers the weight as a plain tensor and bitsandbytes rebuilds its
                # quant_state from the layer's copy at every forward: keep the two one object
                # (bitsandbytes 0.50 unpacks the state in place; a copy would leave it packed).
                module.quant_state = weight.quant_state
            unpacked += 1
    return unpacked


def _input_gradient(layer: nn.Module, x: Any) -> Any:
    """The gradient of sum(layer(x)) with respect to x (None when none flows)."""
    import torch

    x.grad = None
    with torch.enable_grad(), warnings.catch_warnings():
        # "an autograd kernel was not registered": exactly the failure this probe reports itself
        warnings.simplefilter("ignore", UserWarning)
        layer(x).float().sum().backward()
    return None if x.grad is None else x.grad.detach().clone()


def _probe(layer: nn.Module) -> str | None:
    """Run `layer` train → eval (no grad) → train; None when the input gradient is unchanged,
    else what went wrong. The layer's mode and compute-dtype state are restored."""
    import torch

    weight = layer.weight
    if weight.device.type == "meta" or weight.numel() == 0:
        return None  # not materialised on this rank (sharded loading): nothing to probe
    dtype = getattr(layer, "compute_dtype", None) or torch.float32
    saved = {
        k: getattr(layer, k) for k in ("compute_dtype", "compute_type_is_set") if hasattr(layer, k)
    }
    was_training = layer.training
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, layer.in_features, generator=gen).to(weight.device, dtype)
    x.requires_grad_(True)
    try:
        layer.train()
        before = _input_gradient(layer, x)
        layer.eval()
        with torch.no_grad():
            layer(x.detach())
        layer.train()
        after = _input_gradient(layer, x)
    finally:
        layer.train(was_training)
        for key, value in saved.items():
            setattr(layer, key, value)
    if before is None or not bool(before.abs().sum() > 0):
        return "no gradient reaches the input of a quantized layer even before any evaluation"
    if after is None:
        return "after an eval-mode forward the layer passes no gradient to its input"
    if not torch.allclose(before, after, rtol=1e-5, atol=1e-6):
        gap = (before - after).abs().max().item()
        return f"after an eval-mode forward its input gradient changed (max difference {gap:.3g})"
    return None


def check_gradients_flow(model: nn.Module) -> None:
    """Fail before training when a quantized layer stops passing gradients after an eval forward.

    One layer of each bitsandbytes class is probed on a random input (milliseconds); training
    state is left as it was.
    """
    seen: set[type] = set()
    for layer in quantized_layers(model):
        if type(layer) in seen or not hasattr(layer, "in_features"):
            continue
        seen.add(type(layer))
        problem = _probe(layer)
        if problem:
            import bitsandbytes

            raise ModelError(
                f"quantized training is unsafe with bitsandbytes {bitsandbytes.__version__} on "
                f"this machine: {problem} ({type(layer).__name__}), so the adapter would train on "
                "truncated gradients. Train without `load_in_4bit`/`load_in_8bit` (plain LoRA), "
                "or install another bitsandbytes version, and please report this to honer."
            )
