"""The run report: `curves.png` and a self-contained `report.html` (opens offline).

Everything is read back from files in `output_dir` (metrics.jsonl, the resolved config, the
prepared-data stats, eval_table.jsonl, evals/results.json when present), so `honer report DIR`
can rebuild the report of any finished or interrupted run.
"""

from __future__ import annotations

import base64
import html
import json
import textwrap
from pathlib import Path
from typing import Any

from honer.atomic import save_figure, write_bytes
from honer.evaluate.curves import Diagnosis, diagnose, read_metrics


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(metrics: list[dict[str, Any]], diagnosis: Diagnosis, dest: Path) -> None:
    """Training and validation loss over steps, the LR schedule on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m and "step" in m]
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m and "step" in m]
    lrs = [(m["step"], m.get("lr", m.get("learning_rate"))) for m in metrics if "loss" in m]
    lrs = [(s, v) for s, v in lrs if isinstance(v, int | float)]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), label="training loss", color="#1f77b4", alpha=0.8)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="validation loss", color="#d62728")
    if diagnosis.best_step is not None:
        ax.axvline(diagnosis.best_step, ls="--", color="gray", label="suggested stop")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    # The whole reason, wrapped (report.html shows it in full beside the plot as well).
    title = textwrap.fill(f"{diagnosis.verdict}: {diagnosis.reason}", width=110)
    ax.set_title(title, fontsize=8, loc="left")
    if lrs:
        ax2 = ax.twinx()
        ax2.plot(*zip(*lrs, strict=True), color="#2ca02c", alpha=0.5, label="learning rate")
        ax2.set_ylabel("learning rate", color="#2ca02c")
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, dest)


# Preference / RL metrics worth a curve, by panel: (title, metrics.jsonl keys). The `eval_`
# versions are drawn beside the training ones; GRPO's per-reward means join the reward panel.
RL_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("reward margin (chosen − rejected)", ("rewards/margins", "margin")),
    ("pairs ranked right", ("rewards/accuracies", "accuracy")),
    ("answer log-probs", ("logps/chosen", "logps/rejected")),
    ("reward (GRPO)", ("reward",)),
    ("KL to the reference", ("kl",)),
)


def rl_metrics_png(metrics: list[dict[str, Any]]) -> str:
    """The preference / RL curves of a run (DPO/KTO/ORPO/SimPO margins, accuracy and log-probs;
    GRPO rewards and KL; reward-model accuracy and margin) as an inline PNG (base64), or ''
    when the run logged none (an SFT run)."""
    rewards = sorted(
        {k for m in metrics for k in m if k.startswith("rewards/") and k.endswith("/mean")}
    )
    panels = []
    for title, keys in RL_PANELS:
        keys = keys + tuple(rewards) if keys == ("reward",) else keys
        series = []
        for key in keys:
            for name, prefix, style in ((key, "", "-"), (f"eval {key}", "eval_", "o-")):
                points = [
                    (m["step"], m[prefix + key])
                    for m in metrics
                    if isinstance(m.get(prefix + key), int | float) and "step" in m
                ]
                if points:
                    series.append((name, points, style))
        if series:
            panels.append((title, series))
    if not panels:
        return ""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), dpi=100, squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        for name, points, style in series:
            ax.plot(*zip(*points, strict=True), style, label=name, markersize=3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def histogram_png(hist: dict[str, list[int]]) -> str:
    """The training-length histogram as an inline PNG (base64), or '' without data."""
    if not hist or not hist.get("counts"):
        return ""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges, counts = hist["edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=100)
    ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="#1f77b4")
    ax.set_xlabel("tokens per training sample")
    ax.set_ylabel("samples")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _percentiles_text(lengths: dict[str, int] | None) -> str:
    return "" if not lengths else " · ".join(f"{k} {v}" for k, v in lengths.items())


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
h1{font-size:1.5em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top;white-space:pre-wrap} th{background:#f3f3f3}
.verdict{font-size:1.1em;padding:.6em;border-radius:6px;background:#eef5ff}
.underfit{background:#fff5e0}.overfit{background:#ffecec}.well-fit{background:#eaffea}
img{max-width:100%}
"""


