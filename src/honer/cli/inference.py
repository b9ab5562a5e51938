"""`honer inference CONFIG`: chat with the fine-tuned model in the terminal, a browser, or in batch.

One prompt (`--prompt`), a JSONL file of prompts (`--file`, answers written as JSONL), an
interactive multi-turn chat (neither), or a local Gradio web chat (`--gradio`). Prompts are
formatted exactly as training formatted them (see honer.infer.prompt). Heavy imports happen inside
the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from honer.errors import HonerError

# Loopback by default: a fine-tuned model may hold private data; --host opens it wider.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_BATCH = 16


def _check_flags(
    prompt: str | None,
    file: Path | None,
    output: Path | None,
    gradio: bool,
    host: str | None,
    port: int | None,
    share: bool,
    batch_size: int | None = None,
) -> None:
    """Reject combinations where a flag would do nothing."""
    if prompt is not None and file is not None:
        raise HonerError("--prompt: cannot be combined with --file (one prompt or a file).")
    if output is not None and file is None:
        raise HonerError("--output: applies to batch mode only; give --file prompts.jsonl.")
    if batch_size is not None and file is None:
        raise HonerError("--batch-size: applies to batch mode only; give --file prompts.jsonl.")
    if gradio and (prompt is not None or file is not None):
        raise HonerError("--gradio: opens a web chat; it takes no --prompt or --file.")
    for flag, given in (
        ("--host", host is not None),
        ("--port", port is not None),
        ("--share", share),
    ):
        if given and not gradio:
            raise HonerError(f"{flag}: applies to the web chat only; add --gradio.")


def inference(
    config: Path = typer.Argument(..., help="YAML config of the run."),
    lora_model_dir: Path | None = typer.Option(
        None,
        "--lora-model-dir",
        help="Adapter folder (default: `lora_model_dir`, else the run's output_dir).",
    ),
    base_model_only: bool = typer.Option(
        False, "--base-model-only", help="Chat with the base model, no adapter or fine-tune."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="Answer this one prompt and exit."),
    system: str | None = typer.Option(
        None,
        "--system",
        help="System message for conversations that have none (use the one your training rows "
        "carry; chat formats and alpaca).",
    ),
    file: Path | None = typer.Option(
        None,
        "--file",
        help="JSONL prompts (each line `prompt`, `messages`, alpaca `instruction`/`input`) or "
        "rows in the training format (prompt = before the first trained turn, the rest is kept "
        "as `reference`).",
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Where --file answers go (default: FILE stem + .responses.jsonl)."
    ),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Longest answer in tokens."),
    temperature: float = typer.Option(
        0.0, "--temperature", help="Sampling temperature; 0 (default) is greedy decoding."
    ),
    top_p: float | None = typer.Option(
        None, "--top-p", help="Nucleus sampling (needs --temperature)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="Top-k sampling (needs --temperature)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed sampling, for repeatable answers."),
    gradio: bool = typer.Option(False, "--gradio", help="Serve a local web chat (Gradio)."),
    host: str | None = typer.Option(
        None, "--host", help=f"Web chat address (default {DEFAULT_HOST}: this machine only)."
    ),
    port: int | None = typer.Option(
        None, "--port", help=f"Web chat port (default {DEFAULT_PORT})."
    ),
    share: bool = typer.Option(False, "--share", help="Also open a public gradio.live link."),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        min=1,
        help=f"--file: prompts generated together (default {DEFAULT_BATCH}).",
    ),
) -> None:
    """Generate with the fine-tuned model: one prompt, a JSONL batch, a terminal chat, or --gradio."""
    _check_flags(prompt, file, output, gradio, host, port, share, batch_size)
    from honer.cli.loading import load_noted, refuse_reward_model
    from honer.infer.stream import Sampling

    cfg = load_noted(config)
    refuse_reward_model(cfg, "honer inference")
    sampling = Sampling(max_new_tokens, temperature, top_p, top_k, seed).check()
    rows = None
    if file is not None:
        from honer.infer.batch import read_rows

        rows = read_rows(file)  # a bad line fails before anything loads

    from honer.cli.console import err_console
    from honer.infer.chat import Assistant, ChatSession
    from honer.infer.load import load_source, resolve_source
    from honer.infer.prompt import PromptFormatter
    from honer.model.load import load_tokenizer

    source = resolve_source(cfg, lora_model_dir, base_model_only)
    tokenizer = load_tokenizer(cfg)
    formatter = PromptFormatter(cfg, tokenizer, system)
    batch = None
    if rows is not None and file is not None:
        from honer.infer.batch import batch_prompts

        batch = batch_prompts(formatter, rows, file)  # every row checked before the model loads
    model = load_source(cfg, source, tokenizer)
    what = source.describe(cfg)
    assistant = Assistant(model, tokenizer, formatter, sampling)
    err_console.print(f"model: {what}", markup=False)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    if gradio:
        from honer.infer.gradio_app import build_app, launch

        app = build_app(assistant, f"honer · {what}")
        launch(app, host or DEFAULT_HOST, port or DEFAULT_PORT, share)
    elif batch is not None and rows is not None and file is not None:
        from honer.atomic import write_text
        from honer.infer.batch import batch_jsonl, run_batch
        from honer.progress import progress

        if sampling.seed is not None:
            from transformers import set_seed

            set_seed(sampling.seed)
        dest = output or file.with_name(f"{file.stem}.responses.jsonl")
        with progress("answering", len(batch)) as advance:
            responses = run_batch(
                model,
                formatter,
                batch,
                sampling.generate_kwargs(),
                batch_size or DEFAULT_BATCH,
                advance,
            )
        write_text(dest, batch_jsonl(rows, batch, responses))
        err_console.print(f"wrote {len(responses)} answers to {dest}", markup=False)
    elif prompt is not None:
        for piece in assistant.reply([{"role": "user", "content": prompt}]):
            write(piece)
        write("\n")
    else:
        from honer.infer.chat import interactive

        interactive(ChatSession(assistant), input, write)
