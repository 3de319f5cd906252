"""Load a results folder lazily: spec, metadata and one polars LazyFrame per node's trace.

The analysis reads nothing else. spec.json is read leniently (as data, not re-validated against
today's source registry), so traces recorded with sources this build does not know — imported
traces, newer runs — still analyse. What the analysis must know about a source (does it return
intervals?) comes from metadata.json, never from the clock code.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from skewlab.analysis.eventtime import DEFAULT_DELAYS_MS, DEFAULT_LATENESS_MS
from skewlab.results import check_traces, open_results
from skewlab.store import ResultsDir
from skewlab.trace import (
    commit_wait_delays_ms,
    part_files,
    receipt_schema,
    send_schema,
    source_columns,
)

NS_PER_MS = 1_000_000

# Whether a source returns an interval by design (even if a short run never shows a non-zero
# width) is recorded by the run's writer in metadata.json: "sources": {name: {"bounded": bool}}.
# Results folders written before that field existed fall back to this fixed table: every
# bounded source skewlab had then (built-in and external). A source in neither counts as
# bounded only if its readings show earliest != latest somewhere in the data.
LEGACY_BOUNDED = frozenset(
    {"truetime", "clockbound", "skewlab", "chrony", "chronotick", "chronotick_mcp",
     "clockbound_shm"}
)  # fmt: skip

DEFAULT_WINDOW_SIZES_MS = (50, 100, 500, 1000)


@dataclass(frozen=True)
class AnalysisSettings:
    """Analysis parameters (integer ns): tumbling window sizes and their common offset."""

    window_sizes_ns: tuple[int, ...] = tuple(s * NS_PER_MS for s in DEFAULT_WINDOW_SIZES_MS)
    window_offset_ns: int = 0
    # "fixed": one grid for every event; "per_event": each event's grid shifted by a seeded
    # phase (metrics.window_phase_ns), the spec's default (analysis.window_phase)
    window_phase: str = "fixed"
    phase_seed: int = 0
    # event time (analysis/eventtime.py): watermark delays and allowed lateness, ns
    watermark_delays_ns: tuple[int, ...] = tuple(d * NS_PER_MS for d in DEFAULT_DELAYS_MS)
    allowed_lateness_ns: int = DEFAULT_LATENESS_MS * NS_PER_MS

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> AnalysisSettings:
        a = spec.get("analysis") or {}
        sizes = a.get("window_sizes_ms") or DEFAULT_WINDOW_SIZES_MS
        return cls(
            window_sizes_ns=tuple(sorted(int(s) * NS_PER_MS for s in sizes)),
            window_offset_ns=int(a.get("window_offset_ms", 0)) * NS_PER_MS,
            window_phase=str(a.get("window_phase", "per_event")),
            phase_seed=int(spec.get("seed") or 0),
            watermark_delays_ns=tuple(
                sorted(int(d) * NS_PER_MS for d in a.get("watermark_delays_ms", DEFAULT_DELAYS_MS))
            ),
            allowed_lateness_ns=int(a.get("allowed_lateness_ms", DEFAULT_LATENESS_MS)) * NS_PER_MS,
        )


@dataclass
class Traces:
    """A results folder's traces as lazy frames, plus what the analysis must know about them."""

    results: ResultsDir
    spec: dict[str, Any]
    metadata: dict[str, Any]
    coordinator: str
    workers: list[str]
    sources: list[str]
    sends: pl.LazyFrame
    receipts: dict[str, pl.LazyFrame]  # worker name → receipts
    truth_available: bool
    settings: AnalysisSettings
    bounded: dict[str, bool] = field(default_factory=dict)  # source → returns intervals
    # worker → commit-wait re-evaluation parts (cw<Δ>-NNNNNN.parquet), one frame per Δ
    cw_frames: dict[str, list[pl.LazyFrame]] = field(default_factory=dict)
    # worker → source → re-evaluation delays Δ (ms) found as <src>_cw<Δ>_earliest_ns columns
    cw_deltas: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # worker → every column name available after joining the commit-wait frames
    columns: dict[str, set[str]] = field(default_factory=dict)


def _scan(directory: Path, prefix: str, empty_schema: Any) -> pl.LazyFrame:
    files = part_files(directory, prefix)
    if not files:
        return pl.from_arrow(empty_schema.empty_table()).lazy()  # type: ignore[union-attr]
    return pl.scan_parquet([str(f) for f in files])


