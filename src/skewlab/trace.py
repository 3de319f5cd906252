"""On-disk history: versioned Parquet schemas, batch writers and loaders (docs/TRACES.md).

A node writes its trace as numbered Parquet part files, each written whole to a hidden name and
renamed into place, so a crash loses at most the batch still in memory and never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skewlab.net.wire import NO_VALUE

# 1: walking skeleton. 2: receipts carry the coordinator's send readings from the wire
# (send_<source>_*), commit-wait parts, counts.json.
TRACE_VERSION = 2
_META = {b"skewlab.trace_version": str(TRACE_VERSION).encode()}
COMPRESSION = "lz4"  # cheapest of pyarrow's codecs to write; the receive loop pays for flushes


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one trace file: lz4, no dictionary pages (the columns are mostly distinct
    integers: half the write cost), and the 32/64-bit numeric columns BYTE_STREAM_SPLIT
    (nanosecond timestamps differ in their low bytes only: about half the size and half the
    write time with lz4; readers need Parquet format 2.11: pyarrow ≥ 16, polars ≥ 1)."""
    split = [f.name for f in table.schema
             if (pa.types.is_integer(f.type) and f.type.bit_width >= 32)
             or pa.types.is_floating(f.type)]  # fmt: skip
    pq.write_table(table, path, compression=COMPRESSION, use_dictionary=False,
                   use_byte_stream_split=split or False)  # fmt: skip


def source_columns(source: str) -> tuple[str, str, str, str]:
    """Column names of one source's reading: estimate, earliest, latest, status."""
    return (
        f"{source}_estimate_ns",
        f"{source}_earliest_ns",
        f"{source}_latest_ns",
        f"{source}_status",
    )


def send_source_columns(source: str) -> tuple[str, str, str, str]:
    """Receipt columns holding the coordinator's send reading of ``source`` (from the wire).

    Order is the wire's: status, estimate, earliest, latest.
    """
    e, lo, hi, st = source_columns(f"send_{source}")
    return st, e, lo, hi


def commit_wait_columns(source: str, delay_ms: int) -> tuple[str, str, str]:
    """Columns of one source's receipt reading re-evaluated at T+Δ: earliest, latest, status."""
    p = f"{source}_cw{delay_ms}"
    return f"{p}_earliest_ns", f"{p}_latest_ns", f"{p}_status"


def commit_wait_age_column(delay_ms: int) -> str:
    """Local time elapsed between the receipt and its T+Δ re-evaluation, ns (≥ Δ)."""
    return f"cw{delay_ms}_age_ns"


# Commit-wait status values besides the Status enum (0..2):
CW_NO_REFINEMENT = -1  # the source has no retrospective refinement (no reading_at): no values


def _source_fields(sources: Sequence[str]) -> list[pa.Field]:
    out: list[pa.Field] = []
    for s in sources:
        e, lo, hi, st = source_columns(s)
        out += [
            pa.field(e, pa.int64()),
            pa.field(lo, pa.int64()),
            pa.field(hi, pa.int64()),
            pa.field(st, pa.int8()),
        ]
    return out


def _send_source_fields(sources: Sequence[str]) -> list[pa.Field]:
    out: list[pa.Field] = []
    for s in sources:
        st, e, lo, hi = send_source_columns(s)
        out += [
            pa.field(st, pa.int8()),
            pa.field(e, pa.int64()),
            pa.field(lo, pa.int64()),
            pa.field(hi, pa.int64()),
        ]
    return out


def receipt_schema(sources: Sequence[str]) -> pa.Schema:
    """One row per unique event received by a worker, in arrival order."""
    return pa.schema(
        [
            pa.field("event_id", pa.uint64(), nullable=False),
            pa.field("seq", pa.uint64(), nullable=False),
            pa.field("truth_ns", pa.int64()),  # true receipt time; null: none (imported)
            pa.field("local_ns", pa.int64(), nullable=False),  # worker's clock at receipt
            pa.field("send_local_ns", pa.int64(), nullable=False),  # coordinator's clock, from wire
            *_source_fields(sources),
            *_send_source_fields(sources),  # coordinator's send readings, from the wire
        ],
        metadata=_META,
    )


def wire_sentinel_columns(sources: Sequence[str]) -> list[str]:
    """Receipt columns copied from the wire, where NO_VALUE means null."""
    return [c for s in sources for c in send_source_columns(s)[1:]]


def send_schema(sources: Sequence[str]) -> pa.Schema:
    """One row per event broadcast by the coordinator."""
    return pa.schema(
        [
            pa.field("event_id", pa.uint64(), nullable=False),
            pa.field("seq", pa.uint64(), nullable=False),
            pa.field("truth_ns", pa.int64()),  # true send time; null: none (imported)
            pa.field("local_ns", pa.int64(), nullable=False),  # coordinator's clock at send
            pa.field("scheduled_delay_ns", pa.int64(), nullable=False),
            pa.field("pacing_error_ns", pa.int64(), nullable=False),  # actual − intended send
            pa.field("workers_sent", pa.uint16(), nullable=False),
            pa.field("workers_failed", pa.uint16(), nullable=False),
            *_source_fields(sources),
        ],
        metadata=_META,
    )


