"""Metric formulas; each has one home here and one paragraph in docs/METHODOLOGY.md.

Every metric is built as polars expressions (so a whole worker's metrics are computed in one
lazy pass) plus a ``*_finish`` function that turns the raw counts into the reported dict, with
a 95% interval on every rate (``stats_util.rate``: over time blocks when the counts carry their
split, as the analysis driver's do). Truth-based parts are ``None`` when truth is unavailable —
never 0.

Column conventions inside the analysis frames:
- receipts: ``truth_ns`` and the source columns of ``trace.source_columns``;
- the coordinator's send columns joined onto receipts carry the prefix ``s_``
  (``s_truth_ns``, ``s_<src>_estimate_ns``...), and ``s_present`` marks a matched send;
- pair frames prefix worker a's columns ``a_`` and worker b's ``b_``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import polars as pl

from skewlab.analysis.stats_types import (
    Accounting,
    Agreement,
    BoundQuality,
    Causality,
    CommitWait,
    CoordinationCost,
    CostBlock,
    Dist,
    ErrorVsTruth,
    Kind,
    KindCost,
    Ordering,
    OrderingBounded,
    OrderingPoint,
    Readings,
    Reevaluated,
    Window,
    WindowBounded,
    WindowCounts,
)
from skewlab.analysis.stats_util import Counts, Exprs, Raw, count, dist_exprs, rate, rows
from skewlab.trace import source_columns

UNSYNCHRONIZED, FREE_RUNNING, SYNCHRONIZED = 0, 1, 2
STATUS_NAMES = {
    UNSYNCHRONIZED: "UNSYNCHRONIZED",
    FREE_RUNNING: "FREE_RUNNING",
    SYNCHRONIZED: "SYNCHRONIZED",
}

NO_TRUTH = "no true time in these traces (truth_available false)"


def _c(prefix: str, name: str) -> pl.Expr:
    return pl.col(f"{prefix}{name}")


def _cols(source: str, prefix: str = "") -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    est, lo, hi, st = source_columns(source)
    return _c(prefix, est), _c(prefix, lo), _c(prefix, hi), _c(prefix, st)


def _sum(mask: pl.Expr) -> pl.Expr:
    """Count of rows where mask is true (null counts as false; split over time blocks)."""
    return count(mask)


def _int(v: Any) -> int:
    """A raw count as an int; a count split over time blocks keeps its split (``Counts``)."""
    if isinstance(v, Counts):
        return v
    return 0 if v is None else int(v)


def _dist(raw: Raw | None, scale: float = 1.0) -> Dist:
    """Finish a dist_exprs result: ints stay ints; ``scale`` (e.g. 0.5 for half-widths)."""
    raw = raw or {}

    def value(k: str) -> float | None:
        v = raw.get(k)
        return None if v is None else (float(v) * scale if scale != 1.0 or k == "mean" else int(v))

    return {
        "n": _int(raw.get("n")),
        "mean_ns": value("mean"),
        "min_ns": value("min"),
        "p50_ns": value("p50"),
        "p99_ns": value("p99"),
        "max_ns": value("max"),
    }


# ---------------------------------------------------------------------------------------------
# Accounting


def accounting(sends: pl.LazyFrame, receipts: pl.LazyFrame) -> Accounting:
    """Events sent to, received by and lost on the way to one worker (exact set arithmetic)."""
    sent_ids = sends.select("event_id").unique()
    rows = receipts.select(pl.len()).collect().item()
    got = receipts.select("event_id").unique()
    n_got = got.select(pl.len()).collect().item()
    sent = sent_ids.select(pl.len()).collect().item()
    received = got.join(sent_ids, on="event_id", how="semi").select(pl.len()).collect().item()
    return {
        "sent": sent,
        "received": received,
        "lost": sent - received,
        "unknown_events": n_got - received,  # ids the coordinator never sent (must be 0)
        "duplicate_rows": rows - n_got,  # receipt rows beyond the first per event (must be 0)
    }


# ---------------------------------------------------------------------------------------------
# Readings: how often each source answered, by status


def readings_exprs(source: str, p: str) -> dict[str, pl.Expr]:
    est, _, _, st = _cols(source)
    out = {f"{p}/rows": rows(), f"{p}/answered": _sum(est.is_not_null())}
    for code, name in STATUS_NAMES.items():
        out[f"{p}/by_status/{name}"] = _sum(st == code)
    return out


def readings_finish(raw: Raw) -> Readings:
    rows, ans = _int(raw.get("rows")), _int(raw.get("answered"))
    return {
        "rows": rows,
        "answered": ans,
        "unanswered": rows - ans,
        "by_status": {k: _int(v) for k, v in (raw.get("by_status") or {}).items()},
    }


# ---------------------------------------------------------------------------------------------
# Error vs truth: e = estimate − truth


def error_exprs(source: str, p: str) -> Exprs:
    est = _cols(source)[0]
    e = est - pl.col("truth_ns")
    a = e.abs()
    out: Exprs = {
        f"{p}/rows": pl.len(),
        f"{p}/n": e.count(),
        f"{p}/mean": e.mean(),
        f"{p}/mae": a.mean(),
        f"{p}/ms": (e.cast(pl.Float64) ** 2).mean(),
        # exact Σe² (128-bit integers): the RMSE then does not depend on float summation order
        f"{p}/ss": (e.cast(pl.Int128) * e.cast(pl.Int128)).sum(),
    }
    out.update(dist_exprs(a, f"{p}/abs"))
    return out


def _rmse(raw: Raw, n: int) -> float:
    """√(Σe²/n) from the exact integer Σe² (correctly rounded division); the float mean of e²
    only if Σe² could have overflowed 128 bits (|e| beyond ~10^15 ns)."""
    if int(raw["abs"]["max"]) ** 2 * n < 2**126:
        return math.sqrt(int(raw["ss"]) / n)
    return float(raw["ms"]) ** 0.5


def error_finish(raw: Raw | None, truth: bool) -> ErrorVsTruth:
    if not truth or raw is None:
        return {"available": False, "reason": NO_TRUTH}
    n = _int(raw["n"])
    out: ErrorVsTruth = {"available": True, "n": n, "unanswered": _int(raw["rows"]) - n}
    if n == 0:
        return out
    a = raw["abs"]
    out.update(
        {
            "mean_ns": float(raw["mean"]),
            "mae_ns": float(raw["mae"]),
            "rmse_ns": _rmse(raw, n),
            "p50_abs_ns": int(a["p50"]),
            "p99_abs_ns": int(a["p99"]),
            "max_abs_ns": int(a["max"]),
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
# Bound quality: coverage, miss magnitude, half-width


def bound_exprs(source: str, p: str, truth: bool) -> Exprs:
    _, lo, hi, st = _cols(source)
    has = lo.is_not_null() & hi.is_not_null()
    out: Exprs = {f"{p}/n": _sum(has)}
    out.update(dist_exprs(hi - lo, f"{p}/width"))
    if truth:
        t = pl.col("truth_ns")
        covered = has & (lo <= t) & (t <= hi)
        out[f"{p}/covered"] = _sum(covered)
        out[f"{p}/below"] = _sum(has & (t < lo))  # truth before earliest: bound too late
        out[f"{p}/above"] = _sum(has & (t > hi))  # truth after latest: bound too early
        miss = pl.when(t < lo).then(lo - t).when(t > hi).then(t - hi)
        out.update(dist_exprs(miss, f"{p}/miss"))
        for code in (FREE_RUNNING, SYNCHRONIZED):
            name = STATUS_NAMES[code]
            out[f"{p}/status/{name}/n"] = _sum(has & (st == code))
            out[f"{p}/status/{name}/covered"] = _sum(covered & (st == code))
    return out


def bound_finish(raw: Raw, truth: bool) -> BoundQuality:
    n = _int(raw.get("n"))
    out: BoundQuality = {
        "n": n,
        "half_width_ns": _dist(raw.get("width"), 0.5),  # ε = (latest − earliest) / 2
        "available": truth,
    }
    if not truth:
        out["reason"] = NO_TRUTH
        return out
    out.update(
        {
            "coverage": rate(_int(raw["covered"]), n),
            "below": _int(raw["below"]),
            "above": _int(raw["above"]),
            "miss_ns": _dist(raw.get("miss")),
            "coverage_by_status": {
                k: rate(_int(v["covered"]), _int(v["n"])) for k, v in raw["status"].items()
            },
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
# Causality: the worker's receipt reading vs the coordinator's send reading, same source


def causality_exprs(source: str, p: str, bounded: bool, truth: bool) -> dict[str, pl.Expr]:
    r, rlo, rhi, _ = _cols(source)
    s, slo, shi, _ = _cols(source, "s_")
    matched = pl.col("s_present").fill_null(False)
    d = matched & r.is_not_null() & s.is_not_null()
    out = {
        f"{p}/events": _sum(matched),
        f"{p}/decided": _sum(d),
        f"{p}/violations": _sum(d & (r < s)),
        f"{p}/ties": _sum(d & (r == s)),
    }
    if truth:
        out[f"{p}/truth_violations"] = _sum(matched & (pl.col("truth_ns") <= pl.col("s_truth_ns")))
    if bounded:
        db = matched & rlo.is_not_null() & rhi.is_not_null() & slo.is_not_null()
        db = db & shi.is_not_null()
        out[f"{p}/b/decided"] = _sum(db)
        out[f"{p}/b/provably_after"] = _sum(db & (shi < rlo))
        out[f"{p}/b/violating"] = _sum(db & (rhi < slo))
    return out


def causality_finish(raw: Raw, bounded: bool, truth: bool) -> Causality:
    ev, dec, viol = _int(raw["events"]), _int(raw["decided"]), _int(raw["violations"])
    out: Causality = {
        "events": ev,
        "decided": dec,
        "undecidable": ev - dec,
        "violations": viol,
        "ties": _int(raw["ties"]),
        "violation_rate": rate(viol, dec),
        "truth_violations": _int(raw["truth_violations"]) if truth else None,
        "bounded": None,
    }
    if bounded:
        b = raw["b"]
        bd, after, bad = _int(b["decided"]), _int(b["provably_after"]), _int(b["violating"])
        out["bounded"] = {
            "decided": bd,
            "undecidable": ev - bd,
            "provably_after": after,
            "ambiguous": bd - after - bad,
            "violating": bad,
            "provably_after_rate": rate(after, bd),
            "ambiguous_rate": rate(bd - after - bad, bd),
            "violating_rate": rate(bad, bd),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Tumbling windows (Flink): start = t − ((t − offset) mod size), window [start, start + size)


Offset = int | pl.Expr  # the window grid's offset (ns): one for all events, or per event

# Per-event window phase: ⌊2^32/φ⌋, the multiplier of a Weyl sequence (consecutive event ids get
# phases spread evenly over the span, with no period that a cyclic workload could lock onto).
PHASE_MULT = 2_654_435_769


def window_phase_ns(seed: int, span_ns: int) -> pl.Expr:
    """Each event's shift of the window grid, in [0, span) at µs steps: frac(id·α + β(seed))
    · span with α = 1/φ, from the event id and the experiment's seed (the same for every
    worker, source and for the truth, so only the boundary's phase changes, never which
    readings are compared). docs/METHODOLOGY.md, Tumbling-window assignment."""
    span_us = max(1, span_ns // 1000)
    if span_us >= 2**35:
        raise ValueError("window sizes too large for a per-event phase (lcm >= 9.5 h)")
    beta = int.from_bytes(hashlib.sha256(f"window-phase/{seed}".encode()).digest()[:4], "big")

    def u(v: int) -> pl.Expr:
        return pl.lit(v, dtype=pl.UInt64)

    h = ((pl.col("event_id") % u(2**32)) * u(PHASE_MULT) + u(beta)) % u(2**32)
    return (((h // u(16)) * u(span_us)) // u(2**28) * u(1000)).cast(pl.Int64)


def window_grid_offset(offset_ns: int, phase: str, seed: int, sizes_ns: tuple[int, ...]) -> Offset:
    """The offset every window test uses: ``offset_ns`` (``fixed``: one grid for all events),
    plus each event's ``window_phase_ns`` over the sizes' common multiple (``per_event``)."""
    if phase == "fixed":
        return offset_ns
    return pl.lit(offset_ns, dtype=pl.Int64) + window_phase_ns(seed, math.lcm(*sizes_ns))


def window_start(t: pl.Expr, size_ns: int, offset_ns: Offset) -> pl.Expr:
    """Start of the tumbling window holding t (floor modulo, so correct for any sign)."""
    return t - ((t - offset_ns) % size_ns)


def window_index(t: pl.Expr, size_ns: int, offset_ns: Offset) -> pl.Expr:
    """Number of the tumbling window holding t: ⌊(t − offset)/size⌋, so window_start =
    offset + size·index and two times share a window exactly when their indices are equal (one
    integer division, cheaper than the modulo; used for every same-window comparison)."""
    return (t - offset_ns) // size_ns


def window_exprs(
    source: str, p: str, size: int, off: Offset, bounded: bool, truth: bool
) -> dict[str, pl.Expr]:
    est, lo, hi, _ = _cols(source)
    w_true = window_index(pl.col("truth_ns"), size, off)
    w_est = window_index(est, size, off)
    d = est.is_not_null()
    out = {f"{p}/decided": _sum(d)}
    if truth:
        out[f"{p}/correct"] = _sum(d & (w_est == w_true))
    if bounded:
        db = lo.is_not_null() & hi.is_not_null()
        w_lo, w_hi = window_index(lo, size, off), window_index(hi, size, off)
        conf = db & (w_lo == w_hi)
        out[f"{p}/b/decided"] = _sum(db)
        out[f"{p}/b/confident"] = _sum(conf)
        if truth:
            out[f"{p}/b/confident_correct"] = _sum(conf & (w_lo == w_true))
    return out


def window_finish(raw: Raw, bounded: bool, truth: bool) -> Window:
    dec = _int(raw["decided"])
    out: Window = {
        "decided": dec,
        "correct": None,
        "wrong": None,
        "accuracy": None,
        "wrong_rate": None,
        "bounded": None,
    }
    if truth:
        ok = _int(raw["correct"])
        out.update(
            {
                "correct": ok,
                "wrong": dec - ok,
                "accuracy": rate(ok, dec),
                "wrong_rate": rate(dec - ok, dec),
            }
        )
    if bounded:
        b = raw["b"]
        bd, conf = _int(b["decided"]), _int(b["confident"])
        bo: WindowBounded = {
            "decided": bd,
            "confident": conf,
            "ambiguous": bd - conf,  # the interval straddles a window boundary
            "ambiguous_rate": rate(bd - conf, bd),
            "confident_correct": None,
            "confident_wrong": None,
            "confident_wrong_rate": None,
        }
        if truth:
            cc = _int(b["confident_correct"])
            bo.update(
                {
                    "confident_correct": cc,
                    "confident_wrong": conf - cc,
                    # wrong among the claims made (confident), as every *wrong_rate
                    "confident_wrong_rate": rate(conf - cc, conf),
                }
            )
        out["bounded"] = bo
    return out


# ---------------------------------------------------------------------------------------------
# Commit-wait: wait until earliest > the event's latest, ≈ 2ε; re-evaluated readings at T+Δ


def commit_wait_exprs(
    source: str,
    p: str,
    deltas_ms: list[int],
    sizes: tuple[int, ...],
    off: Offset,
    truth: bool,
    names: set[str],
) -> Exprs:
    """Commit-wait at T+0 (= latest − earliest = 2ε) and the receipt's retrospective interval
    re-evaluated at T+Δ (columns ``<source>_cw<Δ>_earliest_ns`` / ``_latest_ns`` / ``_status``)."""
    _, lo, hi, _ = _cols(source)
    out = dist_exprs(hi - lo, f"{p}/wait")
    t = pl.col("truth_ns")
    for d in deltas_ms:
        q = f"{p}/cw/{d}"
        lo_d = pl.col(f"{source}_cw{d}_earliest_ns")
        hi_d = pl.col(f"{source}_cw{d}_latest_ns")
        st = f"{source}_cw{d}_status"
        has = lo_d.is_not_null() & hi_d.is_not_null() & lo.is_not_null() & hi.is_not_null()
        out[f"{q}/n"] = _sum(has)
        out[f"{q}/no_refinement"] = _sum(pl.col(st) == -1) if st in names else pl.lit(None)
        out.update(dist_exprs(pl.when(has).then(hi_d - lo_d), f"{q}/wait"))
        out[f"{q}/narrower"] = _sum(has & (hi_d - lo_d < hi - lo))
        if truth:
            out[f"{q}/covered"] = _sum(has & (lo_d <= t) & (t <= hi_d))
        for size in sizes:
            z = f"{q}/win/{size // 1_000_000}"
            amb0 = window_index(lo, size, off) != window_index(hi, size, off)
            amb_d = window_index(lo_d, size, off) != window_index(hi_d, size, off)
            out[f"{z}/ambiguous_t0"] = _sum(has & amb0)
            out[f"{z}/ambiguous"] = _sum(has & amb_d)
            out[f"{z}/resolved"] = _sum(has & amb0 & ~amb_d)
            if truth:
                wt = window_index(t, size, off)
                out[f"{z}/confident_wrong"] = _sum(
                    has & ~amb_d & (window_index(lo_d, size, off) != wt)
                )
    return out


def commit_wait_finish(raw: Raw, deltas_ms: list[int], truth: bool) -> CommitWait:
    out: CommitWait = {"wait_ns": _dist(raw.get("wait")), "reevaluated": {}}
    for d in deltas_ms:
        c = raw["cw"][str(d)]
        n = _int(c["n"])
        nr = c.get("no_refinement")
        r: Reevaluated = {
            "delta_ms": d,
            "n": n,  # receipts with both the T+0 and the T+Δ interval
            "no_refinement": None if nr is None else int(nr),
            "wait_ns": _dist(c.get("wait")),  # commit-wait had the T+Δ interval been known
            "narrower": rate(_int(c["narrower"]), n),
            "coverage": rate(_int(c["covered"]), n) if truth else None,
            "windows": {},
        }
        for z, wz in (c.get("win") or {}).items():
            a0, ad = _int(wz["ambiguous_t0"]), _int(wz["ambiguous"])
            r["windows"][z] = {
                "ambiguous_t0": rate(a0, n),
                "ambiguous": rate(ad, n),
                "resolved": _int(wz["resolved"]),
                "confident_wrong": _int(wz["confident_wrong"]) if truth else None,
            }
        out["reevaluated"][str(d)] = r
    return out


# ---------------------------------------------------------------------------------------------
# Ordering between two workers a and b (truth: the true receipt times)


def ordering_exprs(
    source: str, p: str, bounded: bool, truth: bool, a: str = "a_", b: str = "b_"
) -> dict[str, pl.Expr]:
    """Ordering counts of one source for a pair frame whose two workers' columns carry the
    prefixes ``a`` and ``b``."""
    ea, loa, hia, _ = _cols(source, a)
    eb, lob, hib, _ = _cols(source, b)
    truth_sign = (pl.col(f"{a}truth_ns") - pl.col(f"{b}truth_ns")).sign()
    has = ea.is_not_null() & eb.is_not_null()
    claim = (ea - eb).sign()
    out = {
        f"{p}/compared": rows(),
        f"{p}/point/with_readings": _sum(has),
        f"{p}/point/claimed_ties": _sum(has & (claim == 0)),
    }
    if truth:
        dec = has & (claim != 0)
        out[f"{p}/point/truth_ties"] = _sum(dec & (truth_sign == 0))
        out[f"{p}/point/correct"] = _sum(dec & (claim == truth_sign))
        out[f"{p}/point/wrong"] = _sum(dec & (truth_sign != 0) & (claim == -truth_sign))
    if bounded:
        hb = loa.is_not_null() & hia.is_not_null() & lob.is_not_null() & hib.is_not_null()
        a_first = hb & (hia < lob)
        b_first = hb & (hib < loa)
        out[f"{p}/bounded/with_bounds"] = _sum(hb)
        out[f"{p}/bounded/provable"] = _sum(a_first | b_first)
        if truth:
            bclaim = pl.when(a_first).then(-1).when(b_first).then(1).otherwise(0)
            prov = a_first | b_first
            out[f"{p}/bounded/truth_ties"] = _sum(prov & (truth_sign == 0))
            out[f"{p}/bounded/provable_correct"] = _sum(prov & (bclaim == truth_sign))
            out[f"{p}/bounded/provable_wrong"] = _sum(prov & (bclaim == -truth_sign))
    return out


def ordering_finish(raw: Raw, bounded: bool, truth: bool) -> Ordering:
    comp = _int(raw["compared"])
    pt = raw["point"]
    wr, ties = _int(pt["with_readings"]), _int(pt["claimed_ties"])
    point: OrderingPoint = {
        "undecidable": comp - wr,  # a reading is missing on either side
        "claimed_ties": ties,  # equal estimates: no order claimed
        "decided": wr - ties,
        "truth_ties": None,
        "correct": None,
        "wrong": None,
        "accuracy": None,
        "wrong_rate": None,
    }
    if truth:
        ok, bad = _int(pt["correct"]), _int(pt["wrong"])
        point.update(
            {
                "truth_ties": _int(pt["truth_ties"]),
                "correct": ok,
                "wrong": bad,
                "accuracy": rate(ok, ok + bad),
                "wrong_rate": rate(bad, ok + bad),
            }
        )
    out: Ordering = {"compared": comp, "point": point, "bounded": None}
    if bounded:
        b = raw["bounded"]
        wb, prov = _int(b["with_bounds"]), _int(b["provable"])
        bo: OrderingBounded = {
            "undecidable": comp - wb,
            "with_bounds": wb,
            "provable": prov,
            "ambiguous": wb - prov,  # intervals overlap (touching endpoints included)
            "ambiguous_rate": rate(wb - prov, wb),
            "truth_ties": None,
            "provable_correct": None,
            "provable_wrong": None,
            "provable_wrong_rate": None,
        }
        if truth:
            bad, good = _int(b["provable_wrong"]), _int(b["provable_correct"])
            bo.update(
                {
                    "truth_ties": _int(b["truth_ties"]),
                    "provable_correct": good,
                    "provable_wrong": bad,
                    # wrong among the judged claims, as the point wrong_rate
                    "provable_wrong_rate": rate(bad, good + bad),
                }
            )
        out["bounded"] = bo
    return out


# ---------------------------------------------------------------------------------------------
# Window agreement across all N workers on the same event (events received by every worker)


def agreement_exprs(
    source: str, p: str, workers: list[str], size: int, off: Offset, bounded: bool
) -> dict[str, pl.Expr]:
    def col(i: int, kind: int) -> pl.Expr:
        return pl.col(f"w{i}_{source_columns(source)[kind]}")

    n = len(workers)
    w_est = [window_index(col(i, 0), size, off) for i in range(n)]
    w_true = [window_index(pl.col(f"w{i}_truth_ns"), size, off) for i in range(n)]
    has = pl.all_horizontal([col(i, 0).is_not_null() for i in range(n)])
    agree = pl.all_horizontal([w == w_est[0] for w in w_est[1:]])
    out = {
        f"{p}/events": rows(),
        f"{p}/decided": _sum(has),
        f"{p}/agree": _sum(has & agree),
        f"{p}/truth_agree": _sum(has & pl.all_horizontal([w == w_true[0] for w in w_true[1:]])),
    }
    if bounded:
        hb = pl.all_horizontal([col(i, k).is_not_null() for i in range(n) for k in (1, 2)])
        wl = [window_index(col(i, 1), size, off) for i in range(n)]
        wh = [window_index(col(i, 2), size, off) for i in range(n)]
        conf = pl.all_horizontal([a == b for a, b in zip(wl, wh, strict=True)])
        same = pl.all_horizontal([w == wl[0] for w in wl[1:]])
        out[f"{p}/b/decided"] = _sum(hb)
        out[f"{p}/b/confident_agree"] = _sum(hb & conf & same)
        out[f"{p}/b/confident_disagree"] = _sum(hb & conf & ~same)
    return out


def agreement_finish(raw: Raw, bounded: bool, truth: bool) -> Agreement:
    dec, ag = _int(raw["decided"]), _int(raw["agree"])
    out: Agreement = {
        "events": _int(raw["events"]),
        "decided": dec,
        "agree": ag,
        "disagree": dec - ag,
        "agree_rate": rate(ag, dec),
        # how often the workers' TRUE receipt times fall in one window (the ideal)
        "truth_agree": rate(_int(raw["truth_agree"]), dec) if truth else None,
        "bounded": None,
    }
    if bounded:
        b = raw["b"]
        bd, ca, cd = _int(b["decided"]), _int(b["confident_agree"]), _int(b["confident_disagree"])
        out["bounded"] = {
            "decided": bd,
            "confident_agree": ca,
            "confident_disagree": cd,
            "ambiguous": bd - ca - cd,  # some worker's interval straddles a boundary
            "ambiguous_rate": rate(bd - ca - cd, bd),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Coordination cost: ambiguous decisions need a coordination round; wrong ones need repair


def coordination_cost(
    ordering_total: Ordering, windows: dict[str, WindowCounts], bounded: bool, truth: bool
) -> CoordinationCost:
    """Per decision kind: decisions, coordinate (no order/window claimed), repair (claimed and
    contradicted by truth), for the source as designed (bounds if bounded) and, for bounded
    sources, for its estimate used as a point."""

    def by_kind(mode: Kind) -> dict[str, KindCost]:
        out: dict[str, KindCost] = {}
        if mode == "bounded":
            ob = ordering_total["bounded"]
            assert ob is not None  # a bounded source's ordering has bounds
            out["ordering"] = {
                "decisions": ob["with_bounds"],
                "coordinate": ob["ambiguous"],
                "repair": ob["provable_wrong"],
            }
        else:
            pt = ordering_total["point"]
            out["ordering"] = {
                "decisions": pt["decided"] + pt["claimed_ties"],
                "coordinate": pt["claimed_ties"],
                "repair": pt["wrong"],
            }
        for size, w in windows.items():
            wb = w["bounded"]
            if mode == "bounded":
                assert wb is not None
                out[f"window_{size}ms"] = {
                    "decisions": wb["decided"],
                    "coordinate": wb["ambiguous"],
                    "repair": wb["confident_wrong"],
                }
            else:
                out[f"window_{size}ms"] = {
                    "decisions": w["decided"],
                    "coordinate": 0,
                    "repair": w["wrong"],
                }
        return out

    def block(mode: Kind) -> CostBlock:
        kinds = by_kind(mode)
        decisions = sum(k["decisions"] for k in kinds.values())
        coordinate = sum(k["coordinate"] for k in kinds.values())
        repair = None if not truth else sum(k["repair"] or 0 for k in kinds.values())
        return {
            "by_kind": kinds,
            "total": {
                "decisions": decisions,
                "coordinate": coordinate,
                "repair": repair,
                "actions": None if repair is None else coordinate + repair,
                "difference": None if repair is None else coordinate - repair,
                "coordinate_rate": rate(coordinate, decisions),
                "repair_rate": None if repair is None else rate(repair, decisions),
            },
        }

    mode: Kind = "bounded" if bounded else "point"
    res: CoordinationCost = {"mode": mode, **block(mode)}
    if bounded:
        res["estimate_as_point"] = block("point")
    return res
