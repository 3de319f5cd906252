"""Run the whole analysis on a results folder: stats.json, figures, report.md and report.html."""

from __future__ import annotations

import hashlib
import json
from itertools import combinations
from typing import Any

import polars as pl

from skewlab.analysis import metrics as m
from skewlab.analysis.load import NS_PER_MS, AnalysisSettings, Traces, load
from skewlab.analysis.stats_util import collect_row, rate
from skewlab.store import ResultsDir, write_json_atomic
from skewlab.trace import source_columns

STATS_VERSION = 2


def analyze(
    results: ResultsDir, make_figures: bool = True, settings: AnalysisSettings | None = None
) -> dict[str, Any]:
    """Compute every metric from the stored traces; write stats.json (+ figures and reports)."""
    t = load(results, settings)
    stats = compute(t)
    from skewlab.net.link import summarize_results

    if links := summarize_results(results):  # requested vs achieved per emulated link
        stats["network"] = links
    if make_figures:
        from skewlab.analysis import figures, report

        stats["figures"] = figures.make_all(t, stats, results.figures_dir)
        write_json_atomic(results.stats_path, stats)
        report.write_reports(results, stats)
        stats["reports"] = ["report.md", "report.html"]
    write_json_atomic(results.stats_path, stats)
    return stats


def _sizes_ms(t: Traces) -> list[int]:
    return [s // NS_PER_MS for s in t.settings.window_sizes_ns]


def _truth_present(t: Traces) -> bool:
    """Truth is available if the metadata says so and the send trace carries it."""
    if not t.truth_available:
        return False
    n = t.sends.select(pl.col("truth_ns").null_count().alias("nulls"), pl.len().alias("n"))
    row = n.collect().row(0, named=True)
    return row["n"] == 0 or row["nulls"] < row["n"]


def _add(a: Any, b: Any) -> Any:
    """Sum two raw count trees (counts add across worker pairs)."""
    if isinstance(a, dict):
        return {k: _add(a.get(k), b.get(k)) for k in a}
    if a is None or b is None:
        return a if b is None else b
    return a + b


def _send_side(t: Traces) -> pl.LazyFrame:
    cols = [
        pl.col("event_id"),
        pl.col("truth_ns").alias("s_truth_ns"),
        pl.lit(True).alias("s_present"),
    ]
    for s in t.sources:
        cols += [pl.col(c).alias(f"s_{c}") for c in source_columns(s)]
    return t.sends.select(cols).unique(subset="event_id", keep="first")


def _worker(t: Traces, w: str, truth: bool, sends: pl.LazyFrame) -> dict[str, Any]:
    """Every per-worker metric of every source, in one lazy pass over the receipts."""
    rec = t.receipts[w]
    joined = rec.join(sends, on="event_id", how="left")
    for cw in t.cw_frames.get(w, []):
        joined = joined.join(cw, on="event_id", how="left")
    exprs: dict[str, pl.Expr] = {}
    off = t.settings.window_offset_ns
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
    raw = collect_row(joined, exprs)
    out: dict[str, Any] = {"accounting": m.accounting(t.sends, rec), "sources": {}}
    for s in t.sources:
        b, r = t.bounded[s], raw[s]
        out["sources"][s] = {
            "kind": "bounded" if b else "point",
            "readings": m.readings_finish(r["readings"]),
            "error_vs_truth": m.error_finish(r.get("error"), truth),
            "bound_quality": m.bound_finish(r["bound"], truth) if b else None,
            "causality": m.causality_finish(r["causality"], b, truth),
            "windows": {k: m.window_finish(v, b, truth) for k, v in r["win"].items()},
            "commit_wait": m.commit_wait_finish(r["cw"], t.cw_deltas[w][s], truth) if b else None,
        }
    return out


def _coordinator(t: Traces, truth: bool) -> dict[str, Any]:
    exprs: dict[str, pl.Expr] = {}
    for s in t.sources:
        exprs.update(m.readings_exprs(s, f"{s}/readings"))
        if truth:
            exprs.update(m.error_exprs(s, f"{s}/error"))
        if t.bounded[s]:
            exprs.update(m.bound_exprs(s, f"{s}/bound", truth))
    raw = collect_row(t.sends, exprs)
    return {
        s: {
            "readings": m.readings_finish(raw[s]["readings"]),
            "error_vs_truth": m.error_finish(raw[s].get("error"), truth),
            "bound_quality": m.bound_finish(raw[s]["bound"], truth) if t.bounded[s] else None,
        }
        for s in t.sources
    }


def _side(t: Traces, w: str, prefix: str) -> pl.LazyFrame:
    cols = [pl.col("event_id"), pl.col("truth_ns").alias(f"{prefix}truth_ns")]
    for s in t.sources:
        cols += [pl.col(c).alias(f"{prefix}{c}") for c in source_columns(s)[:3]]
    return t.receipts[w].select(cols).unique(subset="event_id", keep="first")


def _ordering(t: Traces, truth: bool, sent: int) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    raw_total: dict[str, Any] = {}
    for a, b in combinations(t.workers, 2):
        j = _side(t, a, "a_").join(_side(t, b, "b_"), on="event_id", how="inner")
        exprs: dict[str, pl.Expr] = {}
        for s in t.sources:
            exprs.update(m.ordering_exprs(s, s, t.bounded[s], truth))
        raw = collect_row(j, exprs)
        raw_total = _add(raw_total, raw) if raw_total else raw
        pairs[f"{a}|{b}"] = {
            "workers": [a, b],
            "events_missing": sent - raw[t.sources[0]]["compared"] if t.sources else None,
            "sources": {s: m.ordering_finish(raw[s], t.bounded[s], truth) for s in t.sources},
        }
    total = (
        {s: m.ordering_finish(raw_total[s], t.bounded[s], truth) for s in t.sources}
        if raw_total
        else {}
    )
    return {"pairs": pairs, "total": total}


def _agreement(t: Traces, truth: bool) -> dict[str, Any]:
    if len(t.workers) < 2:
        return {}
    frames = [_side(t, w, f"w{i}_") for i, w in enumerate(t.workers)]
    j = frames[0]
    for f in frames[1:]:
        j = j.join(f, on="event_id", how="inner")
    exprs: dict[str, pl.Expr] = {}
    off = t.settings.window_offset_ns
    for s in t.sources:
        for size in t.settings.window_sizes_ns:
            p = f"{s}/{size // NS_PER_MS}"
            exprs.update(m.agreement_exprs(s, p, t.workers, size, off, t.bounded[s]))
    raw = collect_row(j, exprs)
    return {
        s: {k: m.agreement_finish(v, t.bounded[s], truth) for k, v in raw[s].items()}
        for s in t.sources
    }


def _pool(workers: dict[str, Any], getter: Any) -> dict[str, Any] | None:
    """Pool a rate over workers by summing k and n (exact)."""
    k = n = 0
    for ws in workers.values():
        r = getter(ws)
        if r is None:
            return None
        k, n = k + r["k"], n + r["n"]
    return rate(k, n)


def _summary(t: Traces, stats: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers per source, pooled over workers (sums of counts, so intervals are exact)."""
    out: dict[str, Any] = {}
    ws = stats["workers"]
    for s in t.sources:
        b = t.bounded[s]

        def src(w: dict[str, Any], s: str = s) -> dict[str, Any]:
            return w["sources"][s]

        sm: dict[str, Any] = {"kind": "bounded" if b else "point"}
        sm["causality_violation_rate"] = _pool(ws, lambda w: src(w)["causality"]["violation_rate"])
        sm["causality_ambiguous_rate"] = (
            _pool(ws, lambda w: src(w)["causality"]["bounded"]["ambiguous_rate"]) if b else None
        )
        o = stats["ordering"]["total"].get(s)
        sm["ordering_wrong_rate"] = o["point"]["wrong_rate"] if o else None
        sm["ordering_ambiguous_rate"] = o["bounded"]["ambiguous_rate"] if o and b else None
        sm["ordering_provable_wrong"] = o["bounded"]["provable_wrong"] if o and b else None
        sm["window_wrong_rate"] = {}
        sm["window_ambiguous_rate"] = {}
        for size in _sizes_ms(t):
            k = str(size)
            if b:
                sm["window_wrong_rate"][k] = _pool(
                    ws, lambda w, k=k: src(w)["windows"][k]["bounded"]["confident_wrong_rate"]
                )
                sm["window_ambiguous_rate"][k] = _pool(
                    ws, lambda w, k=k: src(w)["windows"][k]["bounded"]["ambiguous_rate"]
                )
            else:
                sm["window_wrong_rate"][k] = _pool(
                    ws, lambda w, k=k: src(w)["windows"][k]["wrong_rate"]
                )
        sm["coverage"] = (
            _pool(ws, lambda w: (src(w)["bound_quality"] or {}).get("coverage")) if b else None
        )
        errs = [src(w)["error_vs_truth"] for w in ws.values()]
        if errs and all(e.get("available") for e in errs) and sum(e["n"] for e in errs):
            n = sum(e["n"] for e in errs)
            sm["mae_ns"] = sum(e.get("mae_ns", 0.0) * e["n"] for e in errs) / n
            sm["max_abs_ns"] = max(e["max_abs_ns"] for e in errs if e["n"])
        else:
            sm["mae_ns"] = sm["max_abs_ns"] = None
        if b:
            cws = [src(w)["commit_wait"]["wait_ns"] for w in ws.values()]
            n = sum(c["n"] for c in cws)
            sm["commit_wait_mean_ns"] = (
                sum(c["mean_ns"] * c["n"] for c in cws if c["n"]) / n if n else None
            )
        else:
            sm["commit_wait_mean_ns"] = None
        cc = stats["coordination_cost"][s]["total"]
        sm["coordinate"], sm["repair"] = cc["coordinate"], cc["repair"]
        out[s] = sm
    return out


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


def compute(t: Traces) -> dict[str, Any]:
    """All metrics of a loaded results folder, as the stats.json document (without figures)."""
    truth = _truth_present(t)
    sends = _send_side(t)
    sent = t.sends.select(pl.col("event_id").n_unique()).collect().item()
    workers = {w: _worker(t, w, truth, sends) for w in t.workers}
    params = parameters(t.spec)
    stats: dict[str, Any] = {
        "stats_version": STATS_VERSION,
        "experiment_id": t.results.root.name,
        "truth_available": truth,
        "imported": t.metadata.get("import") is not None,
        "parameters": params,
        "config_key": config_key(params),
        "settings": {
            "window_sizes_ms": _sizes_ms(t),
            "window_offset_ms": t.settings.window_offset_ns / NS_PER_MS,
        },
        "sources": t.sources,
        "source_kinds": {s: "bounded" if t.bounded[s] else "point" for s in t.sources},
        "coordinator": {"name": t.coordinator, "sent": sent, "sources": _coordinator(t, truth)},
        "workers": workers,
        "ordering": _ordering(t, truth, sent),
        "window_agreement": _agreement(t, truth),
        "figures": [],
    }
    stats["coordination_cost"] = {}
    for s in t.sources:
        win_tot: dict[str, Any] = {}
        for size in _sizes_ms(t):
            k = str(size)
            ws = [workers[w]["sources"][s]["windows"][k] for w in t.workers]
            win_tot[k] = _sum_finished(ws)
        o = stats["ordering"]["total"].get(s)
        if o is None:  # a single worker: no pairs to order
            o = {
                "point": {"decided": 0, "claimed_ties": 0, "wrong": 0 if truth else None},
                "bounded": {
                    "with_bounds": 0,
                    "ambiguous": 0,
                    "provable_wrong": 0 if truth else None,
                },
            }
        stats["coordination_cost"][s] = m.coordination_cost(o, win_tot, t.bounded[s], truth)
    stats["summary"] = _summary(t, stats)
    return stats


def _sum_finished(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the integer counts of finished window dicts over workers (rates are dropped)."""

    def add(a: Any, b: Any) -> Any:
        if isinstance(a, dict):
            return {k: add(a[k], b[k]) for k in a if not k.endswith(("rate", "accuracy"))}
        if a is None or b is None:
            return None
        return a + b

    out = items[0]
    out = {k: v for k, v in out.items() if not k.endswith(("rate", "accuracy"))}
    if out.get("bounded"):
        out["bounded"] = {k: v for k, v in out["bounded"].items() if not k.endswith("rate")}
    for it in items[1:]:
        out = add(out, it)
    return out
