"""Measured truth: truth intervals from the nodes' truth probes, and every truth-based metric as
bounded counts (docs/METHODOLOGY.md, "Measured truth").

Each node's truth trace (``traces/<node>/truth-*.parquet``, written by ``node/prober.py``) holds
NTP exchanges with a reference clock: T1, T4 on the node's clock (what its sources read), T2, T3
on the reference's. An exchange bounds reference − node within [T3 − T4, T2 − T1] at an instant
inside it, whatever the path's asymmetry; away from it the bound widens by the stated maximum
drift ρ (``truth.max_drift_ppm``) × the distance. A receipt's (or send's) truth interval is the
intersection of the bounds of the exchanges around it, in the reference's timescale. Claims are
then judged certainly right, certainly wrong or undecided; with exact truth (emulated clocks on
one host) the exact counts are reported beside them, and must lie within.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import polars as pl

from skewlab.analysis import metrics as m
from skewlab.analysis.load import NS_PER_MS, Traces
from skewlab.analysis.stats_types import (
    Dist,
    Judged,
    MaeBounds,
    MeasuredNode,
    MeasuredSource,
    MeasuredTruth,
)
from skewlab.analysis.stats_util import (
    Blocks,
    Counts,
    Exprs,
    Raw,
    collect_row,
    count,
    nearest_rank_index,
    rate,
)
from skewlab.trace import TRUTH_PREFIX, part_files, send_source_columns, source_columns

NS_PER_S = 1_000_000_000
DEFAULT_MAX_DRIFT_PPM = 500.0  # spec.TruthSpec's default (older spec.json without the key)
# Integer rounding: T2/T3 convert from NTP timestamps to the nearest ns (exact for our server's
# own stamps), an emulated clock rounds its reading to the ns; 4 ns covers every such step.
SLACK_NS = 4
REACH = 2  # exchanges on each side of an instant whose bounds are intersected
BLOCK = "block"  # the analysis's time-block column (analysis/run.py)


@dataclass(frozen=True)
class Exchanges:
    """One node's valid exchanges with the reference (int64 ns arrays): in the order they were
    made (``load_exchanges``), or ordered by T1 within one step-free segment (``segments``).
    ``g1``/``g4``: the node clock's step gap just before T1 and just after T4, ``unc`` how far
    each may be off (None: a trace recorded without them)."""

    t1: np.ndarray
    t2: np.ndarray
    t3: np.ndarray
    t4: np.ndarray
    g1: np.ndarray | None = None
    g4: np.ndarray | None = None
    unc: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.t1.size)

    @property
    def delay(self) -> np.ndarray:
        """δ = (T4 − T1) − (T3 − T2)."""
        return (self.t4 - self.t1) - (self.t3 - self.t2)

    def take(self, idx: np.ndarray) -> Exchanges:
        def tk(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Exchanges(self.t1[idx], self.t2[idx], self.t3[idx], self.t4[idx], tk(self.g1),
                         tk(self.g4), tk(self.unc))  # fmt: skip


GAP_COLUMNS = ("step_gap_t1_ns", "step_gap_t4_ns", "step_gap_unc_ns")


def load_exchanges(t: Traces, node: str) -> Exchanges | None:
    """A node's truth trace in the order its exchanges were made, or None when it has none."""
    files = part_files(t.results.node_dir(node), TRUTH_PREFIX)
    if not files:
        return None
    df = pl.concat([pl.read_parquet(str(f)) for f in files], how="diagonal")
    cols = ["t1_ns", "t2_ns", "t3_ns", "t4_ns"]
    df = df.drop_nulls(subset=cols)
    a = [df.get_column(c).cast(pl.Int64).to_numpy() for c in cols]
    gaps: list[np.ndarray | None] = [None, None, None]
    if all(c in df.columns for c in GAP_COLUMNS) and not any(
        df.get_column(c).null_count() for c in GAP_COLUMNS
    ):
        gaps = [df.get_column(c).cast(pl.Int64).to_numpy() for c in GAP_COLUMNS]
    return Exchanges(*a, *gaps)


