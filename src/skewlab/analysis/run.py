"""Run the whole analysis on a results folder: stats.json, figures and report.md."""

from __future__ import annotations

from typing import Any

from skewlab.analysis import figures, metrics
from skewlab.analysis.load import load
from skewlab.store import ResultsDir, write_json_atomic

STATS_VERSION = 1


def analyze(results: ResultsDir, make_figures: bool = True) -> dict[str, Any]:
    t = load(results)
    workers: dict[str, Any] = {}
    for w, rec in sorted(t.receipts.items()):
        workers[w] = {
            "accounting": metrics.accounting(t.sends, rec),
            "sources": {
                s: {
                    "causality": metrics.causality(t.sends, rec, s),
                    "error_vs_truth": metrics.error_vs_truth(rec, s),
                }
                for s in t.sources
            },
        }
    stats: dict[str, Any] = {
        "stats_version": STATS_VERSION,
        "experiment_id": results.root.name,
        "sources": t.sources,
        "coordinator": {
            "name": t.spec.coordinator.name,
            "sent": t.sends.height,
            "sources": {
                s: {"error_vs_truth": metrics.error_vs_truth(t.sends, s)} for s in t.sources
            },
        },
        "workers": workers,
        "figures": [],
    }
    if make_figures:
        p = figures.error_over_time(
            t.receipts, t.sources, results.figures_dir / "error_vs_truth.png"
        )
        stats["figures"].append(str(p.relative_to(results.root)))
    write_json_atomic(results.stats_path, stats)
    return stats
