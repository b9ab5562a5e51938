"""The one place where our config keys become `transformers.TrainingArguments`.

Step counts are computed here from the real dataset size, the way the Trainer computes them, so
that per-epoch settings (`evals_per_epoch`, `saves_per_epoch`) become exact step intervals and
the start-of-run summary shows the numbers the run will actually use.

Mapping (ours → transformers):
  micro_batch_size → per_device_train_batch_size     eval_batch_size → per_device_eval_batch_size
  gradient_accumulation_steps, max_grad_norm, weight_decay, adam_beta1/2, adam_epsilon, seed,
  data_seed, save_total_limit, logging_steps, output_dir → same names
  num_epochs → num_train_epochs                      max_steps → max_steps (-1 when unset)
  resolved_learning_rate → learning_rate             lr_scheduler(+kwargs) → see optim.schedule
  warmup_steps / warmup_ratio → warmup_steps (ratio resolved against the total steps)
  optimizer → optim (muon: a placeholder, see optim.optimizer_cls_and_kwargs)
  gradient_checkpointing (true, offload, offload_disk) → activation checkpointing, reentrant as
  `gradient_checkpointing_kwargs.use_reentrant` says (default false); the offloading itself is
  honer.model.offload's (hooks on the model, not a Trainer argument)
  group_by_length → the length-grouped sampler       bf16/fp16/tf32 → resolved for the hardware
  evals_per_epoch → eval_steps = max(1, steps_per_epoch // evals_per_epoch) (at least that many
  evaluations per epoch); 0 → no evaluation during training; saves_per_epoch → save_steps
  likewise; neither → once per epoch.
  save_strategy → save_strategy (`best`: at each evaluation with a new lowest eval loss; `no`:
  no checkpoint, the final model only); save_only_model → save_only_model
  neftune_noise_alpha → neftune_noise_alpha (transformers' NEFTune hook, peft models included)
  torch_compile (`auto`: on with CUDA and torch >= 2.5), torch_compile_backend/mode → same names
  include_tokens_per_second → none: transformers 5 dropped the field (its
  `include_num_input_tokens_seen` adds throughput to every log line instead); the trainer adds
  `train_tokens_per_second` (non-padding tokens / train_runtime) to the end-of-run metrics
  resolved_report_to → report_to; wandb_* → WANDB_* environment variables.
transformers versions differ in some field names (5.23 renamed gradient_checkpointing and
group_by_length); `_set` writes whichever name the installed version has.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from honer import hardware
from honer.config.schema import Config
from honer.errors import ConfigError
from honer.model import offload
from honer.model.load import use_bf16, use_fp16, use_tf32
from honer.train import optim, parallel

# The packages each tracking integration needs, and how to install them.
_TRACKERS = {
    "wandb": (("wandb",), "pip install 'honer[wandb]'"),
    "tensorboard": (("tensorboard", "tensorboardX"), "pip install tensorboard"),
    "mlflow": (("mlflow",), "pip install mlflow"),
}


@dataclass(frozen=True)
class StepPlan:
    """How many samples, batches and optimizer steps the run takes, as the Trainer will count."""

    examples: int
    world_size: int
    micro_batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_steps: int | None
    save_steps: int | None

    @property
    def epochs(self) -> float:
        return self.total_steps / self.steps_per_epoch


def _per_epoch_interval(steps_per_epoch: int, per_epoch: int) -> int:
    return max(1, steps_per_epoch // per_epoch)


def plan_steps(cfg: Config, examples: int, has_eval: bool, ranks: int | None = None) -> StepPlan:
    """Steps per epoch and in total, warm-up, and eval/save intervals for `examples` samples."""
    ranks = ranks or parallel.world_size()
    batches = math.ceil(examples / (cfg.micro_batch_size * ranks))
    ga = cfg.gradient_accumulation_steps
    steps_per_epoch = max(1, batches // ga + int(batches % ga > 0))
    total = cfg.max_steps or math.ceil(cfg.num_epochs * steps_per_epoch)
    eval_steps = cfg.eval_steps if has_eval else None  # nothing to evaluate: a config note
    if cfg.evals_per_epoch and has_eval:
        eval_steps = _per_epoch_interval(steps_per_epoch, cfg.evals_per_epoch)
    save_steps = cfg.save_steps
    if cfg.saves_per_epoch:
        save_steps = _per_epoch_interval(steps_per_epoch, cfg.saves_per_epoch)
    return StepPlan(
        examples=examples,
        world_size=ranks,
        micro_batches_per_epoch=batches,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        warmup_steps=optim.warmup_steps(cfg, total),
        eval_steps=eval_steps,
        save_steps=save_steps,
    )


def packing_settings(cfg: Config) -> dict[str, Any]:
    """The bin-packing arguments the config sets (one place for the pack seed)."""
    return dict(
        capacity=cfg.sequence_len,
        seed=cfg.resolved_data_seed,
        group_size=cfg.sample_packing_group_size,
        bin_size=cfg.sample_packing_bin_size,
    )


def plan_for_dataset(
    cfg: Config, train_dataset: Any, has_eval: bool, ranks: int | None = None
) -> StepPlan:
    """The step plan `honer train` follows on this prepared training set: with sample packing
    the rows are the real packed bins (and filler rows), not the samples."""
    rows = len(train_dataset)
    if cfg.sample_packing:
        from honer.data import packing

        ranks = ranks or parallel.world_size()
        lengths = [len(ids) for ids in train_dataset["input_ids"]]
        rows = packing.packed_row_count(
            lengths,
            **packing_settings(cfg),
            world_size=ranks,
            micro_batch_size=cfg.micro_batch_size,
        )
    return plan_steps(cfg, rows, has_eval, ranks)


def _notice(message: str) -> None:
    """One line on stderr: a setting resolved to less than it says, never an error."""
    print(f"notice: {message}", file=sys.stderr)


def _keep_best(kwargs: dict[str, Any]) -> None:
    """Keep (and load at the end) the checkpoint with the lowest eval loss. The config's checks
    made sure every save falls on an evaluation, so the best one is always written."""
    kwargs.update(
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False
    )


def _save_settings(cfg: Config, plan: StepPlan, eval_strategy: str) -> dict[str, Any]:
    """`save_strategy` (+ `save_steps`) as Axolotl means them.

    Unset: every `save_steps`/`saves_per_epoch` steps when one is set, else once per epoch.
    `best`: a checkpoint at each evaluation whose eval loss is the lowest so far (so evaluation
    must run during training). `no`: no checkpoint; the final model is saved all the same.
    """
    strategy = cfg.save_strategy
    if strategy is None:
        strategy = "steps" if plan.save_steps is not None else "epoch"
    keep_best = "load_best_model_at_end" if cfg.load_best_model_at_end else None
    keep_best = "early_stopping_patience" if cfg.early_stopping_patience else keep_best
    if keep_best and (strategy == "no" or eval_strategy == "no"):
        raise ConfigError(
            [
                (
                    keep_best,
                    "needs evaluations and checkpoints during training, but "
                    + ("`save_strategy: no` saves none." if strategy == "no" else "none runs.")
                    + f" Remove `{keep_best}`, or evaluate and save during training.",
                )
            ]
        )
    if strategy != "steps" and plan.save_steps is not None:
        key = "save_steps" if cfg.save_steps is not None else "saves_per_epoch"
        raise ConfigError(
            [
                (
                    key,
                    f"set with `save_strategy: {strategy}`: use `save_strategy: steps`, or remove it.",
                )
            ]
        )
    if strategy == "steps":
        if plan.save_steps is None:
            raise ConfigError(
                [("save_strategy", "`steps` needs `save_steps` or `saves_per_epoch`.")]
            )
        return {"save_strategy": "steps", "save_steps": plan.save_steps}
    if strategy == "best":
        if eval_strategy == "no":
            raise ConfigError(
                [
                    (
                        "save_strategy",
                        "`best` saves at evaluations with a new lowest eval loss, but no "
                        "evaluation runs during training: set `val_set_size` (and leave "
                        "`evals_per_epoch` above 0).",
                    )
                ]
            )
        return {
            "save_strategy": "best",
            "metric_for_best_model": "eval_loss",
            "greater_is_better": False,
        }
    return {"save_strategy": strategy}


def tracking_env(cfg: Config) -> dict[str, str]:
    """Environment variables the W&B and MLflow integrations read, from the config's keys.

    Only names and switches go here; credentials stay in the user's environment (WANDB_API_KEY)
    and are never read, logged or written by honer.
    """
    pairs = {
        "WANDB_PROJECT": cfg.wandb_project,
        "WANDB_ENTITY": cfg.wandb_entity,
        "WANDB_NAME": cfg.wandb_name,
        "WANDB_RUN_ID": cfg.wandb_run_id,
        "WANDB_WATCH": cfg.wandb_watch,
        "WANDB_LOG_MODEL": cfg.wandb_log_model,
        "WANDB_MODE": cfg.wandb_mode,
        "MLFLOW_TRACKING_URI": cfg.mlflow_tracking_uri,
        "MLFLOW_EXPERIMENT_NAME": cfg.mlflow_experiment_name,
    }
    env = {k: v for k, v in pairs.items() if v is not None}
    uri = cfg.mlflow_tracking_uri
    if uri and (uri.startswith("file:") or "://" not in uri):
        # A local folder store works offline; MLflow 3 asks for an explicit opt-in to use it.
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    if cfg.use_tensorboard or "tensorboard" in cfg.resolved_report_to:
        env["TENSORBOARD_LOGGING_DIR"] = os.path.join(cfg.output_dir, "runs")
    if cfg.wandb_run_id is not None:
        env["WANDB_RESUME"] = "allow"  # the same id continues the same W&B run on --resume
    return env


@contextmanager
def tracking_environment(cfg: Config) -> Iterator[None]:
    """The trackers' environment variables (W&B reads its project, entity… from there) for the
    length of a run, restored afterwards: building or running a trainer leaks nothing."""
    env = tracking_env(cfg)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def check_trackers(targets: list[str]) -> None:
    """Each requested integration's package must be importable (else transformers fails late)."""
    for target in targets:
        modules, install = _TRACKERS[target]
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            raise ConfigError(
                [
                    (
                        "report_to",
                        f"`{target}` needs the {modules[0]} package, which is not installed: {install}.",
                    )
                ]
            )


