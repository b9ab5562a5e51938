"""Tokenize every dataset, split validation, and cache the result under a content fingerprint.

The fingerprint hashes everything that changes the tokens: the tokenizer (its whole serialized
form, special tokens and chat template), each format's code version, every config field the
formats read, and the data files' bytes. A second run with nothing changed loads the cache; any
change rebuilds. (Axolotl's cache key is a hand-kept list of fields and goes stale.)

Cache folders are written to a temporary sibling and renamed into place, so an interrupted run
never leaves a half-written cache that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.config.schema import ONLINE_RL, Config, DatasetConfig
from honer.data import sources
from honer.data.formats import FORMATS, FormatContext
from honer.data.formats.chat_template import default_system_prompt, eos_mismatch
from honer.data.formats.context import CHAT_TYPES, entry_template, format_context, renders_chat
from honer.data.tokenize import IGNORE_INDEX, FormatError, TokenizerView, fit_to_length
from honer.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

PIPELINE_VERSION = 2  # 2: one row reader (BOM, .tsv, .ndjson), data_seed 0 is 0
# Global keys that change what the formats or the split produce.
_FINGERPRINT_KEYS = (
    "sequence_len",
    "excess_length_strategy",
    "train_on_inputs",
    "chat_template",
    "chat_template_jinja",
    "chat_template_kwargs",
    "eot_tokens",
    "default_system_message",
    "val_set_size",
    "seed",
    "data_seed",
    "shuffle_merged_datasets",
    "shuffle_before_merging_datasets",
    "skip_bad_rows",
    "dataset_exact_deduplication",
    "min_sample_len",
)


@dataclass
class PreparedData:
    """Tokenized train (and validation) sets with `input_ids` and `labels` columns."""

    train: Dataset
    eval: Dataset | None
    stats: dict[str, Any]
    path: Path
    from_cache: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def tokenizer_hash(tokenizer: Any) -> str:
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    h.update(tokenizer.backend_tokenizer.to_str().encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(str(tokenizer.chat_template or "").encode())
    return h.hexdigest()


def fingerprint(cfg: Config, tokenizer: Any) -> str:
    """A short hash of everything that decides the prepared tokens.

    The resolved text of each chat entry's template is hashed too, not only its name: a shipped
    template file, a `chat_template_jinja` file or honer's choice for a name can change while the
    config stays the same.
    """
    entries = [*cfg.datasets, *(cfg.test_datasets or [])]
    templates = [
        hashlib.sha256(entry_template(cfg, d, tokenizer).encode()).hexdigest()
        if renders_chat(d.type)
        else None
        for d in entries
    ]
    doc = {
        "pipeline": PIPELINE_VERSION,
        "formats": {name: mod.VERSION for name, mod in FORMATS.items()},
        "preference": _preference_version() if cfg.rl else None,
        "prompts": _prompt_fingerprint(cfg) if cfg.rl in ONLINE_RL else None,
        "reward_model": {"version": 1, "preference": _preference_version()}
        if cfg.reward_model
        else None,
        "tokenizer": tokenizer_hash(tokenizer),
        "config": {k: getattr(cfg, k) for k in _FINGERPRINT_KEYS},
        "datasets": [d.model_dump(mode="json") for d in cfg.datasets],
        "test_datasets": [d.model_dump(mode="json") for d in cfg.test_datasets or []],
        "content": [sources.content_id(d) for d in entries],
        "templates": templates,
    }
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _mask_problem(sample_labels: list[int], ds: DatasetConfig, ctx: FormatContext) -> str | None:
    """Silent mask failures: nothing trained, or everything trained where prompts should be masked."""
    trained = sum(1 for x in sample_labels if x != IGNORE_INDEX)
    if trained == 0:
        return "no trained tokens (the label mask masks the whole sample)"
    prompts_expected = ds.type == "alpaca" or (ds.type in CHAT_TYPES and ds.roles_to_train is None)
    if prompts_expected and not ctx.train_on_inputs and trained == len(sample_labels):
        return "every token is trained although prompts should be masked (the mask failed)"
    return None


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bar for the steps that take milliseconds (filter, save): the
    tokenizing bar is the one worth watching."""
    from datasets.utils.logging import (
        disable_progress_bar,
        enable_progress_bar,
        is_progress_bar_enabled,
    )

    was_enabled = is_progress_bar_enabled()
    disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            enable_progress_bar()


PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def _prompt_fingerprint(cfg: Config) -> dict[str, Any]:
    """What else decides GRPO's prepared prompts: the format's version, the room left for the
    completion, and the source of each transform's module (its code changes the rows)."""
    from honer.data import prompts

    sources_ = {}
    for ds in [*cfg.datasets, *(cfg.test_datasets or [])]:
        if ds.transform:
            origin = prompts.module_file(ds.transform)
            sources_[ds.transform] = (
                hashlib.sha256(origin.read_bytes()).hexdigest() if origin else None
            )
    return {
        "version": prompts.VERSION,
        "max_completion_length": cfg.trl.max_completion_length if cfg.trl else None,
        "chat_template_kwargs": cfg.trl.chat_template_kwargs if cfg.trl else None,
        "transforms": sources_,
    }


def _preference_version() -> int:
    from honer.data import preference

    return preference.VERSION


def _map_entry(
    raw: Dataset,
    cfg: Config,
    where: str,
    empty: dict[str, Any],
    tokenize: Callable[[dict[str, Any]], list[tuple[dict[str, Any] | None, str]]],
) -> tuple[Dataset, Counter]:
    """Run `tokenize` over an entry's rows (batched `datasets.map`) and keep what it kept.

    `tokenize(row)` gives (sample, status) pairs: a sample with the columns of `empty` and the
    status `ok`/`truncated`, or None and why it was dropped. A `FormatError` stops preparing with
    the entry and row, or, with `skip_bad_rows`, drops and counts the row. Returns the kept
    samples and the count of each status.
    """

    def tokenize_batch(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {name: [] for name in (*empty, "status")}

        def emit(sample: dict[str, Any] | None, status: str) -> None:
            for name, blank in empty.items():
                out[name].append(sample[name] if sample else blank)
            out["status"].append(status)

        rows = [
            dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)
        ]
        for row, idx in zip(rows, indices, strict=True):
            try:
                results = tokenize(row)
            except FormatError as err:
                if not cfg.skip_bad_rows:
                    raise DataError(
                        f"{where} row {idx}: {err}. Fix the row, or set `skip_bad_rows: true` to "
                        "skip such rows and count them."
                    ) from None
                emit(None, f"dropped: {err}")
                continue
            for sample, status in results:
                emit(sample, status)
        return out

    mapped = raw.map(
        tokenize_batch,
        batched=True,
        with_indices=True,
        remove_columns=raw.column_names,
        num_proc=cfg.dataset_processes if (cfg.dataset_processes or 1) > 1 else None,
        desc=f"Tokenizing {where}",
    )
    counts = Counter(mapped["status"])
    with _quiet_datasets():
        kept = mapped.filter(lambda s: s in ("ok", "truncated"), input_columns="status")
    return kept.remove_columns("status"), counts


