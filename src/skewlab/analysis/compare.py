"""``skewlab compare``: several analysed runs side by side, keyed by their parameters.

Reads only each run's stats.json (the headline ``summary`` per source, pooled over workers, and
the ``parameters`` the analysis recorded). Nothing is recomputed, so the comparison states the
same numbers, with the same 95% intervals (over time blocks, docs/METHODOLOGY.md), as each run's
own report.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, TypedDict, cast

from skewlab.analysis.stats_types import Kind, Rate, Stats, rate_label
from skewlab.store import ResultsDir

COMPARE_VERSION = 2  # 2: ordering_provable_wrong_rate, window_confident_wrong_rate
DEFAULT_WINDOW_MS = 100

# Headline rates compared, in table order: key in the comparison → (summary field, label).
# "(est)": every source judged by its estimate used as a point; "(int)": a bounded source
# judged by its interval. Each label's numerator / denominator: stats_types.RATE_DEFINITIONS.
RATES: dict[str, tuple[str, str]] = {
    "causality_violation_rate": ("causality_violation_rate", "causal viol (est)"),
    "causality_ambiguous_rate": ("causality_ambiguous_rate", "causal amb (int)"),
    "ordering_wrong_rate": ("ordering_wrong_rate", "order wrong (est)"),
    "ordering_provable_wrong_rate": ("ordering_provable_wrong_rate", "order wrong (int)"),
    "ordering_ambiguous_rate": ("ordering_ambiguous_rate", "order amb (int)"),
    "window_wrong_rate": ("window_wrong_rate", "win wrong (est)"),
    "window_confident_wrong_rate": ("window_confident_wrong_rate", "win wrong (int)"),
    "window_ambiguous_rate": ("window_ambiguous_rate", "win amb (int)"),
    "coverage": ("coverage", "coverage (int)"),
}

# Rates that only bounded sources have.
BOUNDED_ONLY = frozenset(
    {"causality_ambiguous_rate", "ordering_ambiguous_rate", "window_ambiguous_rate", "coverage",
     "ordering_provable_wrong_rate", "window_confident_wrong_rate"}
)  # fmt: skip


def legend() -> list[str]:
    """One line per compared rate: its label, numerator / denominator and what judges it."""
    return [f"  {lbl}: {rate_label(field)}" for field, lbl in RATES.values()]


class CompareRow(TypedDict):
    """One source in one run: its headline numbers from stats.json ``summary`` (the window
    rates at the comparison's window size); None where the run has no such number."""

    kind: Kind | None
    causality_violation_rate: Rate | None
    causality_ambiguous_rate: Rate | None
    ordering_wrong_rate: Rate | None
    ordering_provable_wrong_rate: Rate | None
    ordering_ambiguous_rate: Rate | None
    window_wrong_rate: Rate | None
    window_confident_wrong_rate: Rate | None
    window_ambiguous_rate: Rate | None
    coverage: Rate | None
    mae_ns: float | None
    max_abs_ns: int | None
    commit_wait_mean_ns: float | None
    coordinate: int | None
    repair: int | None


class CompareRun(TypedDict):
    dir: str
    experiment_id: str | None
    config_key: str | None
    truth_available: bool | None
    imported: bool
    varying: dict[str, Any]  # the varying parameters' values in this run
    parameters: dict[str, Any]
    sources: dict[str, CompareRow]


class CompareDoc(TypedDict):
    """What ``skewlab compare --json`` writes."""

    compare_version: int
    window_ms: int | None
    varying_parameters: list[str]
    sources: list[str]
    runs: list[CompareRun]


class CompareError(Exception):
    """A folder cannot be compared (one line: which folder and why)."""


def load_stats(d: Path) -> Stats:
    """A run's stats.json, or a clear error if the folder has none."""
    res = ResultsDir(d)
    if not d.is_dir():
        raise CompareError(f"{d}: not a folder")
    if not res.stats_path.is_file():
        hint = " (run `skewlab analyze` on it first)" if res.spec_path.is_file() else ""
        raise CompareError(f"{d}: no stats.json{hint}")
    try:
        stats: Stats = json.loads(res.stats_path.read_text())
    except json.JSONDecodeError as e:
        raise CompareError(f"{res.stats_path}: not valid JSON ({e.msg}, line {e.lineno})") from e
    for k in ("parameters", "summary", "settings"):
        if k not in stats:
            raise CompareError(f"{res.stats_path}: no {k!r} (stats from an older skewlab?)")
    return stats


def _common_window(runs: list[Stats], want: int | None) -> int | None:
    sizes = [set(r["settings"].get("window_sizes_ms") or []) for r in runs]
    common = set.intersection(*sizes) if sizes else set()
    if want is not None:
        if want not in common:
            raise CompareError(
                f"window size {want} ms is not analysed in every run "
                f"(common sizes: {sorted(common) or 'none'})"
            )
        return want
    if not common:
        return None
    return DEFAULT_WINDOW_MS if DEFAULT_WINDOW_MS in common else min(common)


def _label(v: Any) -> str:
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


def compare(dirs: list[Path], window_ms: int | None = None) -> CompareDoc:
    """The comparison document: every run's parameters (and which of them vary between runs)
    and, per source, its headline rates and numbers from stats.json."""
    if not dirs:
        raise CompareError("no results folders given")
    stats = [load_stats(d) for d in dirs]
    win = _common_window(stats, window_ms)
    keys = sorted({k for s in stats for k in s["parameters"]} - {"name"})
    varying = [
        k
        for k in keys
        if len({_label(s["parameters"].get(k)) for s in stats}) > 1  # absent counts as a value
    ]
    sources: list[str] = []
    for s in stats:
        sources += [x for x in s["summary"] if x not in sources]
    runs: list[CompareRun] = []
    for d, s in zip(dirs, stats, strict=True):
        per: dict[str, CompareRow] = {}
        for src, sm in s["summary"].items():
            row: dict[str, Any] = {"kind": sm.get("kind")}
            for key, (field, _) in RATES.items():
                v = sm.get(field)
                if key.startswith("window_"):
                    v = (v or {}).get(str(win)) if win is not None else None
                row[key] = v
            for f in ("mae_ns", "max_abs_ns", "commit_wait_mean_ns", "coordinate", "repair"):
                row[f] = sm.get(f)
            per[src] = cast(CompareRow, row)  # every CompareRow key, from RATES and the rest
        runs.append(
            {
                "dir": str(d),
                "experiment_id": s.get("experiment_id"),
                "config_key": s.get("config_key"),
                "truth_available": s.get("truth_available"),
                "imported": s.get("imported", False),
                "varying": {k: s["parameters"].get(k) for k in varying},
                "parameters": s["parameters"],
                "sources": per,
            }
        )
    return {
        "compare_version": COMPARE_VERSION,
        "window_ms": win,
        "varying_parameters": varying,
        "sources": sources,
        "runs": runs,
    }


def _pct(r: Rate | None) -> str:
    """'x.xx [lo,hi]' in percent, '—' when unavailable, '-(0/n)' style for n = 0."""
    if not r:
        return "—"
    if r.get("rate") is None:
        return "n=0"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.2f} [{100 * lo:.2f},{100 * hi:.2f}]"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v / 1e6:.3f}"


