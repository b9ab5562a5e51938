"""Training: a `transformers.Trainer` subclass and `train()`, which runs it from a `Config`.

What the subclass changes, and why:

* Loss normalisation. The loss of an optimizer step is the sum of token losses over every
  micro-batch of the step divided by the number of trained tokens in the *whole* step (measured:
  the "mean of means" bug must not come back). `get_batch_samples` counts the trained tokens of
  the accumulated micro-batches (labels shifted by one, as the causal loss is), and
  `token_sum_loss` divides each micro-batch's summed loss by that count, so the accumulated
  gradient equals the gradient of one big batch whatever the micro-batch split. This does not
  depend on the model accepting `num_items_in_batch` (many do not) or on how a transformers
  version counts. Evaluation batches use their own count.
* The chunked head (`cut_cross_entropy`, the cut cross-entropy plugin, liger's fused linear
  cross-entropy): with `use_chunked_head`, the model's output layer and the loss run chunk by
  chunk inside the model call (`honer.train.chunked_loss`), so the (batch × seq × vocab) logits
  never exist, in training or evaluation. It returns the same sum, divided by the same count
  (`step_share`), so loss and gradients equal the plain path's.
* Atomic checkpoints (see `honer.train.checkpoint`): each checkpoint is written to a staging
  folder and renamed into place.
* Throughput: tokens per second (all non-padding tokens, and trained tokens) in every log line.

`train()` never parses YAML: it takes a `Config`, a model (from `build_adapter`), a tokenizer and
the prepared datasets, and writes into `output_dir`: the adapter or full model (safetensors), the
tokenizer, `config.yml` (the resolved config) and `metrics.jsonl`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from honer.config.dump import resolved_config_yaml
from honer.config.schema import Config
from honer.data import packing
from honer.errors import DataError, is_out_of_memory, out_of_memory_error
from honer.model import segment_attention
from honer.model.kernels import apply_kernels
from honer.train import checkpoint as ckpt
from honer.train import optim, parallel
from honer.train.args import (
    StepPlan,
    packing_settings,
    plan_steps,
    tracking_environment,
    training_arguments,
)
from honer.train.callbacks import (
    METRICS_FILE,
    ConsoleCallback,
    EngineReportCallback,
    MetricsJsonlCallback,
)
from honer.train.chunked_loss import ChunkedHead
from honer.train.collate import IGNORE_INDEX, PaddingCollator

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

CONFIG_FILE = "config.yml"


def step_share(
    total: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
) -> torch.Tensor:
    """A micro-batch's summed token loss / trained tokens of the whole step.

    Without a step count (evaluation, a direct call) the micro-batch's own trained tokens are
    counted, labels shifted by one as the causal loss is. A step with no trained token gives 0
    (and zero gradients), not NaN. Both the plain and the chunked loss end here, so they cannot
    normalise differently.
    """
    import torch
    import torch.nn.functional as F

    count = num_items_in_batch
    if count is None:
        shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        count = (shifted != IGNORE_INDEX).sum()
    if not torch.is_tensor(count):
        count = torch.tensor(count)
    return total / count.to(total.device).clamp(min=1)


def token_sum_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Summed next-token cross-entropy of this micro-batch / trained tokens of the whole step.

    Labels are shifted by padding one -100 on the right instead of slicing the logits, which
    would copy the (batch × seq × vocab) tensor. Logits are upcast to float32 as the models' own
    loss does. A step with no trained token gives loss 0 (and zero gradients), not NaN.
    """
    import torch.nn.functional as F

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    labels = labels.to(logits.device)
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        shifted.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return step_share(total, labels, num_items_in_batch)


