"""`honer estimate CONFIG [--num-processes N]`: memory per device before a run, and whether it fits.

The arithmetic lives in `honer.train.estimate`; this prints it. Only the model's config is read
(the model is built on the meta device), so estimating an 8B model takes seconds and no memory.
"""

from __future__ import annotations

from pathlib import Path

import typer


def estimate(
    config: Path = typer.Argument(..., help="YAML config file."),
    num_processes: int = typer.Option(
        1, "--num-processes", min=1, help="Processes (GPUs) the run will use."
    ),
    memory_gb: float | None = typer.Option(
        None,
        "--memory-gb",
        help="Memory per device to compare against (default: the free memory of the detected "
        "GPU, or this machine's available RAM without one).",
    ),
) -> None:
    """Estimate memory per device (weights, gradients, optimizer, activations, peak)."""
    from rich.table import Table

    from honer.cli.console import console
    from honer.cli.loading import load_noted
    from honer.train import estimate as est

    cfg = load_noted(config)
    shape, tensors = est.inspect_model(cfg)
    result = est.estimate(cfg, shape, tensors, num_processes)

    table = Table(title=f"memory per device ({num_processes} process(es))")
    table.add_column("component")
    table.add_column("size", justify="right")
    for name, size in result.table():
        table.add_row(name, size)
    console.print(table)
    trainable = sum(tensors.trainable)
    console.print(
        f"parameters {tensors.total:,} (trainable {trainable:,}); {shape.layers} layers, "
        f"hidden {shape.hidden}, vocab {shape.vocab}",
        markup=False,
    )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    ref = result.hf_reference
    console.print(
        "Hugging Face model-memory table for these parameters: float32 weights "
        f"{est.human(ref['float32 weights'])}, training with Adam "
        f"{est.human(ref['float32 training with Adam'])}; float16 weights "
        f"{est.human(ref['float16 weights'])}, int4 {est.human(ref['int4 weights'])}",
        markup=False,
    )
    if memory_gb is not None:
        kind, free = "given", [int(memory_gb * 1024**3)]
    else:
        kind, free = est.device_memory()
    smallest = min(free)
    verdict = "fits" if result.peak <= smallest else "does NOT fit"
    where = {"cuda": f"{len(free)} GPU(s), free", "cpu": "no GPU; available RAM", "given": "given"}
    console.print(
        f"{verdict}: peak {est.human(result.peak)} per device vs {est.human(smallest)} "
        f"({where[kind]})",
        markup=False,
    )
    if result.peak > smallest:
        console.print(
            "to lower it: `gradient_checkpointing: true`, a smaller `micro_batch_size` or "
            "`sequence_len`, `adapter: qlora` with `load_in_4bit: true`, an 8-bit optimizer "
            "(`optimizer: adamw_bnb_8bit`), or shard across processes (`deepspeed: zero3`, "
            "`fsdp: [full_shard]`).",
            markup=False,
        )
