"""One LoRA training run for the resume test, importable and runnable as a child process.

    python -m tests.train.resume_child MODEL_DIR OUTPUT_DIR KILL_AT_STEP RESUME

With KILL_AT_STEP > 0 the process SIGKILLs itself while writing the checkpoint of that step,
after the model files are written and before the optimizer state is: the worst moment for a
checkpoint that is not written atomically.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

from tests.train.data_util import config, dataset

RUN = {
    "adapter": "lora",
    "lora_dropout": 0.1,  # consumes RNG every step: resume must restore the RNG state
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "max_steps": 14,  # 40 samples → 5 steps per epoch: the run crosses two epoch boundaries
    "save_steps": 4,
    "lr_scheduler": "cosine",
    "warmup_steps": 2,
    "learning_rate": 1e-2,
    "logging_steps": 1,
}


def run(model_dir: Path, output_dir: Path, kill_at_step: int = 0, resume: bool = False):
    import torch
    from rich.console import Console

    from honer.model.adapters import build_adapter
    from honer.model.load import load_model, load_tokenizer
    from honer.train.trainer import HonerTrainer, train

    torch.set_num_threads(1)
    if kill_at_step:
        original = HonerTrainer._save_optimizer_and_scheduler

        def die_mid_save(self, output_dir):
            if self.state.global_step == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, output_dir)

        HonerTrainer._save_optimizer_and_scheduler = die_mid_save
    cfg = config(model_dir, output_dir, **RUN)
    tokenizer = load_tokenizer(cfg)
    model = build_adapter(cfg, load_model(cfg, tokenizer), verbose=False)
    result = train(
        cfg,
        model,
        tokenizer,
        dataset(40, seed=1),
        resume=resume,
        console=Console(file=io.StringIO()),
    )
    return model, result


if __name__ == "__main__":
    model_dir, out, kill, resume = sys.argv[1:5]
    run(Path(model_dir), Path(out), int(kill), resume == "1")
