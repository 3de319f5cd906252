"""ChronoTick over POSIX shared memory: the daemon's 128-byte ``chronotick_shm`` segment.

The segment is native byte order and alignment, rewritten at about 1 Hz. A consistent copy
reads the sequence number before and after copying and retries when they differ. The source
evaluates ChronoTick's formula at the host system time (``local_ns``; see docs/SOURCES.md).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skewlab.clocks.base import Reading
from skewlab.clocks.external._segment import MappedSegment
from skewlab.clocks.external.chronotick import ChronoTickParams, chronotick_reading
from skewlab.clocks.sync import SyncState

SEGMENT_SIZE = 128
DEFAULT_NAME = "chronotick_shm"
SHM_DIR = Path("/dev/shm")  # where Linux keeps POSIX shared-memory objects

# Native ("@") layout: offset 0..112, see docs/SOURCES.md for the field table.
LAYOUT = struct.Struct("@8dfIIIIxxxxddIIf")
SEQ = struct.Struct("@I")
SEQ_OFFSET = 68
assert LAYOUT.size <= SEGMENT_SIZE


@dataclass(frozen=True, slots=True)
class ChronoTickRecord:
    """Every field of one segment copy (seconds, s/s, counts), as published."""

    params: ChronoTickParams
    measurement_count: int
    daemon_uptime_s: float
    total_corrections: int
    average_latency_ms: float


def decode(raw: bytes) -> ChronoTickRecord:
    """Decode one consistent 128-byte copy of the segment."""
    (corrected, system, offset, drift, off_unc, drift_unc, pred, valid_until, confidence, seq,
     flags, source, count, last_sync, uptime, corrections, _reserved,
     latency) = LAYOUT.unpack_from(raw)  # fmt: skip
    del corrected  # derived by the daemon at publication; the formula recomputes it at t
    p = ChronoTickParams(
        system_timestamp_s=system,
        offset_correction_s=offset,
        drift_rate=drift,
        offset_uncertainty_s=off_unc,
        drift_uncertainty=drift_unc,
        prediction_time_s=pred,
        valid_until_s=valid_until,
        flags=flags,
        source=source,
        confidence=confidence,
        sequence=seq,
        last_ntp_sync_s=last_sync,
    )
    return ChronoTickRecord(p, count, uptime, corrections, latency)


class TornRead(Exception):
    """The writer kept changing the segment during every copy attempt."""


def consistent_copy(buf: Any, retries: int = 100) -> bytes:
    """Copy the segment while its sequence number stays the same before and after the copy."""
    for _ in range(retries):
        s1 = buf[SEQ_OFFSET : SEQ_OFFSET + 4]
        raw = bytes(buf[:SEGMENT_SIZE])
        s2 = buf[SEQ_OFFSET : SEQ_OFFSET + 4]
        if s1 == s2 == raw[SEQ_OFFSET : SEQ_OFFSET + 4]:
            return raw
    raise TornRead(f"sequence number changed during {retries} consecutive copies")


def segment_path(name: str = DEFAULT_NAME, path: str | None = None) -> Path:
    return Path(path) if path else SHM_DIR / name.lstrip("/")


def available(name: str = DEFAULT_NAME, path: str | None = None, **_: Any) -> tuple[bool, str]:
    """Whether a ChronoTick segment exists and is large enough to read."""
    p = segment_path(name, path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        return False, f"no ChronoTick segment at {p} (is the ChronoTick daemon running?)"
    except OSError as e:
        return False, f"cannot stat {p}: {e.strerror}"
    if size < SEGMENT_SIZE:
        return False, f"{p} is {size} bytes, a ChronoTick segment has {SEGMENT_SIZE}"
    if not os.access(p, os.R_OK):
        return False, f"{p} is not readable by this user"
    return True, f"ChronoTick segment at {p}"


class ChronoTickShmSource(MappedSegment):
    """ChronoTick's bounds read from its shared-memory segment (a host service, host clock).

    Parameters: ``name`` (POSIX shm name) or ``path``; ``k`` (σ multiplier, default 3);
    ``stale_grace_s`` (how long past ``valid_until`` a state is still used, FREE_RUNNING).
    The segment is opened lazily and reopened when the daemon recreates it.
    """

    name = "chronotick"
    bounded = True
    available = staticmethod(available)
    segment_size = SEGMENT_SIZE

    def __init__(
        self,
        state: SyncState | None = None,
        name: str = DEFAULT_NAME,
        path: str | None = None,
        k: float = 3.0,
        stale_grace_s: float = 10.0,
        retries: int = 100,
        **_: Any,
    ) -> None:
        self._init_segment(segment_path(name, path))
        self.k = float(k)
        self.stale_grace_ns = round(stale_grace_s * 1e9)
        self.retries = retries
        self.torn_reads = 0  # reads that fell back to the last consistent copy
        self._last_raw: bytes | None = None
        self._last: ChronoTickParams | None = None

    def params(self) -> ChronoTickParams | None:
        """The latest consistent published state, or None when none was ever read."""
        self._open()
        if self._buf is None:
            return self._last
        try:
            raw = consistent_copy(self._buf, self.retries)
        except TornRead:
            self.torn_reads += 1
            return self._last
        if raw != self._last_raw:
            self._last_raw = raw
            self._last = decode(raw).params
        return self._last

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        p = self.params()
        if p is None:
            return Reading.none()
        return chronotick_reading(p, local_ns, self.k, self.stale_grace_ns)
