"""Figures, 300 DPI PNG and SVG, one idea each. Built from stats.json numbers; the two figures
that show distributions read a downsampled trace (for plotting only, never for statistics).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from skewlab.analysis.load import Traces
from skewlab.analysis.stats_types import FIGURES, Rate, SourceSummary, Stats
from skewlab.trace import source_columns

MAX_POINTS = 20_000  # per worker and source, plotted points
DPI = 300

plt.rcParams.update(
    {
        "font.size": 9,
        "axes.titlesize": 10,
        "svg.fonttype": "none",
        "svg.hashsalt": "skewlab",
        "figure.dpi": 100,
    }
)


def _save(fig: Figure, out_dir: Path, name: str) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    box = tight_box(fig)
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    write_png(fig, png, box)
    fig.savefig(svg, dpi=DPI, bbox_inches=box, metadata={"Date": None})
    plt.close(fig)
    return [f"{out_dir.name}/{png.name}", f"{out_dir.name}/{svg.name}"]


def tight_box(fig: Figure) -> Bbox:
    """The box (inches) around everything the laid-out figure draws at DPI, padded as
    ``savefig(bbox_inches="tight")`` pads it: that option's box, found once for both files
    instead of once per file. Also clears the placeholder layout engine ``tight_layout`` leaves,
    which made every savefig draw the figure once more before drawing it. With both, a figure
    set costs ~20 % less CPU (benchmarks/figure_speed.py); the PNG's pixels are those
    savefig(bbox_inches="tight") gives, and the SVG's page is the same box (before, the SVG
    renderer's own, within a point)."""
    fig.set_layout_engine(None)
    dpi = fig.dpi
    fig.set_dpi(DPI)  # text measured at the DPI the PNG is drawn at (and its layout cache)
    try:
        fig.draw_without_rendering()  # what savefig draws first: artists placed at draw time
        box = fig.get_tightbbox()
    finally:
        fig.set_dpi(dpi)
    return box.padded(plt.rcParams["savefig.pad_inches"])


