"""Loss watchdog: stop a run whose training loss stays too high or stops being a number.

`loss_watchdog_threshold` / `loss_watchdog_patience` (Axolotl's keys): when `patience` logged
steps in a row have a loss above the threshold, or NaN/inf, the run stops cleanly — the Trainer
saves a checkpoint at that step — and `tripped` says why, so the CLI can tell the user what to try.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback


class LossWatchdogCallback(TrainerCallback):
    def __init__(self, threshold: float, patience: int) -> None:
        self.threshold = threshold
        self.patience = patience
        self.bad_in_a_row = 0
        self.tripped: str | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any):
        loss = (logs or {}).get("loss")
        if loss is None:
            return control
        finite = isinstance(loss, int | float) and math.isfinite(loss)
        if finite and loss <= self.threshold:
            self.bad_in_a_row = 0
            return control
        self.bad_in_a_row += 1
        if self.bad_in_a_row >= self.patience:
            what = (
                f"{loss:.4g} above loss_watchdog_threshold {self.threshold:g}"
                if finite
                else f"{loss}"
            )
            self.tripped = (
                f"training stopped by the loss watchdog at step {state.global_step}: the loss was "
                f"{what} for {self.bad_in_a_row} logged steps in a row. Try a lower "
                "`learning_rate` or more `warmup_steps`, check the data with "
                "`honer preprocess --debug`, or raise `loss_watchdog_threshold`."
            )
            control.should_training_stop = True
            control.should_save = True
        return control