def _tokenize_preference_entry(
    raw: Dataset, cfg: Config, index: int, group: str, ds: DatasetConfig, tokenizer: Any
) -> tuple[Dataset, Counter]:
    """Preference rows → `prompt_ids`, `chosen_ids`, `rejected_ids` (or, for KTO,
    `prompt_ids`, `completion_ids`, `label`), by honer.data.preference.

    `sequence_len` bounds prompt + the longer answer: with `excess_length_strategy: drop` (the
    default) longer pairs are dropped and counted; with `truncate` they are kept and the trainer
    cuts them to `sequence_len` from the end, as TRL's `max_length` does. `min_sample_len`
    bounds the same length from below.
    """
    from honer.data import preference

    ctx = format_context(cfg, ds, tokenizer)
    view = TokenizerView(tokenizer)
    limit = cfg.sequence_len
    shortest = cfg.min_sample_len or 0
    truncate = cfg.excess_length_strategy == "truncate"
    kto = cfg.rl == "kto"
    columns = ("prompt_ids", "completion_ids", "label") if kto else PAIR_COLUMNS
    empty: dict[str, Any] = {name: False if name == "label" else [] for name in columns}

    def tokenize(row: dict[str, Any]) -> list[tuple[dict[str, Any] | None, str]]:
        if kto:
            pair = preference.tokenize_kto_row(row, ds, tokenizer)
        else:
            pair = preference.tokenize_row(row, ds, ctx, view, tokenizer)
        answers = [pair[name] for name in columns[1:] if name.endswith("_ids")]
        longest = len(pair["prompt_ids"]) + max(len(a) for a in answers)
        if longest > limit and not truncate:
            return [(None, "dropped: longer than sequence_len")]
        if len(pair["prompt_ids"]) >= limit:
            return [(None, "dropped: prompt fills sequence_len")]
        if longest < shortest:
            return [(None, "dropped: shorter than min_sample_len")]
        return [(pair, "truncated" if longest > limit else "ok")]

    return _map_entry(raw, cfg, f"{group}[{index}] ({ds.path})", empty, tokenize)


def _tokenize_prompt_entry(
    raw: Dataset, cfg: Config, index: int, group: str, ds: DatasetConfig, tokenizer: Any
) -> tuple[Dataset, Counter]:
    """GRPO prompt rows → `prompt`, `prompt_ids`, `reward_columns` (honer.data.prompts). A
    prompt must leave `trl.max_completion_length` tokens of `sequence_len` for its completion:
    longer ones are dropped and counted (TRL would otherwise cut the completion short)."""
    from honer.data import prompts

    where = f"{group}[{index}]"
    if ds.transform is not None:
        raw = prompts.apply_transform(raw, ds, cfg, tokenizer, where)
    ctx = format_context(cfg, ds, tokenizer)
    view = TokenizerView(tokenizer)
    room = cfg.sequence_len - (cfg.trl.max_completion_length if cfg.trl else 0)
    template = ctx.chat_template
    # The variables TRL will render with: the config's, then `trl.chat_template_kwargs`.
    kwargs = {
        **(ctx.chat_template_kwargs or {}),
        **((cfg.trl and cfg.trl.chat_template_kwargs) or {}),
    } or None

    def tokenize(row: dict[str, Any]) -> list[tuple[dict[str, Any] | None, str]]:
        prompt, extras = prompts.read_prompt(row, ds)
        ids = prompts.prompt_ids(prompt, tokenizer, view, template, kwargs)
        if len(ids) > room:
            return [(None, "dropped: prompt leaves no room for max_completion_length")]
        return [(prompts.encode_row(prompt, extras, ids), "ok")]

    empty: dict[str, Any] = {"prompt": "", "prompt_ids": [], "reward_columns": "{}"}
    return _map_entry(raw, cfg, f"{where} ({ds.path})", empty, tokenize)