class RunMixin:
    """What every honer trainer adds to a `Trainer` (SFT here; TRL's preference trainers in
    `honer.train.preference`): atomic checkpoints, honer's LR policies, evaluation that leaves
    the training RNG alone, FSDP kept on CPU, and no telemetry."""

    # While a checkpoint is written, the folder the Trainer's own save code writes into.
    _staging: str | None = None
    # honer's own LR policy (`lr_scheduler` beyond transformers' six), warm-up not included.
    lr_policy: Any = None

    # Tokens since the last logged step (all non-padding, and trained): counted per training
    # micro-batch (`batch_tokens`, or the SFT loss itself); `log` turns them into tokens/s.
    _tokens_since_log = 0
    _trained_since_log = 0

    def batch_tokens(self, inputs: dict[str, Any]) -> tuple[int, int] | None:
        """(all non-padding tokens, trained tokens) of a training micro-batch, read from the
        trainer's own batch layout; None where the loss counts them itself (SFT)."""
        return None

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        if model.training and (counted := self.batch_tokens(inputs)) is not None:
            self._tokens_since_log += counted[0]
            self._trained_since_log += counted[1]
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)  # type: ignore[misc]

    _last_log_time: float | None = None
    _honer_train_start: float | None = None

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Every logged training step carries tokens/s and trained tokens/s since the last one."""
        if "loss" in logs:
            now = time.perf_counter()
            start = self._last_log_time or self._honer_train_start or now
            elapsed = max(now - start, 1e-9)
            logs["tokens_per_s"] = round(self._tokens_since_log / elapsed, 1)
            logs["trained_tokens_per_s"] = round(self._trained_since_log / elapsed, 1)
            self._tokens_since_log = self._trained_since_log = 0
            self._last_log_time = now
        super().log(logs, *args, **kwargs)  # type: ignore[misc]

    def train(self, *args: Any, **kwargs: Any) -> Any:
        self._honer_train_start = time.perf_counter()
        return super().train(*args, **kwargs)  # type: ignore[misc]

    def _send_telemetry(self) -> None:
        """TRL's trainers report usage to the Hub; a honer run sends nothing it was not asked
        to."""

    def create_accelerator_and_postprocess(self) -> None:
        """The Trainer's accelerator, with FSDP kept on CPU (see `parallel.promote_cpu_fsdp`)."""
        super().create_accelerator_and_postprocess()
        parallel.promote_cpu_fsdp(self.accelerator, self.args.fsdp_plugin_args)
        self.is_fsdp_enabled = getattr(self.accelerator.state, "fsdp_plugin", None) is not None

    # --- schedule ---------------------------------------------------------------------------

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        """Evaluate without touching the training RNG.

        Each DataLoader iterator draws its base seed from the global generator, so an
        evaluation (and whatever its callbacks do, e.g. eval-table generation) would shift every
        later dropout mask: the same run with and without `eval_steps` would train differently.
        """
        import torch

        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            return super().evaluate(*args, **kwargs)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """transformers' schedule or honer's policy (`optim.build_scheduler`); a LambdaLR's state
        is its step count, so checkpoints save and restore either kind."""
        if self.lr_scheduler is None:
            self.lr_scheduler = optim.build_scheduler(
                self.args.lr_scheduler_type,
                self.args.lr_scheduler_kwargs,
                self.lr_policy,
                optimizer or self.optimizer,
                num_training_steps,
                self.args.get_warmup_steps(num_training_steps),
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # --- checkpoints ------------------------------------------------------------------------

    def _get_output_dir(self, trial: Any) -> str:
        if self._staging is not None:
            return self._staging
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Write `checkpoint-N` into a staging folder, then publish it with one rename."""
        run_dir = Path(self._get_output_dir(trial))
        step = self.state.global_step
        staging = ckpt.staging_dir(run_dir, step)
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()
        self._staging = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            name = f"checkpoint-{step}"
            ckpt.publish(staging / name, run_dir / name)
            staging.rmdir()
            best = self._published_best(run_dir)
            if best is not None:  # the state saved inside must name the published folder
                state = json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True)
                ckpt.atomic_write_text(run_dir / name / "trainer_state.json", state + "\n")
            ckpt.rotate(run_dir, self.args.save_total_limit, keep=best)
        self.accelerator.wait_for_everyone()

    def _published_best(self, run_dir: Path) -> Path | None:
        """The best checkpoint's published folder (the Trainer computed it inside staging)."""
        if not self.state.best_global_step:
            return None
        best = run_dir / f"checkpoint-{self.state.best_global_step}"
        if best.is_dir():
            self.state.best_model_checkpoint = str(best)
            return best
        return None


class HonerTrainer(RunMixin, Trainer):
    """`Trainer` with step-wide token-normalised loss, atomic checkpoints and tokens/s logging."""

    # What sample packing did to the training set (None without `sample_packing`).
    packing_stats: packing.PackStats | None = None
    # The output layer + loss run chunk by chunk (`cut_cross_entropy`, liger's fused linear
    # cross-entropy); None: the plain loss on the model's logits (`token_sum_loss`).
    chunked_head: ChunkedHead | None = None
    # `include_tokens_per_second`: add `train_tokens_per_second` to the end-of-run metrics.
    report_tokens_per_second: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("compute_loss_func", token_sum_loss)
        super().__init__(*args, **kwargs)
        self._tokens_this_run = 0  # non-padding tokens of this train() call (a resume's share)

    # --- loss -------------------------------------------------------------------------------

    def use_chunked_head(self, backend: str = "chunked", chunk: int | None = None) -> None:
        """Compute the loss with the head run chunk by chunk (`honer.train.chunked_loss`): the
        model's (batch × seq × vocab) logits are never materialised, in training or evaluation.
        The loss is the same sum divided by the same step-wide count as `token_sum_loss`."""
        self.chunked_head = ChunkedHead(self.model, backend=backend, chunk=chunk)
        self.compute_loss_func = self._chunked_loss

    def _chunked_loss(
        self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None
    ) -> torch.Tensor:
        """`compute_loss_func` of the chunked head: the sum its capture computed / the step's
        trained tokens."""
        assert self.chunked_head is not None
        total = self.chunked_head.take_total(outputs)
        return step_share(total, labels.to(total.device), num_items_in_batch)

    def get_batch_samples(
        self, epoch_iterator: Any, num_batches: int, *args: Any
    ) -> tuple[list, Any]:
        """Fetch the micro-batches of one optimizer step and count their trained tokens."""
        import torch

        batches = []
        for _ in range(num_batches):
            try:
                batches.append(next(epoch_iterator))
            except StopIteration:
                break
        if not batches:
            return batches, None
        trained = sum(int((b["labels"][..., 1:] != IGNORE_INDEX).sum()) for b in batches)
        tokens = sum(
            int(b["attention_mask"].sum() if "attention_mask" in b else b["num_real_tokens"])
            for b in batches
        )
        self._trained_since_log += trained
        self._tokens_since_log += tokens
        self._tokens_this_run += tokens
        count = torch.tensor(trained, device=self.args.device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return batches, count

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        # Packed batches carry their real-token count for logging only; the model must not see
        # it. They also need `use_cache=False`: with a cache, transformers ignores the restarting
        # position ids and lets every token attend across sample borders (docs/packing.md).
        if inputs.pop("num_real_tokens", None) is not None:
            inputs["use_cache"] = False
        # Evaluation: each batch is normalised by its own trained tokens, whatever count a
        # transformers version passes in.
        if not model.training:
            num_items_in_batch = None
        if self.chunked_head is None or inputs.get("labels") is None:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        # The model runs as usual (through every wrapper); only its output layer is swapped for
        # the chunked loss during this call, and `_chunked_loss` collects the sum.
        with self.chunked_head.capture(inputs["labels"]):
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    # --- logging ----------------------------------------------------------------------------

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "train_runtime" in logs and self.report_tokens_per_second:
            runtime = max(float(logs["train_runtime"]), 1e-9)
            logs["train_tokens_per_second"] = round(self._tokens_this_run / runtime, 3)
        if isinstance(logs.get("eval_loss"), int | float):
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 700.0))
        super().log(logs, *args, **kwargs)


