"""AWS ClockBound shared memory, protocol version 2: layout, reader, source and writer.

Layout (native byte order, 80 bytes; public protocol description of the ClockBound daemon):
  0 u32[2] magic 0x414D5A4E, 0x43420200 | 8 u32 segment size | 12 u16 version (2)
  14 u16 generation (odd while the writer updates; wraps to 2, never 0 once initialised)
  16 i64,i64 as_of (CLOCK_MONOTONIC_COARSE timespec) | 32 i64,i64 void_after (same clock)
  48 i64 bound (ns, |CLOCK_REALTIME − true| at as_of) | 56 u64 disruption marker
  64 u32 max drift (ppb) | 68 i32 clock status (0 unknown, 1 synchronized, 2 free running,
  3 disrupted) | 72 u8 clock disruption support | 73..80 padding.
A client's bound at (realtime r, monotonic m) is r ∓ (bound + (m − as_of)·max_drift/1e9).
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skewlab.clocks.base import Reading, Status
from skewlab.clocks.external._segment import MappedSegment
from skewlab.clocks.sync import SyncState
from skewlab.timebase import monotonic_ns

MAGIC = (0x414D5A4E, 0x43420200)
VERSION = 2
SEGMENT_SIZE = 80
DEFAULT_PATH = "/var/run/clockbound/shm0"
HEADER = struct.Struct("@IIIHH")  # magic0, magic1, segment size, version, generation
BODY = struct.Struct("@qqqqqQIiB7x")  # as_of s/ns, void_after s/ns, bound, marker, drift, status
GEN = struct.Struct("@H")
GEN_OFFSET = 14
BODY_OFFSET = HEADER.size
assert HEADER.size + BODY.size == SEGMENT_SIZE

CB_UNKNOWN, CB_SYNCHRONIZED, CB_FREE_RUNNING, CB_DISRUPTED = 0, 1, 2, 3
RESTART_GRACE_NS = 5_000_000_000  # a synchronized status is trusted this long after as_of
CAUSALITY_BLUR_NS = 1_000_000  # monotonic "now" may read this much before as_of (coarse clock)
NS = 1_000_000_000


class SegmentError(ValueError):
    """The file is not an initialised ClockBound v2 segment; the message says why."""


class TornRead(Exception):
    """The writer kept updating the segment during every copy attempt."""


@dataclass(frozen=True, slots=True)
class ClockErrorBound:
    """One consistent copy of a v2 segment (integer ns on CLOCK_MONOTONIC_COARSE)."""

    generation: int
    as_of_ns: int  # monotonic time when ``bound_ns`` was computed
    void_after_ns: int  # monotonic time after which the bound must not be used
    bound_ns: int  # |CLOCK_REALTIME − true time| ≤ bound_ns at as_of
    disruption_marker: int
    max_drift_ppb: int  # growth of the bound per second after as_of (ppb)
    clock_status: int  # CB_* code
    disruption_support: int


def check_header(raw: bytes) -> int:
    """Validate magic, version, size and initialisation; return the generation."""
    if len(raw) < HEADER.size:
        raise SegmentError(f"segment is {len(raw)} bytes, shorter than the 16-byte header")
    m0, m1, size, version, gen = HEADER.unpack_from(raw)
    if (m0, m1) != MAGIC:
        raise SegmentError(f"bad magic {m0:#010x} {m1:#010x}: not a ClockBound segment")
    if version != VERSION:
        raise SegmentError(f"segment layout version {version}, this reader knows {VERSION}")
    if size < SEGMENT_SIZE or len(raw) < SEGMENT_SIZE:
        raise SegmentError(f"segment size {size} (file {len(raw)}), v2 needs {SEGMENT_SIZE}")
    if gen == 0:
        raise SegmentError("segment not initialised yet (generation 0)")
    return gen


def decode(raw: bytes) -> ClockErrorBound:
    gen = check_header(raw)
    a_s, a_ns, v_s, v_ns, bound, marker, drift, status, support = BODY.unpack_from(raw, BODY_OFFSET)
    return ClockErrorBound(gen, a_s * NS + a_ns, v_s * NS + v_ns, bound, marker, drift, status,
                           support)  # fmt: skip


def consistent_copy(buf: Any, retries: int = 1000) -> bytes:
    """Copy the segment between two equal, even generation reads (the seqlock protocol)."""
    for _ in range(retries):
        g1 = buf[GEN_OFFSET : GEN_OFFSET + 2]
        if GEN.unpack(g1)[0] & 1:
            continue  # the writer is mid-update
        raw = bytes(buf[:SEGMENT_SIZE])
        g2 = buf[GEN_OFFSET : GEN_OFFSET + 2]
        if g1 == g2 == raw[GEN_OFFSET : GEN_OFFSET + 2]:
            return raw
    raise TornRead(f"no stable even generation in {retries} attempts")


def clockbound_reading(ceb: ClockErrorBound, real_ns: int, mono_ns: int) -> Reading:
    """The ClockBound answer at host realtime ``real_ns`` / monotonic ``mono_ns``.

    half = bound + ceil((mono − as_of)·max_drift_ppb / 1e9); estimate = real.
    Status: SYNCHRONIZED while the daemon says so and as_of is under 5 s old; FREE_RUNNING for a
    synchronized or free-running segment before void_after; UNSYNCHRONIZED (no value) for
    unknown or disrupted status, past void_after, an implausible drift, or mono before as_of.
    """
    if ceb.max_drift_ppb >= NS or ceb.bound_ns < 0:
        return Reading.none()
    if ceb.clock_status not in (CB_SYNCHRONIZED, CB_FREE_RUNNING) or mono_ns >= ceb.void_after_ns:
        return Reading.none()
    elapsed = mono_ns - ceb.as_of_ns
    if elapsed < -CAUSALITY_BLUR_NS:
        return Reading.none()
    elapsed = max(0, elapsed)
    half = ceb.bound_ns + -(-elapsed * ceb.max_drift_ppb // NS)
    if ceb.clock_status == CB_SYNCHRONIZED and elapsed < RESTART_GRACE_NS:
        status = Status.SYNCHRONIZED
    else:
        status = Status.FREE_RUNNING
    return Reading(real_ns, real_ns - half, real_ns + half, status, real_ns - elapsed)


def available(path: str = DEFAULT_PATH, **_: Any) -> tuple[bool, str]:
    """Whether ``path`` holds an initialised ClockBound v2 segment."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(SEGMENT_SIZE)
    except FileNotFoundError:
        return False, f"no ClockBound segment at {p} (is clockbound or skewlab clockd running?)"
    except OSError as e:
        return False, f"cannot read {p}: {e.strerror}"
    try:
        check_header(raw)
    except SegmentError as e:
        return False, f"{p}: {e}"
    return True, f"ClockBound v2 segment at {p}"