def _tokenize_reward_entry(
    raw: Dataset, cfg: Config, index: int, group: str, ds: DatasetConfig, tokenizer: Any
) -> tuple[Dataset, Counter]:
    """Reward-model pairs → `chosen_ids`, `rejected_ids`: each the whole conversation the
    reward model scores. A pair type gives prompt + answer exactly as a DPO pair's ids; Axolotl's
    `bradley_terry.chat_template` row (`system`, `input`, `chosen`, `rejected` text) becomes
    two conversations tokenized by the SFT `chat_template` format, as Axolotl does. Pairs whose
    longer side exceeds `sequence_len` are dropped, or cut with `excess_length_strategy:
    truncate` (TRL's `max_length` would drop them silently)."""
    from honer.data import preference

    chat = ds.model_copy(update={"type": "chat_template"})
    ctx = format_context(cfg, chat, tokenizer)
    view = TokenizerView(tokenizer)
    limit = cfg.sequence_len
    truncate = cfg.excess_length_strategy == "truncate"
    bradley_terry = ds.type == "bradley_terry.chat_template"

    def conversation(row: dict[str, Any], answer_key: str) -> list[int]:
        messages = []
        system = row.get("system")
        if system:
            messages.append({"role": "system", "content": str(system)})
        for key, role in (("input", "user"), (answer_key, "assistant")):
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                raise FormatError(f"column `{key}` must be non-empty text")
            messages.append({"role": role, "content": value})
        samples = FORMATS["chat_template"].tokenize_row({"messages": messages}, view, ctx)
        return list(samples[0].input_ids)

    def tokenize(row: dict[str, Any]) -> list[tuple[dict[str, Any] | None, str]]:
        if bradley_terry:
            chosen, rejected = conversation(row, "chosen"), conversation(row, "rejected")
            if chosen == rejected:
                raise FormatError("the chosen and rejected answers are the same")
        else:
            pair = preference.tokenize_row(row, ds, ctx, view, tokenizer)
            chosen = pair["prompt_ids"] + pair["chosen_ids"]
            rejected = pair["prompt_ids"] + pair["rejected_ids"]
        status = "ok"
        if max(len(chosen), len(rejected)) > limit:
            if not truncate:
                return [(None, "dropped: longer than sequence_len")]
            chosen, rejected, status = chosen[:limit], rejected[:limit], "truncated"
        return [({"chosen_ids": chosen, "rejected_ids": rejected}, status)]

    empty: dict[str, Any] = {"chosen_ids": [], "rejected_ids": []}
    return _map_entry(raw, cfg, f"{group}[{index}] ({ds.path})", empty, tokenize)


def _tokenize_entry(
    raw: Dataset, cfg: Config, index: int, group: str, ds: DatasetConfig, tokenizer: Any
) -> tuple[Dataset, Counter]:
    """Run one dataset entry's format over its rows (batched `datasets.map`)."""
    if cfg.reward_model:
        return _tokenize_reward_entry(raw, cfg, index, group, ds, tokenizer)
    if cfg.rl in ONLINE_RL:
        return _tokenize_prompt_entry(raw, cfg, index, group, ds, tokenizer)
    if cfg.rl is not None:
        return _tokenize_preference_entry(raw, cfg, index, group, ds, tokenizer)
    module = FORMATS[ds.type]
    ctx = format_context(cfg, ds, tokenizer)
    view = TokenizerView(tokenizer)
    limit = cfg.sequence_len
    shortest = cfg.min_sample_len or 0
    truncate = cfg.excess_length_strategy == "truncate"

    def tokenize(row: dict[str, Any]) -> list[tuple[dict[str, Any] | None, str]]:
        samples = module.tokenize_row(row, view, ctx)
        if not samples:
            raise FormatError("the row produced no sample (empty text?)")
        for s in samples:
            problem = _mask_problem(s.labels, ds, ctx)
            if problem:
                raise FormatError(problem)
        results: list[tuple[dict[str, Any] | None, str]] = []
        for s in samples:
            if len(s.input_ids) < shortest:
                results.append((None, "dropped: shorter than min_sample_len"))
                continue
            ids, labels, status = fit_to_length(s.input_ids, s.labels, limit, truncate)
            results.append(({"input_ids": ids, "labels": labels}, status))
        return results

    empty: dict[str, Any] = {"input_ids": [], "labels": []}
    return _map_entry(raw, cfg, f"{group}[{index}] ({ds.path})", empty, tokenize)


def _percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    ordered = sorted(lengths)

    def pct(p: float) -> int:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return {"min": ordered[0], "p50": pct(50), "p90": pct(90), "p99": pct(99), "max": ordered[-1]}


