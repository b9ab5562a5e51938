"""Property test: any mutation of a valid config loads or raises ConfigError with key paths."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from honer.config import config_from_dict
from honer.config.schema import Config, DatasetConfig
from honer.errors import ConfigError

BASE: dict[str, Any] = {
    "base_model": "m",
    "adapter": "lora",
    "lora_r": 8,
    "sequence_len": 512,
    "micro_batch_size": 2,
    "val_set_size": 0.1,
    "special_tokens": {"eos_token": "</s>"},
    "datasets": [
        {"path": "a.jsonl", "type": "alpaca"},
        {"path": "b.jsonl", "type": "chat_template", "roles_to_train": ["assistant"]},
    ],
}

KEYS = [*Config.model_fields, *DatasetConfig.model_fields, "lora_alpah", "rl", "", "0"]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["alpaca", "qlora", "cosine", "auto", "jinja", "sharegpt", "0.5"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.integers(0, 3), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    cfg = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "delete", "set_dataset", "replace_root", "set_nested"]))
        if op == "set":
            cfg[draw(st.sampled_from(KEYS))] = draw(values)
        elif op == "delete" and cfg:
            cfg.pop(draw(st.sampled_from(sorted(cfg, key=str))), None)
        elif op == "set_dataset" and isinstance(cfg.get("datasets"), list) and cfg["datasets"]:
            entry = cfg["datasets"][0]
            if isinstance(entry, dict):
                entry[draw(st.sampled_from(KEYS))] = draw(values)
            else:
                cfg["datasets"][0] = draw(values)
        elif op == "set_nested":
            cfg[draw(st.sampled_from(["special_tokens", "bnb_config_kwargs", "datasets"]))] = draw(
                values
            )
        elif op == "replace_root":
            return draw(values)
    return cfg


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_configs_load_or_raise_config_error(raw: Any) -> None:
    try:
        config_from_dict(raw)
    except ConfigError as err:
        assert err.problems, "a ConfigError must carry at least one problem"
        for path, message in err.problems:
            assert isinstance(path, str) and isinstance(message, str) and message