def _torch_at_least(major: int, minor: int) -> bool:
    import torch

    parts = torch.__version__.split("+")[0].split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def _cxx_compiler() -> str | None:
    """The C++ compiler inductor would build CPU kernels with, if there is one."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def use_torch_compile(cfg: Config) -> bool:
    """Resolve `torch_compile` for this machine.

    `auto` compiles on a CUDA GPU with torch >= 2.5 and says so when it does not. On CPU the
    inductor backend builds C++ kernels: without a compiler it would fail at the first step,
    so it fails here, naming the key.
    """
    value = cfg.torch_compile
    if value == "auto":
        on = hardware.cuda_available() and _torch_at_least(2, 5)
        if not on:
            _notice("torch_compile: auto: off (it compiles on a CUDA GPU with torch >= 2.5).")
        return on
    if not value:
        return False
    backend = cfg.torch_compile_backend or "inductor"
    if backend == "inductor" and not hardware.cuda_available() and _cxx_compiler() is None:
        raise ConfigError(
            [
                (
                    "torch_compile",
                    "torch.compile's inductor backend builds C++ kernels on CPU and no C++ "
                    "compiler was found (g++, clang++ or $CXX): install one (e.g. `apt-get "
                    "install g++`), set `torch_compile_backend: aot_eager`, or remove the key.",
                )
            ]
        )
    return True


def preflight(cfg: Config) -> None:
    """Every check that needs neither data nor model, so a config mistake costs no model load."""
    use_bf16(cfg)
    use_fp16(cfg)
    if cfg.torch_compile is True:  # `auto` says what it resolved to once, when training starts
        use_torch_compile(cfg)
    check_trackers(cfg.resolved_report_to)


def _set(kwargs: dict[str, Any], fields: set[str], names: tuple[str, ...], value: Any) -> None:
    """Set the first of `names` the installed TrainingArguments has (fields renamed across 5.x)."""
    for name in names:
        if name in fields:
            kwargs[name] = value
            return
    raise RuntimeError(f"transformers.TrainingArguments has none of {names}: unsupported version")


def training_arguments(
    cfg: Config, plan: StepPlan, has_eval: bool, args_class: Any = None, **extra: Any
) -> Any:
    """Build `TrainingArguments` for the run (no side effect: the trackers' environment is set
    only while training runs, by `tracking_environment`). `args_class` is a subclass such as
    TRL's `DPOConfig`, and `extra` its own fields."""
    from transformers import TrainingArguments

    args_class = args_class or TrainingArguments
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    sched_name, sched_kwargs = optim.schedule(cfg)
    report_to = cfg.resolved_report_to
    check_trackers(report_to)

    kwargs: dict[str, Any] = {
        "output_dir": cfg.output_dir,
        "per_device_train_batch_size": cfg.micro_batch_size,
        "per_device_eval_batch_size": cfg.eval_batch_size or cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "num_train_epochs": cfg.num_epochs,
        "max_steps": cfg.max_steps or -1,
        "learning_rate": cfg.resolved_learning_rate,
        "lr_scheduler_type": sched_name,
        "lr_scheduler_kwargs": sched_kwargs,
        "warmup_steps": plan.warmup_steps,
        "optim": optim.optimizer_name(cfg),
        "weight_decay": cfg.weight_decay,
        "adam_beta1": cfg.adam_beta1,
        "adam_beta2": cfg.adam_beta2,
        "adam_epsilon": cfg.adam_epsilon,
        "max_grad_norm": cfg.max_grad_norm,
        "bf16": use_bf16(cfg),
        "fp16": use_fp16(cfg),
        "tf32": True if use_tf32(cfg) else None,
        "logging_strategy": "steps",
        "logging_steps": cfg.logging_steps,
        # transformers replaces a NaN/inf step loss by the window's mean by default: that hides
        # exactly what the loss watchdog and the curves must see.
        "logging_nan_inf_filter": False,
        "save_total_limit": cfg.save_total_limit,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
        "report_to": report_to or "none",
        "run_name": cfg.wandb_name,
        # Our collator reads input_ids/labels only; extra prepared columns must not reach it
        # filtered by the model's forward signature (a PEFT wrapper hides that signature).
        "remove_unused_columns": False,
        "label_names": ["labels"],
        # Evaluation needs the loss only; keeping logits would hold (batches × seq × vocab).
        "prediction_loss_only": True,
        "disable_tqdm": True,  # progress is ours (rich on a TTY, plain lines otherwise)
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": hardware.cuda_available(),
    }
    if cfg.evals_per_epoch == 0:  # Axolotl: no evaluation during training
        kwargs["eval_strategy"] = "no"
    elif plan.eval_steps is not None:
        kwargs.update(eval_strategy="steps", eval_steps=plan.eval_steps)
    else:
        kwargs["eval_strategy"] = "epoch" if has_eval else "no"
    kwargs.update(_save_settings(cfg, plan, kwargs["eval_strategy"]))
    if cfg.load_best_model_at_end or cfg.early_stopping_patience:
        _keep_best(kwargs)
    kwargs["save_only_model"] = cfg.save_only_model
    checkpointing = offload.checkpointing(cfg)
    _set(kwargs, fields, ("activation_checkpointing", "gradient_checkpointing"), checkpointing)
    if checkpointing:
        _set(
            kwargs,
            fields,
            ("activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"),
            {"use_reentrant": offload.use_reentrant(cfg)},
        )
    if cfg.neftune_noise_alpha is not None:
        kwargs["neftune_noise_alpha"] = cfg.neftune_noise_alpha
    if use_torch_compile(cfg):
        kwargs["torch_compile"] = True
        if cfg.torch_compile_backend:
            kwargs["torch_compile_backend"] = cfg.torch_compile_backend
        if cfg.torch_compile_mode:
            kwargs["torch_compile_mode"] = cfg.torch_compile_mode
    target_modules = getattr(cfg, "optim_target_modules", None)
    if target_modules:
        kwargs["optim_target_modules"] = target_modules
    if cfg.group_by_length:
        if "train_sampling_strategy" in fields:
            kwargs["train_sampling_strategy"] = "group_by_length"
        else:
            kwargs["group_by_length"] = True
    if "save_safetensors" in fields:
        kwargs["save_safetensors"] = True
    kwargs.update(parallel.training_kwargs(cfg))
    return args_class(**kwargs, **extra)