def commit_wait_prefix(delay_ms: int) -> str:
    """Part-file prefix of a worker's re-evaluations at T+Δ (``cw<Δ ms>-NNNNNN.parquet``)."""
    return f"cw{delay_ms}"


def commit_wait_schema(sources: Sequence[str], delay_ms: int) -> pa.Schema:
    """One row per receipt re-evaluated at T+Δ: event_id, the age of the re-evaluation and
    every listed source's refined [earliest, latest] and status (null values when none)."""
    fields = [
        pa.field("event_id", pa.uint64(), nullable=False),
        pa.field(commit_wait_age_column(delay_ms), pa.int64(), nullable=False),
    ]
    for s in sources:
        lo, hi, st = commit_wait_columns(s, delay_ms)
        fields += [pa.field(lo, pa.int64()), pa.field(hi, pa.int64()), pa.field(st, pa.int8())]
    meta = dict(_META)
    meta[b"skewlab.commit_wait_delay_ms"] = str(delay_ms).encode()
    return pa.schema(fields, metadata=meta)


NTP_SCHEMA = pa.schema(
    [
        pa.field("server", pa.string()),
        pa.field("t1_ns", pa.int64()),
        pa.field("t2_ns", pa.int64()),
        pa.field("t3_ns", pa.int64()),
        pa.field("t4_ns", pa.int64()),
        pa.field("offset_ns", pa.int64()),
        pa.field("delay_ns", pa.int64()),
        pa.field("root_distance_ns", pa.int64()),
        pa.field("truth_t1_ns", pa.int64()),
        pa.field("truth_t4_ns", pa.int64()),
    ],
    metadata=_META,
)


def ntp_row(sample: Any) -> tuple[Any, ...]:
    """An ``NtpSample`` as a row of NTP_SCHEMA (the real node and the simulator write the same
    rows); the schema's column names are the sample's attribute names."""
    return tuple(getattr(sample, name) for name in NTP_SCHEMA.names)


# -- truth traces: traces/<node>/truth-NNNNNN.parquet, written by a node's truth prober
# (node/prober.py), read by the analysis (analysis/truth.py). One row per valid exchange with the
# reference clock; T1/T4 on the node's clock (what its sources read), T2/T3 on the reference's.
TRUTH_PREFIX = "truth"
TRUTH_SCHEMA = pa.schema(
    [
        pa.field("t1_ns", pa.int64(), nullable=False),  # node clock, read just before sending
        pa.field("t2_ns", pa.int64(), nullable=False),  # reference: request received
        pa.field("t3_ns", pa.int64(), nullable=False),  # reference: reply sent
        pa.field("t4_ns", pa.int64(), nullable=False),  # node clock at the reply's arrival
        pa.field("truth_t1_ns", pa.int64()),  # host clock at T1 (exact truth on emulated runs)
        pa.field("truth_t4_ns", pa.int64()),  # host clock at T4
        # the node clock's step gap just before T1 and just after T4: realtime − monotonic of
        # the host plus an emulated clock's own steps and strobes; it changes only when the
        # node clock steps (slewing moves both), so a change flags a step (analysis/truth.py)
        pa.field("step_gap_t1_ns", pa.int64()),
        pa.field("step_gap_t4_ns", pa.int64()),
        pa.field("step_gap_unc_ns", pa.int64()),  # how far each may be off (the reads' spread)
    ],
    metadata=_META,
)


# -- link traces: traces/_links/<from>~<to>.parquet, written by the link emulator (net/link.py),
# read by the analysis (analysis/links.py). 1: first version. 2: the file metadata's
# ``skewlab.link`` JSON also holds ``requested``: per direction, the figures the link was asked
# for (mean/p50/p99 delay, loss rate...), computed by the emulator from its settings.
LINK_TRACE_VERSION = 2
FORWARD, BACK = 0, 1  # direction of a datagram: forward = from the path's source
LINK_DIRECTIONS = {FORWARD: "forward", BACK: "back"}
DELIVERED, LOST, SEND_ERROR, UNSENT = 0, 1, 2, 3  # fate of a datagram copy
LINK_FATES = {DELIVERED: "delivered", LOST: "lost", SEND_ERROR: "send_error", UNSENT: "unsent"}

