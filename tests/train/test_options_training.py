"""Options whose effect shows only while training: checkpoints, clipping, checkpointing, resume,
and the errors a run can hit."""

from __future__ import annotations

import io

import pytest

from honer.errors import ConfigError, DataError, HonerError
from tests.train.data_util import config, dataset

# Every test here trains a model or starts processes: `pytest -m "not slow"` skips them.
pytestmark = pytest.mark.slow


def _run(
    tiny_model_dir, out, data=None, eval_data=None, model=None, resume=False, callbacks=None, **keys
):
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honer.train.trainer import train

    cfg = config(tiny_model_dir, out, **keys)
    model = model or AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = data if data is not None else dataset(32)
    console = Console(file=io.StringIO(), width=200)
    result = train(
        cfg, model, tokenizer, data, eval_data, resume=resume, console=console, callbacks=callbacks
    )
    return result, model, console.file.getvalue()


def _checkpoints(out):
    return sorted((p.name for p in out.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))


def test_save_steps_and_total_limit(tiny_model_dir, tmp_path):
    _run(tiny_model_dir, tmp_path / "all", max_steps=6, save_steps=2)
    assert _checkpoints(tmp_path / "all") == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    _run(tiny_model_dir, tmp_path / "two", max_steps=6, save_steps=2, save_total_limit=2)
    assert _checkpoints(tmp_path / "two") == ["checkpoint-4", "checkpoint-6"]
    assert not list((tmp_path / "two").glob(".staging-*"))


def test_saves_per_epoch(tiny_model_dir, tmp_path):
    # 32 samples / 4 = 8 steps per epoch; 4 saves per epoch → every 2 steps.
    result, _, printed = _run(tiny_model_dir, tmp_path / "o", max_steps=8, saves_per_epoch=4)
    assert _checkpoints(tmp_path / "o") == [f"checkpoint-{s}" for s in (2, 4, 6, 8)]
    assert "steps per epoch 8 | total steps 8" in printed


def test_default_saves_once_per_epoch(tiny_model_dir, tmp_path):
    _run(tiny_model_dir, tmp_path / "o", num_epochs=2)
    assert _checkpoints(tmp_path / "o") == ["checkpoint-8", "checkpoint-16"]


def _update_norm(tiny_model_dir, out, max_grad_norm):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _run(
        tiny_model_dir,
        out,
        model=model,
        max_steps=1,
        optimizer="sgd",
        learning_rate=1.0,
        max_grad_norm=max_grad_norm,
        save_steps=100,
    )
    deltas = [(p.detach().cpu() - before[n]).flatten() for n, p in model.named_parameters()]
    return float(torch.cat(deltas).norm())


def test_max_grad_norm_clips_the_update(tiny_model_dir, tmp_path):
    # Plain SGD with lr 1: the update is the (clipped) gradient itself.
    assert _update_norm(tiny_model_dir, tmp_path / "c", 0.01) == pytest.approx(0.01, rel=1e-4)
    assert _update_norm(tiny_model_dir, tmp_path / "u", 0) > 0.1


def test_gradient_checkpointing_is_on_and_changes_no_number(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    seen = []

    class Probe(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            layer = model.model.layers[0]
            seen.append(bool(getattr(layer, "gradient_checkpointing", False)))

    with_gc, _, _ = _run(
        tiny_model_dir,
        tmp_path / "gc",
        max_steps=3,
        gradient_checkpointing=True,
        callbacks=[Probe()],
    )
    without, _, _ = _run(tiny_model_dir, tmp_path / "no", max_steps=3, callbacks=[Probe()])
    assert seen == [True] * 3 + [False] * 3
    assert with_gc.final_loss == pytest.approx(without.final_loss, abs=1e-5)


def test_resume_options(tiny_model_dir, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(HonerError, match="nothing to resume"):
        _run(tiny_model_dir, out, max_steps=4, resume=True)
    _run(tiny_model_dir, out, max_steps=4, save_steps=2)
    # A fresh run over old checkpoints would mix two runs' checkpoint-N folders.
    with pytest.raises(HonerError, match="already holds checkpoints of an earlier run"):
        _run(tiny_model_dir, out, max_steps=4, save_steps=2)
    result, _, printed = _run(
        tiny_model_dir, out, max_steps=6, save_steps=2, resume_from_checkpoint=True
    )
    assert result.resumed_from == out / "checkpoint-4" and result.global_step == 6
    assert f"resuming from {out / 'checkpoint-4'}" in printed
    result, _, _ = _run(
        tiny_model_dir,
        out,
        max_steps=6,
        save_steps=2,
        resume_from_checkpoint=str(out / "checkpoint-2"),
    )
    assert result.resumed_from == out / "checkpoint-2"
    with pytest.raises(ConfigError) as err:
        _run(tiny_model_dir, out, max_steps=6, resume_from_checkpoint=str(tmp_path / "nope"))
    assert err.value.key_paths == ["resume_from_checkpoint"]


def test_empty_and_fully_masked_training_sets(tiny_model_dir, tmp_path):
    from datasets import Dataset

    empty = Dataset.from_dict({"input_ids": [], "labels": []})
    with pytest.raises(DataError, match="the training set is empty"):
        _run(tiny_model_dir, tmp_path / "a", data=empty, max_steps=2)
    masked = Dataset.from_dict({"input_ids": [[1, 20, 21, 22]] * 4, "labels": [[-100] * 4] * 4})
    with pytest.raises(DataError, match="no trained tokens"):
        _run(tiny_model_dir, tmp_path / "b", data=masked, max_steps=2)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1073741824 bytes."
        ),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_out_of_memory_becomes_one_clear_error(error, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from honer.errors import OutOfMemoryError

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def explode(*args, **kwargs):
        raise error

    model.forward = explode
    with pytest.raises(OutOfMemoryError) as err:
        _run(tiny_model_dir, tmp_path / "o", model=model, max_steps=2)
    text = str(err.value)
    assert text.startswith("out of memory while training (micro_batch_size 4)")
    for hint in ("micro_batch_size", "gradient_checkpointing: true", "adapter: qlora"):
        assert hint in text
    assert "\n" not in text


def test_other_runtime_errors_pass_through(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)

    def explode(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    model.forward = explode
    with pytest.raises(RuntimeError, match="shape mismatch"):
        _run(tiny_model_dir, tmp_path / "o", model=model, max_steps=2)