def split_stats(data: Dataset) -> dict[str, Any]:
    if "prompt_ids" not in data.column_names and "chosen_ids" in data.column_names:
        chosen = [len(x) for x in data["chosen_ids"]]  # reward-model pairs: whole sequences
        rejected = [len(x) for x in data["rejected_ids"]]
        return {
            "samples": len(data),
            "tokens": sum(chosen) + sum(rejected),
            "length": _percentiles([max(c, r) for c, r in zip(chosen, rejected, strict=True)]),
        }
    if "reward_columns" in data.column_names:  # GRPO prompts: completions come in training
        lengths = [len(x) for x in data["prompt_ids"]]
        return {"samples": len(data), "tokens": sum(lengths), "length": _percentiles(lengths)}
    if "prompt_ids" in data.column_names:
        return _pair_stats(data)
    lengths = [len(x) for x in data["input_ids"]]
    trained = sum(sum(1 for t in labels if t != IGNORE_INDEX) for labels in data["labels"])
    return {
        "samples": len(data),
        "tokens": sum(lengths),
        "trained_tokens": trained,
        "length": _percentiles(lengths),
    }


def _pair_stats(data: Dataset) -> dict[str, Any]:
    """Counts of a preference set: each pair is two sequences (prompt + chosen, prompt +
    rejected); trained tokens are the answers' (what the log-probabilities are summed over). A
    KTO set has one answer per row, and counts its desirable rows."""
    prompts = [len(x) for x in data["prompt_ids"]]
    if "completion_ids" in data.column_names:
        answers = [len(x) for x in data["completion_ids"]]
        return {
            "samples": len(data),
            "desirable": sum(data["label"]),
            "tokens": sum(prompts) + sum(answers),
            "trained_tokens": sum(answers),
            "length": _percentiles([p + a for p, a in zip(prompts, answers, strict=True)]),
        }
    chosen = [len(x) for x in data["chosen_ids"]]
    rejected = [len(x) for x in data["rejected_ids"]]
    lengths = [p + max(c, r) for p, c, r in zip(prompts, chosen, rejected, strict=True)]
    return {
        "samples": len(data),
        "tokens": sum(2 * p + c + r for p, c, r in zip(prompts, chosen, rejected, strict=True)),
        "trained_tokens": sum(chosen) + sum(rejected),
        "length": _percentiles(lengths),
    }


def _tokenize_group(
    cfg: Config, entries: list[DatasetConfig], group: str, tokenizer: Any, report: dict[str, Any]
) -> list[Dataset]:
    parts = []
    for i, ds in enumerate(entries):
        raw = sources.load_rows(ds, cfg.skip_bad_rows)
        data, counts = _tokenize_entry(raw.dataset, cfg, i, group, ds, tokenizer)
        report["datasets"].append(
            {
                "entry": f"{group}[{i}]",
                "path": ds.path,
                "type": ds.type,
                "rows_in": len(raw.dataset) + len(raw.skipped),
                "malformed_skipped": len(raw.skipped),
                "samples_out": len(data),
                "truncated": counts.get("truncated", 0),
                "dropped": {
                    k[len("dropped: ") :]: v for k, v in counts.items() if k.startswith("dropped")
                },
            }
        )
        report["skipped_rows"].extend(raw.skipped[:20])
        parts.append(data)
    return parts


def tokenize_entry(cfg: Config, ds: DatasetConfig, tokenizer: Any, group: str) -> Dataset:
    """One dataset entry tokenized exactly as training tokenizes (format, masks, the
    `sequence_len` rule, `skip_bad_rows`), without caching: for `honer evaluate --data FILE`."""
    report: dict[str, Any] = {"datasets": [], "skipped_rows": []}
    return _tokenize_group(cfg, [ds], group, tokenizer, report)[0]


def _deduplicate(data: Dataset, seen: set[bytes]) -> tuple[Dataset, int]:
    """`data` without samples whose ids and labels are already in `seen` (which it extends).

    Samples are compared after tokenization, as Axolotl's `dataset_exact_deduplication` does:
    two rows that render to the same tokens are the same training example.
    """
    keep = []
    columns = [data[name] for name in data.column_names]  # ids + labels, or a pair's three
    for i, sample in enumerate(zip(*columns, strict=True)):
        key = hashlib.blake2b(repr(sample).encode(), digest_size=16).digest()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    dropped = len(data) - len(keep)
    return (data.select(keep) if dropped else data), dropped