LINK_SCHEMA = pa.schema(
    [
        pa.field("direction", pa.int8(), nullable=False),  # 0 forward, 1 back
        pa.field("seq", pa.uint64(), nullable=False),  # per-direction arrival number
        pa.field("copy", pa.int8(), nullable=False),  # 0 original, 1 duplicate
        pa.field("size", pa.int32(), nullable=False),  # datagram bytes
        pa.field("truth_in_ns", pa.int64(), nullable=False),  # host clock when the relay got it
        pa.field("truth_out_ns", pa.int64()),  # host clock just before the relay sent it
        pa.field("sampled_delay_ns", pa.int64()),  # drawn from the delay distribution
        pa.field("scheduled_delay_ns", pa.int64()),  # sampled + hold-back + rate queueing
        pa.field("held", pa.bool_(), nullable=False),  # reorder hold-back applied
        pa.field("fate", pa.int8(), nullable=False),  # 0 delivered 1 lost 2 send_error 3 unsent
    ]
)


class PartWriter:
    """Buffers row tuples and writes numbered Parquet parts of ``batch_rows`` rows.

    Rows are kept as tuples (one cheap append in the hot path) and turned into columns only at
    flush. Columns named in ``sentinel_columns`` hold ``wire.NO_VALUE`` for "no value" and are
    written as null.
    """

    def __init__(
        self,
        directory: Path,
        prefix: str,
        schema: pa.Schema,
        batch_rows: int = 8192,
        sentinel_columns: Iterable[str] = (),
    ) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.batch_rows = batch_rows
        self.names = schema.names
        self._struct = pa.struct(list(schema))
        self._sentinel = [schema.get_field_index(c) for c in sentinel_columns]
        self._rows: list[tuple] = []
        self._batches: list[pa.RecordBatch] = []  # column batches (append_columns), in order
        self._batched_rows = 0
        self._part = 0
        self.rows_written = 0
        self.parts_written = 0

    @property
    def pending(self) -> int:
        return len(self._rows) + self._batched_rows

    def append(self, row: Sequence[object]) -> None:
        """Buffer one row (values in schema order); writes a part when the batch is full."""
        rows = self._rows
        rows.append(row if type(row) is tuple else tuple(row))
        if len(rows) >= self.batch_rows:
            self.flush()

    def append_columns(self, columns: Sequence[pa.Array]) -> None:
        """Buffer a batch given as columns (arrow arrays in schema order; no sentinel handling:
        nulls are nulls); writes a part when at least ``batch_rows`` rows are pending."""
        if self._rows:  # keep the order of rows appended before
            self._batches += self.to_table(self.take()).to_batches()
            self._batched_rows = sum(len(b) for b in self._batches)
        b = pa.RecordBatch.from_arrays(list(columns), schema=self.schema)
        self._batches.append(b)
        self._batched_rows += len(b)
        if self.pending >= self.batch_rows:
            self.flush()

    def take(self) -> list[tuple]:
        """Remove and return the buffered rows (for a caller that writes them elsewhere)."""
        rows, self._rows = self._rows, []
        return rows

    def to_table(self, rows: list[tuple]) -> pa.Table:
        """Rows → a table of this writer's schema, NO_VALUE sentinels → null."""
        arr = pa.array(rows, type=self._struct)
        cols = arr.flatten()
        for i in self._sentinel:  # int64 columns, on numpy: a node process never imports
            c = cols[i]  # pyarrow.compute (~0.1 CPU-s per process on a slow host)
            if c.null_count:  # a row gave None itself (rare): pyarrow.compute keeps it null
                import pyarrow.compute as pc

                is_none = pc.equal(c, NO_VALUE)
                if pc.any(is_none).as_py():
                    cols[i] = pc.if_else(is_none, pa.scalar(None, c.type), c)
                continue
            v = c.to_numpy()
            is_none = v == NO_VALUE
            if is_none.any():
                cols[i] = pa.array(v, type=c.type, mask=is_none)
        return pa.Table.from_arrays(cols, schema=self.schema)

    def flush(self) -> None:
        """Write the buffered rows as the next part file (whole file, then rename)."""
        rows = self.take()
        batches, self._batches, self._batched_rows = self._batches, [], 0
        if not rows and not batches:
            return
        if batches:
            if rows:
                batches += self.to_table(rows).to_batches()
            table = pa.Table.from_batches(batches, schema=self.schema)
            rows_n = table.num_rows
        else:
            table = self.to_table(rows)
            rows_n = len(rows)
        path = self.dir / f"{self.prefix}-{self._part:06d}.parquet"
        tmp = path.with_name("." + path.name + ".tmp")
        write_parquet(table, tmp)
        os.replace(tmp, path)
        self._part += 1
        self.parts_written += 1
        self.rows_written += rows_n

    close = flush