def _n(v: int | None) -> str:
    return "—" if v is None else str(v)


def format_table(doc: CompareDoc) -> str:
    """Plain-text tables: the runs and their varying parameters, then one row per run and
    source (rates in percent with their 95% interval)."""
    lines = ["runs:"]
    varying = doc["varying_parameters"]
    for i, r in enumerate(doc["runs"], 1):
        params = ", ".join(f"{k}={_label(v)}" for k, v in r["varying"].items())
        truth = "" if r["truth_available"] else "  (no true time)"
        lines.append(f"  [{i}] {r['experiment_id']}  key {r['config_key']}  {params}{truth}")
    if not varying:
        lines.append("  (all runs share their parameters, besides the name)")
    win = doc["window_ms"]
    cols = [("run", 4), ("source", 11)]
    cols += [(lbl + (f" {win}ms" if k.startswith("window_") else ""), 20)
             for k, (_, lbl) in RATES.items()]  # fmt: skip
    cols += [("MAE ms", 9), ("coordinate", 10), ("repair", 8)]
    hdr = " ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(cols))
    lines += ["", "rates in % [95% interval over time blocks]; — = not applicable or no true time;"
              " numerator / denominator of each:", *legend(), "", hdr]  # fmt: skip
    lines.append("-" * len(hdr))
    for src in doc["sources"]:
        for i, r in enumerate(doc["runs"], 1):
            row = r["sources"].get(src)
            if row is None:
                continue
            vals = [f"[{i}]", src] + [_pct(row[k]) for k in RATES]
            vals += [_ms(row["mae_ns"]), _n(row["coordinate"]), _n(row["repair"])]
            lines.append(
                " ".join(
                    f"{v:<{w}}" if j < 2 else f"{v:>{w}}"
                    for j, (v, (_, w)) in enumerate(zip(vals, cols, strict=True))
                )
            )
    return "\n".join(lines)


