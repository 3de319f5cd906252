"""Figures (300 DPI PNG). Large runs are downsampled for plotting only, never for statistics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from skewlab.trace import source_columns

MAX_POINTS = 20_000


def error_over_time(receipts: dict[str, pl.DataFrame], sources: list[str], path: Path) -> Path:
    """Each worker's error vs true time per source, over the run."""
    fig, axes = plt.subplots(len(sources), 1, figsize=(8, 2.6 * len(sources)), sharex=True,
                             squeeze=False)  # fmt: skip
    t0 = min((df["truth_ns"].min() for df in receipts.values() if df.height), default=0)
    for ax, src in zip(axes[:, 0], sources, strict=True):
        est = source_columns(src)[0]
        for w, df in sorted(receipts.items()):
            d = df.filter(pl.col(est).is_not_null())
            if d.height > MAX_POINTS:
                d = d.gather_every(d.height // MAX_POINTS + 1)
            x = (d["truth_ns"] - t0) / 1e9
            y = (d[est] - d["truth_ns"]) / 1e6
            ax.plot(x, y, ".", ms=2, label=f"worker {w}")
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel(f"{src}\nerror (ms)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("true time since first receipt (s)")
    fig.suptitle("Receipt timestamp error vs true time (estimate − truth)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=300)
    plt.close(fig)
    return path
