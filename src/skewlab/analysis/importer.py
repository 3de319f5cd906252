"""Import traces recorded by the original evaluation framework (CSV) into a results folder.

The legacy framework wrote ``coordinator.csv`` and one ``worker_<node>.csv`` per worker. They
hold no true time, so the imported traces carry ``truth_ns`` null and metadata.json says
``truth_available: false``; the analysis then reports every truth-based metric as unavailable.
Mapping (docs/METHODOLOGY.md, "Imported legacy traces"):

- ``system``: the node's own clock, ``send_time_ns`` (coordinator) / ``receive_time_ns``
  (worker); a point reading (earliest = estimate = latest).
- ``ntp``: ``ntp_timestamp_ns``, a point reading.
- ``chronotick`` (only if some file has ChronoTick columns): ``ct_timestamp_ns`` as the
  estimate; on workers ``ct_lower_bound_ns`` / ``ct_upper_bound_ns`` as [earliest, latest]. The
  coordinator's CSV has no bounds, so its chronotick earliest/latest are null.
- The receipt's send readings (what the wire carried): ``system`` from the worker's
  ``coordinator_send_time_ns``; ``ntp`` and ``chronotick`` from coordinator.csv's row of the
  same event id (null if the coordinator has no row for it).
- Statuses are null: the legacy traces record none. Unmapped legacy columns are kept verbatim
  as ``legacy_<name>`` columns; a send's pacing error (not recorded) is null.

Malformed input stops the import with one line naming the file, line and column.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skewlab import __version__
from skewlab.store import ResultsDir, check_name, write_json_atomic
from skewlab.timebase import host_ns
from skewlab.trace import (
    COMPRESSION,
    receipt_schema,
    send_schema,
    send_source_columns,
    source_columns,
)

COORDINATOR = "coordinator"
FORMAT = "legacy-csv-v1"

COORD_REQUIRED = (
    "event_id", "sequence_number", "send_time_ns", "send_time_iso", "ntp_offset_ms",
    "ntp_timestamp_ns", "pattern_delay_ms", "workers_sent", "workers_failed",
)  # fmt: skip
COORD_CT = ("ct_offset_ms", "ct_timestamp_ns")
WORKER_REQUIRED = (
    "event_id", "node_id", "sequence_number", "receive_time_ns", "coordinator_send_time_ns",
    "ntp_offset_ms", "ntp_uncertainty_ms", "ntp_timestamp_ns",
)  # fmt: skip
WORKER_CT = (
    "ct_offset_ms", "ct_drift_rate", "ct_uncertainty_ms", "ct_confidence", "ct_source",
    "ct_prediction_time", "ct_timestamp_ns", "ct_lower_bound_ns", "ct_upper_bound_ns",
)  # fmt: skip
WORKER_CT_OPTIONAL = ("ct_uncertainty_30s_ms", "ct_uncertainty_60s_ms")

# Columns that must have a value on every row (the rest may be empty = no value).
NOT_EMPTY = frozenset(
    {"event_id", "sequence_number", "send_time_ns", "receive_time_ns", "coordinator_send_time_ns"}
)
# Integer columns (ns, ids, counts); every other column with a numeric meaning is a float.
INTS = frozenset(
    {
        "event_id", "sequence_number", "send_time_ns", "ntp_timestamp_ns", "ct_timestamp_ns",
        "receive_time_ns", "coordinator_send_time_ns", "ct_lower_bound_ns", "ct_upper_bound_ns",
        "workers_sent", "workers_failed",
    }
)  # fmt: skip
FLOATS = frozenset(
    {
        "ntp_offset_ms", "ct_offset_ms", "pattern_delay_ms", "ntp_uncertainty_ms",
        "ct_drift_rate", "ct_uncertainty_ms", "ct_confidence", "ct_uncertainty_30s_ms",
        "ct_uncertainty_60s_ms",
    }
)  # fmt: skip
UINT16 = frozenset({"workers_sent", "workers_failed"})
UINT64 = frozenset({"event_id", "sequence_number"})
# Columns that become schema columns; the rest are kept as legacy_<name>.
MAPPED = frozenset(
    {
        "event_id", "sequence_number", "send_time_ns", "receive_time_ns",
        "coordinator_send_time_ns", "ntp_timestamp_ns", "ct_timestamp_ns", "ct_lower_bound_ns",
        "ct_upper_bound_ns", "workers_sent", "workers_failed",
    }
)  # fmt: skip

_INT = re.compile(r"^[+-]?\d+$")
_NODE = re.compile(r"^worker_([A-Za-z0-9][A-Za-z0-9_.-]*)\.csv$")


class LegacyImportError(Exception):
    """The legacy folder cannot be imported; the message is one line naming file/line/column."""


@dataclass
class Table:
    """One parsed CSV: its header and typed columns (None = empty field)."""

    path: Path
    header: list[str]
    columns: dict[str, list[Any]]
    rows: int
    sha256: str
    lines: list[int]  # the file line of each data row (1 = header)
    # the text of worker-count columns written as address lists ("host:port,host:port")
    address_lists: dict[str, list[str | None]] = field(default_factory=dict)


_ADDRESS = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")


def _parse_workers(text: str) -> int:
    """A worker-count column: an integer, or — as the original coordinator wrote it — the
    comma-joined ``host:port`` addresses of those workers (their number)."""
    if _INT.match(text):
        return int(text)
    parts = [p.strip() for p in text.split(",")]
    if not all(_ADDRESS.match(p) for p in parts):
        raise ValueError("not an integer nor a list of host:port addresses")
    return len(parts)


def _parse_int(text: str) -> int:
    if not _INT.match(text):
        raise ValueError("not an integer")
    return int(text)


def _parse_float(text: str) -> float:
    return float(text)


def _kind(name: str) -> str:
    return "int" if name in INTS else "float" if name in FLOATS else "str"


def _lines(path: Path) -> Iterator[str]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # tolerate a byte-order mark
        yield from f


def read_csv(path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Table:
    """Read one legacy CSV strictly: every required column present, every row the header's
    width, every value of its column's type."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        reader = csv.reader(_lines(path))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise LegacyImportError(f"{path}: empty file (no header line)") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise LegacyImportError(f"{path}:1: missing column(s) {', '.join(missing)}")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise LegacyImportError(f"{path}:1: duplicate column(s) {', '.join(dup)}")
        parsers: list[Callable[[str], Any] | None] = []
        for h in header:
            k = _kind(h)
            if h in UINT16:
                parsers.append(_parse_workers)
                continue
            parsers.append(_parse_int if k == "int" else _parse_float if k == "float" else None)
        lists: dict[str, list[str | None]] = {h: [] for h in header if h in UINT16}
        cols: list[list[Any]] = [[] for _ in header]
        lines: list[int] = []
        rows = 0
        for rec in reader:
            if not rec or rec == [""]:
                continue  # blank line
            line = reader.line_num
            if len(rec) != len(header):
                raise LegacyImportError(
                    f"{path}:{line}: {len(rec)} fields, the header has {len(header)}"
                )
            for i, (name, raw) in enumerate(zip(header, rec, strict=True)):
                text = raw.strip()
                if name in lists:
                    lists[name].append(None if _INT.match(text) else text)
                if text == "":
                    if name in NOT_EMPTY:
                        raise LegacyImportError(f"{path}:{line}: column {name}: empty")
                    # the original coordinator left a worker list empty when there were none
                    cols[i].append(0 if name in UINT16 else None)
                    continue
                parse = parsers[i]
                if parse is None:
                    cols[i].append(raw)
                    continue
                try:
                    v = parse(text)
                except ValueError:
                    what = ("an integer" if parse is _parse_int else
                            "an integer nor a list of host:port addresses"
                            if parse is _parse_workers else "a number")  # fmt: skip
                    raise LegacyImportError(
                        f"{path}:{line}: column {name}: {text!r} is not {what}"
                    ) from None
                if name in UINT64 and not 0 <= v < 2**64:
                    raise LegacyImportError(f"{path}:{line}: column {name}: {v} out of range")
                if name in UINT16 and not 0 <= v < 2**16:
                    raise LegacyImportError(f"{path}:{line}: column {name}: {v} out of range")
                if parse is _parse_int and name not in UINT64 | UINT16 and abs(v) >= 2**63:
                    raise LegacyImportError(f"{path}:{line}: column {name}: {v} out of range")
                cols[i].append(v)
            lines.append(line)
            rows += 1
    except csv.Error as e:
        raise LegacyImportError(f"{path}:{reader.line_num}: malformed CSV: {e}") from None
    except UnicodeDecodeError as e:
        raise LegacyImportError(f"{path}: not UTF-8 text ({e.reason})") from None
    kept = {h: v for h, v in lists.items() if any(x for x in v)}  # lists seen in this file
    return Table(path, header, dict(zip(header, cols, strict=True)), rows, digest, lines, kept)


