"""Run the whole analysis on a results folder: stats.json, figures, report.md and report.html."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable
from itertools import combinations
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from skewlab.analysis import metrics as m
from skewlab.analysis.links import summarize_results
from skewlab.analysis.load import NS_PER_MS, AnalysisSettings, Traces, load, read_errors_named
from skewlab.analysis.stats_types import (
    FIGURES,
    RATE_DEFINITIONS,
    SUMMARY_RATES,
    Accounting,
    Agreement,
    CoordinationCost,
    CoordinatorSource,
    IntervalSettings,
    Kind,
    Ordering,
    OrderingPair,
    OrderingStats,
    Rate,
    SourceSummary,
    Stats,
    Window,
    WindowBoundedCounts,
    WindowCounts,
    WorkerSource,
    WorkerStats,
)
from skewlab.analysis.stats_util import (
    MIN_BLOCKS,
    MIN_OUTCOME_BLOCKS,
    Blocks,
    Exprs,
    Raw,
    collect_row,
    plain,
    rate,
)
from skewlab.analysis.truth import measured_truth
from skewlab.store import ResultsDir, write_json_atomic
from skewlab.trace import part_files, send_source_columns, source_columns

STATS_VERSION = 3  # 3: every rate carries method, n_eff, blocks; settings.intervals

BLOCK = "block"  # column: the event's time block (see block_grid)
OFF = "window_offset_ns"  # column: the event's window grid offset (per-event phase only)
# event-level columns: the same in every worker's frame, so not prefixed in the pair joins
EVENT_COLS = ("event_id", BLOCK, OFF)
MAX_BLOCKS = 1_000_000  # more blocks than this: only those holding sends are numbered

T = TypeVar("T")


def analyze(
    results: ResultsDir,
    make_figures: bool = True,
    settings: AnalysisSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> Stats:
    """Compute every metric from the stored traces; write stats.json, the figures (unless
    ``make_figures`` is false) and report.md / report.html (always: without figures they hold
    every table and no figure). ``progress`` hears each figure as it is drawn
    (figures.make_all)."""
    results.stats_path.unlink(missing_ok=True)  # an earlier analysis is void until this one ends
    with read_errors_named(results):  # footers are checked first; a damaged page is named
        t = load(results, settings)
        stats = compute(t)
    if links := summarize_results(results):  # requested vs achieved per emulated link
        stats["network"] = links
    if make_figures:
        from skewlab.analysis import figures

        with read_errors_named(results):
            stats["figures"] = figures.make_all(t, stats, results.figures_dir, progress)
    else:
        remove_figures(results.figures_dir)
    from skewlab.analysis import report

    write_json_atomic(results.stats_path, stats)  # kept should a report fail
    report.write_reports(results, stats)
    stats["reports"] = ["report.md", "report.html"]
    write_json_atomic(results.stats_path, stats)
    return stats


def remove_figures(figures_dir: Path) -> None:
    """Remove the figure set an earlier analysis drew (its PNG and SVG files, by name; any
    other file stays), and the folder if nothing else is in it: figures next to a stats.json
    they were not drawn from would show other numbers."""
    for name in FIGURES:
        for ext in ("png", "svg"):
            (figures_dir / f"{name}.{ext}").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # absent, or holds other files
        figures_dir.rmdir()


def _grid_offset(t: Traces) -> m.Offset:
    """The window grid's offset for every window test: fixed, or per event (seeded)."""
    st = t.settings
    return m.window_grid_offset(
        st.window_offset_ns, st.window_phase, st.phase_seed, st.window_sizes_ns
    )


def _with_offset(t: Traces, df: pl.DataFrame) -> tuple[pl.DataFrame, m.Offset]:
    """``df`` with the window grid's per-event offset as column ``OFF`` (computed once from the
    event id, not inside every window test) and the offset the window tests use: that column,
    or the one fixed offset."""
    off = _grid_offset(t)
    if isinstance(off, pl.Expr):
        return df.with_columns(off.alias(OFF)), pl.col(OFF)
    return df, off


