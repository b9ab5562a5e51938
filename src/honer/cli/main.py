"""The `honer` command: a table of verbs, each in its own module.

Heavy libraries (torch, transformers, datasets) are imported inside the commands that use them,
so `honer --help` and `honer validate` start in well under a second.
"""

from __future__ import annotations

import sys

import typer
from rich.text import Text

from honer.cli.console import err_console
from honer.cli.data import data_app
from honer.cli.estimate import estimate
from honer.cli.evaluate import evaluate
from honer.cli.inference import inference
from honer.cli.lr import lr_app
from honer.cli.merge import merge_lora
from honer.cli.preprocess import preprocess
from honer.cli.validate import validate
from honer.errors import HonerError
from honer.ranks import is_main_process

app = typer.Typer(
    name="honer",
    help="Fine-tune Hugging Face causal language models (full, LoRA, QLoRA) from one YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(validate)
app.command()(preprocess)
app.command()(evaluate)
app.command()(estimate)
app.command(name="inference")(inference)
app.command(name="merge-lora")(merge_lora)
app.add_typer(data_app, name="data")
app.add_typer(lr_app, name="lr")


@app.command()
def train(
    config: str = typer.Argument(..., help="YAML config file."),
    resume: bool = typer.Option(False, "--resume", help="Resume from the latest checkpoint."),
    num_processes: int = typer.Option(
        1,
        "--num-processes",
        min=1,
        help="Data-parallel processes on this machine (started with torchrun; DDP unless the "
        "config sets `fsdp` or `deepspeed`).",
    ),
) -> None:
    """Train as the config says (preprocesses first when no cache exists)."""
    from pathlib import Path

    from honer.cli.train import train as run_train

    run_train(Path(config), resume=resume, num_processes=num_processes)


@app.command(name="merge-sharded-fsdp-weights")
def merge_sharded_fsdp_weights(
    checkpoint: str = typer.Argument(
        ..., help="A checkpoint-N folder of a run with SHARDED_STATE_DICT checkpoints."
    ),
    output: str = typer.Option(
        None, "--output", help="Folder to write into (default: CHECKPOINT/merged)."
    ),
) -> None:
    """Merge an FSDP checkpoint's per-rank shards into one safetensors file (adapter or model).

    The final output of an FSDP run is always whole already; this is for checkpoints."""
    from pathlib import Path

    from honer.cli.console import console
    from honer.train.parallel import merge_sharded_fsdp_weights as merge

    out = Path(output) if output else Path(checkpoint) / "merged"
    written = merge(Path(checkpoint), out)
    console.print(f"wrote {', '.join(written)} to {out}", markup=False)


@app.command()
def report(output_dir: str = typer.Argument(..., help="A training run's output_dir.")) -> None:
    """Rebuild report.html and curves.png of a run from the files in its output_dir."""
    from honer.cli.console import console
    from honer.evaluate.report import build_report

    console.print(f"wrote {build_report(output_dir)}", markup=False)


def run() -> None:
    """Console-script entry point: user errors become one short message and exit code 2."""
    from honer.cli.quiet import quiet_third_party

    quiet_third_party()
    try:
        app()
    except HonerError as err:
        # Text, not markup: messages hold key paths like `datasets[0].type`. Under torchrun
        # every rank meets the same error: rank 0 says it once.
        if is_main_process():
            err_console.print(Text("error: ", style="red") + Text(str(err)))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    run()