def write_png(fig: Figure, path: Path, box: Bbox | str = "tight") -> None:
    """The figure as an RGB PNG at DPI, cropped to ``box`` (savefig's ``bbox_inches``): drawn
    by matplotlib (Agg) exactly as its own PNG, then encoded without the alpha channel. Every
    figure has an opaque background, so the alpha channel is 255 everywhere and RGB holds the
    same image: it encodes ~30 % faster and the file is ~10 % smaller."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image, PngImagePlugin

    if not isinstance(fig.canvas, FigureCanvasAgg):  # another backend's (a notebook's...)
        FigureCanvasAgg(fig)  # becomes fig.canvas: the buffer below is the one drawn
    raw = io.BytesIO()
    fig.savefig(raw, format="rgba", dpi=DPI, bbox_inches=box)
    h, w = fig.canvas.buffer_rgba().shape[:2]  # the size of the image just drawn
    if raw.tell() != 4 * w * h:
        raise RuntimeError(f"{path.name}: {raw.tell()} bytes drawn for a {w}x{h} image")
    img = Image.frombuffer("RGBA", (w, h), raw.getbuffer(), "raw", "RGBA", 0, 1)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"skewlab (matplotlib {matplotlib.__version__})")
    img.convert("RGB").save(path, format="png", dpi=(DPI, DPI), pnginfo=info)


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _pct_bars(
    ax: Any,
    labels: list[str],
    rates: list[Rate | None],
    color: str,
    offset: float = 0.0,
    width: float = 0.8,
    label: str | None = None,
) -> None:
    """Horizontal bars of rates (%) with 95% error bars (intervals over time blocks); missing
    rates are skipped."""
    y = np.arange(len(labels)) + offset
    for yi, r in zip(y, rates, strict=True):
        if not r or r["rate"] is None:
            continue
        lo, hi = r["ci95"]
        v = 100 * r["rate"]
        ax.barh(yi, v, height=width, color=color, label=label)
        ax.errorbar(
            v,
            yi,
            xerr=[[max(0.0, v - 100 * lo)], [max(0.0, 100 * hi - v)]],
            fmt="none",
            ecolor="k",
            capsize=2,
            lw=0.8,
        )
        ax.text(min(100 * hi + 1, 101), yi, f"{r['k']}/{r['n']}", va="center", fontsize=7)
        label = None
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.set_xlim(0, 112)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def causality_violations(stats: Stats) -> Figure:
    """Share of receipts whose timestamp claims they came before their send, per source/worker."""
    rows, point, amb = [], [], []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            c = ss["causality"]
            rows.append(f"{s} @ {w}")
            point.append(c["violation_rate"])
            amb.append(c["bounded"]["ambiguous_rate"] if c["bounded"] else None)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * max(1, len(rows))))
    if not rows:
        _note(ax, "no receipts")
    else:
        _pct_bars(ax, rows, point, "tab:red", -0.2, 0.4, "violation: receipt estimate < send")
        _pct_bars(ax, rows, amb, "tab:orange", 0.2, 0.4, "bounded: intervals overlap (ambiguous)")
        ax.set_xlabel("share of events with both readings (%), 95% interval")
        if ax.get_legend_handles_labels()[0]:  # nothing drawn (no receipts): no empty legend
            ax.legend(loc="lower right", fontsize=7)
    ax.set_title("Causality in the nodes' own frames (truth: every receipt is after its send)")
    return fig


def ordering_consensus(stats: Stats) -> Figure:
    """How the order of one event's receipts at two workers is decided, all pairs pooled."""
    tot = stats["ordering"]["total"]
    nrows = len(tot) + sum(1 for o in tot.values() if o["bounded"])
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.5 * max(1, nrows)))
    if not tot:
        _note(ax, "fewer than two workers: no pairs to order")
        return fig
    cats = [
        ("correct", "tab:green"),
        ("wrong", "tab:red"),
        ("ambiguous", "tab:orange"),
        ("tie / truth tie", "tab:gray"),
        ("undecidable", "lightgray"),
    ]
    labels = []
    # bounded sources twice: judged by their intervals, and by their estimate used as a point
    rows = [(s, o, True) for s, o in tot.items() if o["bounded"]]
    rows += [(s, o, False) for s, o in tot.items()]
    rows.sort(key=lambda r: list(tot).index(r[0]))
    for i, (s, o, by_bounds) in enumerate(rows):
        if by_bounds:
            b = o["bounded"]
            assert b is not None
            vals = [
                b["provable_correct"],
                b["provable_wrong"],
                b["ambiguous"],
                b["truth_ties"],
                b["undecidable"],
            ]
            labels.append(f"{s} (intervals)")
        else:
            p = o["point"]
            vals = [
                p["correct"],
                p["wrong"],
                0,
                (p["truth_ties"] or 0) + p["claimed_ties"],
                p["undecidable"],
            ]
            if p["correct"] is None:  # no truth: only decided vs not
                vals = [None, None, 0, p["claimed_ties"], p["undecidable"]]
            labels.append(f"{s} (estimates)")
        n = o["compared"] or 1
        left = 0.0
        if vals[0] is None:  # no truth: decided (unjudged) as one bar
            bo = o["bounded"]
            dec = bo["provable"] if by_bounds and bo else o["point"]["decided"]
            ax.barh(
                i,
                100 * dec / n,
                color="tab:blue",
                label="decided (truth unavailable)" if i == 0 else None,
            )
            left = 100 * dec / n
            vals[0] = vals[1] = 0
        for (cat, color), v in zip(cats, vals, strict=True):
            v = v or 0
            ax.barh(i, 100 * v / n, left=left, color=color, label=cat if i == 0 else None)
            left += 100 * v / n
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of events received by both workers of a pair (%)")
    ax.set_title("Ordering of receipts between workers (all pairs pooled)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5), ncol=3, fontsize=7)
    return fig


def window_assignment(stats: Stats) -> Figure:
    """Wrong (and, for bounds, ambiguous) tumbling-window assignments vs window size."""
    summ = stats["summary"]
    sizes = stats["settings"]["window_sizes_ms"]
    fig, ax = plt.subplots(figsize=(7, 4))
    plotted = False
    for s, sm in summ.items():
        wr = [sm["window_wrong_rate"].get(str(z)) for z in sizes]
        if all(r is not None for r in wr):
            ax.plot(
                sizes,
                [100 * r["rate"] if r["rate"] is not None else np.nan for r in wr],
                "o-",
                label=f"{s}: estimate wrong / receipts",
            )
            plotted = True
        cw = [(sm.get("window_confident_wrong_rate") or {}).get(str(z)) for z in sizes]
        if sm["kind"] == "bounded" and all(r is not None for r in cw):
            ax.plot(
                sizes,
                [100 * r["rate"] if r["rate"] is not None else np.nan for r in cw],
                "^:",
                label=f"{s}: interval confident-wrong / confident",
            )
        ar = [sm["window_ambiguous_rate"].get(str(z)) for z in sizes]
        if sm["kind"] == "bounded" and all(r is not None for r in ar):
            ax.plot(
                sizes,
                [100 * r["rate"] if r["rate"] is not None else np.nan for r in ar],
                "s--",
                label=f"{s}: interval straddles / receipts",
            )
            plotted = True
    if not plotted:
        _note(
            ax,
            "true time unavailable: window accuracy cannot be judged\n"
            "(see the report for agreement between workers)",
        )
    else:
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(z) for z in sizes])
        ax.set_xlabel("tumbling window size (ms, log scale)")
        ax.set_ylabel("rate (%): numerator / denominator in the legend")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax.set_title("Tumbling-window assignment of receipts vs the true window (all workers)")
    return fig


