"""Liger kernels (`liger_*` keys, Axolotl's `LigerPlugin`) on a loaded model, where they can run.

Liger-Kernel's fused RoPE, RMSNorm, SwiGLU/GeGLU, LayerNorm and cross-entropy are Triton kernels:
CUDA only. liger-kernel even imports on a CPU machine, then fails inside the first forward, so the
device decides, not the import:

* CUDA, liger-kernel installed: liger's own per-model patch (`apply_liger_kernel_to_<type>`,
  looked up by `model_type`) is applied to this model instance, with exactly the kernels the
  config switches on (liger's defaults switch most of them on, so every flag is passed).
* CUDA, not installed: a `ConfigError` naming `pip install liger-kernel`.
* CPU: one line says the kernels are GPU-only and the plain PyTorch path runs. The kernels are
  exact re-implementations, so results are the same (up to float rounding).

`liger_fused_linear_cross_entropy` is never handed to liger's model patch: liger fuses only when
labels go into the model, and honer computes the loss outside the model so that it can divide by
the trained tokens of the whole optimizer step (see `honer.train.trainer`). Instead the trainer's
chunked head loss (`honer.train.chunked_loss`) runs, with liger's fused kernel inside it on CUDA
(`head_loss="liger"`) and honer's chunked PyTorch loss elsewhere (`head_loss="chunked"`): the
same memory idea, logits never materialised for the whole batch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from honer import hardware
from honer.errors import ConfigError
from honer.ranks import is_main_process

if TYPE_CHECKING:
    from rich.console import Console

    from honer.config.schema import Config

FUSED_LINEAR_CE = "liger_fused_linear_cross_entropy"

# Our (Axolotl's) key → the keyword(s) of liger's `apply_liger_kernel_to_<type>(...)`.
LIGER_KWARGS: dict[str, tuple[str, ...]] = {
    "liger_rope": ("rope",),
    "liger_rms_norm": ("rms_norm",),
    "liger_glu_activation": ("swiglu", "geglu"),
    "liger_layer_norm": ("layer_norm",),
    "liger_cross_entropy": ("cross_entropy",),
    "liger_rms_norm_gated": ("rms_norm_gated",),
}

INSTALL_HINT = "pip install liger-kernel"


@dataclass(frozen=True)
class KernelPlan:
    """What `apply_kernels` did, and which head loss the trainer must run.

    `head_loss`: None (the plain loss), "chunked" (honer's chunked loss) or "liger" (liger's
    fused linear cross-entropy kernel inside honer's chunked head). `applied`: the liger
    keywords patched into the model.
    """

    head_loss: str | None = None
    applied: tuple[str, ...] = ()


def _liger_patches() -> dict[str, Any]:
    """liger's table model_type → `apply_liger_kernel_to_<type>`; ImportError when absent."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return dict(MODEL_TYPE_TO_APPLY_LIGER_FN)


def _base_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (liger patches its modules in place)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _say(console: Console | None, line: str) -> None:
    """One line, from the main process only (every rank applies the kernels)."""
    if not is_main_process():
        return
    if console is None:
        print(line, flush=True)
    else:
        console.print(line, markup=False)


def apply_kernels(model: Any, cfg: Config, console: Console | None = None) -> KernelPlan:
    """Apply the liger kernels `cfg` switches on to `model` (in place) where the device allows.

    Returns the `KernelPlan`; prints at most one line. Raises `ConfigError` on CUDA when a
    liger key is on and liger-kernel is not installed.
    """
    wanted = {key: bool(on) for key, on in (cfg.liger_kernels or {}).items()}
    on = [key for key, value in wanted.items() if value]
    if not on:
        return KernelPlan()
    fused = wanted.get(FUSED_LINEAR_CE, False)
    if not hardware.cuda_available():
        line = "liger kernels are GPU-only: on CPU the plain PyTorch path runs (identical results)"
        if fused:
            line += f"; {FUSED_LINEAR_CE} runs as honer's chunked loss (same memory saving)"
        _say(console, line)
        return KernelPlan(head_loss="chunked" if fused else None)
    try:
        patches = _liger_patches()
    except ImportError:
        raise ConfigError(
            [(on[0], f"{', '.join(on)} need liger-kernel on CUDA: `{INSTALL_HINT}`.")]
        ) from None
    head_loss = "liger" if fused else None
    base = _base_model(model)
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    patch = patches.get(model_type or "")
    if patch is None:
        line = f"liger-kernel has no kernels for model type {model_type!r}: the plain path runs"
        _say(console, line)
        return KernelPlan(head_loss=head_loss)
    accepted = inspect.signature(patch).parameters
    kwargs: dict[str, bool] = {}
    missing = []
    for key, names in LIGER_KWARGS.items():
        names_here = [n for n in names if n in accepted]
        for name in names_here:
            kwargs[name] = wanted.get(key, False)
        if wanted.get(key) and not names_here:
            missing.append(key)
    if "fused_linear_cross_entropy" in accepted:
        kwargs["fused_linear_cross_entropy"] = False  # honer's chunked head (module docstring)
    patch(model=base, **kwargs)
    applied = tuple(name for name, value in kwargs.items() if value)
    line = f"liger kernels ({model_type}): {', '.join(applied) or 'none'}"
    if fused:
        line += ", fused linear cross-entropy"
    if missing:
        line += f"; not in liger for {model_type}: {', '.join(missing)} (plain path)"
    _say(console, line)
    return KernelPlan(head_loss=head_loss, applied=applied)
