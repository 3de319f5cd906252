"""chrony source: tracking-report parsing and the bound grown with elapsed time."""

from __future__ import annotations

import math

import pytest

from skewlab.clocks.base import Status
from skewlab.clocks.external.chrony import ChronyError, chrony_reading, parse_tracking

# A real `chronyc -c -n tracking` line (chronyd -x synced to a loopback server).
LINE = (
    "7F000001,127.0.0.1,2,1795864589.408744974,0.000036380,-0.000000068,0.000001790,"
    "-0.172,0.000,0.911,0.000164471,0.000019460,0.1,Normal"
)
TAKEN = 1_795_864_590_000_000_000


def test_parse() -> None:
    tr = parse_tracking(LINE, TAKEN)
    assert (tr.ref_name, tr.stratum, tr.leap_status) == ("127.0.0.1", 2, "Normal")
    assert tr.root_delay_s == pytest.approx(164.471e-6)
    assert tr.root_dispersion_s == pytest.approx(19.460e-6)
    with pytest.raises(ChronyError):
        parse_tracking("506 Cannot talk to daemon", TAKEN)


def test_known_answer() -> None:
    tr = parse_tracking(LINE, TAKEN)
    t = TAKEN + 2_000_000_000
    r = chrony_reading(tr, t, max_clock_error_ppm=1.0, stale_after_ns=16_000_000_000)
    assert r.estimate_ns == t + 36_380  # system time + remaining correction
    # root_delay/2 + root_dispersion = 82 235.5 + 19 460 ns; growth 2 s · (0.911 + 0 + 1) ppm
    want = math.ceil(82_235.5 + 19_460 + 2 * 1.911e3)
    assert abs((r.latest_ns - r.estimate_ns) - want) <= 1  # float rounding of the inputs
    assert r.latest_ns - r.estimate_ns == r.estimate_ns - r.earliest_ns
    assert r.status is Status.SYNCHRONIZED
    assert r.as_of_ns == 1_795_864_589_408_744_974


def test_stale_and_unsynchronised() -> None:
    tr = parse_tracking(LINE, TAKEN)
    late = chrony_reading(tr, TAKEN + 20_000_000_000, 1.0, 16_000_000_000)
    assert late.status is Status.FREE_RUNNING
    fresh = chrony_reading(tr, TAKEN, 1.0, 16_000_000_000)
    assert (late.latest_ns - late.estimate_ns) > (fresh.latest_ns - fresh.estimate_ns)
    unsync = parse_tracking(LINE.replace("Normal", "Not synchronised"), TAKEN)
    r = chrony_reading(unsync, TAKEN, 1.0, 16_000_000_000)
    assert r.status is Status.UNSYNCHRONIZED and r.estimate_ns is None
