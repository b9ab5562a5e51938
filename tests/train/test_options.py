"""Every training key changes what the Trainer does: checked on the built objects, no training.

(Options whose effect only shows while training — checkpoints, eval intervals, clipping,
gradient checkpointing — are checked in test_options_training.py.)
"""

from __future__ import annotations

import math

import pytest

from honer import hardware
from honer.errors import ConfigError, DataError
from tests.train.data_util import config, dataset


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _trainer(model, tokenizer, tiny_model_dir, tmp_path, n=64, eval_n=0, **keys):
    from honer.train.trainer import build_trainer

    if eval_n:  # the config says there is a validation set (rows are given directly here)
        keys.setdefault("val_set_size", eval_n)
    cfg = config(tiny_model_dir, tmp_path / "out", **keys)
    evals = dataset(eval_n, seed=5) if eval_n else None
    trainer, plan = build_trainer(cfg, model, tokenizer, dataset(n), evals)
    return trainer, plan


def _lrs(trainer, plan, steps):
    """The learning rate the schedule gives at each of `steps` (0-based optimizer steps)."""
    trainer.create_optimizer_and_scheduler(num_training_steps=plan.total_steps)
    sched = trainer.lr_scheduler
    base = trainer.optimizer.param_groups[0]["initial_lr"]
    return [base * sched.lr_lambdas[0](s) for s in steps]


# --- batch sizes, epochs, steps ----------------------------------------------------------------


def test_batch_sizes_and_step_plan(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        n=50,
        eval_n=9,
        micro_batch_size=3,
        eval_batch_size=5,
        gradient_accumulation_steps=2,
        num_epochs=2.5,
    )
    # 50 samples / 3 = 17 micro-batches; / 2 = 9 steps per epoch; 2.5 epochs = ceil(22.5) = 23.
    assert (plan.micro_batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (17, 9, 23)
    assert next(iter(trainer.get_train_dataloader()))["input_ids"].shape[0] == 3
    assert next(iter(trainer.get_eval_dataloader()))["input_ids"].shape[0] == 5
    assert trainer.args.gradient_accumulation_steps == 2
    assert trainer.args.num_train_epochs == 2.5


def test_max_steps_overrides_epochs(model, tokenizer, tiny_model_dir, tmp_path):
    _, plan = _trainer(model, tokenizer, tiny_model_dir, tmp_path, num_epochs=3, max_steps=7)
    assert plan.total_steps == 7


def test_learning_rate_default_depends_on_adapter(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(model, tokenizer, tiny_model_dir, tmp_path, learning_rate=None)
    trainer.create_optimizer()
    assert trainer.optimizer.param_groups[0]["lr"] == 2e-5  # full fine-tuning default
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, learning_rate=3e-4)
    trainer.create_optimizer()
    assert trainer.optimizer.param_groups[0]["lr"] == 3e-4


# --- optimizers --------------------------------------------------------------------------------

OPTIMIZERS = {
    "adamw_torch": ("torch.optim.adamw", "AdamW", {"fused": None}),
    "adamw_torch_fused": ("torch.optim.adamw", "AdamW", {"fused": True}),
    "adamw_bnb_8bit": ("bitsandbytes.optim.adamw", "AdamW", {"optim_bits": 8, "is_paged": False}),
    "paged_adamw_8bit": ("bitsandbytes.optim.adamw", "AdamW", {"optim_bits": 8, "is_paged": True}),
    "paged_adamw_32bit": (
        "bitsandbytes.optim.adamw",
        "AdamW",
        {"optim_bits": 32, "is_paged": True},
    ),
    "lion_8bit": ("bitsandbytes.optim.lion", "Lion", {"optim_bits": 8}),
    "sgd": ("torch.optim.sgd", "SGD", {}),
    "adafactor": ("transformers.optimization", "Adafactor", {}),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_class(name, model, tokenizer, tiny_model_dir, tmp_path):
    module, cls, attrs = OPTIMIZERS[name]
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, optimizer=name)
    opt = trainer.create_optimizer()
    assert (type(opt).__module__, type(opt).__name__) == (module, cls)
    for attr, value in attrs.items():
        if attr == "fused":
            assert opt.defaults.get("fused") == value
        elif attr == "optim_bits":
            assert opt.args.optim_bits == value
        else:
            assert opt.is_paged == value


def test_adam_hyperparameters_and_weight_decay(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        adam_beta1=0.8,
        adam_beta2=0.95,
        adam_epsilon=1e-6,
        weight_decay=0.1,
    )
    opt = trainer.create_optimizer()
    assert opt.defaults["betas"] == (0.8, 0.95) and opt.defaults["eps"] == 1e-6
    decays = {g["weight_decay"] for g in opt.param_groups}
    assert decays == {0.1, 0.0}  # decayed weights; norms and biases exempt


def test_bnb_optimizer_without_bitsandbytes_names_the_key(monkeypatch, tiny_model_dir, tmp_path):
    import importlib.util

    from honer.train.optim import optimizer_name

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "bitsandbytes" else real(n, *a)
    )
    with pytest.raises(ConfigError) as err:
        optimizer_name(config(tiny_model_dir, tmp_path, optimizer="paged_adamw_8bit"))
    assert err.value.key_paths == ["optimizer"]
    assert "pip install 'bitsandbytes>=0.45'" in str(err.value)


