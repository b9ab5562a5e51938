"""`honer data stats`: what a dataset holds, before a run is spent on it.

One streaming pass gives the row count, the fields (how many rows have each, and their types),
characters per row, and exact duplicates (the same normalised hash as `honer data dedup`). With
a config, each row also goes through the config's prompt format and tokenizer exactly as
`preprocess` would: samples, tokens per sample, trained tokens (labels not -100), the rows the
format rejects, and samples longer than `sequence_len` (dropped or truncated as the config says).
Only numbers are kept per row (4 bytes per length), so memory stays small on large files.
"""

from __future__ import annotations

import os
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from honer.curate.dedup import chosen_fields, exact_key
from honer.curate.ingest.fields import row_text
from honer.data.readers.lines import Meter
from honer.data.readers.rowfiles import iter_row_file
from honer.data.tokenize import OK, TRUNCATED, fit_to_length
from honer.errors import DataError, HonerError

if TYPE_CHECKING:
    from honer.config.schema import Config, DatasetConfig

HISTOGRAM_BINS = 10
EXAMPLES = 3


@dataclass
class Lengths:
    """Lengths of rows or samples, summarised as percentiles and a histogram."""

    values: array = field(default_factory=lambda: array("q"))

    def summary(self) -> dict[str, float]:
        if not self.values:
            return {"count": 0}
        ordered = sorted(self.values)
        n = len(ordered)

        def pct(p: int) -> int:
            return ordered[min(n - 1, p * n // 100)]

        return {
            "count": n,
            "min": ordered[0],
            "mean": round(sum(ordered) / n, 1),
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": ordered[-1],
        }

    def histogram(self, bins: int = HISTOGRAM_BINS) -> list[tuple[int, int, int]]:
        """(low, high, count) for `bins` equal-width bins from min to max (high inclusive last)."""
        if not self.values:
            return []
        lo, hi = min(self.values), max(self.values)
        width = max(1, -(-(hi - lo + 1) // bins))  # ceil, at least 1
        counts = Counter((v - lo) // width for v in self.values)
        n_bins = (hi - lo) // width + 1
        return [(lo + i * width, lo + (i + 1) * width - 1, counts.get(i, 0)) for i in range(n_bins)]


@dataclass
class FormatStats:
    """How the rows fare under one dataset entry's format and the config's tokenizer."""

    entry: str
    type: str
    sequence_len: int
    strategy: str
    samples: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    over_length: int = 0
    truncated: int = 0
    dropped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    lengths: Lengths = field(default_factory=Lengths)


@dataclass
class DatasetStats:
    source: str
    rows: int = 0
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)
    fields: dict[str, Counter[str]] = field(default_factory=dict)  # field → type name → rows
    chars: Lengths = field(default_factory=Lengths)
    duplicates: int = 0
    format: FormatStats | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "source": self.source,
            "rows": self.rows,
            "malformed": self.malformed,
            "fields": {
                name: {"rows": sum(types.values()), "types": dict(types)}
                for name, types in self.fields.items()
            },
            "chars": {**self.chars.summary(), "histogram": self.chars.histogram()},
            "exact_duplicates": self.duplicates,
        }
        f = self.format
        if f is not None:
            doc["format"] = {
                "entry": f.entry,
                "type": f.type,
                "samples": f.samples,
                "tokens": f.tokens,
                "trained_tokens": f.trained_tokens,
                "sequence_len": f.sequence_len,
                "over_sequence_len": f.over_length,
                "truncated": f.truncated,
                "dropped": f.dropped,
                "rows_rejected": dict(f.rejected),
                "tokens_per_sample": {**f.lengths.summary(), "histogram": f.lengths.histogram()},
            }
        return doc


def pick_entry(cfg: Config, source: Path, entry: int | None) -> tuple[int, DatasetConfig]:
    """The `datasets:` entry whose format applies: `entry`, the one reading `source`, or the
    only one."""
    if entry is not None:
        if not 0 <= entry < len(cfg.datasets):
            raise DataError(
                f"--entry {entry}: the config has datasets[0..{len(cfg.datasets) - 1}]."
            )
        return entry, cfg.datasets[entry]
    target = source.resolve()
    for i, ds in enumerate(cfg.datasets):
        path = Path(ds.path).expanduser().resolve()
        if path == target or path in target.parents:
            return i, ds
    if len(cfg.datasets) == 1:
        return 0, cfg.datasets[0]
    raise DataError(
        f"{source}: not one of the config's datasets; choose the entry whose format to use with "
        f"--entry N (0..{len(cfg.datasets) - 1})."
    )


class _FormatRunner:
    """Tokenize rows with one entry's format, as `preprocess` does, and count the outcome."""

    def __init__(self, cfg: Config, index: int, ds: DatasetConfig, tokenizer: Any) -> None:
        from honer.data.formats import FORMATS
        from honer.data.formats.context import format_context
        from honer.data.tokenize import IGNORE_INDEX, FormatError, TokenizerView

        self.ctx = format_context(cfg, ds, tokenizer)
        self.module = FORMATS[ds.type]
        self.view = TokenizerView(tokenizer)
        self.ignore = IGNORE_INDEX
        self.format_error = FormatError
        self.stats = FormatStats(
            f"datasets[{index}]", ds.type, cfg.sequence_len, cfg.excess_length_strategy
        )

    def add(self, row: dict[str, Any], where: str) -> None:
        s = self.stats
        try:
            samples = self.module.tokenize_row(row, self.view, self.ctx)
        except self.format_error as err:
            reason = str(err).split(" (", 1)[0]
            s.rejected[reason] += 1
            if len(s.examples) < EXAMPLES:
                s.examples.append(f"{where}: {err}")
            return
        limit = s.sequence_len
        for sample in samples:
            n = len(sample.input_ids)
            s.samples += 1
            s.tokens += n
            s.lengths.values.append(n)
            _, labels, status = fit_to_length(
                sample.input_ids, sample.labels, limit, s.strategy == "truncate"
            )
            if n > limit:
                s.over_length += 1
            if status == TRUNCATED:
                s.truncated += 1
            elif status != OK:
                s.dropped += 1
                continue
            s.trained_tokens += sum(1 for x in labels if x != self.ignore)


def dataset_stats(
    source: Path,
    config: Path | None = None,
    entry: int | None = None,
    meter: Meter | None = None,
) -> DatasetStats:
    """Stream `source` once and gather its statistics (format statistics with a config)."""
    if entry is not None and config is None:
        raise DataError("--entry chooses a dataset entry of --config; give --config too.")
    stats = DatasetStats(str(source))
    runner = None
    if config is not None:
        from honer.config import load_config
        from honer.model.load import load_tokenizer

        cfg = load_config(config)
        index, ds = pick_entry(cfg, source, entry)
        runner = _FormatRunner(cfg, index, ds, load_tokenizer(cfg))
        stats.format = runner.stats
        if Path(ds.path).expanduser().resolve() not in (
            source.resolve(),
            *source.resolve().parents,
        ):
            stats.notes.append(f"using the format of datasets[{index}] ({ds.type}, path {ds.path})")
    seen: set[bytes] = set()
    for record in iter_row_file(source, meter=meter):
        row = record.row
        if row is None:
            stats.malformed += 1
            if len(stats.malformed_examples) < EXAMPLES:
                stats.malformed_examples.append(f"{record.where}: {record.problem}")
            continue
        stats.rows += 1
        for name, value in row.items():
            stats.fields.setdefault(name, Counter())[type(value).__name__] += 1
        stats.chars.values.append(len(row_text(row)))
        key = exact_key(chosen_fields(row, None))
        if key in seen:
            stats.duplicates += 1
        else:
            seen.add(key)
        if runner is not None:
            runner.add(row, record.where)
    return stats


def write_histogram_png(stats: DatasetStats, path: Path) -> None:
    """Histograms of characters per row (and tokens per sample) as a PNG, written atomically."""
    try:
        import matplotlib
    except ImportError:
        raise HonerError(
            "the histogram image needs matplotlib: pip install matplotlib (or honer[data]), "
            "or pass --no-png"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("characters per row", stats.chars, None)]
    if stats.format is not None:
        f = stats.format
        panels.append((f"tokens per sample ({f.type}, {f.entry})", f.lengths, f.sequence_len))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, lengths, limit) in zip(axes[0], panels, strict=True):
        if lengths.values:
            ax.hist(lengths.values, bins=min(50, max(1, len(set(lengths.values)))), color="#4c72b0")
        if limit is not None:
            ax.axvline(limit, color="#c44e52", linestyle="--", label=f"sequence_len {limit}")
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel("length")
        ax.set_ylabel("rows" if limit is None else "samples")
    fig.suptitle(f"{Path(stats.source).name}: {stats.rows} rows")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
