"""honer: fine-tune Hugging Face causal language models from one YAML file.

The Python API is one function per run kind; each takes a `Config` (or the path of a YAML
file) and does the whole job, artefacts included, exactly as the command of the same name:

    import honer
    cfg = honer.load_config("config.yml")
    run = honer.train_model(cfg)              # honer train
    scores = honer.evaluate_model(cfg)        # honer evaluate
    found = honer.lr_find(cfg, "lr_find")     # honer lr find
    merged = honer.merge_lora(cfg)            # honer merge-lora
    honer.build_report(run.output_dir)        # honer report

Importing this package stays cheap: the heavy libraries load when a run starts. See
docs/python-api.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from honer.config.schema import Config

__version__ = "0.1.0"
# `train_model`/`evaluate_model`, not `train`/`evaluate`: those are subpackages, and importing
# `honer.train.trainer` would set the attribute `honer.train` to the package, hiding a function.
__all__ = [
    "build_report",
    "evaluate_model",
    "load_config",
    "lr_find",
    "lr_tune",
    "merge_lora",
    "train_model",
]


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config (every problem reported at once, as `honer validate`)."""
    from honer.config import load_config as load

    return load(Path(path))


def _config(cfg: Config | str | Path) -> Config:
    return load_config(cfg) if isinstance(cfg, str | Path) else cfg


def train_model(cfg: Config | str | Path, *, resume: bool = False) -> Any:
    """`honer train`: returns a `honer.runs.train.TrainRun`."""
    from honer.runs.train import train as run

    return run(_config(cfg), resume=resume)


def evaluate_model(
    cfg: Config | str | Path, checkpoint: str | Path | None = None, **options: Any
) -> Any:
    """`honer evaluate`: returns a `honer.runs.evaluate.EvalResult`. Options: `data_file`,
    `base_model_only`, `output`, `show_progress`."""
    from honer.runs.evaluate import evaluate as run

    return run(_config(cfg), Path(checkpoint) if checkpoint else None, **options)


def lr_find(cfg: Config | str | Path, out: str | Path = ".", **options: Any) -> Any:
    """`honer lr find`: returns a `honer.runs.lr.FindRun`. Options: `start_lr`, `end_lr`,
    `num_steps`, `show_progress`."""
    from honer.runs.lr import find

    return find(_config(cfg), Path(out), **options)


def lr_tune(
    cfg: Config | str | Path,
    policies: list[str],
    lrs: list[float],
    plot: str | Path,
    **options: Any,
) -> Any:
    """`honer lr tune`: (ranked trials, plot path). Options: `db`, `min_steps`, `max_steps`,
    `eta`, `search`, `trials`, `seed`."""
    from honer.runs.lr import tune

    return tune(_config(cfg), policies, lrs, Path(plot), **options)


def merge_lora(cfg: Config | str | Path, output: str | Path | None = None, **options: Any) -> Any:
    """`honer merge-lora`: returns a `honer.model.merge.MergeResult`. Options:
    `lora_model_dir`, `qlora_base`, `dtype`, `max_shard_size`, `force`."""
    from honer.runs.merge import merge

    lora_model_dir = options.pop("lora_model_dir", None)
    return merge(
        _config(cfg),
        Path(lora_model_dir) if lora_model_dir else None,
        Path(output) if output else None,
        **options,
    )


def build_report(output_dir: str | Path) -> Path:
    """`honer report`: rebuild report.html and curves.png of a run; returns the HTML path."""
    from honer.evaluate.report import build_report as build

    return build(output_dir)