# --- schedules ---------------------------------------------------------------------------------


def test_linear_with_warmup_steps(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="linear",
        warmup_steps=2,
        max_steps=10,
        learning_rate=1e-3,
    )
    lrs = _lrs(trainer, plan, [0, 1, 2, 6, 10])
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 5e-4, 0.0])


def test_warmup_ratio_rounds_up(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="constant_with_warmup",
        warmup_ratio=0.25,
        max_steps=10,
        learning_rate=1e-3,
    )
    assert plan.warmup_steps == 3  # ceil(2.5)
    assert _lrs(trainer, plan, [0, 1, 3, 9]) == pytest.approx([0.0, 1e-3 / 3, 1e-3, 1e-3])


def test_cosine(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="cosine",
        max_steps=8,
        learning_rate=1e-3,
    )
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in (0, 2, 4, 8)]
    assert _lrs(trainer, plan, [0, 2, 4, 8]) == pytest.approx(expected)


@pytest.mark.parametrize("scheduler", ["cosine_with_min_lr", "cosine"])
def test_cosine_min_lr_ratio(scheduler, model, tokenizer, tiny_model_dir, tmp_path):
    """Axolotl reads cosine_min_lr_ratio with `cosine` too: both end at ratio × peak."""
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler=scheduler,
        cosine_min_lr_ratio=0.1,
        max_steps=8,
        learning_rate=1e-3,
    )
    assert trainer.args.lr_scheduler_type.value == "cosine_with_min_lr"
    lrs = _lrs(trainer, plan, [0, 4, 8])
    assert lrs == pytest.approx([1e-3, 1e-4 + 0.9e-3 * 0.5, 1e-4])


def test_constant(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="constant",
        max_steps=5,
        learning_rate=1e-3,
    )
    assert _lrs(trainer, plan, [0, 3, 5]) == pytest.approx([1e-3] * 3)


def test_polynomial_uses_scheduler_kwargs(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="polynomial",
        lr_scheduler_kwargs={"power": 2.0, "lr_end": 1e-5},
        max_steps=10,
        learning_rate=1e-3,
    )
    # (lr - lr_end) · (1 - t/T)^2 + lr_end
    expected = [(1e-3 - 1e-5) * (1 - s / 10) ** 2 + 1e-5 for s in (0, 5, 10)]
    assert _lrs(trainer, plan, [0, 5, 10]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("keys", "path", "text"),
    [
        ({"lr_scheduler": "constant", "warmup_steps": 5}, "warmup_steps", "constant_with_warmup"),
        ({"lr_scheduler": "cosine_with_min_lr"}, "cosine_min_lr_ratio", "cosine_min_lr_ratio: 0.1"),
        (
            {"lr_scheduler": "linear", "cosine_min_lr_ratio": 0.1},
            "cosine_min_lr_ratio",
            "only applies",
        ),
        (
            {"lr_scheduler": "polynomial", "lr_scheduler_kwargs": {"powr": 2}},
            "lr_scheduler_kwargs.powr",
            "it takes: lr_end, power",
        ),
        (
            {"lr_scheduler": "polynomial", "lr_scheduler_kwargs": {"lr_end": 0.5}},
            "lr_scheduler_kwargs.lr_end",
            "must be below",
        ),
    ],
)
def test_schedule_mistakes_name_the_key(keys, path, text, tiny_model_dir, tmp_path):
    from honer.train.optim import schedule

    with pytest.raises(ConfigError) as err:
        schedule(config(tiny_model_dir, tmp_path, **keys))
    assert err.value.key_paths == [path]
    assert text in str(err.value)


