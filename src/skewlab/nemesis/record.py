"""The nemesis's part of the history: one row per fault transition, written as it happens.

Rows live in ``traces/_nemesis/<actor>-NNNNNN.parquet`` (``ResultsDir.nemesis_dir``), one part
per row, so a crash of the actor loses nothing already applied. A fault with a ``start`` row
and no ``end`` row lasted to the end of the run (or of its actor).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from skewlab.timebase import HOST_CLOCK, TimeSource
from skewlab.trace import TRACE_VERSION, PartWriter, part_files, read_parts

FAULT_SCHEMA = pa.schema(
    [
        pa.field("truth_ns", pa.int64(), nullable=False),  # true instant the change took effect
        pa.field("recorded_ns", pa.int64(), nullable=False),  # true instant the row was written
        pa.field("actor", pa.string(), nullable=False),  # the process that applied it
        pa.field("fault", pa.int16(), nullable=False),  # index in spec.faults
        pa.field("kind", pa.string(), nullable=False),  # FaultSpec.kind
        pa.field("target", pa.string(), nullable=False),  # node, NTP server node, or path
        pa.field("phase", pa.string(), nullable=False),  # "start" | "end"
        pa.field("detail", pa.string(), nullable=False),  # JSON of the fault's parameters
    ],
    metadata={b"skewlab.trace_version": str(TRACE_VERSION).encode()},
)


class FaultRecorder:
    """Appends fault transitions of one actor, each flushed to disk at once; ``recorded_ns``
    is read from ``clock`` (true time)."""

    def __init__(self, directory: Path, actor: str, clock: TimeSource = HOST_CLOCK) -> None:
        self.actor = actor
        self.clock = clock
        self._w = PartWriter(directory, actor, FAULT_SCHEMA, batch_rows=1)

    def record(
        self, index: int, kind: str, target: str, phase: str, truth_ns: int, detail: dict[str, Any]
    ) -> None:
        """Write one transition (``phase`` start/end) that took effect at ``truth_ns``."""
        self._w.append(
            (truth_ns, self.clock.now_ns(), self.actor, index, kind, target, phase,
             json.dumps(detail, sort_keys=True))
        )  # fmt: skip

    @property
    def rows(self) -> int:
        return self._w.rows_written


def load_faults(directory: Path) -> pa.Table:
    """Every recorded fault transition of a run, ordered by true time (empty if none)."""
    if not directory.is_dir():
        return FAULT_SCHEMA.empty_table()
    actors = sorted({p.name.rsplit("-", 1)[0] for p in directory.glob("*-*.parquet")})
    tables = [read_parts(directory, a) for a in actors if part_files(directory, a)]
    if not tables:
        return FAULT_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by([("truth_ns", "ascending"), ("fault", "ascending")])
