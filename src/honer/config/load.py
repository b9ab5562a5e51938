"""YAML → `Config`: Axolotl's spellings, unknown and unsupported keys, errors as key paths.

Every problem found is collected and raised together as one `ConfigError`, each with its key path
(`datasets[1].type`), so a config is fixed in one round. An empty YAML value (`lora_r:`) means
"not set", as in Axolotl. Axolotl keys that honer's schema lacks get the answer
`honer.config.axolotl` gives them: renamed, accepted with a note, or refused naming the feature.
Notes travel with the config (`Config.notes`) for the commands to print; `strict: true` turns
them into errors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from honer.config import axolotl
from honer.config.checks import cross_field_notes, cross_field_problems
from honer.config.schema import (
    CHAT_TEMPLATE_NAMES,
    CUT_CROSS_ENTROPY_PLUGIN,
    LIGER_PLUGIN,
    OPTIMIZERS,
    BnbConfig,
    Config,
    DatasetConfig,
    EvalsConfig,
    FsdpConfig,
    GradientCheckpointingKwargs,
    SpecialTokens,
    TrlConfig,
)
from honer.errors import ConfigError

Problem = tuple[str, str]

_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "special_tokens": SpecialTokens,
    "evals": EvalsConfig,
    "trl": TrlConfig,
    "fsdp_config": FsdpConfig,
    "bnb_config_kwargs": BnbConfig,
    "gradient_checkpointing_kwargs": GradientCheckpointingKwargs,
}

# `fsdp_config` keys of FSDP1 that FSDP2 has no use for (it keeps original parameters, syncs
# module states through `cpu_ram_efficient_loading` and prefetches on its own): noted.
FSDP1_NOTED = {
    "use_orig_params",
    "sync_module_states",
    "forward_prefetch",
    "backward_prefetch",
    "limit_all_gathers",
    "min_num_params",
    "cpu_offload_pin_memory",
    "mixed_precision_policy",
    "activation_dtype",
    "final_state_dict_type",
}
# FSDP1's sharding strategies in FSDP2 terms: `reshard_after_forward`.
FSDP1_STRATEGIES = {"FULL_SHARD": True, "SHARD_GRAD_OP": False}

Notes = list[Problem]


def _fmt_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _suggest(key: str, known: list[str]) -> str:
    """A known key spelled like `key` (a typo), never one of Axolotl's own keys: those have a
    meaning of their own, and a look-alike of ours (`orpo_alpha` → `lora_alpha`) would mislead."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    if not close:  # `eos` → `eos_token`: a known key that contains the typed one
        close = [k for k in known if len(key) >= 3 and key.lower() in k]
    return f" Did you mean `{close[0]}`?" if close else ""