# --- evaluation and saving intervals -----------------------------------------------------------


def test_evals_and_saves_per_epoch_become_step_intervals(
    model, tokenizer, tiny_model_dir, tmp_path
):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        n=80,
        eval_n=8,
        micro_batch_size=4,
        evals_per_epoch=3,
        saves_per_epoch=2,
    )
    assert plan.steps_per_epoch == 20
    assert (trainer.args.eval_strategy.value, trainer.args.eval_steps) == ("steps", 6)  # 20 // 3
    assert (trainer.args.save_strategy.value, trainer.args.save_steps) == ("steps", 10)


def test_explicit_eval_and_save_steps(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        eval_n=8,
        eval_steps=7,
        save_steps=5,
        save_total_limit=2,
    )
    assert (trainer.args.eval_steps, trainer.args.save_steps, trainer.args.save_total_limit) == (
        7,
        5,
        2,
    )


def test_defaults_eval_and_save_once_per_epoch(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, eval_n=8)
    assert (trainer.args.eval_strategy.value, trainer.args.save_strategy.value) == (
        "epoch",
        "epoch",
    )
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path)
    assert trainer.args.eval_strategy.value == "no"


def test_evals_without_validation_set(model, tokenizer, tiny_model_dir, tmp_path):
    # As in Axolotl, nothing to evaluate on means no evaluation: the config says so in a note.
    cfg = config(tiny_model_dir, tmp_path, evals_per_epoch=2)
    assert [key for key, _ in cfg.notes] == ["evals_per_epoch"]
    assert "no validation set" in cfg.notes[0][1]
    # A config with a validation set, but no validation rows given to the trainer:
    with pytest.raises(DataError, match="no validation rows were given"):
        _trainer(model, tokenizer, tiny_model_dir, tmp_path, evals_per_epoch=2, val_set_size=4)


# --- data order, seeds, sampling ---------------------------------------------------------------


def _first_batch(trainer):
    return next(iter(trainer.get_train_dataloader()))["input_ids"][:, :3].tolist()


def test_seed_and_data_seed_set_data_order(model, tokenizer, tiny_model_dir, tmp_path):
    a, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, seed=1)
    b, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, seed=1)
    c, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, seed=1, data_seed=7)
    assert _first_batch(a) == _first_batch(b)
    assert _first_batch(a) != _first_batch(c)
    assert (c.args.seed, c.args.data_seed) == (1, 7)


def test_group_by_length_uses_length_grouped_sampler(model, tokenizer, tiny_model_dir, tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, group_by_length=True)
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path)
    assert not isinstance(trainer._get_train_sampler(), LengthGroupedSampler)


def test_pad_to_sequence_len(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(
        model, tokenizer, tiny_model_dir, tmp_path, pad_to_sequence_len=True, sequence_len=64
    )
    assert next(iter(trainer.get_train_dataloader()))["input_ids"].shape[1] == 64


# --- precision, tracking, output, unsupported keys ---------------------------------------------


def test_precision_without_gpu(tiny_model_dir, tmp_path, capsys, monkeypatch):
    from honer.model.load import use_bf16, use_fp16, use_tf32

    for name in ("bf16_supported", "cuda_available", "tf32_supported"):
        monkeypatch.setattr(hardware, name, lambda: False)

    assert use_bf16(config(tiny_model_dir, tmp_path, bf16="auto")) is False
    with pytest.raises(ConfigError) as err:
        use_bf16(config(tiny_model_dir, tmp_path, bf16=True))
    assert err.value.key_paths == ["bf16"] and "bf16: auto" in str(err.value)
    with pytest.raises(ConfigError) as err:
        use_fp16(config(tiny_model_dir, tmp_path, fp16=True))
    assert err.value.key_paths == ["fp16"]
    assert use_tf32(config(tiny_model_dir, tmp_path, tf32=True)) is False
    assert "tf32: true has no effect" in capsys.readouterr().err


def test_report_to(model, tokenizer, tiny_model_dir, tmp_path, monkeypatch):
    import importlib.util

    from honer.train.args import tracking_env

    real = importlib.util.find_spec
    missing = {"tensorboard", "tensorboardX"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n in missing else real(n, *a)
    )

    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path)
    assert trainer.args.report_to == []
    with pytest.raises(ConfigError) as err:
        _trainer(model, tokenizer, tiny_model_dir, tmp_path, report_to=["tensorboard"])
    assert err.value.key_paths == ["report_to"] and "pip install tensorboard" in str(err.value)
    cfg = config(
        tiny_model_dir,
        tmp_path,
        wandb_project="proj",
        wandb_entity="team",
        wandb_name="run-1",
        wandb_run_id="abc",
        wandb_watch="gradients",
        wandb_log_model="end",
    )
    assert cfg.resolved_report_to == ["wandb"]
    assert tracking_env(cfg) == {
        "WANDB_PROJECT": "proj",
        "WANDB_ENTITY": "team",
        "WANDB_NAME": "run-1",
        "WANDB_RUN_ID": "abc",
        "WANDB_WATCH": "gradients",
        "WANDB_LOG_MODEL": "end",
        "WANDB_RESUME": "allow",
    }


