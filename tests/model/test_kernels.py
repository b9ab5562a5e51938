"""Liger kernels: the plain path (one line) on CPU, liger's own per-model patch on CUDA (by
monkeypatch: no GPU here), and the error naming `pip install liger-kernel` when it is missing."""

from __future__ import annotations

import io
import sys
import types

import pytest

from honer import hardware
from honer.errors import ConfigError
from tests.train.data_util import config


def _console():
    from rich.console import Console

    text = io.StringIO()
    return Console(file=text, highlight=False, soft_wrap=True), text


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def _lines(text: io.StringIO) -> list[str]:
    return [line for line in text.getvalue().splitlines() if line.strip()]


def test_no_liger_key_does_nothing(tiny_model_dir, tmp_path):
    from honer.model.kernels import KernelPlan, apply_kernels

    console, text = _console()
    cfg = config(tiny_model_dir, tmp_path, liger_rope=False)
    assert apply_kernels(_model(tiny_model_dir), cfg, console) == KernelPlan()
    assert _lines(text) == []


@pytest.mark.parametrize("fused", [False, True])
def test_cpu_runs_the_plain_path_with_one_line(fused, tiny_model_dir, tmp_path, monkeypatch):
    import torch

    from honer.model.kernels import apply_kernels

    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    model = _model(tiny_model_dir)
    ids = torch.tensor([[1, 20, 21, 22]])
    before = model(input_ids=ids).logits
    console, text = _console()
    keys = {"liger_rope": True, "liger_rms_norm": True, "liger_glu_activation": True}
    if fused:
        keys["liger_fused_linear_cross_entropy"] = True
    plan = apply_kernels(model, config(tiny_model_dir, tmp_path, **keys), console)
    lines = _lines(text)
    assert len(lines) == 1 and "GPU-only" in lines[0] and "identical results" in lines[0]
    assert plan.head_loss == ("chunked" if fused else None) and plan.applied == ()
    assert ("chunked loss" in lines[0]) is fused
    assert torch.equal(model(input_ids=ids).logits, before)  # nothing was patched


def _fake_liger(monkeypatch, table: dict) -> None:
    names = ["liger_kernel", "liger_kernel.transformers", "liger_kernel.transformers.monkey_patch"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    sys.modules[names[-1]].MODEL_TYPE_TO_APPLY_LIGER_FN = table


def _recording_patch(calls: list):
    """A stand-in for `apply_liger_kernel_to_llama` (its real signature and defaults)."""

    def apply_liger_kernel_to_llama(
        rope=True,
        cross_entropy=False,
        fused_linear_cross_entropy=True,
        rms_norm=True,
        swiglu=True,
        model=None,
    ):
        calls.append({k: v for k, v in locals().items()})

    return apply_liger_kernel_to_llama


def test_cuda_applies_liger_per_instance_with_exactly_the_set_kernels(
    tiny_model_dir, tmp_path, monkeypatch
):
    from honer.model.adapters import build_adapter
    from honer.model.kernels import apply_kernels

    calls: list[dict] = []
    _fake_liger(monkeypatch, {"llama": _recording_patch(calls)})
    cfg = config(
        tiny_model_dir,
        tmp_path,
        adapter="lora",
        liger_rope=True,
        liger_glu_activation=True,
        liger_layer_norm=True,  # liger's llama patch has no layer_norm
        liger_fused_linear_cross_entropy=True,
    )
    model = build_adapter(cfg, _model(tiny_model_dir), verbose=False)
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    console, text = _console()
    plan = apply_kernels(model, cfg, console)

    assert len(calls) == 1
    call = calls[0]
    assert call["model"] is model.get_base_model()  # the transformers model under peft
    # Every flag is passed: liger's defaults would switch on kernels the config did not ask for;
    # its fused loss is left to honer's chunked head, which keeps the step-wide normalisation.
    assert call["rope"] is True and call["swiglu"] is True
    assert call["rms_norm"] is False and call["cross_entropy"] is False
    assert call["fused_linear_cross_entropy"] is False
    assert plan.head_loss == "liger" and set(plan.applied) == {"rope", "swiglu"}
    lines = _lines(text)
    assert len(lines) == 1 and "llama" in lines[0] and "liger_layer_norm" in lines[0]


def test_cuda_model_type_liger_does_not_know(tiny_model_dir, tmp_path, monkeypatch):
    from honer.model.kernels import apply_kernels

    _fake_liger(monkeypatch, {"qwen2": _recording_patch([])})
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    console, text = _console()
    cfg = config(tiny_model_dir, tmp_path, liger_rms_norm=True)
    plan = apply_kernels(_model(tiny_model_dir), cfg, console)
    assert plan.head_loss is None and plan.applied == ()
    assert "no kernels for model type 'llama'" in _lines(text)[0]


def test_cuda_without_liger_names_the_install(tiny_model_dir, tmp_path, monkeypatch):
    from honer.model.kernels import apply_kernels

    monkeypatch.setitem(sys.modules, "liger_kernel", None)  # `import liger_kernel…` fails
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    cfg = config(tiny_model_dir, tmp_path, liger_rms_norm=True, liger_glu_activation=True)
    with pytest.raises(ConfigError, match="pip install liger-kernel") as err:
        apply_kernels(_model(tiny_model_dir), cfg, _console()[0])
    assert err.value.key_paths == ["liger_rms_norm"]
