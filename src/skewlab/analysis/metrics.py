"""Metric formulas; each has one home here and one paragraph in docs/METHODOLOGY.md."""

from __future__ import annotations

from typing import Any

import polars as pl

from skewlab.trace import source_columns


def accounting(sends: pl.DataFrame, receipts: pl.DataFrame) -> dict[str, int]:
    """Events sent to, received by and lost on the way to one worker (exact set arithmetic)."""
    sent_ids = sends.select("event_id")
    got_ids = receipts.select("event_id").unique()
    received = got_ids.join(sent_ids, on="event_id", how="semi").height
    unknown = got_ids.join(sent_ids, on="event_id", how="anti").height
    return {
        "sent": sent_ids.height,
        "received": received,
        "lost": sent_ids.height - received,
        "unknown_events": unknown,
    }


def _q(s: pl.Series, q: float) -> float | None:
    v = s.quantile(q, interpolation="nearest") if s.len() else None
    return None if v is None else float(v)


def error_vs_truth(df: pl.DataFrame, source: str) -> dict[str, Any]:
    """estimate − truth over the rows where the source answered (ns)."""
    est = source_columns(source)[0]
    err = df.filter(pl.col(est).is_not_null()).select((pl.col(est) - pl.col("truth_ns")).alias("e"))
    e = err["e"]
    n = e.len()
    if n == 0:
        return {"n": 0, "unanswered": df.height}
    a = e.abs()
    return {
        "n": n,
        "unanswered": df.height - n,
        "mean_ns": float(e.mean()),  # type: ignore[arg-type]
        "mae_ns": float(a.mean()),  # type: ignore[arg-type]
        "p99_abs_ns": _q(a, 0.99),
        "max_abs_ns": int(a.max()),  # type: ignore[arg-type]
    }


def causality(sends: pl.DataFrame, receipts: pl.DataFrame, source: str) -> dict[str, Any]:
    """Receipt stamp vs the coordinator's send stamp, same source on both sides.

    A violation is receipt estimate < send estimate: the node's frames claim the event was
    received before it was sent. Events where either side has no reading are 'undecidable'.
    """
    est = source_columns(source)[0]
    j = receipts.select("event_id", pl.col(est).alias("r"), pl.col("truth_ns").alias("tr")).join(
        sends.select("event_id", pl.col(est).alias("s"), pl.col("truth_ns").alias("ts")),
        on="event_id",
        how="inner",
    )
    decided = j.filter(pl.col("r").is_not_null() & pl.col("s").is_not_null())
    violations = decided.filter(pl.col("r") < pl.col("s")).height
    return {
        "events": j.height,
        "decided": decided.height,
        "undecidable": j.height - decided.height,
        "violations": violations,
        "violation_rate": violations / decided.height if decided.height else None,
        "truth_violations": j.filter(pl.col("tr") <= pl.col("ts")).height,
    }