@dataclass(frozen=True)
class Segments:
    """A node's exchanges split where its clock stepped: ``parts`` (each step-free, ordered by
    T1), ``zones`` ([lo, hi] local-time ranges between parts where an instant cannot be placed
    on either side of a step), ``stepped`` (exchanges dropped: the clock stepped inside them)."""

    parts: list[Exchanges]
    zones: list[tuple[int, int]]
    stepped: int


def segments(ex: Exchanges | None, ppb: int) -> Segments:
    """Split at the node clock's steps (a change of its step gap between two exchanges beyond
    both gaps' uncertainty). A step of Δ between exchanges j and j + 1 happened while the clock
    read within [T4_j, T1_{j+1} − Δ] before it or [T4_j + Δ, T1_{j+1}] after it, so that range
    (widened by ρ × its length and the gaps' uncertainty) is a zone: instants there are on an
    unknown side of the step."""
    if ex is None or ex.n == 0:
        return Segments([], [], 0)
    if ex.g1 is None or ex.g4 is None or ex.unc is None:
        return Segments([ex.take(np.argsort(ex.t1, kind="stable"))], [], 0)
    inside = np.abs(ex.g4 - ex.g1) > 2 * ex.unc
    ex = ex.take(np.flatnonzero(~inside))
    assert ex.g1 is not None and ex.g4 is not None and ex.unc is not None
    parts: list[Exchanges] = []
    zones: list[tuple[int, int]] = []
    start = 0
    for j in range(ex.n - 1):
        d = int(ex.g1[j + 1] - ex.g4[j])
        if abs(d) <= int(ex.unc[j] + ex.unc[j + 1]):
            continue
        a, b = int(ex.t4[j]), int(ex.t1[j + 1])
        widen = int(grow(np.array([abs(b - a) + abs(d)]), ppb)[0]) + int(
            ex.unc[j] + ex.unc[j + 1]) + SLACK_NS  # fmt: skip
        zones.append((min(a, a + d) - widen, max(b, b - d) + widen))
        idx = np.arange(start, j + 1)
        parts.append(ex.take(idx[np.argsort(ex.t1[idx], kind="stable")]))
        start = j + 1
    idx = np.arange(start, ex.n)
    parts.append(ex.take(idx[np.argsort(ex.t1[idx], kind="stable")]))
    return Segments(parts, zones, int(inside.sum()))


def ppb_of(ppm: float) -> int:
    """ρ in integer parts per 10⁹, rounded up (never narrows a bound)."""
    return math.ceil(ppm * 1000)


def grow(d: np.ndarray, ppb: int) -> np.ndarray:
    """⌈d · ppb / 10⁹⌉ for d ≥ 0 (int64, no overflow for any ns distance below 290 years)."""
    q, r = np.divmod(d, NS_PER_S)
    return q * ppb + (r * ppb + NS_PER_S - 1) // NS_PER_S


