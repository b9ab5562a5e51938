"""Load a config for a command and print the loader's notes (one line each, on stderr).

Notes say what an Axolotl key did here when it changes nothing or was translated
(`honer.config.axolotl`): printed by every command that reads a config, so a user sees them
whether they run `validate` first or not.
"""

from __future__ import annotations

from pathlib import Path

from honer.cli.console import err_console
from honer.config import Config, load_config
from honer.errors import NotSupportedError


def load_noted(path: str | Path) -> Config:
    """`load_config`, then one `note:` line per loader note."""
    cfg = load_config(path)
    for key, message in cfg.notes:
        err_console.print(f"note: {key}: {message}", markup=False)
    return cfg


def refuse_reward_model(cfg: Config, command: str) -> None:
    """A reward model scores conversations; the language-model commands (generation, merging
    into a causal LM) do not apply to it."""
    if cfg.process_reward_model:
        raise NotSupportedError(
            f"`{command}` is for language models, and this config trains a process reward model "
            "(`process_reward_model: true`), which labels reasoning steps: load it with "
            "transformers' AutoModelForTokenClassification (and peft's PeftModel for an adapter) "
            "and read the class at each step's last token."
        )
    if cfg.reward_model:
        raise NotSupportedError(
            f"`{command}` is for language models, and this config trains a reward model "
            "(`reward_model: true`), which scores conversations: load it with transformers' "
            "AutoModelForSequenceClassification (and peft's PeftModel for an adapter) and read "
            "`logits[:, 0]`; its held-out accuracy is in metrics.jsonl (`eval_accuracy`)."
        )