def test_report_to_wandb_sets_environment_only_while_training(
    model, tokenizer, tiny_model_dir, tmp_path, monkeypatch
):
    import importlib.util

    from honer.train import args as args_module

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: object() if n == "wandb" else real(n, *a)
    )
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    cfg = config(tiny_model_dir, tmp_path, wandb_project="proj", wandb_entity="team")
    plan = args_module.plan_steps(cfg, 64, has_eval=False)
    built = args_module.training_arguments(cfg, plan, has_eval=False)
    assert built.report_to == ["wandb"]
    import os

    assert "WANDB_PROJECT" not in os.environ  # building arguments has no side effect
    monkeypatch.setenv("WANDB_ENTITY", "someone-else")
    with args_module.tracking_environment(cfg):
        assert (os.environ["WANDB_PROJECT"], os.environ["WANDB_ENTITY"]) == ("proj", "team")
    assert "WANDB_PROJECT" not in os.environ and os.environ["WANDB_ENTITY"] == "someone-else"


def test_output_dir_and_logging_steps(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, _ = _trainer(model, tokenizer, tiny_model_dir, tmp_path, logging_steps=3)
    assert trainer.args.output_dir == str(tmp_path / "out")
    assert trainer.args.logging_steps == 3


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"save_safetensors": False}, "save_safetensors: `false` is not supported"),
    ],
)
def test_unsupported_keys_are_refused(keys, message, tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError) as err:
        config(tiny_model_dir, tmp_path, **keys)
    assert str(err.value).startswith(message)


def test_switched_off_keys_are_accepted(model, tokenizer, tiny_model_dir, tmp_path):
    from honer.data.packing import PackedCollator

    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        eval_n=6,
        sample_packing=False,
        eval_sample_packing=False,
        eval_table_size=0,
    )
    # Off means off: rows stay one sample each, padded by the plain collator.
    assert not isinstance(trainer.data_collator, PackedCollator)
    assert len(trainer.train_dataset) == 64 and len(trainer.eval_dataset) == 6
    assert "position_ids" not in trainer.train_dataset.column_names
    assert "position_ids" not in next(iter(trainer.get_eval_dataloader()))
    assert plan.micro_batches_per_epoch == 16  # 64 rows / micro_batch_size 4


# --- honer's own policies (honer.schedules) through the trainer --------------------------------


def test_step_policy_with_warmup(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="step",
        lr_scheduler_kwargs={"step_size": 3, "gamma": 0.5},
        warmup_steps=2,
        max_steps=12,
        learning_rate=1e-3,
    )
    # warm-up 0 → 1e-3 over 2 steps, then halve every 3 steps
    assert _lrs(trainer, plan, [0, 1, 2, 4, 5, 8, 11]) == pytest.approx(
        [0.0, 5e-4, 1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4]
    )


def test_composite_policy(model, tokenizer, tiny_model_dir, tmp_path):
    trainer, plan = _trainer(
        model,
        tokenizer,
        tiny_model_dir,
        tmp_path,
        lr_scheduler="composite",
        lr_phases=[
            {"policy": "constant", "steps": 4},
            {"policy": "linear", "steps": 6},
        ],
        max_steps=10,
        learning_rate=1e-3,
    )
    assert _lrs(trainer, plan, [0, 3, 4, 7, 10]) == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 0.0])


def test_policy_parameters_are_checked(tiny_model_dir, tmp_path):
    """With the config (so `honer validate` reports it), not when the trainer builds it."""
    from honer.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        config(
            tiny_model_dir,
            tmp_path,
            lr_scheduler="cyclic",
            lr_scheduler_kwargs={"mode": "sawtooth"},
        )
    assert info.value.problems[0][0] == "lr_scheduler_kwargs"
    assert "cyclic mode must be" in info.value.problems[0][1]
