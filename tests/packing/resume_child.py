"""The resume test's LoRA run (tests/train/resume_child.py) with sample packing switched on.

python -m tests.packing.resume_child MODEL_DIR OUTPUT_DIR KILL_AT_STEP RESUME
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

from tests.train import resume_child

# 40 samples of 7-29 tokens in rows of 64: about 12 rows, 3 steps per epoch, so the 14 steps
# cross several epochs and the kill at step 12 falls inside one.
PACKED = {"sample_packing": True, "sequence_len": 64, "micro_batch_size": 2}


def run(model_dir: Path, output_dir: Path, kill_at_step: int = 0, resume: bool = False):
    """The shared resume run with `PACKED` applied (the shared settings are left unchanged)."""
    with mock.patch.dict(resume_child.RUN, PACKED):
        return resume_child.run(model_dir, output_dir, kill_at_step, resume)


if __name__ == "__main__":
    model_dir, out, kill, resume = sys.argv[1:5]
    run(Path(model_dir), Path(out), int(kill), resume == "1")