@dataclass
class TrainResult:
    """What a finished run reports."""

    output_dir: Path
    global_step: int
    final_loss: float | None
    train_loss: float
    plan: StepPlan
    resumed_from: Path | None
    saved: list[str] = field(default_factory=list)
    # Non-padding tokens per second of the run (`include_tokens_per_second`), else None.
    tokens_per_second: float | None = None
    # The resume target was the run's last step: nothing was trained (see `_already_finished`).
    already_finished: bool = False


def _count_trained_tokens(dataset: Dataset) -> int:
    """Tokens with a label, as the causal loss sees them (the first position predicts nothing)."""
    total = 0
    for batch in dataset.select_columns(["labels"]).iter(batch_size=1024):
        for labels in batch["labels"]:
            total += sum(1 for x in labels[1:] if x != IGNORE_INDEX)
    return total


def _check_dataset(dataset: Dataset | None, name: str) -> None:
    if dataset is None or len(dataset) == 0:
        raise DataError(
            f"the {name} set is empty: check `datasets` (paths, `type`) and the filters that drop "
            "samples (`sequence_len`, `excess_length_strategy`); `honer preprocess --debug` shows them."
        )
    missing = {"input_ids", "labels"} - set(dataset.column_names)
    if missing:
        raise DataError(
            f"the {name} set lacks the column(s) {sorted(missing)}; it needs input_ids and labels."
        )


