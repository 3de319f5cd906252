"""Property tests of the trace loader: any bytes, and any mutation of a real part file, give
a table or TraceError with a known reason — never another exception."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skewlab.trace import (
    TRACE_ERROR_REASONS,
    PartWriter,
    TraceError,
    read_part,
    read_parts,
    receipt_schema,
    wire_sentinel_columns,
)

SOURCES = ["system", "ntp"]
SCHEMA = receipt_schema(SOURCES)


def _row(i: int) -> tuple:
    return (i, i, 1000 + i, 2000 + i, 3000 + i, *(4000 + i,) * 3, 2, *(None,) * 3, 0,
            2, *(5000 + i,) * 3, 0, *(-(2**63),) * 3)  # fmt: skip


def _part_bytes(tmp: Path, rows: int = 16) -> bytes:
    w = PartWriter(tmp, "events", SCHEMA, rows, wire_sentinel_columns(SOURCES))
    for i in range(rows):
        w.append(_row(i))
    return (tmp / "events-000000.parquet").read_bytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _part_bytes(tmp_path_factory.mktemp("part"))


def test_a_real_part_reads_back(good: bytes) -> None:
    t = read_part(good, SCHEMA)
    assert t.column("event_id").to_pylist() == list(range(16))
    assert t.column("send_ntp_estimate_ns").null_count == 16  # NO_VALUE became null


@settings(max_examples=300)
@given(data=st.binary(max_size=300))
def test_random_bytes_are_rejected_with_a_reason(data: bytes) -> None:
    with pytest.raises(TraceError) as e:
        read_part(data, SCHEMA)
    assert e.value.reason in TRACE_ERROR_REASONS


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1,
                      max_size=8))  # fmt: skip
def test_mutated_part_is_a_table_or_a_reason(good: bytes, edits: list) -> None:
    data = bytearray(good)
    for pos, xor in edits:
        data[pos % len(data)] ^= xor
    try:
        t = read_part(bytes(data), SCHEMA)
    except TraceError as e:
        assert e.reason in TRACE_ERROR_REASONS
        return
    for f in SCHEMA:  # accepted: every required column is there with its type
        assert t.schema.field(f.name).type == f.type


def _write(table: pa.Table) -> bytes:
    b = io.BytesIO()
    pq.write_table(table, b)
    return b.getvalue()


def test_version_and_schema_are_checked(good: bytes, tmp_path: Path) -> None:
    t = read_part(good)
    newer = t.replace_schema_metadata({b"skewlab.trace_version": b"999"})
    with pytest.raises(TraceError, match="bad_version"):
        read_part(_write(newer))
    with pytest.raises(TraceError, match="bad_version"):
        read_part(_write(t.replace_schema_metadata({})))
    with pytest.raises(TraceError, match=r"bad_schema.*truth_ns: missing"):
        read_part(_write(t.drop_columns(["truth_ns"])), SCHEMA)
    # a directory holding a corrupt part: the loader names the file and the reason
    (tmp_path / "events-000000.parquet").write_bytes(good[: len(good) // 2])
    with pytest.raises(TraceError, match=r"events-000000\.parquet: corrupt"):
        read_parts(tmp_path, "events", SCHEMA)
