"""Reading a recorded clock-error series from CSV (what ``[[nodes]] replay`` replays).

A leaf (standard library only): the spec checks a replay file when it is loaded, so a malformed
file is one line naming the file, the line and the column before anything runs.

The file is CSV with a header row naming its columns; blank lines and lines starting with ``#``
(provenance, comments) are skipped. Two columns are read: the recording time and the clock's
offset, each in a configurable unit. Numbers are parsed exactly (decimal) and rounded to integer
ns. ``sign`` says what the offset column holds:

- ``clock_minus_reference``: the clock's error, local − true (skewlab's oscillator convention;
  positive: the clock is ahead);
- ``reference_minus_clock``: an NTP offset θ as chronyc/ntpq report it (reference − system
  clock; positive: the clock is behind). Replayed as that clock's error, so it is negated.
"""

from __future__ import annotations

import csv
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

UNIT_NS: dict[str, int] = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
Unit = Literal["s", "ms", "us", "ns"]
Sign = Literal["clock_minus_reference", "reference_minus_clock"]


class SeriesError(ValueError):
    """A replay file that cannot be used, in one line naming the file (line and column)."""


def _ns(text: str, unit: str) -> int:
    """A decimal number of ``unit`` as integer ns (half-even rounding); ValueError if not."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {text.strip()!r}") from None
    if not d.is_finite():
        raise ValueError(f"not a finite number: {text.strip()!r}")
    return int((d * UNIT_NS[unit]).to_integral_value(ROUND_HALF_EVEN))


def read_series(
    path: str | Path,
    time_column: str = "elapsed_s",
    offset_column: str = "offset_ms",
    time_unit: str = "s",
    offset_unit: str = "ms",
    sign: str = "clock_minus_reference",
) -> tuple[list[int], list[int]]:
    """(recording times, clock errors local − true), integer ns, times strictly increasing.

    Raises :class:`SeriesError`, one line: ``FILE: line L, column C (NAME): what``."""
    p = Path(path)
    if time_unit not in UNIT_NS or offset_unit not in UNIT_NS:
        raise SeriesError(f"{p}: units are one of {', '.join(UNIT_NS)}")
    if sign not in ("clock_minus_reference", "reference_minus_clock"):
        raise SeriesError(f"{p}: unknown sign {sign!r}")
    flip = -1 if sign == "reference_minus_clock" else 1
    times: list[int] = []
    offsets: list[int] = []
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            cols: list[str] | None = None
            idx: list[int] = []
            for row in reader:
                line = reader.line_num
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                if cols is None:
                    cols = [c.strip() for c in row]
                    for name in (time_column, offset_column):
                        if name not in cols:
                            raise SeriesError(
                                f"{p}: line {line}: no column {name!r} (columns: "
                                f"{', '.join(cols)})"
                            )
                    idx = [cols.index(time_column), cols.index(offset_column)]
                    continue
                got: list[int] = []
                for i, unit in zip(idx, (time_unit, offset_unit), strict=True):
                    where = f"{p}: line {line}, column {i + 1} ({cols[i]})"
                    if i >= len(row):
                        raise SeriesError(f"{where}: missing (the row has {len(row)} columns)")
                    try:
                        got.append(_ns(row[i], unit))
                    except ValueError as e:
                        raise SeriesError(f"{where}: {e}") from None
                if times and got[0] <= times[-1]:
                    i = idx[0]
                    raise SeriesError(
                        f"{p}: line {line}, column {i + 1} ({cols[i]}): time {row[i].strip()} "
                        "is not after the previous row's (times must be strictly increasing)"
                    )
                times.append(got[0])
                offsets.append(flip * got[1])
    except OSError as e:
        raise SeriesError(f"cannot read replay file {p}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise SeriesError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except csv.Error as e:
        raise SeriesError(f"{p}: line {reader.line_num}: {e}") from None
    if not times:
        raise SeriesError(f"{p}: no data rows (a header row and at least one row are needed)")
    return times, offsets