def _summary(plan: StepPlan, trained_tokens: int, cfg: Config) -> str:
    eff = cfg.effective_batch_size * plan.world_size
    return (
        f"examples {plan.examples:,} | trained tokens {trained_tokens:,} | steps per epoch "
        f"{plan.steps_per_epoch:,} | total steps {plan.total_steps:,} ({plan.epochs:.2f} epochs) | "
        f"effective batch size {eff} ({cfg.micro_batch_size} × {cfg.gradient_accumulation_steps}"
        f"{f' × {plan.world_size} processes' if plan.world_size > 1 else ''}) | warm-up "
        f"{plan.warmup_steps} steps"
    )


def save_final(trainer: Trainer, cfg: Config) -> list[str]:
    """Write model/adapter + tokenizer + config.yml into output_dir, each file atomically."""
    out = Path(cfg.output_dir)
    if trainer.is_fsdp_enabled:
        # The result is one whole model/adapter even when checkpoints are sharded (the Trainer
        # would write nothing at all for SHARDED_STATE_DICT here).
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    if not trainer.args.should_save:
        trainer.save_model(str(out))  # other ranks take part in gathers, write nothing
        return []
    out.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=ckpt.STAGING_PREFIX + "final-", dir=out))
    try:
        trainer.save_model(str(staged))
        (staged / "training_args.bin").unlink(missing_ok=True)  # pickled args: not a result
        names = ckpt.publish_files(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    ckpt.atomic_write_text(out / CONFIG_FILE, resolved_config_yaml(cfg))
    return [*names, CONFIG_FILE]


def set_up_run(
    trainer: Any, cfg: Config, console: Console | None, callbacks: list[Any] | None
) -> None:
    """What a built TRL/transformers trainer needs to run the honer way: honer's optimizer and
    LR policy, and `attach_callbacks`."""
    trainer.optimizer_cls_and_kwargs = optim.optimizer_cls_and_kwargs(cfg)
    trainer.lr_policy = optim.lr_policy(cfg)
    attach_callbacks(trainer, console or Console(highlight=False, soft_wrap=True), callbacks)


def attach_callbacks(trainer: Any, console: Console, callbacks: list[Any] | None) -> None:
    """honer's console and engine report instead of transformers' printer and progress bar,
    then the run's own callbacks (watchdog, eval table, hub push): every trainer gets these."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ConsoleCallback(console))
    trainer.add_callback(EngineReportCallback(trainer, console))
    for callback in callbacks or []:
        trainer.add_callback(callback)


def build_trainer(
    cfg: Config,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[HonerTrainer, StepPlan]:
    """The configured trainer and its step plan, without training (tests inspect these)."""
    _check_dataset(train_dataset, "training")
    has_eval = eval_dataset is not None and len(eval_dataset) > 0
    validates = cfg.val_set_size > 0 or bool(cfg.test_datasets)
    if validates and not has_eval and (cfg.evals_per_epoch or cfg.eval_steps):
        raise DataError(
            "the config evaluates during training (`evals_per_epoch` / `eval_steps`), but no "
            "validation rows were given to the trainer."
        )
    if eval_dataset is not None and has_eval:
        _check_dataset(eval_dataset, "validation")
    if tokenizer.pad_token_id is None:
        raise DataError("the tokenizer has no pad token; set `special_tokens: {pad_token: ...}`.")
    pad_to_length = cfg.sequence_len if cfg.pad_to_sequence_len else None
    collator: Any = PaddingCollator(
        pad_token_id=tokenizer.pad_token_id, pad_to_length=pad_to_length
    )
    pack_stats = None
    eval_packing = (
        cfg.sample_packing if cfg.eval_sample_packing is None else cfg.eval_sample_packing
    )
    if cfg.sample_packing or (has_eval and eval_packing):
        pack = dict(packing_settings(cfg), pad_token_id=tokenizer.pad_token_id)
        if cfg.sample_packing:
            train_dataset, pack_stats = packing.pack_dataset(
                train_dataset,
                **pack,
                world_size=parallel.world_size(),
                micro_batch_size=cfg.micro_batch_size,
            )
        if has_eval and eval_packing:
            eval_dataset, _ = packing.pack_dataset(eval_dataset, **pack)
        # Packed rows carry position_ids; an unpacked set beside them is padded as usual.
        collator = packing.PackedCollator(tokenizer.pad_token_id, pad_to_length, collator)
        # CPU sdpa: per-sample causal blocks, ~10× faster than the masked path.
        segment_attention.use_segment_attention(model)
    console = console or Console(highlight=False, soft_wrap=True)
    # Liger kernels patch the model in place (CUDA); their fused linear cross-entropy, and
    # `cut_cross_entropy`, run as the trainer's chunked head loss.
    kernels = apply_kernels(model, cfg, console)
    head_loss = "chunked" if cfg.use_cut_cross_entropy else kernels.head_loss
    plan = plan_steps(cfg, len(train_dataset), has_eval)
    args = training_arguments(cfg, plan, has_eval)
    trainer = HonerTrainer(
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset if has_eval else None,
        processing_class=tokenizer,
        callbacks=[MetricsJsonlCallback(cfg.output_dir)],
        optimizer_cls_and_kwargs=optim.optimizer_cls_and_kwargs(cfg),
    )
    trainer.lr_policy = optim.lr_policy(cfg)
    trainer.report_tokens_per_second = bool(cfg.include_tokens_per_second)
    trainer.packing_stats = pack_stats
    if head_loss is not None:
        trainer.use_chunked_head(head_loss)
    attach_callbacks(trainer, console, callbacks)
    return trainer, plan


def train(
    cfg: Config,
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset,
    eval_dataset: Dataset | None = None,
    resume: bool = False,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train `model` on the prepared datasets as `cfg` says, and save the result in output_dir.

    `resume` (the CLI's --resume) continues from the latest checkpoint in output_dir, as does
    `resume_from_checkpoint: true`; a path in `resume_from_checkpoint` names the checkpoint.
    Model/adapter weights, optimizer, schedule, RNG state and the position in the data are all
    restored, so the resumed run continues exactly as the interrupted one would have.
    """
    console = console or Console(highlight=False, soft_wrap=True)
    trainer, plan = build_trainer(
        cfg, model, tokenizer, train_dataset, eval_dataset, console, callbacks
    )
    trained_tokens = _count_trained_tokens(train_dataset)
    if trained_tokens == 0:
        raise DataError(
            "the training set has no trained tokens (every label is -100): check the format's "
            "masking (`train_on_inputs`, `roles_to_train`) with `honer preprocess --debug`."
        )
    return run_built(cfg, trainer, plan, _summary(plan, trained_tokens, cfg), resume, console)


FINAL_WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")


def _already_finished(
    cfg: Config,
    trainer: Any,
    plan: StepPlan,
    checkpoint: Path,
    step: int,
    console: Console | None,
    before_save: Any = None,
) -> TrainResult:
    """Resuming from a checkpoint of the run's last step trains nothing (transformers would run
    one step more and overwrite the result). If the final save completed (`config.yml`, written
    last, and the weights are there), everything is kept as it is; if it was interrupted (a kill
    or a full disk during the final save), the result is written again from that checkpoint."""
    import json as _json

    console = console or Console(highlight=False, soft_wrap=True)
    out = Path(cfg.output_dir)
    state = _json.loads((checkpoint / ckpt.TRAINER_STATE).read_text(encoding="utf-8"))
    losses = [h["loss"] for h in state.get("log_history", []) if "loss" in h]
    complete = (out / CONFIG_FILE).is_file() and any((out / n).is_file() for n in FINAL_WEIGHTS)
    saved: list[str] = []
    if complete:
        message = (
            f"the run in {out} already finished (step {step} of {plan.total_steps}): nothing to train; its "
            "result is kept as it is. Train again into a new output_dir to start over."
        )
    else:
        best = state.get("best_model_checkpoint") if cfg.load_best_model_at_end else None
        source = Path(best) if best and Path(best).is_dir() else checkpoint
        trainer._load_from_checkpoint(str(source))  # transformers' own loader (model/adapter)
        if before_save is not None:
            before_save(trainer)
        saved = save_final(trainer, cfg)
        message = (
            f"the run in {out} had finished (step {step} of {plan.total_steps}) but its final save did not "
            f"complete: the result was written again from {source}: {', '.join(saved)}."
        )
    if trainer.args.should_save:
        console.print(message, markup=False)
    return TrainResult(
        output_dir=out,
        global_step=step,
        final_loss=losses[-1] if losses else None,
        train_loss=float(losses[-1]) if losses else 0.0,
        plan=plan,
        resumed_from=checkpoint,
        saved=saved,
        already_finished=True,
    )


def run_built(
    cfg: Config,
    trainer: Any,
    plan: StepPlan,
    summary: str,
    resume: bool = False,
    console: Console | None = None,
    before_save: Any = None,
) -> TrainResult:
    """Train a built trainer (SFT or preference) and save the result: resume target, staging
    clean-up, metrics kept up to the resumed step, trackers, the out-of-memory message, and the
    atomic final save. `before_save(trainer)` runs between training and saving."""
    console = console or Console(highlight=False, soft_wrap=True)
    resume_from = ckpt.resolve_resume(cfg, resume)
    # A checkpoint at (or past) this run's last step: nothing left to train. (A larger
    # `max_steps` than the checkpoint's run had is a longer run: it trains on.)
    if resume_from is not None and (step := ckpt.read_step(resume_from)) >= plan.total_steps:
        return _already_finished(cfg, trainer, plan, resume_from, step, console, before_save)
    out = Path(cfg.output_dir)
    if trainer.args.should_save:
        ckpt.clean_staging(out)
        if resume_from is not None:
            ckpt.truncate_metrics(out / METRICS_FILE, ckpt.read_step(resume_from))
        else:
            (out / METRICS_FILE).unlink(missing_ok=True)
    if trainer.args.should_save:
        if getattr(trainer, "packing_stats", None) is not None:
            console.print(trainer.packing_stats.describe(), markup=False)
        console.print(summary, markup=False)
        if resume_from is not None:
            console.print(f"resuming from {resume_from}", markup=False)
    try:
        with tracking_environment(cfg):
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except Exception as err:
        if is_out_of_memory(err):
            raise out_of_memory_error(
                f"training (micro_batch_size {cfg.micro_batch_size})"
            ) from None
        raise
    if before_save is not None:
        before_save(trainer)
    saved = save_final(trainer, cfg)
    train_logs = [h for h in trainer.state.log_history if "loss" in h]
    final_loss = train_logs[-1]["loss"] if train_logs else None
    if trainer.args.should_save:
        console.print(f"saved to {out}: {', '.join(saved)}", markup=False)
    sys.stdout.flush()
    return TrainResult(
        output_dir=out,
        global_step=output.global_step,
        final_loss=final_loss,
        train_loss=output.training_loss,
        plan=plan,
        resumed_from=resume_from,
        saved=saved,
        tokens_per_second=output.metrics.get("train_tokens_per_second"),
    )