class ClockBoundShmSource(MappedSegment):
    """A ClockBound daemon's bounds read from its v2 segment (a host service, host clock).

    Parameters: ``path`` (default /var/run/clockbound/shm0). The segment is opened lazily and
    reopened when the daemon recreates it; a torn or unreadable copy falls back to the last
    consistent one, whose bound keeps growing and whose void_after still applies.
    """

    name = "clockbound_shm"
    bounded = True
    available = staticmethod(available)
    segment_size = SEGMENT_SIZE

    def __init__(self, state: SyncState | None = None, path: str = DEFAULT_PATH,
                 retries: int = 1000, **_: Any) -> None:  # fmt: skip
        self._init_segment(Path(path))
        self.retries = retries
        self.torn_reads = 0
        self._last_raw: bytes | None = None
        self._last: ClockErrorBound | None = None

    def snapshot(self) -> ClockErrorBound | None:
        """The latest consistent, valid copy (or the previous one when this copy fails)."""
        self._open()
        if self._buf is None:
            return self._last
        try:
            raw = consistent_copy(self._buf, self.retries)
            if raw != self._last_raw:
                self._last = decode(raw)
                self._last_raw = raw
        except TornRead:
            self.torn_reads += 1
        except SegmentError as e:
            self.last_error = str(e)
            self._last = None  # a segment that is not (or no longer) valid gives no bound
            self._last_raw = None
        return self._last

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        ceb = self.snapshot()
        if ceb is None:
            return Reading.none()
        return clockbound_reading(ceb, local_ns, monotonic_ns())


class ClockBoundWriter:
    """Publishes bounds in the ClockBound v2 layout at ``path`` (seqlock writer, one process)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:  # header first, generation 0 = "not initialised yet"
            f.write(HEADER.pack(*MAGIC, SEGMENT_SIZE, VERSION, 0) + bytes(BODY.size))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)  # readers never see a half-created file
        self._f = open(self.path, "r+b")  # noqa: SIM115 (kept open for the mapping)
        self._m = mmap.mmap(self._f.fileno(), SEGMENT_SIZE, access=mmap.ACCESS_WRITE)
        self.generation = 0

    def publish(self, bound_ns: int, as_of_ns: int, void_after_ns: int, max_drift_ppb: int,
                clock_status: int, disruption_marker: int = 0) -> int:  # fmt: skip
        """Write one update: generation odd, body, generation even. Returns the generation."""
        if bound_ns < 0 or not 0 <= max_drift_ppb < NS:
            raise ValueError(f"bound {bound_ns} ns / max drift {max_drift_ppb} ppb out of range")
        odd = self.generation + 1  # generation is even here, at most 0xFFFE
        even = odd + 1 if odd < 0xFFFF else 2  # the protocol wraps to 2, never to 0
        m = self._m
        m[GEN_OFFSET : GEN_OFFSET + 2] = GEN.pack(odd)
        m[BODY_OFFSET:SEGMENT_SIZE] = BODY.pack(
            as_of_ns // NS, as_of_ns % NS, void_after_ns // NS, void_after_ns % NS,
            bound_ns, disruption_marker, max_drift_ppb, clock_status, 0,
        )  # fmt: skip
        m[GEN_OFFSET : GEN_OFFSET + 2] = GEN.pack(even)
        self.generation = even
        return even

    def close(self, unlink: bool = False) -> None:
        self._m.close()
        self._f.close()
        if unlink:
            self.path.unlink(missing_ok=True)