def truth_intervals(
    local: np.ndarray, ex: Exchanges | None, ppb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, ok, nearest): each local instant's truth interval on the reference's timescale,
    whether it exists (some exchange, and the exchanges around it agree under ρ), and the local
    distance to the nearest exchange used.

    Exchange j bounds the offset at an instant s inside it (local T1 ≤ s ≤ local T4 − hold):
    T3 − T4 − ρ·(T3 − T2) ≤ reference − local ≤ T2 − T1; at an instant L, |L − s| ≤
    D = max(|L − T1|, |L − T4|), so L's truth is within [L + T3 − T4 − ρ(T3 − T2) − ρD,
    L + T2 − T1 + ρD] (rounded outward). The REACH exchanges on each side are intersected."""
    local = np.asarray(local, dtype=np.int64)
    k = local.size
    if ex is None or ex.n == 0 or k == 0:
        z = np.zeros(k, dtype=np.int64)
        return z, z.copy(), np.zeros(k, dtype=bool), z.copy()
    i = np.searchsorted(ex.t1, local, side="right") - 1
    lo = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
    hi = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
    nearest = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
    for step in range(1 - REACH, REACH + 1):
        j = np.clip(i + step, 0, ex.n - 1)
        t1, t2, t3, t4 = ex.t1[j], ex.t2[j], ex.t3[j], ex.t4[j]
        d = np.maximum(np.abs(local - t1), np.abs(local - t4))
        g = grow(d, ppb)
        hold = grow(t3 - t2, ppb)
        lo = np.maximum(lo, local + (t3 - t4) - hold - g - SLACK_NS)
        hi = np.minimum(hi, local + (t2 - t1) + g + SLACK_NS)
        nearest = np.minimum(nearest, d)
    return lo, hi, lo <= hi, nearest


def node_intervals(
    local: np.ndarray, seg: Segments, ppb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``truth_intervals`` across a node's step-free segments: an instant in a step's zone gets
    no interval; any other is bounded by the exchanges of the segment it falls in only (the
    segments' territories are ordered by local time between the zones; where zones overlap or
    are out of order, everything between them is left without an interval)."""
    local = np.asarray(local, dtype=np.int64)
    if len(seg.parts) <= 1:
        return truth_intervals(local, seg.parts[0] if seg.parts else None, ppb)
    k = local.size
    lo = np.zeros(k, dtype=np.int64)
    hi = np.zeros(k, dtype=np.int64)
    ok = np.zeros(k, dtype=bool)
    nearest = np.zeros(k, dtype=np.int64)
    big = np.iinfo(np.int64)
    edges = [big.min] + [v for z in seg.zones for v in z] + [big.max]
    # each part's territory lies between its zones; an instant in any zone, or in the
    # territories of two parts (zones out of order: steps back), gets no interval
    masks = [(local > edges[2 * i]) & (local < edges[2 * i + 1]) for i in range(len(seg.parts))]
    owners = np.sum(masks, axis=0)
    for z_lo, z_hi in seg.zones:
        owners[(local >= z_lo) & (local <= z_hi)] = 0
    for part, mask in zip(seg.parts, masks, strict=True):
        sel = mask & (owners == 1)
        if sel.any():
            lo[sel], hi[sel], ok[sel], nearest[sel] = truth_intervals(local[sel], part, ppb)
    return lo, hi, ok, nearest


def inconsistent_pairs(ex: Exchanges | None, ppb: int) -> int:
    """Consecutive exchanges whose bounds, carried to the instant between them, do not overlap:
    the offset moved faster than ρ allows (a step, or ρ too small)."""
    if ex is None or ex.n < 2:
        return 0
    a = slice(0, ex.n - 1)
    b = slice(1, ex.n)
    mid = (ex.t4[a] + ex.t1[b]) // 2
    out = np.zeros(ex.n - 1, dtype=bool)
    los, his = [], []
    for s in (a, b):
        t1, t2, t3, t4 = ex.t1[s], ex.t2[s], ex.t3[s], ex.t4[s]
        g = grow(np.maximum(np.abs(mid - t1), np.abs(mid - t4)), ppb)
        los.append(mid + (t3 - t4) - grow(t3 - t2, ppb) - g - SLACK_NS)
        his.append(mid + (t2 - t1) + g + SLACK_NS)
    out = np.maximum(los[0], los[1]) > np.minimum(his[0], his[1])
    return int(out.sum())


def _with_interval(df: pl.DataFrame, local: str, seg: Segments, ppb: int,
                   lo_name: str, hi_name: str) -> tuple[pl.DataFrame, np.ndarray]:  # fmt: skip
    """``df`` with the truth interval of column ``local`` (null where there is none); also
    returns the nearest-exchange distances."""
    lo, hi, ok, nearest = node_intervals(df.get_column(local).to_numpy(), seg, ppb)
    has = pl.Series("__ok", ok)
    df = df.with_columns(pl.Series(lo_name, lo), pl.Series(hi_name, hi), has)
    df = df.with_columns(
        pl.when(pl.col("__ok")).then(pl.col(lo_name)).alias(lo_name),
        pl.when(pl.col("__ok")).then(pl.col(hi_name)).alias(hi_name),
    ).drop("__ok")
    return df, np.where(ok, nearest, -1)