def _split(cfg: Config, train: Dataset) -> tuple[Dataset, Dataset | None]:
    v = cfg.val_set_size
    if v <= 0:
        return train, None
    size: float | int = int(v) if v >= 1 else v
    n_eval = size if isinstance(size, int) else math.ceil(size * len(train))  # as datasets does
    if n_eval < 1 or n_eval >= len(train):
        raise DataError(
            f"val_set_size: {v} gives {n_eval} validation rows out of {len(train)}; "
            "choose a size that leaves both training and validation rows."
        )
    parts = train.train_test_split(test_size=size, seed=cfg.resolved_data_seed, shuffle=True)
    return parts["train"], parts["test"]


def prepare(cfg: Config, tokenizer: Any, dest: Path | None = None) -> PreparedData:
    """Tokenize and split all datasets now, and write the cache folder."""
    from datasets import concatenate_datasets

    warnings: list[str] = []
    for ds in [*cfg.datasets, *(cfg.test_datasets or [])]:
        if ds.type in CHAT_TYPES:
            ctx = format_context(cfg, ds, tokenizer)
            found = [
                *ctx.warnings,
                eos_mismatch(TokenizerView(tokenizer), ctx.chat_template, ctx.chat_template_kwargs),
            ]
            warnings.extend(w for w in found if w and w not in warnings)
    system_notes, system_warnings = _default_system_notes(cfg, tokenizer)
    warnings.extend(system_warnings)
    if warnings and cfg.strict:
        raise DataError("strict: " + " ".join(warnings))
    report: dict[str, Any] = {"datasets": [], "skipped_rows": []}
    parts = _tokenize_group(cfg, cfg.datasets, "datasets", tokenizer, report)
    if cfg.shuffle_before_merging_datasets and len(parts) > 1:
        # Axolotl's merge: each dataset shuffled on its own (same seed), then concatenated, then
        # the whole shuffled again when `shuffle_merged_datasets`. Without the latter, datasets
        # keep their order in `datasets:` while rows within each are shuffled.
        parts = [part.shuffle(seed=cfg.resolved_data_seed) for part in parts]
    train = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if cfg.shuffle_merged_datasets and len(parts) > 1:
        train = train.shuffle(seed=cfg.resolved_data_seed)
    elif cfg.rl == "kto" and cfg.shuffle_merged_datasets:
        # KTO reads its rows in order (its KL term pairs micro-batch neighbours), so a file of
        # desirable rows followed by undesirable ones would give one-sided batches: shuffle once.
        train = train.shuffle(seed=cfg.resolved_data_seed)
    if len(train) == 0:
        raise DataError(
            "no training samples left after filtering: "
            + "; ".join(f"{d['entry']} dropped {d['dropped']}" for d in report["datasets"])
        )
    seen: set[bytes] = set()
    if cfg.dataset_exact_deduplication:
        # Before the split, as Axolotl does: validation rows then never repeat training rows.
        train, dropped = _deduplicate(train, seen)
        report["duplicates_dropped"] = {"train": dropped}
    if cfg.test_datasets:
        eval_parts = _tokenize_group(cfg, cfg.test_datasets, "test_datasets", tokenizer, report)
        eval_set = eval_parts[0] if len(eval_parts) == 1 else concatenate_datasets(eval_parts)
        if cfg.dataset_exact_deduplication:
            eval_set, dropped = _deduplicate(eval_set, seen)
            report["duplicates_dropped"]["eval"] = dropped
    else:
        train, eval_set = _split(cfg, train)
    stats = {
        **report,
        "train": split_stats(train),
        "eval": split_stats(eval_set) if eval_set is not None else None,
    }
    notes = [
        text
        for note, default_ids in system_notes
        if (text := _with_share(note, default_ids, train)) is not None
    ]
    fp = fingerprint(cfg, tokenizer)
    dest = dest or Path(cfg.dataset_prepared_path) / fp
    cache_stats = {**stats, "fingerprint": fp, "warnings": warnings, "notes": notes}
    _write_cache(dest, train, eval_set, cache_stats)
    return PreparedData(train, eval_set, stats, dest, False, warnings, notes)