def _drop_empty(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """Axolotl semantics: `key:` with no value means the key is not set."""
    return {k: v for k, v in mapping.items() if v is not None}


ALPACA_STYLES = ("instruct", "chat", "chatml", "phi")


def _split_prompt_style(raw: dict[Any, Any]) -> dict[Any, Any]:
    """Axolotl's `type: alpaca:chat` is honer's `type: alpaca` + `prompt_style: chat`."""
    kind = raw.get("type")
    if not isinstance(kind, str) or not kind.startswith("alpaca:") or "prompt_style" in raw:
        return raw
    style = kind.split(":", 1)[1]
    if style not in ALPACA_STYLES:
        return raw  # the schema's value error lists the accepted types
    return {**raw, "type": "alpaca", "prompt_style": style}


# Axolotl's prompt-strategy modules: `type: <module>.<loader>` names one of these, never a user
# transform (honer's message for a strategy it lacks then names it).
AXOLOTL_STRATEGIES = frozenset(
    "alpaca alpaca_chat alpaca_instruct alpaca_w_system base bradley_terry chat_template chatml "
    "completion context_qa creative_acr dpo ebft input_output kto llama2_chat llama3 messages "
    "metharme orcamini orpo pretrain pygmalion stepwise_supervised user_defined zephyr".split()
)
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def _split_transform(raw: dict[Any, Any]) -> dict[Any, Any]:
    """Axolotl's GRPO `type: rewards.prompt_transform` (a Python function of the user's that
    maps each row to `{prompt, …}`) is honer's `type: prompt` + `transform: rewards.
    prompt_transform`."""
    kind = raw.get("type")
    if not isinstance(kind, str) or "transform" in raw or not _DOTTED.match(kind):
        return raw
    if kind.split(".", 1)[0] in AXOLOTL_STRATEGIES:
        return raw
    return {**raw, "type": "prompt", "transform": kind}


class _Cleaner:
    """One pass over the raw YAML: renames, translations, notes and problems, all collected."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.notes: Notes = []
        self._fsdp_reshard: bool | None = None  # from FSDP1's `sharding_strategy`

    # --- sections -----------------------------------------------------------------------------

    def mapping(
        self, raw: Mapping[Any, Any], model: type[BaseModel], prefix: str
    ) -> dict[str, Any]:
        """Apply aliases, report unknown/unsupported keys, and recurse into known sections."""
        raw = _drop_empty(raw)
        if model is Config:
            raw = self._translate_top_level(raw)
        if model is DatasetConfig:
            raw = _split_transform(_split_prompt_style(raw))
        known = list(model.model_fields)
        out: dict[str, Any] = {}
        for key, value in raw.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if not isinstance(key, str):
                self.problems.append((path, f"config keys must be text, got {type(key).__name__}."))
                continue
            name = self._name(key, value, model, path)
            if name is None:
                continue
            if name != key and name in raw and raw[name] is not None:
                self.problems.append((path, f"`{key}` is another name for `{name}`: set only one."))
                continue
            if name not in model.model_fields:
                self._foreign(key, value, model, path, known)
                continue
            out[name] = self.value(name, value, model, path)
        return out

    def _name(self, key: str, value: Any, model: type[BaseModel], path: str) -> str | None:
        """Our name for `key` (None: handled here, nothing to pass on)."""
        if model is Config:
            return axolotl.ALIASES.get(key, key)
        if (
            model is FsdpConfig
        ):  # Axolotl writes `fsdp_offload_params`, transformers `offload_params`
            name = key.removeprefix("fsdp_")
            if name in FSDP1_NOTED:
                self.notes.append((path, "an FSDP1 setting FSDP2 does without: nothing to do."))
                return None
            if name == "sharding_strategy":
                self._sharding_strategy(value, path)
                return None
            return name
        return key

    def _foreign(
        self, key: str, value: Any, model: type[BaseModel], path: str, known: list[str]
    ) -> None:
        """A key our schema lacks: Axolotl's (noted or refused), or unknown (with a suggestion)."""
        table = {Config: axolotl.TOP_LEVEL, DatasetConfig: axolotl.DATASET}.get(model, {})
        family = table.get(key)
        if family is None:
            self.problems.append((path, "unknown key." + _suggest(key, known)))
            return
        status, message = axolotl.answer(key, value, family)
        (self.notes if status == "noted" else self.problems).append((path, message))

    def value(self, name: str, value: Any, model: type[BaseModel], path: str) -> Any:
        if model is Config and name in ("datasets", "test_datasets") and isinstance(value, list):
            return [
                self.mapping(item, DatasetConfig, f"{path}[{i}]")
                if isinstance(item, Mapping)
                else item
                for i, item in enumerate(value)
            ]
        if model is Config and name in _SECTION_MODELS and isinstance(value, Mapping):
            return self.mapping(value, _SECTION_MODELS[name], path)
        if model is Config and name == "plugins" and isinstance(value, list):
            return self._plugins(value, path)
        return value

    # --- Axolotl translations -----------------------------------------------------------------

    def _sharding_strategy(self, value: Any, path: str) -> None:
        """FSDP1's `sharding_strategy` is FSDP2's `reshard_after_forward` (set by the caller)."""
        word = str(value).upper().split(".")[-1]
        if word.isdigit():  # transformers' numeric spelling: 1 FULL_SHARD, 2 SHARD_GRAD_OP
            word = {"1": "FULL_SHARD", "2": "SHARD_GRAD_OP"}.get(word, word)
        if word in FSDP1_STRATEGIES:
            self._fsdp_reshard = FSDP1_STRATEGIES[word]
            self.notes.append(
                (
                    path,
                    f"FSDP1's {word} is FSDP2's `reshard_after_forward: "
                    f"{str(FSDP1_STRATEGIES[word]).lower()}`: applied.",
                )
            )
        else:
            self.problems.append(
                (
                    path,
                    f"`{value}` is an FSDP1 strategy FSDP2 does not have (transformers 5.20 "
                    "removed FSDP1): use FULL_SHARD or SHARD_GRAD_OP; across nodes, plain DDP "
                    "or `deepspeed: zero2`.",
                )
            )

    def _plugins(self, names: list[Any], path: str) -> list[Any]:
        """Keep the plugins honer runs itself; note or refuse the others."""
        kept = []
        for i, name in enumerate(names):
            where = f"{path}[{i}]"
            if name in (CUT_CROSS_ENTROPY_PLUGIN, LIGER_PLUGIN) or not isinstance(name, str):
                kept.append(name)
                continue
            status, why = axolotl.PLUGINS.get(
                name, ("refused", "honer runs only the cut cross-entropy and Liger plugins")
            )
            if status == "noted":
                self.notes.append(
                    (where, f"Axolotl's `{name}` is accepted and changes nothing: {why}.")
                )
            else:
                self.problems.append((where, f"Axolotl's plugin `{name}` is not supported: {why}."))
        return kept

    def _translate_top_level(self, raw: dict[Any, Any]) -> dict[Any, Any]:
        """Axolotl spellings that map onto honer's keys with a rule, not a rename."""
        raw = dict(raw)
        if "rope_scaling" in raw:
            overrides = dict(raw.get("model_config") or raw.get("model_config_overrides") or {})
            if "rope_scaling" in overrides:
                self.problems.append(("rope_scaling", "also set under `model_config`: keep one."))
            else:
                overrides["rope_scaling"] = raw["rope_scaling"]
                raw.pop("model_config", None)
                raw["model_config_overrides"] = overrides
                self.notes.append(
                    (
                        "rope_scaling",
                        "applied as `model_config: {rope_scaling: …}` (Axolotl's "
                        "current spelling).",
                    )
                )
            del raw["rope_scaling"]
        if "batch_size" in raw:
            self._batch_size(raw)
        if isinstance(raw.get("tokens"), Mapping):
            self._tokens_mapping(raw)
        for key in ("bfloat16", "float16"):
            if key in raw:
                self._half_weights(raw, key)
        if "eta_min" in raw:
            self._eta_min(raw)
        if raw.get("gradient_checkpointing_kwargs") and not raw.get("gradient_checkpointing"):
            raw.pop("gradient_checkpointing_kwargs")
            self.notes.append(
                (
                    "gradient_checkpointing_kwargs",
                    "ignored: `gradient_checkpointing` is off (as in Axolotl).",
                )
            )
        ds = raw.get("deepspeed")
        if isinstance(ds, str) and not Path(ds).is_file():
            preset = axolotl.DEEPSPEED_FILES.get(Path(ds).name)
            if preset is not None:
                raw["deepspeed"] = preset
                self.notes.append(
                    (
                        "deepspeed",
                        f"`{ds}` is Axolotl's ZeRO file; honer's `{preset}` preset "
                        "runs the same stage.",
                    )
                )
        fsdp_config = raw.get("fsdp_config")
        gc = raw.get("gradient_checkpointing")
        fc = fsdp_config if isinstance(fsdp_config, Mapping) else {}
        fsdp_ac = fc.get("activation_checkpointing", fc.get("fsdp_activation_checkpointing"))
        if gc is True and fsdp_ac is True:
            raw.pop("gradient_checkpointing")
            kwargs = raw.get("gradient_checkpointing_kwargs")
            if isinstance(kwargs, Mapping) and not kwargs.get("use_reentrant"):
                raw.pop("gradient_checkpointing_kwargs")  # FSDP's checkpointing is non-reentrant
            self.notes.append(
                (
                    "gradient_checkpointing",
                    "set together with `fsdp_config.activation_checkpointing`"
                    ", which means the same: applied once, by FSDP.",
                )
            )
        return raw

    def _tokens_mapping(self, raw: dict[Any, Any]) -> None:
        """Axolotl's oldest spelling put `bos_token: …` etc. under `tokens:` (now a list of new
        tokens); such a mapping means `special_tokens:`."""
        tokens = raw.pop("tokens")
        special = dict(raw.get("special_tokens") or {})
        clash = [k for k, v in tokens.items() if k in special and special[k] != v]
        if clash:
            self.problems.append(
                (
                    "tokens",
                    f"sets {clash} differently from `special_tokens`: keep `special_tokens`.",
                )
            )
            return
        raw["special_tokens"] = {**special, **tokens}
        self.notes.append(
            (
                "tokens",
                "a mapping of special tokens (Axolotl's older spelling): applied as "
                "`special_tokens:`.",
            )
        )

    def _half_weights(self, raw: dict[Any, Any], key: str) -> None:
        """Axolotl's `bfloat16` / `float16`: load the weights in that dtype without autocast.
        honer's `bf16` / `fp16` load them in that dtype too (full fine-tuning under fp16 keeps
        float32 master weights, so the loss scaler can work)."""
        value = raw.pop(key)
        ours, other = ("bf16", "fp16") if key == "bfloat16" else ("fp16", "bf16")
        if not value:
            self.notes.append((key, "off: nothing to do."))
            return
        if raw.get(other) is True:
            self.problems.append((key, f"`{key}: true` contradicts `{other}: true`: keep one."))
            return
        if raw.get(ours) in (True, "auto") and key == "bfloat16":
            self.notes.append((key, "honer's `bf16` already loads the weights in bfloat16."))
            return
        raw[ours] = True
        self.notes.append(
            (
                key,
                f"applied as `{ours}: true` (weights in {key}"
                + (
                    ")."
                    if key == "bfloat16"
                    else "; float32 master weights when training in full)."
                ),
            )
        )

    def _eta_min(self, raw: dict[Any, Any]) -> None:
        """`eta_min` is torch's CosineAnnealingLR name for the floor of the cosine; Axolotl
        has no such key (it ignores it). honer applies what the author meant."""
        given, peak = raw.pop("eta_min"), raw.get("learning_rate", 2e-4)
        if raw.get("lr_scheduler", "cosine") != "cosine" or "cosine_min_lr_ratio" in raw:
            self.problems.append(
                (
                    "eta_min",
                    "only applies to `lr_scheduler: cosine` without "
                    "`cosine_min_lr_ratio`: use `cosine_min_lr_ratio` (a fraction of the peak).",
                )
            )
            return
        try:  # YAML 1.1 reads `7e-7` (no dot) as text; the schema's floats accept it too
            eta, lr = float(given), float(peak)
        except (TypeError, ValueError):
            eta = lr = -1.0
        if not 0 <= eta < lr:
            self.problems.append(
                ("eta_min", f"`{given}` must be a number from 0 below `learning_rate` ({peak}).")
            )
            return
        raw["cosine_min_lr_ratio"] = eta / lr
        self.notes.append(
            (
                "eta_min",
                f"torch's name for the cosine's floor (Axolotl ignores it): applied as "
                f"`cosine_min_lr_ratio: {eta / lr:.6g}`.",
            )
        )

    def _batch_size(self, raw: dict[Any, Any]) -> None:
        """Axolotl's older `batch_size`: samples per optimizer step per process, i.e.
        gradient_accumulation_steps = batch_size / micro_batch_size."""
        batch, micro = raw.pop("batch_size"), raw.get("micro_batch_size", 1)
        if not (isinstance(batch, int) and isinstance(micro, int)) or batch < 1 or micro < 1:
            self.problems.append(("batch_size", f"`{batch}` must be a whole number >= 1."))
            return
        if batch % micro:
            self.problems.append(
                ("batch_size", f"{batch} is not a multiple of micro_batch_size ({micro}).")
            )
            return
        ga = raw.get("gradient_accumulation_steps")
        if ga is not None and ga * micro != batch:
            self.problems.append(
                (
                    "batch_size",
                    f"{batch} disagrees with micro_batch_size × gradient_accumulation_steps "
                    f"({micro} × {ga}): keep `gradient_accumulation_steps` only.",
                )
            )
            return
        raw["gradient_accumulation_steps"] = batch // micro
        self.notes.append(
            (
                "batch_size",
                f"Axolotl's older spelling: gradient_accumulation_steps = {batch // micro}.",
            )
        )

    def finish_fsdp(self, cleaned: dict[str, Any]) -> None:
        """Apply a translated FSDP1 `sharding_strategy` (unless `reshard_after_forward` is set)."""
        reshard = self._fsdp_reshard
        fc = cleaned.get("fsdp_config")
        if reshard is not None and isinstance(fc, dict):
            fc.setdefault("reshard_after_forward", reshard)


# Allowed values too many to list in full in a message: say how many and show the closest.
_LONG_ENUMS = {len(OPTIMIZERS), len(CHAT_TEMPLATE_NAMES)}


def _literal_message(error: Any) -> str:
    """`adamw_9bit` is not one of …: the value given, the accepted ones and the closest one."""
    given = error.get("input")
    expected = [str(v) for v in (error.get("ctx") or {}).get("expected_values", ())] or [
        part.strip(" '") for part in error["ctx"]["expected"].replace(" or ", ", ").split(",")
    ]
    close = difflib.get_close_matches(str(given), expected, n=1, cutoff=0.5)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    listed = ", ".join(expected)
    if len(expected) in _LONG_ENUMS and len(expected) > 12:
        listed = f"{len(expected)} names, see docs/axolotl.md and the README's config reference"
    return f"`{given}` is not an accepted value ({listed}).{hint}"


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # Union members add their type name to the location; keep only real keys.
        loc = tuple(
            p
            for p in loc
            if isinstance(p, int)
            or p.isidentifier()
            and p not in ("str", "int", "float", "bool", "list", "dict", "literal")
        )
        msg = e["msg"].removeprefix("Value error, ")  # a validator's own message, as written
        if e["type"] == "finite_number":
            msg = "must be a finite number (not .inf or .nan)."
        if e["type"] == "literal_error":
            msg = _literal_message(e)
        elif e["type"] == "int_from_float" and loc == ("warmup_steps",):
            msg = f"{e['input']} is a fraction: use `warmup_ratio: {e['input']}`, or a whole step count."
        elif e["type"] == "list_type" and loc == ("tokens",) and isinstance(e["input"], Mapping):
            msg = "takes a list of new tokens; bos/eos/pad/unk tokens go under `special_tokens:`."
        if e["type"] == "missing":
            msg = "required key is missing."
        elif e["type"] == "extra_forbidden":
            msg = "unknown key."
        problems.append((_fmt_path(loc), msg))
    # A union reports once per member: merge them into one line per key path.
    merged: dict[str, list[str]] = {}
    for path, msg in problems:
        msgs = merged.setdefault(path, [])
        if msg not in msgs:
            msgs.append(msg)
    return [(path, "; or ".join(msgs)) for path, msgs in merged.items()]


def config_from_dict(raw: Any, source: str | None = None) -> Config:
    """Validate an already-parsed YAML document; raises `ConfigError` with every problem."""
    if not isinstance(raw, Mapping):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            [("", f"the config must be a mapping of keys to values, got {kind}.")], source
        )
    cleaner = _Cleaner()
    cleaned = cleaner.mapping(raw, Config, "")
    cleaner.finish_fsdp(cleaned)
    problems = cleaner.problems
    try:
        cfg = Config.model_validate(cleaned)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err))
        raise ConfigError(problems, source) from None
    problems.extend(cross_field_problems(cfg))
    notes = cleaner.notes + cross_field_notes(cfg)
    if cfg.strict and notes:
        problems.extend((path, f"{msg} (`strict: true` makes notes errors)") for path, msg in notes)
    if problems:
        raise ConfigError(problems, source)
    return cfg.with_notes(notes)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key written twice in one mapping is an error (PyYAML keeps
    the last value silently: half of a config would be ignored without a word)."""

    duplicates: list[tuple[str, int, int]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.constructor.ConstructorError):
                continue
            line = key_node.start_mark.line + 1
            if key in seen:
                self.duplicates.append((str(key), seen[key], line))
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(text: str) -> tuple[Any, list[tuple[str, int, int]]]:
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError([("", "file not found; pass the path of a YAML config.")], str(p))
    try:
        raw, duplicates = _read_yaml(p.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([("", f"invalid YAML at {where}{problem}")], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError([("", "not UTF-8 text.")], str(p)) from None
    if duplicates:
        raise ConfigError(
            [
                (key, f"written twice (lines {first} and {second}): keep one.")
                for key, first, second in duplicates
            ],
            str(p),
        )
    return config_from_dict(raw, str(p))