# -- judging ----------------------------------------------------------------------------------


def _judge(p: str, claim: pl.Expr, right: pl.Expr, wrong: pl.Expr,
           exact_wrong: pl.Expr | None) -> Exprs:  # fmt: skip
    out: Exprs = {
        f"{p}/claims": count(claim),
        f"{p}/right": count(claim & right),
        f"{p}/wrong": count(claim & wrong),
    }
    if exact_wrong is not None:
        out[f"{p}/exact_wrong"] = count(claim & exact_wrong)
    return out


def judged(raw: Raw, exact: bool) -> Judged:
    """Raw judged counts (claims, right, wrong[, exact_wrong]) → a Judged structure."""
    n, r, w = raw["claims"], raw["right"], raw["wrong"]
    und = n - r - w
    ew = raw.get("exact_wrong") if exact else None
    return {
        "claims": n,
        "certainly_right": r,
        "certainly_wrong": w,
        "undecided": und,
        "possibly_wrong": w + und,
        "certainly_wrong_rate": rate(w, n),
        "possibly_wrong_rate": rate(w + und, n),
        "undecided_rate": rate(und, n),
        "exact_wrong": ew,
        "exact_wrong_rate": rate(ew, n) if ew is not None else None,
    }


def _add(a: Any, b: Any) -> Any:
    """Sum two raw count trees; a key only one of them has keeps its counts (commit-wait
    delays a worker did not re-evaluate)."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, dict):
        return {k: _add(a.get(k), b.get(k)) for k in {**a, **b}}
    return a + b


LO, HI = "m_lo", "m_hi"  # a receipt's measured truth interval
S_LO, S_HI = "s_m_lo", "s_m_hi"  # its send's


def _commit_wait_exprs(s: str, deltas: list[int], exact: bool, off: m.Offset, sizes: Any) -> Exprs:
    """Judged counts of a bounded source's receipt intervals re-evaluated at T+Δ (the
    commit-wait columns): coverage, and each window size's confident claims."""
    lo, hi, tr = pl.col(LO), pl.col(HI), pl.col("truth_ns")
    _, e_lo, e_hi, _ = m._cols(s)
    exprs: Exprs = {}
    for d in deltas:
        lo_d, hi_d = pl.col(f"{s}_cw{d}_earliest_ns"), pl.col(f"{s}_cw{d}_latest_ns")
        have = lo_d.is_not_null() & hi_d.is_not_null() & e_lo.is_not_null() & e_hi.is_not_null()
        q = f"{s}/cw/{d}"
        exprs.update(_judge(f"{q}/coverage", have, (lo_d <= lo) & (hi <= hi_d),
                            (hi < lo_d) | (lo > hi_d),
                            ~((lo_d <= tr) & (tr <= hi_d)) if exact else None))  # fmt: skip
        for size in sizes:
            wa, wb = m.window_index(lo, size, off), m.window_index(hi, size, off)
            cl, ch = m.window_index(lo_d, size, off), m.window_index(hi_d, size, off)
            w_true = m.window_index(tr, size, off)
            exprs.update(_judge(f"{q}/win/{size // NS_PER_MS}", have & (cl == ch),
                                (wa == wb) & (cl == wa), (cl < wa) | (cl > wb),
                                (cl != w_true) if exact else None))  # fmt: skip
    return exprs


