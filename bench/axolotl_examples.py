"""How many of Axolotl's own example configs `honer validate` accepts unchanged.

Usage: python bench/axolotl_examples.py AXOLOTL_CHECKOUT [--details]

Reads every YAML under AXOLOTL_CHECKOUT/examples, keeps the training configs of text models
(a `base_model` and `datasets`; not multimodal ones), validates each with
`honer.config.load.load_config` exactly as `honer validate` does (no torch import, `base_model`
left as it is), and prints one JSON line: counts, the share that validates, and the config keys
behind the refusals, most frequent first; SFT configs and preference / RL / reward-model
configs (`rl`, `reward_model`, `process_reward_model`) are counted apart.
`--details` also lists every refused file with its problems (on stderr).

The check is the config layer alone: nothing is downloaded, no model is loaded.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import yaml

from honer.config.load import load_config
from honer.errors import ConfigError

# Keys that make a config a preference / RL / reward-model run (another issue), or multimodal.
RL_KEYS = ("rl", "reward_model", "process_reward_model")
MULTIMODAL_KEYS = ("processor_type", "image_size", "image_resize_algorithm", "audio_tokens")


def kind(raw: object) -> str:
    """`text`, or why the file is not a text-model training config."""
    if not isinstance(raw, dict) or "base_model" not in raw or "datasets" not in raw:
        return "not a training config"
    if any(raw.get(k) for k in RL_KEYS):
        return "preference/RL"
    if any(k in raw for k in MULTIMODAL_KEYS):
        return "multimodal"
    return "text"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    root = Path(argv[0]) / "examples"
    details = "--details" in argv
    files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml"))
    kinds: collections.Counter[str] = collections.Counter()
    passed: dict[str, list[str]] = {"text": [], "preference/RL": []}
    refused: dict[str, list] = {"text": [], "preference/RL": []}
    keys: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in passed}
    for path in files:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            kinds["unreadable YAML"] += 1
            continue
        k = kind(raw)
        kinds[k] += 1
        if k not in passed:
            continue
        try:
            load_config(path)
            passed[k].append(str(path.relative_to(root)))
        except ConfigError as err:
            refused[k].append((str(path.relative_to(root)), err.problems))
            for key in {p[0].split("[")[0].split(".")[0] for p in err.problems}:
                keys[k][key] += 1
    if details:
        for name, problems in refused["text"] + refused["preference/RL"]:
            print(name, file=sys.stderr)
            for where, msg in problems:
                print(f"    {where}: {msg}", file=sys.stderr)
    total = len(passed["text"]) + len(refused["text"])
    rl_total = len(passed["preference/RL"]) + len(refused["preference/RL"])
    print(
        json.dumps(
            {
                "bench": "axolotl_examples",
                "yaml_files": len(files),
                "kinds": dict(kinds),
                "text_training_configs": total,
                "validate_unchanged": len(passed["text"]),
                "share": round(len(passed["text"]) / total, 4) if total else None,
                "refused_by_key": dict(keys["text"].most_common()),
                "rl_training_configs": rl_total,
                "rl_validate_unchanged": len(passed["preference/RL"]),
                "rl_share": round(len(passed["preference/RL"]) / rl_total, 4) if rl_total else None,
                "rl_refused_by_key": dict(keys["preference/RL"].most_common()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
