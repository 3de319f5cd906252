"""skewlab's bound holds in every scenario of the suite (``skewlab.sim.scenarios``, the
benchmark benchmarks/bound_tightness.py), at NTP polls of 16, 64 and 1024 s: coverage 1.0 and
no miss reported SYNCHRONIZED — the +1 ppm step while synchronized, the +0.5 ppm step during an
outage and the 2 ppm ramp over 10 minutes (once measured at coverage 0.9795, 0.962 and 0.992)
included. Shorter runs than the benchmark's (every disturbance still fits), in virtual time.

A companion shows the check can fail: beyond skewlab's stated assumptions (a 10 ppm step
against its 1 ppm frequency-change allowance) it does miss, and the outcome says so.
"""

from __future__ import annotations

import pytest

from skewlab.sim.scenarios import SCENARIOS, run_scenario

HOURS = {16: 1.5, 64: 3.0, 1024: 6.0}  # a run at each poll, long enough for its disturbance


@pytest.mark.parametrize("poll_s", [16, 64, 1024])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_skewlab_bound_holds(name: str, poll_s: int) -> None:
    o = run_scenario(name, poll_s, hours=HOURS[poll_s], read_every_ms=4000)
    r = o.sources["skewlab"]
    assert r.answered > 0.9 * o.readings
    assert r.misses_synchronized == 0, f"{name} @ {poll_s} s: missed while SYNCHRONIZED"
    assert r.coverage == 1.0, f"{name} @ {poll_s} s: worst miss {r.worst_miss_ns} ns"


def test_the_check_can_fail_beyond_the_model() -> None:
    o = run_scenario("beyond_freq_step_10ppm", 64, hours=3.0, read_every_ms=2000)
    r = o.sources["skewlab"]
    assert r.coverage < 1.0 and r.misses > 0 and r.worst_miss_ns > 0