def _sizes_ms(t: Traces) -> list[int]:
    return [s // NS_PER_MS for s in t.settings.window_sizes_ns]


def _truth_present(t: Traces, sends: pl.DataFrame) -> tuple[bool, str | None]:
    """Truth is available if the metadata says so and every send and receipt carries it. A null
    truth_ns is "no true time" (imported traces): any null makes truth unavailable for the whole
    analysis, so a missing value is never read as 0 or as a miss. Returns (available, reason)."""
    if not t.truth_available:
        return False, "metadata.json: truth_available false"
    if sends.get_column("truth_ns").null_count():
        return False, "the send trace has null truth_ns"
    for w, lf in t.receipts.items():
        if lf.select(pl.col("truth_ns").null_count()).collect().item():
            return False, f"worker {w}'s receipts have null truth_ns"
    return True, None


def _add(a: Any, b: Any) -> Any:
    """Sum two raw count trees (counts add across worker pairs); None stays unknown."""
    if isinstance(a, dict):
        return {k: _add(a.get(k), b.get(k)) for k in a}
    if a is None or b is None:
        return a if b is None else b
    return a + b


def _mark_sorted(df: pl.DataFrame) -> pl.DataFrame:
    """Flag event_id as sorted when it is (the usual case: ids in send order), so joins on it
    merge instead of hashing. Checking is one cheap pass; the flag never changes a result."""
    ids = df.get_column("event_id")
    return df.with_columns(ids.set_sorted()) if ids.is_sorted() else df


def _first_per_event(df: pl.DataFrame, unique: bool) -> pl.DataFrame:
    """The first row of each event id (the trace's order); a no-op when ids are unique."""
    return df if unique else df.unique(subset="event_id", keep="first", maintain_order=True)


def _read_sends(t: Traces) -> pl.DataFrame:
    """The coordinator's trace, read once: event id, true send time and every source reading."""
    names = set(t.sends.collect_schema().names())
    cols = ["event_id", "truth_ns", "local_ns"]
    cols += [c for s in t.sources for c in source_columns(s) if c in names]
    return t.sends.select(cols).collect()


def _send_key(sends: pl.DataFrame, sent: int) -> pl.DataFrame:
    """What a receipt needs from the send trace: that its event was sent, and the true send
    time (the coordinator's readings travel on the wire, in the receipt's send_* columns)."""
    key = sends.select(
        pl.col("event_id"), pl.col("truth_ns").alias("s_truth_ns"), pl.lit(True).alias("s_present"),
        pl.col(BLOCK),
    )  # fmt: skip
    return _mark_sorted(_first_per_event(key, sent == sends.height))


def _send_side(t: Traces, sends: pl.DataFrame, sent: int) -> pl.DataFrame:
    """The send key plus the coordinator's readings from its own trace (prefix ``s_``), for
    receipts recorded without the wire's send_* columns (trace version 1)."""
    cols = [pl.col("event_id"), pl.col("truth_ns").alias("s_truth_ns")]
    cols += [pl.lit(True).alias("s_present"), pl.col(BLOCK)]
    for s in t.sources:
        cols += [pl.col(c).alias(f"s_{c}") for c in source_columns(s)[:3]]
    return _first_per_event(sends.select(cols), sent == sends.height)


def _narrow_cols(t: Traces, df: pl.DataFrame) -> list[str]:
    """Columns a worker contributes to the ordering and agreement joins."""
    event = [c for c in EVENT_COLS if c in df.columns]
    return event + ["truth_ns"] + [c for s in t.sources for c in source_columns(s)[:3]]


def _worker(
    t: Traces,
    w: str,
    truth: bool,
    key: pl.DataFrame,
    sent: int,
    fallback: pl.DataFrame | None,
    blocks: Blocks,
) -> tuple[WorkerStats, pl.DataFrame]:
    """Every per-worker metric of every source from one read of the receipts; also returns the
    worker's narrow frame (first row per event) for the ordering and agreement joins."""
    rec = t.receipts[w]
    names = set(rec.collect_schema().names())
    wire = all(c in names for s in t.sources for c in send_source_columns(s)[1:])
    cols = [pl.col("event_id"), pl.col("truth_ns")]
    cols += [pl.col(c) for s in t.sources for c in source_columns(s)]
    if wire:  # the coordinator's send readings as carried on the wire → s_ columns
        for s in t.sources:
            _, e, lo, hi = send_source_columns(s)
            s_e, s_lo, s_hi, _ = source_columns(f"s_{s}")
            cols += [pl.col(e).alias(s_e), pl.col(lo).alias(s_lo), pl.col(hi).alias(s_hi)]
    # read, then join eagerly: the read frame's sortedness is known, so the join can merge
    df = _mark_sorted(rec.select(cols).collect())
    df = df.join(
        key if wire or fallback is None else fallback, on="event_id", how="left",
        maintain_order="left",
    )  # fmt: skip
    for cw in t.cw_frames.get(w, []):
        df = df.join(cw.collect(), on="event_id", how="left", maintain_order="left")
    df = df.with_columns(pl.col(BLOCK).fill_null(0))  # receipts of unknown events: block 0
    df, off = _with_offset(t, df)

    rows = df.height
    n_got = df.get_column("event_id").n_unique()
    if rows == n_got:
        received = int(df.get_column("s_present").sum())
    else:
        received = (
            df.select("event_id", "s_present")
            .unique(subset="event_id")
            .get_column("s_present")
            .sum()
        )
    accounting: Accounting = {
        "sent": sent,
        "received": int(received),
        "lost": sent - int(received),
        "unknown_events": n_got - int(received),  # ids the coordinator never sent (must be 0)
        "duplicate_rows": rows - n_got,  # receipt rows beyond the first per event (must be 0)
    }

    exprs: Exprs = {}
    for s in t.sources:
        b = t.bounded[s]
        exprs.update(m.readings_exprs(s, f"{s}/readings"))
        if truth:
            exprs.update(m.error_exprs(s, f"{s}/error"))
        exprs.update(m.causality_exprs(s, f"{s}/causality", b, truth))
        if b:
            exprs.update(m.bound_exprs(s, f"{s}/bound", truth))
            exprs.update(
                m.commit_wait_exprs(
                    s,
                    f"{s}/cw",
                    t.cw_deltas[w][s],
                    t.settings.window_sizes_ns,
                    off,
                    truth,
                    t.columns[w],
                )
            )
        for size in t.settings.window_sizes_ns:
            exprs.update(m.window_exprs(s, f"{s}/win/{size // NS_PER_MS}", size, off, b, truth))
    raw = collect_row(df, exprs, blocks)
    narrow = _first_per_event(df.select(_narrow_cols(t, df)), rows == n_got)
    del df
    out: WorkerStats = {"accounting": accounting, "sources": {}}
    for s in t.sources:
        b, r = t.bounded[s], raw[s]
        out["sources"][s] = {
            "kind": _kind(t, s),
            "readings": m.readings_finish(r["readings"]),
            "error_vs_truth": m.error_finish(r.get("error"), truth),
            "bound_quality": m.bound_finish(r["bound"], truth) if b else None,
            "causality": m.causality_finish(r["causality"], b, truth),
            "windows": {k: m.window_finish(v, b, truth) for k, v in r["win"].items()},
            "commit_wait": m.commit_wait_finish(r["cw"], t.cw_deltas[w][s], truth) if b else None,
        }
    return out, narrow


def _coordinator(
    t: Traces, truth: bool, sends: pl.DataFrame, blocks: Blocks
) -> dict[str, CoordinatorSource]:
    exprs: Exprs = {}
    for s in t.sources:
        exprs.update(m.readings_exprs(s, f"{s}/readings"))
        if truth:
            exprs.update(m.error_exprs(s, f"{s}/error"))
        if t.bounded[s]:
            exprs.update(m.bound_exprs(s, f"{s}/bound", truth))
    raw = collect_row(sends, exprs, blocks)
    return {
        s: {
            "readings": m.readings_finish(raw[s]["readings"]),
            "error_vs_truth": m.error_finish(raw[s].get("error"), truth),
            "bound_quality": m.bound_finish(raw[s]["bound"], truth) if t.bounded[s] else None,
        }
        for s in t.sources
    }


def _prefixed(df: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Rename every column but the event-level ones (id, block, offset) with ``prefix``."""
    return df.rename({c: f"{prefix}{c}" for c in df.columns if c not in EVENT_COLS})


def _event_cols_dropped(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` without the event-level columns but its id (the other side of a join has them)."""
    return df.drop([c for c in EVENT_COLS[1:] if c in df.columns])


def _agreement_exprs(t: Traces) -> Exprs:
    """Window agreement over the joined frame, whose per-event offset (if any) is column OFF."""
    exprs: Exprs = {}
    off = _grid_offset(t)
    off = pl.col(OFF) if isinstance(off, pl.Expr) else off
    for s in t.sources:
        for size in t.settings.window_sizes_ns:
            p = f"agree/{s}/{size // NS_PER_MS}"
            exprs.update(m.agreement_exprs(s, p, t.workers, size, off, t.bounded[s]))
    return exprs


def _agreement_finish(t: Traces, raw: Raw, truth: bool) -> dict[str, dict[str, Agreement]]:
    return {
        s: {k: m.agreement_finish(v, t.bounded[s], truth) for k, v in raw[s].items()}
        for s in t.sources
    }


def _ordering_agreement(
    t: Traces, truth: bool, sent: int, narrow: dict[str, pl.DataFrame], blocks: Blocks
) -> tuple[OrderingStats, dict[str, dict[str, Agreement]]]:
    """Ordering for every pair of workers and window agreement across all of them. With two
    workers the pair's join is the N-way join, so both are computed in one pass."""
    pairs: dict[str, OrderingPair] = {}
    raw_total: Raw = {}
    agreement: dict[str, dict[str, Agreement]] = {}
    two = len(t.workers) == 2
    for a, b in combinations(t.workers, 2):
        pa_, pb_ = ("w0_", "w1_") if two else ("a_", "b_")
        j = _prefixed(narrow[a], pa_).join(
            _event_cols_dropped(_prefixed(narrow[b], pb_)), on="event_id", how="inner"
        )  # an event's block and offset are the same in every worker's frame
        exprs: Exprs = {}
        for s in t.sources:
            exprs.update(m.ordering_exprs(s, f"ord/{s}", t.bounded[s], truth, pa_, pb_))
        if two:
            exprs.update(_agreement_exprs(t))
        both = collect_row(j, exprs, blocks)
        del j
        raw = both["ord"]
        if two:
            agreement = _agreement_finish(t, both["agree"], truth)
        raw_total = _add(raw_total, raw) if raw_total else raw
        pairs[f"{a}|{b}"] = {
            "workers": [a, b],
            "events_missing": sent - raw[t.sources[0]]["compared"] if t.sources else None,
            "sources": {s: m.ordering_finish(raw[s], t.bounded[s], truth) for s in t.sources},
        }
    total: dict[str, Ordering] = (
        {s: m.ordering_finish(raw_total[s], t.bounded[s], truth) for s in t.sources}
        if raw_total
        else {}
    )
    if len(t.workers) > 2:
        frames = [_prefixed(narrow[w], f"w{i}_") for i, w in enumerate(t.workers)]
        j = frames[0]
        for f in frames[1:]:
            j = j.join(_event_cols_dropped(f), on="event_id", how="inner")
        raw_agree = collect_row(j, _agreement_exprs(t), blocks)["agree"]
        agreement = _agreement_finish(t, raw_agree, truth)
    return {"pairs": pairs, "total": total}, agreement


def _kind(t: Traces, s: str) -> Kind:
    return "bounded" if t.bounded[s] else "point"


def _present(v: T | None) -> T:
    """A part that exists for bounded sources (their bounds, commit-wait)."""
    assert v is not None
    return v


def _pool(rates: Iterable[Rate | None]) -> Rate | None:
    """Pool a rate over workers by summing k and n (exact); None if any worker's is None."""
    k = n = 0
    for r in rates:
        if r is None:
            return None
        k, n = k + r["k"], n + r["n"]
    return rate(k, n)


def _pooled_error(per: list[WorkerSource]) -> tuple[float | None, int | None]:
    """MAE (weighted by readings) and max |error| over workers; None without true time."""
    errs = [p["error_vs_truth"] for p in per]
    if not errs or not all(e["available"] for e in errs):
        return None, None
    n = sum(e["n"] for e in errs)
    if not n:
        return None, None
    mae = sum(e.get("mae_ns", 0.0) * e["n"] for e in errs) / n
    return mae, max(e["max_abs_ns"] for e in errs if e["n"])


def _pooled_commit_wait(per: list[WorkerSource]) -> float | None:
    """Mean commit-wait 2ε over every worker's receipts."""
    cws = [_present(p["commit_wait"])["wait_ns"] for p in per]
    n = sum(c["n"] for c in cws)
    return sum((c["mean_ns"] or 0.0) * c["n"] for c in cws if c["n"]) / n if n else None


def _source_summary(
    t: Traces, s: str, workers: dict[str, WorkerStats], ordering: OrderingStats,
    cost: CoordinationCost,
) -> SourceSummary:  # fmt: skip
    """Headline numbers of one source, pooled over workers (sums of counts, so intervals are
    exact)."""
    b = t.bounded[s]
    per = [ws["sources"][s] for ws in workers.values()]
    o = ordering["total"].get(s)
    ob = o["bounded"] if o and b else None
    wrong: dict[str, Rate | None] = {}
    ambiguous: dict[str, Rate | None] = {}
    confident_wrong: dict[str, Rate | None] = {}
    for size in _sizes_ms(t):
        k = str(size)
        wins = [p["windows"][k] for p in per]
        wrong[k] = _pool(w["wrong_rate"] for w in wins)  # estimates, every source
        if b:
            ambiguous[k] = _pool(_present(w["bounded"])["ambiguous_rate"] for w in wins)
            confident_wrong[k] = _pool(_present(w["bounded"])["confident_wrong_rate"] for w in wins)
    mae, max_abs = _pooled_error(per)
    return {
        "kind": _kind(t, s),
        "causality_violation_rate": _pool(p["causality"]["violation_rate"] for p in per),
        "causality_ambiguous_rate": (
            _pool(_present(p["causality"]["bounded"])["ambiguous_rate"] for p in per) if b else None
        ),
        "causality_violating_rate": (
            _pool(_present(p["causality"]["bounded"])["violating_rate"] for p in per) if b else None
        ),
        "ordering_wrong_rate": o["point"]["wrong_rate"] if o else None,
        "ordering_ambiguous_rate": ob["ambiguous_rate"] if ob else None,
        "ordering_provable_wrong": ob["provable_wrong"] if ob else None,
        "ordering_provable_wrong_rate": ob["provable_wrong_rate"] if ob else None,
        "window_wrong_rate": wrong,
        "window_ambiguous_rate": ambiguous,
        "window_confident_wrong_rate": confident_wrong,
        "coverage": (
            _pool(_present(p["bound_quality"]).get("coverage") for p in per) if b else None
        ),
        "mae_ns": mae,
        "max_abs_ns": max_abs,
        "commit_wait_mean_ns": _pooled_commit_wait(per) if b else None,
        "coordinate": cost["total"]["coordinate"],
        "repair": cost["total"]["repair"],
    }


def parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Experiment parameters, flattened (``workload.events``, ``nodes.B.drift_ppm``...)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, dict):
            for k, x in sorted(v.items()):
                walk(f"{prefix}.{k}" if prefix else k, x)
        else:
            out[prefix] = v

    for k, v in spec.items():
        if k == "nodes":
            for n in v:
                walk(f"nodes.{n['name']}", {x: y for x, y in n.items() if x != "name"})
        else:
            walk(k, v)
    return out


def config_key(params: dict[str, Any]) -> str:
    """A short stable key of the parameters, ignoring the name and the seed (so repetitions of
    one configuration with different seeds share the key)."""
    keep = {k: v for k, v in params.items() if k not in ("name", "seed")}
    blob = json.dumps(keep, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _needs_fallback(t: Traces) -> bool:
    """Whether some worker's receipts lack the wire's send_* columns (trace version 1)."""
    want = [c for s in t.sources for c in send_source_columns(s)[1:]]
    for lf in t.receipts.values():
        names = set(lf.collect_schema().names())
        if not all(c in names for c in want):
            return True
    return False


def compute(t: Traces) -> Stats:
    """All metrics of a loaded results folder, as the stats.json document (without figures)."""
    sends = _read_sends(t)
    truth, no_truth_reason = _truth_present(t, sends)
    sends, blocks, intervals = block_grid(t, sends, truth)
    sent = sends.get_column("event_id").n_unique()
    coordinator = _coordinator(t, truth, sends, blocks)
    measured = measured_truth(t, sends, blocks, truth)  # None without truth traces
    key = _send_key(sends, sent)
    fallback = _send_side(t, sends, sent) if _needs_fallback(t) else None
    del sends
    workers: dict[str, Any] = {}
    narrow: dict[str, pl.DataFrame] = {}
    for w in t.workers:
        workers[w], narrow[w] = _worker(t, w, truth, key, sent, fallback, blocks)
    ordering, agreement = _ordering_agreement(t, truth, sent, narrow, blocks)
    event_time = _event_time(t, narrow, truth, blocks)
    del narrow
    params = parameters(t.spec)
    costs = {s: _coordination(t, s, workers, ordering, truth) for s in t.sources}
    summary = {s: _source_summary(t, s, workers, ordering, costs[s]) for s in t.sources}
    doc: Stats = {
        "stats_version": STATS_VERSION,
        "experiment_id": t.results.root.name,
        "truth_available": truth,
        "truth_unavailable_reason": no_truth_reason,
        "imported": t.metadata.get("import") is not None,
        "import": t.metadata.get("import"),  # what an imported folder was made from
        "parameters": params,
        "config_key": config_key(params),
        "settings": {
            "window_sizes_ms": _sizes_ms(t),
            "window_offset_ms": t.settings.window_offset_ns / NS_PER_MS,
            "window_phase": t.settings.window_phase,
            "window_phase_seed": t.settings.phase_seed,
            "intervals": intervals,
        },
        "sources": t.sources,
        "source_kinds": {s: _kind(t, s) for s in t.sources},
        "coordinator": {"name": t.coordinator, "sent": sent, "sources": coordinator},
        "workers": workers,
        "ordering": ordering,
        "window_agreement": agreement,
        "figures": [],
        "coordination_cost": costs,
        "summary": summary,
        "rate_definitions": RATE_DEFINITIONS,
        "summary_rates": SUMMARY_RATES,
    }
    if measured is not None:
        doc["measured_truth"] = measured
    doc["event_time"] = event_time
    return plain(doc)  # type: ignore[no-any-return]  # counts' block splits are not written


def _event_time(
    t: Traces, narrow: dict[str, pl.DataFrame], truth: bool, blocks: Blocks
) -> dict[str, Any]:
    """Watermarks, late events and window contents per source (analysis/eventtime.py): each
    worker's receipts and all of them merged, in true arrival order."""
    from skewlab.analysis import eventtime as et

    st = et.EventTimeSettings.default(
        t.settings.window_sizes_ns,
        t.settings.window_offset_ns,
        t.settings.watermark_delays_ns,
        t.settings.allowed_lateness_ns,
    )
    receipts = sum(f.height for f in narrow.values())
    reason = None
    if not truth:
        reason = "arrival order and processing time are true receipt times: no true time"
    elif receipts > st.max_receipts:
        reason = f"{receipts} receipts > {st.max_receipts} (EventTimeSettings.max_receipts)"
    elif not receipts:
        reason = "no receipts"
    if reason:
        return {"available": False, "reason": reason, "settings": et.settings_doc(st)}
    frames = [
        narrow[w].with_columns(pl.lit(i, dtype=pl.Int32).alias("_worker"))
        for i, w in enumerate(t.workers)
    ]
    by = ["truth_ns", "_worker", "event_id"]
    named = [(w, f.sort(by)) for w, f in zip(t.workers, frames, strict=True)]
    named.append((et.MERGED, pl.concat(frames, how="vertical_relaxed").sort(by)))
    streams = []
    for name, df in named:
        proc = df.get_column("truth_ns").to_numpy().astype(np.int64)
        stream = et.Stream(
            name=name,
            proc_ns=proc,
            truth_ts=et.event_timestamps(proc, st.tick_ns),
            block=df.get_column(BLOCK).to_numpy().astype(np.int64),
            blocks=blocks.count,
        )
        for s in t.sources:
            est, _, latest, _ = source_columns(s)
            for variant, col in (("estimate", est), ("latest", latest)):
                c = df.get_column(col)
                stream.stamps[f"{s}/{variant}"] = (
                    c.fill_null(0).to_numpy().astype(np.int64),
                    c.is_not_null().to_numpy(),
                )
        streams.append(stream)
    return et.analyze(streams, t.sources, t.bounded, st)


def _median_ntp_spacing_ns(t: Traces) -> int | None:
    """Median interval between consecutive NTP samples of the workers (true T4 when recorded,
    else local T4); None without NTP traces (imported folders)."""
    gaps: list[pl.Series] = []
    for w in t.workers:
        files = part_files(t.results.node_dir(w), "ntp")
        if not files:
            continue
        df = pl.scan_parquet([str(f) for f in files]).select("t4_ns", "truth_t4_ns").collect()
        col = "truth_t4_ns" if df.get_column("truth_t4_ns").null_count() == 0 else "t4_ns"
        x = df.get_column(col).drop_nulls().sort()
        if x.len() >= 2:
            gaps.append(x.diff().drop_nulls())
    if not gaps:
        return None
    med = pl.concat(gaps).median()
    return int(med) if med is not None and med > 0 else None  # type: ignore[arg-type]


def block_grid(
    t: Traces, sends: pl.DataFrame, truth: bool
) -> tuple[pl.DataFrame, Blocks, IntervalSettings]:
    """Time blocks on which every rate's interval rests (docs/METHODOLOGY.md, "Statistics"): an
    event's block is ⌊(send time − first send time) / block⌋, send time true when truth is
    available, else the coordinator's clock; the block is the workers' median interval between
    NTP samples (receipts stamped between two samples share one clock error), else the spec's
    ``ntp.poll_s``, else 1 s. Every decision about an event (any worker, pair or source) falls
    in the same block, so counts pooled over workers and pairs add block by block."""
    spacing = _median_ntp_spacing_ns(t)
    poll = (t.spec.get("ntp") or {}).get("poll_s")
    if spacing is not None:
        block_ns, how = spacing, "median interval between the workers' NTP samples"
    elif poll:
        block_ns, how = round(float(poll) * 1e9), "the spec's ntp.poll_s (no NTP traces)"
    else:
        block_ns, how = 1_000_000_000, "1 s (no NTP traces, no ntp.poll_s)"
    tcol = "truth_ns" if truth else "local_ns"
    origin = sends.get_column(tcol).min() if sends.height else 0
    origin = 0 if origin is None else int(origin)  # type: ignore[arg-type]
    sends = sends.with_columns(
        ((pl.col(tcol) - origin) // block_ns).fill_null(0).clip(lower_bound=0).alias(BLOCK)
    )
    count = int(sends.get_column(BLOCK).max() or 0) + 1 if sends.height else 1
    if count > MAX_BLOCKS:  # sparse times (a clock far off, a gap of days): number the blocks
        # that hold sends in time order instead, so the per-block arrays stay small
        sends = sends.with_columns(pl.col(BLOCK).rank("dense").cast(pl.Int64) - 1)
        count = int(sends.get_column(BLOCK).max() or 0) + 1
    intervals: IntervalSettings = {
        "method": "block",
        "block_ns": block_ns,
        "block_from": how,
        "time": "true send time" if truth else "coordinator's clock at send",
        "blocks": count,
        "min_blocks": MIN_BLOCKS,
        "min_outcome_blocks": MIN_OUTCOME_BLOCKS,
    }
    return sends, Blocks(BLOCK, count), intervals


# Raw ordering counts of no pairs at all (a single worker): every count 0.
_NO_PAIRS: Raw = {
    "compared": 0,
    "point": {"with_readings": 0, "claimed_ties": 0, "truth_ties": 0, "correct": 0, "wrong": 0},
    "bounded": {
        "with_bounds": 0, "provable": 0, "truth_ties": 0, "provable_correct": 0,
        "provable_wrong": 0,
    },
}  # fmt: skip


def _coordination(
    t: Traces, s: str, workers: dict[str, WorkerStats], ordering: OrderingStats, truth: bool
) -> CoordinationCost:
    """Coordination cost of one source: ordering over all pairs, windows over all workers."""
    win_tot: dict[str, WindowCounts] = {}
    for size in _sizes_ms(t):
        k = str(size)
        win_tot[k] = _sum_windows([workers[w]["sources"][s]["windows"][k] for w in t.workers])
    o = ordering["total"].get(s)
    if o is None:  # a single worker: no pairs to order
        o = m.ordering_finish(_NO_PAIRS, t.bounded[s], truth)
    return m.coordination_cost(o, win_tot, t.bounded[s], truth)


def _opt_sum(vals: Iterable[int | None]) -> int | None:
    """Sum of counts; None if any is unavailable (no true time)."""
    total = 0
    for v in vals:
        if v is None:
            return None
        total += v
    return total


def _sum_windows(items: list[Window]) -> WindowCounts:
    """Sum one window size's counts over workers (rates are dropped: they do not add)."""
    bs = [w["bounded"] for w in items]
    bounded: WindowBoundedCounts | None = None
    if items and all(b is not None for b in bs):
        bb = [_present(b) for b in bs]
        bounded = {
            "decided": sum(b["decided"] for b in bb),
            "confident": sum(b["confident"] for b in bb),
            "ambiguous": sum(b["ambiguous"] for b in bb),
            "confident_correct": _opt_sum(b["confident_correct"] for b in bb),
            "confident_wrong": _opt_sum(b["confident_wrong"] for b in bb),
        }
    return {
        "decided": sum(w["decided"] for w in items),
        "correct": _opt_sum(w["correct"] for w in items),
        "wrong": _opt_sum(w["wrong"] for w in items),
        "bounded": bounded,
    }
