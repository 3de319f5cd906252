"""ClockBound v2 segment: reader, status rules, seqlock retry and the clockd writer."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from skewlab.clocks.base import Status
from skewlab.clocks.external.clockbound_shm import (
    ClockBoundShmSource,
    ClockBoundWriter,
    available,
    clockbound_reading,
    decode,
)

S = 1_000_000_000


def segment(gen: int = 10, as_of: int = 100 * S, void_after: int = 110 * S, bound: int = 10_000,
            drift: int = 1_000, status: int = 1, magic: tuple[int, int] = (0x414D5A4E, 0x43420200),
            version: int = 2, size: int = 80) -> bytes:  # fmt: skip
    """An 80-byte v2 segment, every field packed at its documented offset (native order)."""
    b = bytearray(80)
    struct.pack_into("@I", b, 0, magic[0])
    struct.pack_into("@I", b, 4, magic[1])
    struct.pack_into("@I", b, 8, size)
    struct.pack_into("@H", b, 12, version)
    struct.pack_into("@H", b, 14, gen)
    struct.pack_into("@q", b, 16, as_of // S)  # as_of timespec
    struct.pack_into("@q", b, 24, as_of % S)
    struct.pack_into("@q", b, 32, void_after // S)  # void_after timespec
    struct.pack_into("@q", b, 40, void_after % S)
    struct.pack_into("@q", b, 48, bound)
    struct.pack_into("@Q", b, 56, 0)  # disruption marker
    struct.pack_into("@I", b, 64, drift)
    struct.pack_into("@i", b, 68, status)
    struct.pack_into("@B", b, 72, 0)  # disruption support
    return bytes(b)


def test_known_answer_bound_growth() -> None:
    ceb = decode(segment(as_of=100 * S, bound=10_000, drift=1_000))
    real = 1_700_000_000 * S
    r = clockbound_reading(ceb, real, 102 * S)
    # 2 s after as_of at 1000 ppb (1 ppm): 10 µs + 2 µs
    assert (r.earliest_ns, r.estimate_ns, r.latest_ns) == (real - 12_000, real, real + 12_000)
    assert r.status is Status.SYNCHRONIZED
    assert r.as_of_ns == real - 2 * S


@pytest.mark.parametrize(
    ("status", "mono", "want"),
    [
        (1, 104 * S, Status.SYNCHRONIZED),  # within the 5 s restart grace
        (1, 106 * S, Status.FREE_RUNNING),  # synchronized but old: free running
        (2, 101 * S, Status.FREE_RUNNING),
        (1, 110 * S, Status.UNSYNCHRONIZED),  # at void_after: no bound any more
        (0, 101 * S, Status.UNSYNCHRONIZED),  # unknown
        (3, 101 * S, Status.UNSYNCHRONIZED),  # disrupted
        (1, 100 * S - 2_000_000, Status.UNSYNCHRONIZED),  # monotonic before as_of: broken
    ],
)
def test_status_rules(status: int, mono: int, want: Status) -> None:
    r = clockbound_reading(decode(segment(status=status)), 5 * S, mono)
    assert r.status is want
    assert (r.estimate_ns is None) == (want is Status.UNSYNCHRONIZED)


def test_implausible_drift_gives_no_bound() -> None:
    r = clockbound_reading(decode(segment(drift=1_000_000_000)), 5 * S, 101 * S)
    assert r.status is Status.UNSYNCHRONIZED


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"magic": (0xDEADBEEF, 0x0BADCAFE)}, "bad magic"),
        ({"version": 1}, "version 1"),
        ({"size": 16}, "segment size 16"),
        ({"gen": 0}, "not initialised"),
    ],
)
def test_invalid_segments(tmp_path: Path, kw: dict, reason: str) -> None:
    p = tmp_path / "shm0"
    p.write_bytes(segment(**kw))
    ok, why = available(str(p))
    assert not ok and reason in why
    src = ClockBoundShmSource(None, path=str(p))
    assert src.read(time.time_ns()).status is Status.UNSYNCHRONIZED
    assert reason in (src.last_error or "")


def test_missing_segment_is_unavailable(tmp_path: Path) -> None:
    ok, why = available(str(tmp_path / "nope"))
    assert not ok and "no ClockBound segment" in why


class Sequence:
    """A buffer whose content changes between accesses, like a segment being rewritten."""

    def __init__(self, states: list[bytes]) -> None:
        self.states = states
        self.reads = 0

    def __getitem__(self, sl: slice) -> bytes:
        i = min(self.reads, len(self.states) - 1)
        self.reads += 1
        return self.states[i][sl]


def test_seqlock_retries_odd_and_changed_generations() -> None:
    now = time.monotonic_ns()
    writing = segment(gen=11, as_of=now, void_after=now + 10 * S, bound=1)  # odd: mid-update
    old = segment(gen=10, as_of=now, void_after=now + 10 * S, bound=5_000)
    new = segment(gen=12, as_of=now, void_after=now + 10 * S, bound=7_000)
    src = ClockBoundShmSource(None, path="/nonexistent")
    # odd generation → skip; even but changed during the copy → retry; then stable
    buf = Sequence([writing, old, new, new, new, new, new])
    src.set_buffer(buf)
    r = src.read(1_700_000_000 * S)
    assert r.latest_ns - r.estimate_ns >= 7_000  # the new bound (plus a little growth)
    assert r.latest_ns - r.estimate_ns < 7_000 + 1_000  # not the torn or the old one
    assert buf.reads == 7


def test_writer_layout_and_generation_wrap(tmp_path: Path) -> None:
    p = tmp_path / "run" / "shm0"
    w = ClockBoundWriter(p)
    raw = p.read_bytes()
    assert len(raw) == 80 and struct.unpack_from("@H", raw, 14)[0] == 0  # not initialised yet
    gen = w.publish(bound_ns=123_456, as_of_ns=7 * S + 5, void_after_ns=17 * S + 5,
                    max_drift_ppb=15_000, clock_status=1)  # fmt: skip
    raw = p.read_bytes()
    assert struct.unpack_from("@II", raw, 0) == (0x414D5A4E, 0x43420200)
    assert struct.unpack_from("@IHH", raw, 8) == (80, 2, gen)
    assert gen == 2
    assert struct.unpack_from("@qqqqq", raw, 16) == (7, 5, 17, 5, 123_456)
    assert struct.unpack_from("@Ii", raw, 64) == (15_000, 1)
    w.generation = 0xFFFE  # the next update passes through 0xFFFF and wraps to 2, never 0
    assert w.publish(1, 0, S, 0, 1) == 2
    assert struct.unpack_from("@H", p.read_bytes(), 14)[0] == 2
    with pytest.raises(ValueError):
        w.publish(-1, 0, S, 0, 1)
    w.close(unlink=True)
    assert not p.exists()


def test_source_reads_live_writer(tmp_path: Path) -> None:
    p = tmp_path / "shm0"
    w = ClockBoundWriter(p)
    src = ClockBoundShmSource(None, path=str(p))
    assert src.read(time.time_ns()).status is Status.UNSYNCHRONIZED  # generation 0
    now = time.monotonic_ns()
    w.publish(50_000, now, now + 10 * S, 1_000, 1)
    src._next_check = 0.0  # re-stat now (normally once a second)
    real = time.time_ns()
    r = src.read(real)
    assert r.status is Status.SYNCHRONIZED and r.estimate_ns == real
    assert 50_000 <= r.latest_ns - real <= 50_000 + 1_000  # < 1 s of 1 ppm growth
    w.close()