def coordination_cost(stats: Stats) -> Figure:
    """Coordination rounds vs repairs per 1000 decisions, per source."""
    cc = stats["coordination_cost"]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = list(cc)
    x = np.arange(len(names))
    coord = [1000 * ((c["total"]["coordinate_rate"] or {}).get("rate") or 0) for c in cc.values()]
    rep = [
        None
        if c["total"]["repair_rate"] is None
        else 1000 * (c["total"]["repair_rate"]["rate"] or 0)
        for c in cc.values()
    ]
    ax.bar(x - 0.2, coord, 0.4, color="tab:orange", label="coordinate (ambiguous / tie)")
    if all(r is not None for r in rep):
        ax.bar(x + 0.2, rep, 0.4, color="tab:red", label="repair (decided wrong)")
    else:
        ax.text(
            0.5,
            0.95,
            "repairs need true time: unavailable",
            transform=ax.transAxes,
            ha="center",
            va="top",
        )
    ax.set_xticks(x, names)
    ax.set_ylabel("actions per 1000 decisions")
    ax.set_xlabel("clock source (ordering + every window size)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Coordination cost: ask (ambiguous) vs repair (wrong)")
    return fig


def _sample(lf: pl.LazyFrame, cols: list[str]) -> pl.DataFrame:
    n = lf.select(pl.len()).collect().item()
    step = n // MAX_POINTS + 1
    return lf.select(cols).gather_every(step).collect()


