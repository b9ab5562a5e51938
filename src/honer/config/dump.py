"""The config as a run used it, as YAML (`output_dir/config.yml`, model cards)."""

from __future__ import annotations

import yaml

from honer.config.checks import LORA_KEYS
from honer.config.schema import Config


def resolved_config_yaml(cfg: Config) -> str:
    """The config as it ran: every key with its value, learning rate and trackers resolved.

    Secrets never live in the config (W&B and hub credentials come from the environment), so the
    dump holds none. LoRA keys are left out of full fine-tuning runs: they did not apply, and the
    loader rejects them without an adapter.
    """
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["learning_rate"] = cfg.resolved_learning_rate
    if cfg.resolved_report_to:
        data["report_to"] = cfg.resolved_report_to
    data.pop("resume_from_checkpoint", None)
    if cfg.adapter is None:
        for key in LORA_KEYS:
            data.pop(key, None)
    header = "# The resolved config of this run (written by honer train).\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
