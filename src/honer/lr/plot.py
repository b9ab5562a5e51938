"""PNG plot of a learning-rate schedule (what `honer lr plot` writes)."""

from __future__ import annotations

from pathlib import Path

from honer.atomic import save_figure


def plot_schedule(lrs: list[float], title: str, dest: Path) -> Path:
    """Learning rate against optimizer step; written atomically (temp file + rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
    ax.plot(range(len(lrs)), lrs, color="#2ca02c")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"lr_scheduler: {title}")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    fig.tight_layout()
    return save_figure(fig, dest)