def commit_wait(t: Traces, stats: Stats) -> Figure:
    """Distribution (CDF) of the commit-wait 2ε per bounded source and worker."""
    fig, ax = plt.subplots(figsize=(7, 4))
    bounded = [s for s in t.sources if t.bounded[s]]
    if not bounded:
        _note(ax, "no bounded source in this run: commit-wait does not apply")
        ax.set_title("Commit-wait (TrueTime): wait until earliest > the event's latest")
        return fig
    for s in bounded:
        _, lo, hi, _ = source_columns(s)
        for w, lf in t.receipts.items():
            d = _sample(lf, [lo, hi]).drop_nulls()
            if not d.height:
                continue
            v = np.sort(((d[hi] - d[lo]) / 1e6).to_numpy())
            ax.step(v, np.arange(1, len(v) + 1) / len(v) * 100, where="post", label=f"{s} @ {w}")
    ax.set_xlabel("commit-wait = latest − earliest = 2ε (ms)")
    ax.set_ylabel("share of receipts with wait ≤ x (%)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing drawn (no receipts): no empty legend
        ax.legend(fontsize=7)
    ax.set_title("Commit-wait (TrueTime): wait until earliest > the event's latest")
    return fig


def bound_coverage(stats: Stats) -> Figure:
    """Coverage of the bounded sources' intervals (earliest ≤ truth ≤ latest)."""
    rows, rates = [], []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            bq = ss["bound_quality"]
            if bq is not None and bq.get("available"):
                rows.append(f"{s} @ {w}")
                rates.append(bq["coverage"])
    fig, ax = plt.subplots(figsize=(7, 1.4 + 0.45 * max(1, len(rows))))
    if not rows:
        any_b = any(k == "bounded" for k in stats["source_kinds"].values())
        _note(
            ax,
            "true time unavailable: coverage cannot be measured"
            if any_b
            else "no bounded source in this run",
        )
    else:
        _pct_bars(ax, rows, rates, "tab:blue")
        ax.axvline(100, color="k", lw=0.6, ls="--")
        ax.set_xlabel("readings whose interval contains true time (%), 95% interval")
    ax.set_title("Bound coverage: earliest ≤ truth ≤ latest")
    return fig


def _event_time_lines(stats: Stats) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """The event-time analysis and its headline rows (source, or source (latest))."""
    ev: Any = stats.get("event_time")
    if not ev or not ev.get("available"):
        return ev, []
    rows = []
    for s, variants in ev["summary"].items():
        for variant, x in variants.items():
            rows.append((s if variant == "estimate" else f"{s} (latest)", x))
    return ev, rows


def late_events(stats: Stats) -> Figure:
    """Late-event rate against the watermark delay, per source (stream 'all')."""
    ev, rows = _event_time_lines(stats)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if not rows:
        _note(ax, f"event-time analysis not computed: {(ev or {}).get('reason', 'no data')}")
    else:
        delays = [str(d) for d in ev["settings"]["delays_ms"]]
        x = np.arange(len(delays))
        marks = "osD^vx+*"
        for i, (label, r) in enumerate(rows):  # the 95% intervals: stats.json and the report
            y = [100 * (r["delays"][d]["late"]["rate"] or 0.0) for d in delays]
            ax.plot(x, y, marker=marks[i % len(marks)], ms=4, mfc="none", label=label,
                    ls="--" if label.endswith("(latest)") else "-")  # fmt: skip
        ax.set_xticks(x, delays)
        ax.set_xlabel("watermark delay (ms): watermark = max timestamp − delay − 1 ms")
        ax.set_ylabel("late events (%)")
        ax.legend(fontsize=7, ncol=2)
    st = ev["settings"] if ev else {}
    ax.set_title(
        "Events arriving after their window fired, all workers merged"
        + (f" ({st['headline_window']}, lateness {st['allowed_lateness_ms']} ms)" if st else "")
    )
    return fig


def window_content_error(stats: Stats) -> Figure:
    """Share of windows whose final contents differ from true time's, per source and delay."""
    ev, rows = _event_time_lines(stats)
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.4 * max(1, len(rows))))
    if not rows:
        _note(ax, f"event-time analysis not computed: {(ev or {}).get('reason', 'no data')}")
    else:
        delays = [str(d) for d in ev["settings"]["delays_ms"]]
        y = np.arange(len(rows))
        h = 0.8 / len(delays)
        for i, d in enumerate(delays):
            vals = [100 * (r["delays"][d]["windows_differ_share"] or 0.0) for _, r in rows]
            ax.barh(y + (i - (len(delays) - 1) / 2) * h, vals, height=h, label=f"delay {d} ms")
        ax.set_yticks(y, [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel("windows whose final contents differ from true time's (%)")
        ax.legend(fontsize=7)
    ax.set_title("Window-content error (all workers merged, headline window)")
    return fig


def error_vs_truth(t: Traces, stats: Stats) -> Figure:
    """Each worker's receipt error (estimate − truth) over the run, per source."""
    sources = t.sources
    fig, axes = plt.subplots(
        len(sources), 1, figsize=(7, 1.2 + 2.0 * len(sources)), sharex=True, squeeze=False
    )
    if not stats["truth_available"]:
        for ax in axes[:, 0]:
            _note(ax, "true time unavailable in these traces")
        return fig
    samples = {
        w: _sample(lf, ["truth_ns", *(source_columns(s)[0] for s in sources)])
        for w, lf in t.receipts.items()
    }
    t0 = min((d["truth_ns"].min() for d in samples.values() if d.height), default=0) or 0
    for ax, src in zip(axes[:, 0], sources, strict=True):
        est = source_columns(src)[0]
        for w, d in sorted(samples.items()):
            d = d.filter(pl.col(est).is_not_null())
            ax.plot(
                (d["truth_ns"] - t0) / 1e9,
                (d[est] - d["truth_ns"]) / 1e6,
                ".",
                ms=2,
                label=f"worker {w}",
            )
        ax.axhline(0, color="k", lw=0.6)
        ax.set_ylabel(f"{src}\nerror (ms)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("true time since first receipt (s)")
    axes[0, 0].set_title("Receipt timestamp error: estimate − truth")
    return fig


def summary_dashboard(stats: Stats) -> Figure:
    """Headline rates per source, pooled over workers, on one page."""
    summ = stats["summary"]
    names = list(summ)
    sizes = stats["settings"]["window_sizes_ms"]
    mid = str(sizes[len(sizes) // 2 - 1] if len(sizes) > 1 else sizes[0])
    # every panel names its numerator / denominator and what judges it (RATE_DEFINITIONS)
    panels: list[tuple[str, Callable[[SourceSummary], Rate | None]]] = [
        ("causality violations, estimates\n(receipt < send) / events with both",
         lambda s: s["causality_violation_rate"]),
        ("bound coverage, intervals\ncovered / readings with both bounds",
         lambda s: s["coverage"]),
        ("ordering wrong, estimates\nwrong / (correct + wrong) claimed orders",
         lambda s: s["ordering_wrong_rate"]),
        ("ordering wrong, intervals (bounded)\nprovably wrong / provable orders",
         lambda s: s.get("ordering_provable_wrong_rate")),
        (f"wrong window ({mid} ms), estimates\nwrong / receipts with an estimate",
         lambda s: s["window_wrong_rate"].get(mid)),
        (f"wrong window ({mid} ms), intervals (bounded)\nconfident-wrong / confident",
         lambda s: (s.get("window_confident_wrong_rate") or {}).get(mid)),
    ]  # fmt: skip
    fig, axes = plt.subplots(3, 2, figsize=(9, 2.6 + 1.35 * max(2, len(names))))
    for ax, (title, get) in zip(axes.flat, panels, strict=True):
        rates = [get(summ[s]) for s in names]
        if all(r is None for r in rates):
            _note(ax, "unavailable (no truth or not applicable)")
        else:
            _pct_bars(ax, names, rates, "tab:blue")
            ax.set_xlabel("% (95% interval)")
        ax.set_title(title, fontsize=8)
    fig.suptitle(
        f"skewlab summary — {stats['experiment_id']}"
        + ("" if stats["truth_available"] else " (no true time)")
    )
    return fig


def make_all(
    t: Traces, stats: Stats, out_dir: Path, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Write every figure (PNG + SVG); returns paths relative to the results folder.
    ``progress`` hears ``figures k/n: name`` before each (drawing a set takes seconds)."""
    makers: dict[str, Callable[[], Figure]] = {
        "summary_dashboard": lambda: summary_dashboard(stats),
        "causality_violations": lambda: causality_violations(stats),
        "ordering_consensus": lambda: ordering_consensus(stats),
        "window_assignment": lambda: window_assignment(stats),
        "coordination_cost": lambda: coordination_cost(stats),
        "commit_wait": lambda: commit_wait(t, stats),
        "bound_coverage": lambda: bound_coverage(stats),
        "error_vs_truth": lambda: error_vs_truth(t, stats),
        "late_events": lambda: late_events(stats),
        "window_content_error": lambda: window_content_error(stats),
    }
    out: list[str] = []
    for k, name in enumerate(FIGURES, 1):
        if progress is not None:
            progress(f"figures {k}/{len(FIGURES)}: {name}")
        out += _save(makers[name](), out_dir, name)
    return out