def _worker_exprs(t: Traces, exact: bool, off: m.Offset) -> Exprs:
    """Every judged count of one worker's frame (receipt and send intervals joined)."""
    lo, hi, slo, shi = pl.col(LO), pl.col(HI), pl.col(S_LO), pl.col(S_HI)
    tr, ts = pl.col("truth_ns"), pl.col("s_truth_ns")
    matched = pl.col("s_present").fill_null(False)
    exprs: Exprs = _judge(
        "causality_truth", matched, shi < lo, hi <= slo, (tr <= ts) if exact else None
    )
    for s in t.sources:
        est, e_lo, e_hi, _ = m._cols(s)
        sest, s_elo, s_ehi, _ = m._cols(s, "s_")
        has = est.is_not_null() & lo.is_not_null()
        err_lo, err_hi = est - hi, est - lo
        min_abs = (
            pl.when((err_lo <= 0) & (err_hi >= 0)).then(0)
            .otherwise(pl.min_horizontal(err_lo.abs(), err_hi.abs()))
        )  # fmt: skip
        max_abs = pl.max_horizontal(err_lo.abs(), err_hi.abs())
        exprs[f"{s}/mae/n"] = has.sum()
        exprs[f"{s}/mae/lo"] = pl.when(has).then(min_abs).sum()
        exprs[f"{s}/mae/hi"] = pl.when(has).then(max_abs).sum()
        if exact:
            exprs[f"{s}/mae/exact"] = pl.when(has).then((est - tr).abs()).sum()
        # causality: a claimed violation (receipt stamped before its send) is right only if the
        # receipt truly came first
        viol = matched & est.is_not_null() & sest.is_not_null() & (est < sest)
        exprs.update(_judge(f"{s}/causality", viol, hi < slo, shi <= lo,
                            (tr >= ts) if exact else None))  # fmt: skip
        b = t.bounded[s]
        if b:
            have = e_lo.is_not_null() & e_hi.is_not_null()
            exprs.update(_judge(f"{s}/coverage", have, (e_lo <= lo) & (hi <= e_hi),
                                (hi < e_lo) | (lo > e_hi),
                                ~((e_lo <= tr) & (tr <= e_hi)) if exact else None))  # fmt: skip
            bviol = matched & have & s_elo.is_not_null() & s_ehi.is_not_null() & (e_hi < s_elo)
            exprs.update(_judge(f"{s}/causality_b", bviol, hi < slo, shi <= lo,
                                (tr >= ts) if exact else None))  # fmt: skip
        for size in t.settings.window_sizes_ns:
            p = f"{s}/win/{size // NS_PER_MS}"
            wa, wb = m.window_index(lo, size, off), m.window_index(hi, size, off)
            w_true = m.window_index(tr, size, off)
            c = m.window_index(est, size, off)
            exprs.update(_judge(f"{p}/point", est.is_not_null(), (wa == wb) & (c == wa),
                                (c < wa) | (c > wb), (c != w_true) if exact else None))  # fmt: skip
            if b:
                cl, ch = m.window_index(e_lo, size, off), m.window_index(e_hi, size, off)
                conf = e_lo.is_not_null() & e_hi.is_not_null() & (cl == ch)
                exprs.update(_judge(f"{p}/bounded", conf, (wa == wb) & (cl == wa),
                                    (cl < wa) | (cl > wb),
                                    (cl != w_true) if exact else None))  # fmt: skip
    return exprs


def _ordering_exprs(t: Traces, exact: bool) -> Exprs:
    """Judged ordering claims of every source for a pair frame (prefixes a_ and b_)."""
    alo, ahi, blo, bhi = pl.col("a_" + LO), pl.col("a_" + HI), pl.col("b_" + LO), pl.col("b_" + HI)
    ta, tb = pl.col("a_truth_ns"), pl.col("b_truth_ns")
    a_then_b, b_then_a = ahi < blo, bhi < alo  # the truth's order, where certain
    exprs: Exprs = {}
    for s in t.sources:
        ea, la, ha, _ = m._cols(s, "a_")
        eb, lb, hb, _ = m._cols(s, "b_")
        a_first = ea.is_not_null() & eb.is_not_null() & (ea < eb)
        b_first = ea.is_not_null() & eb.is_not_null() & (eb < ea)

        def judge(p: str, af: pl.Expr, bf: pl.Expr) -> Exprs:
            return _judge(p, af | bf, (af & a_then_b) | (bf & b_then_a),
                          (af & b_then_a) | (bf & a_then_b),
                          ((af & (tb < ta)) | (bf & (ta < tb))) if exact else None)  # fmt: skip

        exprs.update(judge(f"{s}/point", a_first, b_first))
        if t.bounded[s]:
            hb_ = la.is_not_null() & ha.is_not_null() & lb.is_not_null() & hb.is_not_null()
            exprs.update(judge(f"{s}/bounded", hb_ & (ha < lb), hb_ & (hb < la)))
    return exprs


