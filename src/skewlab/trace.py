"""On-disk history: versioned Parquet schemas, batch writers and loaders (docs/TRACES.md).

A node writes its trace as numbered Parquet part files, each written whole and renamed into
place, so a crash loses at most the batch in memory and never leaves a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TRACE_VERSION = 1
_META = {b"skewlab.trace_version": str(TRACE_VERSION).encode()}


def source_columns(source: str) -> tuple[str, str, str, str]:
    """Column names of one source's reading: estimate, earliest, latest, status."""
    return (
        f"{source}_estimate_ns",
        f"{source}_earliest_ns",
        f"{source}_latest_ns",
        f"{source}_status",
    )


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


def receipt_schema(sources: Sequence[str]) -> pa.Schema:
    """One row per unique event received by a worker."""
    return pa.schema(
        [
            pa.field("event_id", pa.uint64(), nullable=False),
            pa.field("seq", pa.uint64(), nullable=False),
            pa.field("truth_ns", pa.int64(), nullable=False),  # true receipt time
            pa.field("local_ns", pa.int64(), nullable=False),  # worker's clock at receipt
            pa.field("send_local_ns", pa.int64(), nullable=False),  # coordinator's clock, from wire
            *_source_fields(sources),
        ],
        metadata=_META,
    )


def send_schema(sources: Sequence[str]) -> pa.Schema:
    """One row per event broadcast by the coordinator."""
    return pa.schema(
        [
            pa.field("event_id", pa.uint64(), nullable=False),
            pa.field("seq", pa.uint64(), nullable=False),
            pa.field("truth_ns", pa.int64(), nullable=False),  # true send time
            pa.field("local_ns", pa.int64(), nullable=False),  # coordinator's clock at send
            pa.field("scheduled_delay_ns", pa.int64(), nullable=False),
            pa.field("pacing_error_ns", pa.int64(), nullable=False),  # actual − intended send
            pa.field("workers_sent", pa.uint16(), nullable=False),
            pa.field("workers_failed", pa.uint16(), nullable=False),
            *_source_fields(sources),
        ],
        metadata=_META,
    )


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


class PartWriter:
    """Buffers rows column-wise and writes numbered Parquet parts of ``batch_rows`` rows."""

    def __init__(self, directory: Path, prefix: str, schema: pa.Schema, batch_rows: int = 8192):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.batch_rows = batch_rows
        self.names = schema.names
        self._cols: list[list] = [[] for _ in self.names]
        self._part = 0
        self.rows_written = 0

    @property
    def pending(self) -> int:
        return len(self._cols[0])

    def append(self, row: Sequence[object]) -> None:
        for col, v in zip(self._cols, row, strict=True):
            col.append(v)
        if len(self._cols[0]) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        n = len(self._cols[0])
        if n == 0:
            return
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(self._cols, self.schema, strict=True)],
            schema=self.schema,
        )
        path = self.dir / f"{self.prefix}-{self._part:06d}.parquet"
        tmp = path.with_name("." + path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self._part += 1
        self.rows_written += n
        self._cols = [[] for _ in self.names]

    close = flush


def part_files(directory: Path, prefix: str) -> list[Path]:
    return sorted(directory.glob(f"{prefix}-*.parquet"))


def read_parts(directory: Path, prefix: str, schema: pa.Schema | None = None) -> pa.Table:
    """Read every part of one node's trace; an absent trace is an empty table (of ``schema``)."""
    files = part_files(directory, prefix)
    if not files:
        if schema is None:
            raise FileNotFoundError(f"no {prefix} trace in {directory}")
        return schema.empty_table()
    tables = [pq.read_table(f) for f in files]
    return pa.concat_tables(tables, promote_options="default")