def _delay_ns(path: Path, values: list[float | None]) -> list[int | None]:
    """pattern_delay_ms → integer ns (a schedule parameter, not a clock reading): decimal
    arithmetic on the number's shortest text, rounded half-even to the ns."""
    out: list[int | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        try:
            out.append(int((Decimal(repr(v)) * 1_000_000).to_integral_value()))
        except InvalidOperation:  # inf / nan
            raise LegacyImportError(
                f"{path}: column pattern_delay_ms: {v!r} is not a finite number"
            ) from None
    return out


def _point(values: list[int | None]) -> tuple[list, list, list, list]:
    """A point source's (estimate, earliest, latest, status) columns: one value, no status."""
    return values, values, values, [None] * len(values)


def _check_bounds(t: Table, lo: list[int | None], hi: list[int | None]) -> None:
    for line, a, b in zip(t.lines, lo, hi, strict=True):
        if (a is None) != (b is None):
            raise LegacyImportError(
                f"{t.path}:{line}: columns ct_lower_bound_ns, ct_upper_bound_ns: set both or "
                "neither"
            )
        if a is not None and b is not None and a > b:
            raise LegacyImportError(
                f"{t.path}:{line}: column ct_lower_bound_ns: {a} > ct_upper_bound_ns {b}"
            )


def _schema(base: pa.Schema, nullable: tuple[str, ...], legacy: list[str]) -> pa.Schema:
    """The node schema with the named columns nullable and the legacy columns appended."""
    for name in nullable:
        i = base.get_field_index(name)
        base = base.set(i, base.field(i).with_nullable(True))
    for name in legacy:
        typ = {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}[_kind(name)]
        base = base.append(pa.field(f"legacy_{name}", typ))
    return base


def _write(root: Path, node: str, schema: pa.Schema, cols: dict[str, list[Any]]) -> None:
    d = ResultsDir(root).node_dir(node)
    d.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pydict({n: cols[n] for n in schema.names}, schema=schema)
    path = d / "events-000000.parquet"
    tmp = path.with_name("." + path.name + ".tmp")
    pq.write_table(table, tmp, compression=COMPRESSION)
    tmp.replace(path)


def _reading_cols(source: str, values: tuple[list, list, list, list]) -> dict[str, list]:
    return dict(zip(source_columns(source), values, strict=True))


def find_files(src: Path) -> tuple[Path, dict[str, Path]]:
    """coordinator.csv and the worker files (node name → path) of a legacy folder."""
    if not src.is_dir():
        raise LegacyImportError(f"{src}: not a folder")
    coord = src / "coordinator.csv"
    if not coord.is_file():
        raise LegacyImportError(f"{src}: no coordinator.csv")
    workers: dict[str, Path] = {}
    for p in sorted(src.glob("worker_*.csv")):
        m = _NODE.match(p.name)
        if not m:
            raise LegacyImportError(f"{p}: worker file names must be worker_<node>.csv")
        if m.group(1) == COORDINATOR:
            raise LegacyImportError(f"{p}: a worker cannot be named {COORDINATOR!r}")
        workers[m.group(1)] = p
    if not workers:
        raise LegacyImportError(f"{src}: no worker_<node>.csv files")
    return coord, workers


def _utc_now() -> str:
    """The host's wall clock now, ISO 8601 UTC to the second (when the import ran)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(host_ns() // 1_000_000_000))


def import_legacy(src: Path, out: Path, name: str | None = None) -> ResultsDir:
    """Convert a legacy folder into a new results folder under ``out``; returns it. A ``name``
    given is checked (one folder name: ``store.check_name``) before anything is read, and an
    existing ``out/name`` is refused, never renamed."""
    if name is not None:
        try:
            check_name(name, "--name")
        except ValueError as e:
            raise LegacyImportError(str(e)) from None
        if (out / name).exists():
            raise LegacyImportError(f"{out / name} already exists; choose another --name")
    coord_path, worker_paths = find_files(src)
    co = read_csv(coord_path, COORD_REQUIRED)
    ws = {w: read_csv(p, WORKER_REQUIRED) for w, p in worker_paths.items()}
    ct = "ct_timestamp_ns" in co.columns or any("ct_timestamp_ns" in t.columns for t in ws.values())
    for t in ws.values():  # ChronoTick columns: all of them or none
        have = [c for c in WORKER_CT if c in t.columns]
        if have and len(have) != len(WORKER_CT):
            missing = [c for c in WORKER_CT if c not in t.columns]
            raise LegacyImportError(f"{t.path}:1: ChronoTick column(s) missing: {missing}")
    sources = ["system", "ntp"] + (["chronotick"] if ct else [])
    n_co = co.rows
    none_co = [None] * n_co

    # --- coordinator: the send trace
    c = co.columns
    cols: dict[str, list[Any]] = {
        "event_id": c["event_id"],
        "seq": c["sequence_number"],
        "truth_ns": none_co,  # no true time in legacy traces
        "local_ns": c["send_time_ns"],
        "scheduled_delay_ns": _delay_ns(co.path, c["pattern_delay_ms"]),
        "pacing_error_ns": none_co,  # not recorded
        "workers_sent": c["workers_sent"],
        "workers_failed": c["workers_failed"],
    }
    cols.update(_reading_cols("system", _point(c["send_time_ns"])))
    cols.update(_reading_cols("ntp", _point(c["ntp_timestamp_ns"])))
    if ct:
        est = c.get("ct_timestamp_ns", none_co)
        cols.update(_reading_cols("chronotick", (est, none_co, none_co, none_co)))
    legacy = [h for h in co.header if h not in MAPPED]
    cols.update({f"legacy_{h}": c[h] for h in legacy})
    # worker lists written as addresses: their count is workers_sent/failed; the addresses
    # themselves are kept (empty string: none; null: the row gave a count)
    for h, texts in co.address_lists.items():
        legacy.append(f"{h}_addresses")
        cols[f"legacy_{h}_addresses"] = texts
    schema = _schema(
        send_schema(sources),
        ("scheduled_delay_ns", "pacing_error_ns", "workers_sent", "workers_failed"),
        legacy,
    )
    exp_id = name or f"legacy-{src.resolve().name}"
    try:
        res = ResultsDir.create(out, exp_id, exact=name is not None)
    except FileExistsError:
        raise LegacyImportError(f"{out / exp_id} already exists; choose another --name") from None
    try:
        _write(res.root, COORDINATOR, schema, cols)
        # the coordinator's reading of each event, for the receipts' send columns
        by_id: dict[int, int] = {}
        for i, e in enumerate(c["event_id"]):
            by_id.setdefault(e, i)  # first row of a duplicated id

        files: dict[str, Any] = {co.path.name: {"rows": co.rows, "sha256": co.sha256}}
        original: dict[str, dict[str, dict[str, int]]] = {}
        for w, t in ws.items():
            r = t.columns
            n = t.rows
            none = [None] * n
            idx = [by_id.get(e) for e in r["event_id"]]

            def from_coord(col: str, idx: list[int | None] = idx) -> list[Any]:
                vals = c.get(col)
                if vals is None:
                    return [None] * len(idx)
                return [None if i is None else vals[i] for i in idx]

            rc: dict[str, Any] = {
                "event_id": r["event_id"],
                "seq": r["sequence_number"],
                "truth_ns": none,
                "local_ns": r["receive_time_ns"],
                "send_local_ns": r["coordinator_send_time_ns"],
            }
            rc.update(_reading_cols("system", _point(r["receive_time_ns"])))
            rc.update(_reading_cols("ntp", _point(r["ntp_timestamp_ns"])))
            sends = {
                "system": _point(r["coordinator_send_time_ns"]),
                "ntp": _point(from_coord("ntp_timestamp_ns")),
            }
            if ct:
                lo, hi = r.get("ct_lower_bound_ns", none), r.get("ct_upper_bound_ns", none)
                _check_bounds(t, lo, hi)
                rc.update(
                    _reading_cols("chronotick", (r.get("ct_timestamp_ns", none), lo, hi, none))
                )
                sends["chronotick"] = (from_coord("ct_timestamp_ns"), none, none, none)
            for s, (e, lo_, hi_, st) in sends.items():
                cs, ce, clo, chi = send_source_columns(s)
                rc.update({cs: st, ce: e, clo: lo_, chi: hi_})
            coord_send = from_coord("send_time_ns")
            worker_reads = {"system": r["receive_time_ns"], "ntp": r["ntp_timestamp_ns"]}
            if ct:
                worker_reads["chronotick"] = r.get("ct_timestamp_ns", none)
            original[w] = {
                src: original_causality(reads, sends[src][0], coord_send)
                for src, reads in worker_reads.items()
            }
            legacy_w = [h for h in t.header if h not in MAPPED]
            rc.update({f"legacy_{h}": r[h] for h in legacy_w})
            _write(res.root, w, _schema(receipt_schema(sources), (), legacy_w), rc)
            files[t.path.name] = {"rows": t.rows, "sha256": t.sha256}

        nodes = [{"name": COORDINATOR, "role": "coordinator"}]
        nodes += [{"name": w, "role": "worker"} for w in ws]
        # windows on the original framework's one epoch-aligned grid, so its numbers compare
        analysis = {"window_phase": "fixed"}
        write_json_atomic(res.spec_path, {"name": exp_id, "nodes": nodes, "sources": sources,
                                          "analysis": analysis})  # fmt: skip
        write_json_atomic(
            res.metadata_path,
            {
                "truth_available": False,
                "skewlab_version": __version__,
                # system and ntp are point readings; chronotick's carry bounds (on the workers)
                "sources": {s: {"bounded": s == "chronotick"} for s in sources},
                "import": {
                    "format": FORMAT,
                    "source_dir": str(src.resolve()),
                    "imported_at": _utc_now(),
                    "files": files,
                    "chronotick": ct,
                    "mapping": MAPPING,
                    # the original analysis's own causality counts, to reproduce what it
                    # published (report: "The original framework's definitions")
                    "original_definitions": {"rule": ORIGINAL_RULE, "workers": original},
                },
            },
        )
    except BaseException:
        import shutil

        shutil.rmtree(res.root, ignore_errors=True)  # never leave a half-imported folder
        raise
    return res


ORIGINAL_RULE = (
    "the original framework's causality check: a receipt violates causality when the worker's "
    "reading of a source is earlier than the coordinator's reading of that source, and, when "
    "the coordinator recorded no reading of it (its ct_* columns are empty), earlier than the "
    "coordinator's send_time_ns (its system clock); system: receive_time_ns < send_time_ns"
)


def original_causality(worker: list[int | None], coord: list[int | None],
                       coord_send: list[int | None]) -> dict[str, int]:  # fmt: skip
    """The original analysis's count for one worker and source: receipts with a worker reading
    compared with the coordinator's reading of the same source, or with its send_time_ns where
    it recorded none (``compared``), and those earlier (``violations``); ``vs_send_time`` of
    them were compared with send_time_ns (a different clock: skewlab leaves them undecided)."""
    compared = violations = vs_send = 0
    for wr, cr, cs in zip(worker, coord, coord_send, strict=True):
        ref = cr if cr is not None else cs
        if wr is None or ref is None:
            continue
        compared += 1
        violations += wr < ref
        vs_send += cr is None
    return {"compared": compared, "violations": violations, "vs_send_time": vs_send}


# What each skewlab source and column was made from (recorded in metadata.json and the report).
MAPPING = {
    "system": "coordinator send_time_ns / worker receive_time_ns (point)",
    "ntp": "ntp_timestamp_ns (point)",
    "chronotick": "ct_timestamp_ns; worker bounds [ct_lower_bound_ns, ct_upper_bound_ns]; "
    "coordinator bounds not recorded (null)",
    "send readings on receipts": "system from the worker's coordinator_send_time_ns; ntp and "
    "chronotick from coordinator.csv by event_id",
    "truth_ns": "null (the legacy traces have no true time)",
    "status": "null (not recorded)",
}