# -- per node ---------------------------------------------------------------------------------


def _dist(x: np.ndarray) -> Dist:
    if x.size == 0:
        return {"n": 0, "mean_ns": None, "min_ns": None, "p50_ns": None, "p99_ns": None,
                "max_ns": None}  # fmt: skip
    s = np.sort(x)
    return {
        "n": int(s.size),
        "mean_ns": float(s.mean()),
        "min_ns": float(s[0]),
        "p50_ns": float(s[nearest_rank_index(s.size, 1, 2)]),
        "p99_ns": float(s[nearest_rank_index(s.size, 99, 100)]),
        "max_ns": float(s[-1]),
    }


def _node(seg: Segments, lo: pl.Series, hi: pl.Series, nearest: np.ndarray,
          exact_truth: pl.Series | None, block: np.ndarray, nblocks: int,
          ppb: int) -> MeasuredNode:  # fmt: skip
    ok = lo.is_not_null().to_numpy()
    lo_a = lo.fill_null(0).to_numpy()
    hi_a = hi.fill_null(0).to_numpy()
    half = (hi_a[ok] - lo_a[ok]) / 2
    near = nearest[ok]
    delay = np.concatenate([p.delay for p in seg.parts] or [np.zeros(0, dtype=np.int64)])
    dd, nd = _dist(delay), _dist(near)
    drift = None if nd["p50_ns"] is None else int(grow(np.array([int(nd["p50_ns"])]), ppb)[0])
    rt = None if dd["p50_ns"] is None else dd["p50_ns"] / 2
    if rt is None or drift is None:
        why = "no interval: no exchange with the reference"
    else:
        side = ("the exchanges' round trip" if rt >= drift else
                "the drift allowance between exchanges")  # fmt: skip
        why = (f"{side}: median δ/2 = {rt / 1e3:.1f} µs (path and timestamping) against "
               f"{ppb / 1000:g} ppm × median {nd['p50_ns'] / 1e6:.1f} ms to the nearest "
               f"exchange = {drift / 1e3:.1f} µs")  # fmt: skip
    cov = None
    if exact_truth is not None:
        tr = exact_truth.to_numpy()
        inside = ok & (lo_a <= tr) & (tr <= hi_a)
        cov = rate(Counts(np.bincount(block[inside], minlength=nblocks)),
                   Counts(np.bincount(block, minlength=nblocks)))  # fmt: skip
    return {
        "exchanges": int(delay.size) + seg.stepped,
        "delay_ns": dd,
        "intervals": int(ok.sum()),
        "no_interval": int((~ok).sum()),
        "inconsistent_exchange_pairs": sum(inconsistent_pairs(p, ppb) for p in seg.parts),
        "steps": len(seg.zones),
        "stepped_exchanges": seg.stepped,
        "half_width_ns": _dist(half),
        "nearest_exchange_ns": nd,
        "drift_term_ns": drift,
        "decided_by": why,
        "exact_coverage": cov,
    }


def _mae(raw: Raw, exact: bool) -> MaeBounds:
    n = int(raw["n"] or 0)
    return {
        "n": n,
        "lo_ns": raw["lo"] / n if n else None,
        "hi_ns": raw["hi"] / n if n else None,
        "exact_ns": raw["exact"] / n if exact and n else None,
    }