def _default_system_notes(cfg: Config, tokenizer: Any) -> tuple[list[tuple[str, int]], list[str]]:
    """A note for each chat template that injects a default system prompt (with its token
    count), and a warning where `drop_system_message: true` is undone by that injection."""
    view = TokenizerView(tokenizer)
    notes: list[tuple[str, int]] = []
    warnings: list[str] = []
    if cfg.default_system_message is not None:  # every conversation has a system message
        return notes, warnings
    entries = [("datasets", cfg.datasets), ("test_datasets", cfg.test_datasets or [])]
    for group, items in entries:
        for i, ds in enumerate(items):
            if ds.type not in CHAT_TYPES:
                continue
            ctx = format_context(cfg, ds, tokenizer)
            default = default_system_prompt(view, ctx.chat_template, ctx.chat_template_kwargs)
            if default is None:
                continue
            shown = default if len(default) <= 80 else default[:77] + "..."
            if ds.drop_system_message:
                warning = (
                    f"{group}[{i}].drop_system_message: true, but the chat template writes its "
                    f'own default system prompt ("{shown}") into every conversation without one, '
                    "so each sample still has one (masked): to train without a system prompt, use "
                    "a template that adds none (e.g. `chat_template: chatml`)."
                )
                if warning not in warnings:
                    warnings.append(warning)
                continue
            note = (
                f'the chat template adds a default system prompt to rows without one ("{shown}"): '
                "it is masked, but the model learns to answer after it; give rows a system "
                "message, or render none with `chat_template: chatml`"
            )
            if all(n != note for n, _ in notes):
                notes.append((note, view.encode(default, add_special_tokens=False)))
    return notes, warnings


def _contains(ids: list[int], part: list[int]) -> bool:
    first, n = part[0], len(part)
    return any(ids[i : i + n] == part for i, t in enumerate(ids) if t == first)


def _with_share(note: str, default_ids: list[int], train: Dataset) -> str | None:
    """The note with what the default prompt costs (samples that carry it, its share of the
    training tokens), or None when no training sample carries it (rows have their own)."""
    if not default_ids or "input_ids" not in train.column_names:  # SFT samples only
        return None
    lengths_and_hits = [(len(ids), _contains(ids, default_ids)) for ids in train["input_ids"]]
    carrying = sum(hit for _, hit in lengths_and_hits)
    if not carrying:
        return None
    total = sum(n for n, _ in lengths_and_hits)
    share = carrying * len(default_ids) / total
    return (
        f"{note} ({carrying:,} of {len(lengths_and_hits):,} samples carry it, "
        f"{len(default_ids)} tokens each: {share:.0%} of the training tokens)."
    )


def _write_cache(dest: Path, train: Dataset, eval_set: Dataset | None, stats: dict) -> None:
    from honer.atomic import staged_folder

    with staged_folder(dest) as tmp, _quiet_datasets():
        train.save_to_disk(str(tmp / "train"))
        if eval_set is not None:
            eval_set.save_to_disk(str(tmp / "eval"))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2))


def load_cached(path: Path) -> PreparedData | None:
    """The prepared data at `path`, or None when no complete cache is there."""
    from datasets import load_from_disk

    stats_file = path / "stats.json"
    if not stats_file.is_file():
        return None
    stats = json.loads(stats_file.read_text())
    train = load_from_disk(str(path / "train"))
    eval_set = load_from_disk(str(path / "eval")) if (path / "eval").is_dir() else None
    return PreparedData(
        train, eval_set, stats, path, True, stats.get("warnings", []), stats.get("notes", [])
    )


def load_or_prepare(cfg: Config, tokenizer: Any, force: bool = False) -> PreparedData:
    """Load the cache for this config and tokenizer, or prepare it."""
    path = Path(cfg.dataset_prepared_path) / fingerprint(cfg, tokenizer)
    if not force:
        cached = load_cached(path)
        if cached is not None:
            return cached
    return prepare(cfg, tokenizer, path)
