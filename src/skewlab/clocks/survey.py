"""Every clock source on this host: whether it is available, and one live reading of it
(``skewlab sources``). Readings are taken at the host's system clock; no emulated oscillator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skewlab.clocks.base import Reading
from skewlab.clocks.sync import SyncState
from skewlab.timebase import host_ns


def live_reading(name: str, params: Mapping[str, Any], state: SyncState, wait_s: float
                 ) -> tuple[Reading | None, int, str | None]:  # fmt: skip
    """Build the source, give its background poller up to ``wait_s``, read it once.

    Returns the reading, the host time it was taken at (ns) and an error, if any.
    """
    from skewlab.clocks.sources import SOURCES

    kw = {k: v for k, v in params.items() if k != "optional"}
    try:
        src = SOURCES[name](state, **kw)
    except Exception as e:
        return None, host_ns(), f"{type(e).__name__}: {e}"
    try:
        for attr in ("wait_first", "poller"):
            w = getattr(src, attr, None)
            if attr == "poller" and w is not None:
                w = w.wait_first
            if callable(w):
                w(wait_s)
                break
        t = host_ns()
        return src.read(t), t, None
    finally:
        close = getattr(src, "close", None)
        if callable(close):
            close()


def survey(per_source: Mapping[str, Mapping[str, Any]], state: SyncState,
           wait_s: float) -> list[dict[str, Any]]:  # fmt: skip
    """One row per source (sorted by name): bounded, available (and why), the reading's
    fields, and ``offset_ns`` = estimate − host clock at the read when there is an estimate."""
    from skewlab.clocks.external import availability
    from skewlab.clocks.sources import SOURCES

    rows = []
    for name in sorted(SOURCES):
        p = per_source.get(name, {})
        ok, reason = availability(name, p)
        reading, t, err = live_reading(name, p, state, wait_s) if ok else (None, host_ns(), None)
        row: dict[str, Any] = {
            "source": name,
            "bounded": bool(getattr(SOURCES[name], "bounded", False)),
            "available": ok,
            "reason": reason if err is None else f"{reason}; reading failed: {err}",
            "status": None if reading is None else reading.status.name,
            "estimate_ns": None if reading is None else reading.estimate_ns,
            "earliest_ns": None if reading is None else reading.earliest_ns,
            "latest_ns": None if reading is None else reading.latest_ns,
            "as_of_ns": None if reading is None else reading.as_of_ns,
        }
        if reading is not None and reading.estimate_ns is not None:
            row["offset_ns"] = reading.estimate_ns - t  # estimate − host clock at the read
        rows.append(row)
    return rows


def _ms(v: int | None) -> str:
    return "—" if v is None else f"{v / 1e6:+.3f}"


def format_survey(rows: list[dict[str, Any]]) -> str:
    """The rows as a table: offset and ± = half-width (latest − earliest)/2, both in ms."""
    hdr = f"{'source':<15} {'avail':<5} {'status':<14} {'offset ms':>10} {'± ms':>9}  reason"
    lines = [hdr, "-" * len(hdr)]
    for r in rows:
        hw = None
        if r["earliest_ns"] is not None:
            hw = (r["latest_ns"] - r["earliest_ns"]) // 2
        lines.append(
            f"{r['source']:<15} {'yes' if r['available'] else 'no':<5} "
            f"{r['status'] or '—':<14} {_ms(r.get('offset_ns')):>10} "
            f"{'—' if hw is None else f'{hw / 1e6:.3f}':>9}  {r['reason']}"
        )
    return "\n".join(lines)