def measured_truth(
    t: Traces, sends: pl.DataFrame, blocks: Blocks, exact: bool
) -> MeasuredTruth | None:
    """The ``measured_truth`` section of stats.json, or None when no node has a truth trace.
    ``sends`` is the coordinator's trace with the block column; ``exact``: exact truth exists
    (then every exact count is reported beside the bounded ones)."""
    raw_ex = {n: load_exchanges(t, n) for n in [t.coordinator, *t.workers]}
    if all(e is None for e in raw_ex.values()):
        return None
    tspec = t.spec.get("truth") or {}
    ppm = float(tspec.get("max_drift_ppm", DEFAULT_MAX_DRIFT_PPM))
    ppb = ppb_of(ppm)
    ex = {n: segments(e, ppb) for n, e in raw_ex.items()}  # split where a clock stepped
    st = t.settings
    off = m.window_grid_offset(st.window_offset_ns, st.window_phase, st.phase_seed,
                               st.window_sizes_ns)  # fmt: skip
    nodes: dict[str, MeasuredNode] = {}

    sd, near = _with_interval(sends.select("event_id", "truth_ns", "local_ns", BLOCK),
                              "local_ns", ex[t.coordinator], ppb, S_LO, S_HI)  # fmt: skip
    nodes[t.coordinator] = _node(
        ex[t.coordinator], sd.get_column(S_LO), sd.get_column(S_HI), near,
        sd.get_column("truth_ns") if exact else None,
        sd.get_column(BLOCK).cast(pl.Int64).to_numpy(), blocks.count, ppb,
    )  # fmt: skip
    send_key = sd.select(
        "event_id", pl.col("truth_ns").alias("s_truth_ns"), S_LO, S_HI, BLOCK,
        pl.lit(True).alias("s_present"),
    ).unique(subset="event_id", keep="first", maintain_order=True)  # fmt: skip

    wexprs = _worker_exprs(t, exact, off)
    sizes = t.settings.window_sizes_ns
    raw_total: Raw = {}
    narrow: dict[str, pl.DataFrame] = {}
    for w in t.workers:
        rec = t.receipts[w]
        names = set(rec.collect_schema().names())
        cols = [pl.col("event_id"), pl.col("truth_ns"), pl.col("local_ns")]
        cols += [pl.col(c) for s in t.sources for c in source_columns(s)[:3]]
        for s in t.sources:
            wire = send_source_columns(s)[1:]
            mine = source_columns(f"s_{s}")[:3]
            if all(c in names for c in wire):
                cols += [pl.col(c).alias(a) for c, a in zip(wire, mine, strict=True)]
            else:  # trace version 1: no send readings on the wire; no causality claims
                cols += [pl.lit(None, dtype=pl.Int64).alias(a) for a in mine]
        df = rec.select(cols).collect()
        df, near = _with_interval(df, "local_ns", ex[w], ppb, LO, HI)
        df = df.join(send_key, on="event_id", how="left", maintain_order="left")
        df = df.with_columns(pl.col(BLOCK).fill_null(0))
        cw = {s: d for s, d in (t.cw_deltas.get(w) or {}).items() if t.bounded[s] and d}
        for f in t.cw_frames.get(w, []) if cw else []:
            df = df.join(f.collect(), on="event_id", how="left", maintain_order="left")
        cw_exprs: Exprs = {}
        for s, deltas in cw.items():
            cw_exprs.update(_commit_wait_exprs(s, deltas, exact, off, sizes))
        nodes[w] = _node(
            ex[w], df.get_column(LO), df.get_column(HI), near,
            df.get_column("truth_ns") if exact else None,
            df.get_column(BLOCK).cast(pl.Int64).to_numpy(), blocks.count, ppb,
        )  # fmt: skip
        raw = collect_row(df, {**wexprs, **cw_exprs}, blocks)
        raw_total = _add(raw_total, raw) if raw_total else raw
        keep = ["event_id", BLOCK, "truth_ns", LO, HI]
        keep += [c for s in t.sources for c in source_columns(s)[:3]]
        narrow[w] = df.select(keep).unique(subset="event_id", keep="first", maintain_order=True)
        del df

    oexprs = _ordering_exprs(t, exact)
    raw_ord: Raw = {}
    for a, b in combinations(t.workers, 2):
        ren_a = {c: f"a_{c}" for c in narrow[a].columns if c not in ("event_id", BLOCK)}
        ren_b = {c: f"b_{c}" for c in narrow[b].columns if c not in ("event_id", BLOCK)}
        j = narrow[a].rename(ren_a).join(narrow[b].rename(ren_b).drop(BLOCK), on="event_id")
        r = collect_row(j, oexprs, blocks)
        raw_ord = _add(raw_ord, r) if raw_ord else r

    agreement = _truth_agreement(t, narrow, blocks, exact, off)

    sources: dict[str, MeasuredSource] = {}
    for s in t.sources:
        b = t.bounded[s]
        r = raw_total[s]
        o = raw_ord.get(s) if raw_ord else None
        sources[s] = {
            "kind": "bounded" if b else "point",
            "mae": _mae(r["mae"], exact),
            "coverage": judged(r["coverage"], exact) if b else None,
            "causality": judged(r["causality"], exact),
            "causality_bounded": judged(r["causality_b"], exact) if b else None,
            "windows": {
                k: {
                    "point": judged(v["point"], exact),
                    "bounded": judged(v["bounded"], exact) if b else None,
                }
                for k, v in r["win"].items()
            },
            "ordering": {
                "point": judged(o["point"], exact) if o else _no_claims(exact),
                "bounded": (judged(o["bounded"], exact) if o else _no_claims(exact)) if b else None,
            },
            "commit_wait": {
                d: {
                    "coverage": judged(c["coverage"], exact),
                    "windows": {k: judged(v, exact) for k, v in c["win"].items()},
                }
                for d, c in sorted((r.get("cw") or {}).items(), key=lambda kv: int(kv[0]))
            }
            if b
            else None,
        }
    return {
        "available": True,
        "reference": t.metadata.get("measured_truth"),
        "max_drift_ppm": ppm,
        "exact_truth": exact,
        "nodes": nodes,
        "causality_truth": judged(raw_total["causality_truth"], exact),
        "truth_agreement": agreement,
        "sources": sources,
    }