def _read_json(path: Path) -> dict[str, Any] | None:
    """A results file, or None when absent or unreadable (a report never fails on one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _judge_sections(evals: Path) -> list[str]:
    """Level-2 evals: each judge's verdict rates, the judge-vs-expert agreement when a sheet
    was aligned, and the cases a judge failed with its critiques."""
    results = _read_json(evals / "results.json") or {}
    judges = results.get("judges") or []
    if not judges:
        return []
    parts = ["<h2>LLM judge</h2>"]
    rows = [{**j, "pass_rate": f"{j['pass_rate']:.1%}"} for j in judges]
    parts.append(_table(rows, ["name", "pass", "fail", "unparsed", "pass_rate"]))
    alignment = _read_json(evals / "alignment.json")
    if alignment:
        c = alignment["confusion"]
        parts.append(
            f"<h3>Agreement with the expert ({html.escape(alignment['judge'])}, "
            f"{alignment['reviewed']} reviewed cases)</h3>"
        )
        parts.append(
            _table(
                [
                    {
                        "accuracy": f"{alignment['accuracy']:.1%}",
                        "precision on failures": f"{alignment['precision_on_failures']:.1%}",
                        "recall on failures": f"{alignment['recall_on_failures']:.1%}",
                        "Cohen's kappa": f"{alignment['cohen_kappa']:.2f}",
                        "judge fail / expert fail": c["judge_fail_expert_fail"],
                        "judge fail / expert pass": c["judge_fail_expert_pass"],
                        "judge pass / expert fail": c["judge_pass_expert_fail"],
                        "judge pass / expert pass": c["judge_pass_expert_pass"],
                    }
                ],
                [
                    "accuracy",
                    "precision on failures",
                    "recall on failures",
                    "Cohen's kappa",
                    "judge fail / expert fail",
                    "judge fail / expert pass",
                    "judge pass / expert fail",
                    "judge pass / expert pass",
                ],
            )
        )
    failing = []
    for record in _read_jsonl(evals / "judge.jsonl"):
        for j in judges:
            verdict = record.get(j["name"]) or {}
            if verdict.get("verdict") != "pass" and len(failing) < 20:
                failing.append(
                    {
                        "judge": j["name"],
                        "prompt": record.get("prompt", ""),
                        "answer": record.get("output", ""),
                        "verdict": verdict.get("verdict", ""),
                        "critique": verdict.get("critique", ""),
                    }
                )
    if failing:
        parts.append("<h3>Cases the judge did not pass (first 20)</h3>")
        parts.append(_table(failing, ["judge", "prompt", "answer", "verdict", "critique"]))
    return parts


def build_report(output_dir: str | Path) -> Path:
    """Write `curves.png` and `report.html` into `output_dir`; returns the HTML path."""
    out = Path(output_dir)
    if not out.is_dir():
        from honer.errors import HonerError

        raise HonerError(f"{out}: no such run folder (pass a training `output_dir`).")
    metrics = _read_jsonl(out / "metrics.jsonl")
    train, evals = read_metrics(out / "metrics.jsonl") if metrics else ([], [])
    diagnosis = diagnose(train, evals)
    plot_curves(metrics, diagnosis, out / "curves.png")
    png = base64.b64encode((out / "curves.png").read_bytes()).decode()
    config_text = (out / "config.yml").read_text() if (out / "config.yml").is_file() else ""
    stats_path = out / "data_stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    eval_table = _read_jsonl(out / "eval_table.jsonl")[-20:]
    assertions = _read_json(out / "evals" / "results.json")
    base_results = _read_json(out / "evals" / "base_model" / "results.json")

    parts = [
        f"<h1>honer run report — {html.escape(out.name)}</h1>",
        f"<p class='verdict {diagnosis.verdict}'><b>{diagnosis.verdict}</b>: "
        f"{html.escape(diagnosis.reason)}</p>",
        f"<img alt='loss curves' src='data:image/png;base64,{png}'>",
    ]
    rl_png = rl_metrics_png(metrics)
    if rl_png:
        parts += [
            "<h2>Preference / RL metrics</h2>",
            f"<img alt='preference and RL curves' src='data:image/png;base64,{rl_png}'>",
        ]
    if stats:
        parts.append("<h2>Data</h2>")
        split_rows = [
            {
                "split": name,
                "samples": s["samples"],
                "tokens": s["tokens"],
                "trained tokens": s.get("trained_tokens", "generated while training"),
                "length percentiles": _percentiles_text(s.get("length")),
            }
            for name, s in (("train", stats.get("train")), ("eval", stats.get("eval")))
            if s
        ]
        parts.append(
            _table(
                split_rows, ["split", "samples", "tokens", "trained tokens", "length percentiles"]
            )
        )
        hist = histogram_png(stats.get("train_lengths", {}))
        if hist:
            parts.append(f"<img alt='length histogram' src='data:image/png;base64,{hist}'>")
    if assertions or base_results:
        parts.append("<h2>Evaluation</h2>")
        compared = [
            {
                "model": name,
                "eval loss": f"{r['loss']:.4f}",
                "perplexity": f"{r['perplexity']:.3f}",
                "pass rate": f"{r['overall']:.1%}" if r.get("overall") is not None else "",
                "samples": r.get("evaluated", {}).get("samples", ""),
            }
            for name, r in (("base model (before)", base_results), ("this run", assertions))
            if r
        ]
        parts.append(_table(compared, ["model", "eval loss", "perplexity", "pass rate", "samples"]))
    if assertions and assertions.get("checks"):
        parts.append("<h2>Assertion evals</h2>")
        parts.append(f"<p>overall pass rate: {assertions.get('overall', 0):.1%}</p>")
        parts.append(
            _table(assertions.get("checks", []), ["name", "passed", "failed", "pass_rate"])
        )
    parts += _judge_sections(out / "evals")
    if eval_table:
        parts.append("<h2>Generations at evaluation</h2>")
        parts.append(_table(eval_table, ["step", "prompt", "expected", "generated"]))
    if config_text:
        parts.append(f"<h2>Config</h2><pre>{html.escape(config_text)}</pre>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>honer report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    dest = out / "report.html"
    write_bytes(dest, page.encode())
    return dest
