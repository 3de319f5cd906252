"""A worker's receipts as trace columns: one home for the receive loop's batches and the
simulator's whole runs (schema: ``trace.receipt_schema``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from skewlab.clocks.base import Readings
from skewlab.net.wire import NO_VALUE


def masked(values: np.ndarray, typ: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    """An arrow array of ``values``, null where ``valid`` is False."""
    if valid is None or valid.all():
        return pa.array(values, type=typ)
    return pa.array(values, type=typ, mask=~valid)


def reading_columns(r: Readings, order: str) -> list[pa.Array]:
    """One source's columns: ``est`` order (estimate, earliest, latest, status) of the node's own
    readings, or ``wire`` order (status, estimate, earliest, latest) of the send columns."""
    e, lo, hi = (masked(x, pa.int64(), r.valid) for x in (r.estimate, r.earliest, r.latest))
    st = pa.array(r.status, type=pa.int8())
    return [e, lo, hi, st] if order == "est" else [st, e, lo, hi]


_NUMPY_CODES = {"B": "u1", "b": "i1", "H": ">u2", "I": ">u4", "Q": ">u8", "q": ">i8"}


@lru_cache(maxsize=16)
def head_dtype(struct_format: str, itemsize: int | None = None) -> np.dtype:
    """A numpy record type for a packed big-endian ``struct`` format (the wire head,
    ``WireCodec.head.format``): field i is ``f<i>``, the same fields ``unpack`` returns;
    ``itemsize`` (≥ the head) spans whole datagrams whose tail (payload, MAC) is skipped."""
    import re

    assert struct_format[0] == "!"
    names, formats, offsets, pos = [], [], [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z])", struct_format[1:]):
        k = int(count) if count else 1
        if code == "s":
            items = [(f"S{k}", k)]
        elif code == "x":
            pos += k
            continue
        else:
            size = np.dtype(_NUMPY_CODES[code]).itemsize
            items = [(_NUMPY_CODES[code], size)] * k
        for fmt, size in items:
            names.append(f"f{len(names)}")
            formats.append(fmt)
            offsets.append(pos)
            pos += size
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": max(pos, itemsize or 0)})  # fmt: skip


def packet_fields(packets: list[bytes], struct_format: str, head_len: int) -> np.ndarray:
    """The decoded head fields of many datagrams (already validated one by one) as one record
    array, without a Python object per field: datagrams of one length are read in place."""
    size = len(packets[0])
    if all(len(p) == size for p in packets):
        return np.frombuffer(b"".join(packets), dtype=head_dtype(struct_format, size))
    heads = b"".join([p[:head_len] for p in packets])
    return np.frombuffer(heads, dtype=head_dtype(struct_format))


def wire_columns(fields: Sequence[Any]) -> list[pa.Array]:
    """The coordinator's send readings as decoded from the wire, in ``wire`` order: ``fields``
    are the packets' reading fields column by column ((status, estimate, earliest, latest) ×
    n); a value field holding NO_VALUE is null (each field on its own, as it arrived)."""
    out = []
    for j, f in enumerate(fields):
        if j % 4 == 0:
            out.append(pa.array(np.asarray(f, dtype=np.int8), pa.int8()))
        else:
            x = np.asarray(f, dtype=np.int64)
            out.append(masked(x, pa.int64(), x != NO_VALUE))
    return out


def receipt_columns(
    event_id: np.ndarray,
    seq: np.ndarray,
    truth: np.ndarray,
    local: np.ndarray,
    send_local: np.ndarray,
    reads: Sequence[Readings],
    sent: Sequence[pa.Array],
) -> list[pa.Array]:
    """The receipt columns in ``receipt_schema`` order: ids, instants, the node's readings of
    every source (``reads``, null where a reading has no value) and the coordinator's send
    readings as columns in wire order (``sent``)."""
    cols = [pa.array(event_id, pa.uint64()), pa.array(seq, pa.uint64()),
            pa.array(truth, pa.int64()), pa.array(local, pa.int64()),
            pa.array(send_local, pa.int64())]  # fmt: skip
    for r in reads:
        cols += reading_columns(r, "est")
    return cols + list(sent)