class TraceError(ValueError):
    """A trace part that cannot be used. ``reason``: ``not_parquet`` (no Parquet magic),
    ``corrupt`` (Parquet framing or data unreadable), ``bad_version`` (no or a newer
    ``skewlab.trace_version``), ``bad_schema`` (a required column missing or of another type)."""

    def __init__(self, reason: str, where: str, detail: str = "") -> None:
        super().__init__(f"{where}: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.where = where


TRACE_ERROR_REASONS = ("not_parquet", "corrupt", "bad_version", "bad_schema")
_PARQUET_MAGIC = b"PAR1"


def read_part(source: Path | bytes, schema: pa.Schema | None = None) -> pa.Table:
    """Read one part file (a path or its bytes) and check it is a skewlab trace of at most
    this version with every column of ``schema`` (if given); raises only TraceError."""
    where = str(source) if isinstance(source, Path) else "<bytes>"
    with _part_errors(where):
        table = pq.read_table(_part_source(source, where))
    _check_part_schema(table.schema, where, schema)
    return table


def check_part(path: Path, schema: pa.Schema | None = None) -> int:
    """What ``read_part`` checks, from the part's footer alone (Parquet framing, trace version,
    columns): the rows it holds. Damage inside the data pages is found only by reading them
    (``read_part``); raises only TraceError."""
    where = str(path)
    with _part_errors(where):
        f = pq.ParquetFile(_part_source(path, where))
        have, rows = f.schema_arrow, int(f.metadata.num_rows)
    _check_part_schema(have, where, schema)
    return rows


def _part_source(source: Path | bytes, where: str) -> Any:
    """What pyarrow reads ``source`` from, once its first bytes are the Parquet magic."""
    if isinstance(source, Path):
        with open(source, "rb") as f:
            head = f.read(4)
        buf: Any = source
    else:
        head, buf = bytes(source[:4]), pa.BufferReader(source)
    if head != _PARQUET_MAGIC:
        raise TraceError("not_parquet", where)
    return buf


@contextlib.contextmanager
def _part_errors(where: str) -> Iterator[None]:
    """Turn what a Parquet reader raises on a damaged part into TraceError("corrupt")."""
    try:
        yield
    except TraceError:
        raise
    except (pa.ArrowException, OSError, ValueError, IndexError, UnicodeDecodeError) as e:
        detail = " ".join(str(e).split())[:200]  # one line: the reader's message may span several
        raise TraceError("corrupt", where, f"{type(e).__name__}: {detail}") from None


def _check_part_schema(have: pa.Schema, where: str, schema: pa.Schema | None) -> None:
    version = (have.metadata or {}).get(b"skewlab.trace_version", b"")
    if not version.isdigit() or not 1 <= int(version) <= TRACE_VERSION:
        raise TraceError("bad_version", where, repr(version[:20]))
    if schema is not None:
        for f in schema:
            i = have.get_field_index(f.name)
            if i < 0 or have.field(i).type != f.type:
                got = "missing" if i < 0 else str(have.field(i).type)
                raise TraceError("bad_schema", where, f"{f.name}: {got}, expected {f.type}")


def part_files(directory: Path, prefix: str) -> list[Path]:
    """The complete part files of one trace, in write order (temporaries are hidden)."""
    return sorted(directory.glob(f"{prefix}-*.parquet"))


def read_parts(directory: Path, prefix: str, schema: pa.Schema | None = None) -> pa.Table:
    """Read every part of one node's trace; an absent trace is an empty table (of ``schema``)."""
    files = part_files(directory, prefix)
    if not files:
        if schema is None:
            raise FileNotFoundError(f"no {prefix} trace in {directory}")
        return schema.empty_table()
    tables = [read_part(f, schema) for f in files]
    return pa.concat_tables(tables, promote_options="default")


_CW_PART = re.compile(r"^cw(\d+)-\d{6}\.parquet$")


def commit_wait_delays_ms(directory: Path) -> list[int]:
    """The Δ values (ms) for which a worker wrote commit-wait parts, ascending ([] if none)."""
    if not directory.is_dir():
        return []
    found = {int(m.group(1)) for p in directory.iterdir() if (m := _CW_PART.match(p.name))}
    return sorted(found)


def load_receipts(directory: Path, sources: Sequence[str]) -> pa.Table:
    """A worker's receipts with its commit-wait re-evaluations beside them (joined by event_id).

    Receipts whose re-evaluation at some Δ was never done (the run stopped before T+Δ, or the
    part was lost in a crash) have null columns for that Δ. Rows stay in arrival order.
    """
    events = read_parts(directory, "events", receipt_schema(sources))
    delays = commit_wait_delays_ms(directory)
    if not delays:
        return events
    names = list(events.column_names)
    table = events.append_column("__order", pa.array(range(events.num_rows), pa.int64()))
    for d in delays:
        cw = read_parts(directory, commit_wait_prefix(d))
        names += [c for c in cw.column_names if c != "event_id"]
        table = table.join(cw, "event_id", join_type="left outer")
    return table.sort_by("__order").select(names)