def cw_columns(columns: list[str], source: str) -> list[int]:
    """Re-evaluation delays Δ (ms) present as ``<source>_cw<Δ>_earliest_ns`` columns."""
    pat = re.compile(rf"^{re.escape(source)}_cw(\d+)_earliest_ns$")
    return sorted(int(m.group(1)) for c in columns if (m := pat.match(c)))


def load(results: ResultsDir, settings: AnalysisSettings | None = None) -> Traces:
    """Open a results folder once ``skewlab.results.open_results`` has checked it (every part's
    footer, counts against rows; else ResultsError naming the file: the data pages are read
    once, by the analysis, which names a part damaged inside through ``read_errors_named``);
    then nothing is read into memory beyond schemas and a bound check."""
    open_results(results.root, data=False)
    spec = json.loads(results.spec_path.read_text())
    meta: dict[str, Any] = {}
    if results.metadata_path.exists():
        meta = json.loads(results.metadata_path.read_text())
    nodes = spec.get("nodes") or []
    coords = [n["name"] for n in nodes if n.get("role") == "coordinator"]
    if len(coords) != 1:
        raise ValueError(f"{results.spec_path}: exactly one coordinator node expected")
    workers = [n["name"] for n in nodes if n.get("role", "worker") == "worker"]
    sources = list(spec.get("sources") or [])
    sends = _scan(results.node_dir(coords[0]), "events", send_schema(sources))
    receipts = {w: _scan(results.node_dir(w), "events", receipt_schema(sources)) for w in workers}
    truth = bool(meta.get("truth_available", True))
    t = Traces(
        results=results,
        spec=spec,
        metadata=meta,
        coordinator=coords[0],
        workers=workers,
        sources=sources,
        sends=sends,
        receipts=receipts,
        truth_available=truth,
        settings=settings or AnalysisSettings.from_spec(spec),
    )
    t.bounded = _bounded_sources(t)
    for w, lf in receipts.items():
        names = list(lf.collect_schema().names())
        frames = []
        for d in commit_wait_delays_ms(results.node_dir(w)):
            f = pl.scan_parquet([str(x) for x in part_files(results.node_dir(w), f"cw{d}")])
            cols = [c for c in f.collect_schema().names() if c not in names or c == "event_id"]
            frames.append(f.select(cols).unique(subset="event_id", keep="first"))
            names += [c for c in cols if c != "event_id"]
        t.cw_frames[w] = frames
        t.columns[w] = set(names)
        t.cw_deltas[w] = {s: cw_columns(names, s) for s in sources}
    return t


# What reading a part damaged inside its data pages raises from polars or pyarrow (a polars
# panic is a BaseException: it is caught only to name the part, then raised again).
READ_ERRORS: tuple[type[BaseException], ...] = (
    pl.exceptions.PolarsError,
    pl.exceptions.PanicException,
    OSError,
    ValueError,
)


@contextlib.contextmanager
def read_errors_named(results: ResultsDir) -> Iterator[None]:
    """Run a reader of ``results``' traces; when a read fails, read every part whole
    (``check_traces``) so that a damaged part ends in ResultsError naming it; any other
    failure is raised as it was."""
    try:
        yield
    except READ_ERRORS:
        check_traces(results)  # raises ResultsError when a part is damaged
        raise


def recorded_bounded(metadata: dict[str, Any]) -> dict[str, bool]:
    """Per source, whether it returns intervals by design, as metadata.json records it
    (``"sources": {name: {"bounded": bool}}``); empty for folders written before the field."""
    facts = metadata.get("sources")
    if not isinstance(facts, dict):
        return {}
    out: dict[str, bool] = {}
    for name, f in facts.items():
        if isinstance(f, dict) and "bounded" in f:
            out[name] = bool(f["bounded"])
    return out


def _bounded_sources(t: Traces) -> dict[str, bool]:
    """A source is bounded if the metadata says so (older folders: if ``LEGACY_BOUNDED`` names
    it), or if any reading in the data has earliest ≠ latest."""
    recorded = recorded_bounded(t.metadata)
    out = {s: recorded.get(s, s in LEGACY_BOUNDED) for s in t.sources}
    todo = [s for s in t.sources if not out[s]]
    if not todo:
        return out
    for lf in [t.sends, *t.receipts.values()]:
        names = set(lf.collect_schema().names())
        exprs = []
        for s in todo:
            _, lo, hi, _ = source_columns(s)
            if lo in names and hi in names:
                exprs.append((pl.col(lo) != pl.col(hi)).any().alias(s))
        if not exprs:
            continue
        row = lf.select(exprs).collect().row(0, named=True)
        for s, v in row.items():
            out[s] = out[s] or bool(v)
    return out
