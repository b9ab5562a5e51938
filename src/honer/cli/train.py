"""`honer train CONFIG [--resume] [--num-processes N]`: the run is `honer.runs.train.train`.

This module parses the flags, starts torchrun for several processes (after the checks that need
no model ran once, here), and prints. Errors are not caught here: the CLI entry point prints
`HonerError`s as one short message.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="YAML config file."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the latest checkpoint in output_dir."
    ),
    num_processes: int = 1,
) -> None:
    """Train as the config says (preprocesses first when no cache exists).

    With `num_processes` > 1 (and not already inside a launched process) this process only
    validates the config and starts torchrun, which runs `honer train` once per rank.
    """
    from honer.cli.loading import load_noted
    from honer.ranks import world_size

    cfg = load_noted(config)
    if num_processes > 1 and "LOCAL_RANK" not in os.environ:
        from honer.runs.train import preflight

        preflight(cfg, resume, max(num_processes, world_size()))
        _launch(config, resume, num_processes)
        return
    from honer.cli.console import console
    from honer.runs.train import train as run_training
    from honer.train.parallel import end_process_group

    run_training(cfg, resume=resume, console=console)
    # Only after success: a failed rank exits at once, and torchrun stops the others (a barrier
    # here would leave it waiting for ranks that are still training).
    end_process_group()


def _launch(config: Path, resume: bool, num_processes: int) -> None:
    """Run `honer train CONFIG` in `num_processes` ranks under torchrun; its exit code is ours."""
    import subprocess
    import sys

    from honer.cli.console import console
    from honer.train.parallel import launch_command

    command = launch_command(
        ["train", str(config), *(["--resume"] if resume else [])], num_processes
    )
    console.print(f"launching {num_processes} processes: {' '.join(command)}", markup=False)
    code = subprocess.call(command)
    if code:
        sys.exit(code)