LEGEND_WIDTH = 120  # characters per legend line (7 pt text: the 7.5-inch figure's width)
LEGEND_LINES = 3  # legend lines per run at most


def figure(doc: CompareDoc, out: Path) -> Path:
    """One panel per headline rate: x = source, one bar per run, 95% intervals as error bars;
    unavailable rates are marked 'n/a' instead of drawn as 0."""
    from skewlab.analysis.figures import DPI, plt, tight_box, write_png

    def has_rate(k: str) -> bool:
        return any(
            (r["sources"].get(s) or {}).get(k, {}) and r["sources"][s][k].get("rate") is not None
            for r in doc["runs"]
            for s in doc["sources"]
        )

    panels = [k for k in RATES if has_rate(k)]
    panels = panels or ["causality_violation_rate"]
    ncol = 2
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(7.5, 2.6 * nrow), squeeze=False)
    n_runs = len(doc["runs"])
    width = 0.8 / max(1, n_runs)
    srcs = doc["sources"]
    for ax, key in zip(axes.flat, panels, strict=False):
        label = RATES[key][1]
        if key.startswith("window_") and doc["window_ms"] is not None:
            label += f" ({doc['window_ms']} ms windows)"
        for i, r in enumerate(doc["runs"]):
            xs = [j + (i - (n_runs - 1) / 2) * width for j in range(len(srcs))]
            for x, s in zip(xs, srcs, strict=True):
                row = r["sources"].get(s)
                if row is None or (row["kind"] == "point" and key in BOUNDED_ONLY):
                    continue  # source not in this run / rate not defined for point sources
                v = row.get(key)
                if not v or v.get("rate") is None:  # no true time, or no decisions
                    ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=6, rotation=90,
                            transform=ax.get_xaxis_transform())  # fmt: skip
                    continue
                lo, hi = v["ci95"]
                ax.bar(x, 100 * v["rate"], width, color=f"C{i}",
                       yerr=[[100 * max(0.0, v["rate"] - lo)], [100 * max(0.0, hi - v["rate"])]],
                       capsize=2, ecolor="black", linewidth=0)  # fmt: skip
        ax.set_xlim(-0.5, len(srcs) - 0.5)
        ax.set_xticks(range(len(srcs)), srcs, rotation=20)
        ax.set_ylabel("rate (%)")
        ax.set_title(label)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(n_runs)]
    names = []
    for i, r in enumerate(doc["runs"], 1):
        params = ", ".join(f"{k}={_label(v)}" for k, v in r["varying"].items())
        name = f"[{i}] {r['experiment_id']}" + (f" ({params})" if params else "")
        # wrapped to the figure's width, at most LEGEND_LINES lines: a run beside an imported
        # one (no spec) differs in every key, and one line of them made a PNG 20,000 px wide
        names.append("\n".join(textwrap.wrap(
            name, LEGEND_WIDTH, subsequent_indent="    ", max_lines=LEGEND_LINES,
            placeholder=" … (every parameter: the table, --json)")))  # fmt: skip
    fig.legend(handles, names, loc="lower center", ncol=1, fontsize=7,
               bbox_to_anchor=(0.5, 0.0), frameon=False)  # fmt: skip
    fig.suptitle("Runs compared: headline rates per source (bars: 95% intervals over time blocks)")
    # room for the legend below the panels, in inches: 7 pt lines, a gap between entries
    lines = sum(n.count("\n") + 1 for n in names)
    legend_in = 0.3 + 0.13 * lines + 0.06 * n_runs
    fig.tight_layout(rect=(0, min(0.6, legend_in / (2.6 * nrow)), 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    box = tight_box(fig)  # as the analysis figures: one layout, an RGB PNG
    if out.suffix.lower() == ".png":
        write_png(fig, out, box)
    else:
        fig.savefig(out, dpi=DPI, bbox_inches=box)
    plt.close(fig)
    return out
