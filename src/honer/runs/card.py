"""The model card (README.md) written beside an adapter, a full fine-tune or a merged model:
base model, datasets, adapter settings, the final metrics of metrics.jsonl, notes, config."""

from __future__ import annotations

import json
import re
from pathlib import Path

from honer.config.schema import Config


def _final_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of each loss-like metric in the run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    found: dict[str, float] = {}
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        for key, value in row.items():
            if isinstance(value, (int, float)) and ("loss" in key or "perplexity" in key):
                found[key] = float(value)
        if "step" in row:
            found["step"] = float(row["step"])
    return found


# A Hub model id (`name` or `namespace/name`), as the Hub's metadata validation accepts one.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def hub_base_model(base_model: str) -> str | None:
    """`base_model` if it names a Hub model, None for a local folder or file (which the Hub
    refuses as `base_model` metadata: "is not valid. Use a model id from https://hf.co/models")."""
    if Path(base_model).exists() or base_model.endswith(".gguf"):
        return None
    return base_model if _HUB_ID.fullmatch(base_model) else None


def model_card(
    cfg: Config,
    adapter_dir: Path | None,
    config_yaml: str,
    notes: list[str],
    merged: bool,
    hub: bool = False,
) -> str:
    """README.md for a merged model or an adapter: base, datasets, config and final metrics.

    `hub`: the card pushed to the Hub, whose metadata the Hub validates before a commit; a local
    base model is then named in the text only, not as `base_model` metadata.
    """
    kind = "merged model" if merged else f"{cfg.adapter or 'full'} fine-tune"
    base = hub_base_model(cfg.base_model) if hub else cfg.base_model
    lines = [
        "---",
        *([f"base_model: {base}"] if base else []),
        # An adapter folder is a peft artefact; a merged model or a full fine-tune loads with
        # transformers alone.
        "library_name: peft" if cfg.adapter and not merged else "library_name: transformers",
        "tags: [honer]",
        "---",
        "",
        f"# {Path(cfg.output_dir).name} ({kind})",
        "",
        f"Fine-tuned from `{cfg.base_model}` with honer"
        + (
            f" (adapter: `{cfg.adapter}`, r={cfg.lora_r}, alpha={cfg.lora_alpha})."
            if cfg.adapter
            else "."
        ),
        "",
        "## Datasets",
        "",
        *[f"- `{ds.path}` (type `{ds.type}`)" for ds in cfg.datasets],
        "",
    ]
    metrics = _final_metrics(adapter_dir or Path(cfg.output_dir))
    if metrics:
        lines += ["## Metrics (last logged values)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
        lines.append("")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["## Config", "", "```yaml", config_yaml.rstrip(), "```", ""]
    return "\n".join(lines)