def _truth_agreement(
    t: Traces, narrow: dict[str, pl.DataFrame], blocks: Blocks, exact: bool, off: m.Offset
) -> dict[str, Judged]:
    """Per window size, over the events every worker received: do the workers' true receipt
    times share one window (window agreement's ``truth_agree``)? Certainly, when every truth
    interval lies in one same window; certainly not, when no window meets them all (the
    largest window of a lower end is past the smallest of an upper end). "Wrong" = they do not
    share one."""
    if not narrow:
        return {}
    frames = []
    for i, w in enumerate(t.workers):
        f = narrow[w].select("event_id", BLOCK, "truth_ns", LO, HI)
        f = f.rename({c: f"w{i}_{c}" for c in ("truth_ns", LO, HI)})
        frames.append(f if i == 0 else f.drop(BLOCK))
    j = frames[0]
    for f in frames[1:]:
        j = j.join(f, on="event_id", how="inner")
    n = len(t.workers)
    have = pl.all_horizontal([pl.col(f"w{i}_{LO}").is_not_null() for i in range(n)])
    exprs: Exprs = {}
    for size in t.settings.window_sizes_ns:
        los = [m.window_index(pl.col(f"w{i}_{LO}"), size, off) for i in range(n)]
        his = [m.window_index(pl.col(f"w{i}_{HI}"), size, off) for i in range(n)]
        trs = [m.window_index(pl.col(f"w{i}_truth_ns"), size, off) for i in range(n)]
        one = have & (pl.min_horizontal(los) == pl.max_horizontal(his))
        none_common = have & (pl.max_horizontal(los) > pl.min_horizontal(his))
        split = pl.min_horizontal(trs) != pl.max_horizontal(trs)
        exprs.update(_judge(str(size // NS_PER_MS), pl.lit(True), one, none_common,
                            split if exact else None))  # fmt: skip
    raw = collect_row(j, exprs, blocks)
    return {k: judged(v, exact) for k, v in raw.items()}


def _no_claims(exact: bool) -> Judged:
    """Judged counts of no claims (a single worker: no pairs to order)."""
    return judged({"claims": 0, "right": 0, "wrong": 0, "exact_wrong": 0}, exact)
