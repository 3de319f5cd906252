"""Emulated links, requested vs achieved, from their traces (traces/_links/<from>~<to>.parquet).

Pure: reads the link traces and their file metadata only (format: ``trace.LINK_SCHEMA``). The
requested figures (delay mean and quantiles of the link's distribution, loss rate) were computed
by the link emulator when it wrote the trace (link trace version 2), so the analysis needs no
network code. A version-1 trace has only the link's settings: its requested figures that need
the distribution's math (mean, p50, p99, loss rate) are reported as null, never guessed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skewlab.analysis.load import NS_PER_MS
from skewlab.analysis.stats_types import LinkAchieved, LinkDirection, LinkRequested, LinkSummary
from skewlab.analysis.stats_util import nearest_rank_index
from skewlab.store import ResultsDir
from skewlab.trace import DELIVERED, LINK_DIRECTIONS, LOST, SEND_ERROR, UNSENT


def _nearest_rank(sorted_vals: np.ndarray, num: int, den: int) -> int:
    """Nearest-rank percentile num/den of sorted values (the analysis's one convention)."""
    return int(sorted_vals[nearest_rank_index(len(sorted_vals), num, den)])


def reorder_rate(seq_in_out_order: np.ndarray) -> tuple[int, float | None]:
    """(count, fraction) of deliveries whose seq is below one delivered earlier."""
    n = len(seq_in_out_order)
    if n == 0:
        return 0, None
    running_max = np.maximum.accumulate(seq_in_out_order.astype(np.int64))
    late = int(np.count_nonzero(seq_in_out_order[1:] < running_max[:-1]))
    return late, late / n


def _requested_v1(settings: dict[str, Any]) -> LinkRequested:
    """Requested figures of a version-1 trace, which recorded only the direction's settings:
    what they state directly; the figures that need the distribution's math are null."""
    return {
        "dist": (settings.get("delay") or {}).get("dist"),
        "mean_ms": None,
        "p50_ms": None,
        "p99_ms": None,
        "loss_rate": None,
        "reorder": settings.get("reorder"),
        "duplicate": settings.get("duplicate"),
        "rate_mbps": settings.get("rate_mbps"),
    }


def summarize_link(table: pa.Table) -> LinkSummary:
    """Requested vs achieved delay, loss, duplication and reordering per direction of a link.

    Achieved one-way delay = truth_out − truth_in of delivered copies (the relay's residence);
    lateness = achieved − scheduled (the emulator's own timing error).
    """
    meta = json.loads((table.schema.metadata or {})[b"skewlab.link"])
    requested = meta.get("requested") or {}
    # nulls (not sent / lost) become 0 first: a nullable int64 column would otherwise turn into
    # float64 and lose the low bits of 1e18-ns timestamps
    cols = {}
    for n in table.column_names:
        c = table.column(n)
        cols[n] = (c.fill_null(0) if c.null_count else c).to_numpy()
    directions: dict[str, LinkDirection] = {}
    for d, name in LINK_DIRECTIONS.items():
        sel = cols["direction"] == d
        fate, copy = cols["fate"][sel], cols["copy"][sel]
        originals = int(np.count_nonzero(copy == 0))
        lost = int(np.count_nonzero(fate == LOST))
        deliv = fate == DELIVERED
        t_in = cols["truth_in_ns"][sel][deliv].astype(np.int64)
        t_out = cols["truth_out_ns"][sel][deliv].astype(np.int64)
        sched = cols["scheduled_delay_ns"][sel][deliv].astype(np.int64)
        seq = cols["seq"][sel][deliv]
        req: LinkRequested = requested[name] if name in requested else _requested_v1(meta[name])
        ach: LinkAchieved = {
            "packets_in": originals,
            "delivered": int(np.count_nonzero(deliv)),
            "lost": lost,
            "loss_rate": lost / originals if originals else None,
            "duplicates": int(np.count_nonzero(copy == 1)),
            "send_errors": int(np.count_nonzero(fate == SEND_ERROR)),
            "unsent": int(np.count_nonzero(fate == UNSENT)),
        }
        if len(t_in):
            delay = t_out - t_in
            sd = np.sort(delay)
            late = np.sort(delay - sched)
            order = np.argsort(t_out, kind="stable")
            n_re, rate_re = reorder_rate(seq[order])
            mean_ms = float(delay.mean()) / NS_PER_MS
            ach.update(
                {
                    "mean_ms": mean_ms,
                    "p50_ms": _nearest_rank(sd, 1, 2) / NS_PER_MS,
                    "p99_ms": _nearest_rank(sd, 99, 100) / NS_PER_MS,
                    "min_ms": int(sd[0]) / NS_PER_MS,
                    "max_ms": int(sd[-1]) / NS_PER_MS,
                    "mean_error_ms": None if req["mean_ms"] is None else mean_ms - req["mean_ms"],
                    "lateness_mean_ms": float(late.mean()) / NS_PER_MS,
                    "lateness_p99_ms": _nearest_rank(late, 99, 100) / NS_PER_MS,
                    "reordered": n_re,
                    "reorder_rate": rate_re,
                }
            )
        directions[name] = {"requested": req, "achieved": ach}
    return {"target": meta["target"], "forward": directions["forward"], "back": directions["back"]}


def summarize_results(results: ResultsDir) -> dict[str, LinkSummary]:
    """``summarize_link`` for every link trace of a results folder (empty if none)."""
    return {p: summarize_link(pq.read_table(f)) for p, f in results.link_traces().items()}


def format_summary(links: dict[str, LinkSummary]) -> str:
    """A small table: requested vs achieved one-way delay and loss per link direction."""
    hdr = (f"{'link':<24} {'dir':<7} {'req mean ms':>11} {'mean ms':>9} {'p99 ms':>8} "
           f"{'req p99':>8} {'loss':>7} {'pkts':>6}")  # fmt: skip
    lines = [hdr, "-" * len(hdr)]

    def num(v: float | None, width: int) -> str:
        return f"{'—':>{width}}" if v is None else f"{v:{width}.3f}"

    for p, s in links.items():
        for name, d in (("forward", s["forward"]), ("back", s["back"])):
            r, a = d["requested"], d["achieved"]
            if not a["packets_in"]:
                continue
            loss = f"{a['loss_rate']:7.2%}" if a["loss_rate"] is not None else f"{'—':>7}"
            lines.append(
                f"{p:<24} {name:<7} {num(r['mean_ms'], 11)} {num(a.get('mean_ms'), 9)} "
                f"{num(a.get('p99_ms'), 8)} {num(r['p99_ms'], 8)} {loss} {a['packets_in']:>6}"
            )
    return "\n".join(lines)
