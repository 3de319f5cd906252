"""``ClockFault``: one scheduled fault of a node clock, as a plain value.

A leaf module (no numpy, nothing from the rest of skewlab), so the fault schedule of a spec
(``nemesis/schedule.py``) can build oscillator faults without importing the oscillator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ClockFault:
    """One scheduled fault of a node clock, at a true instant ``at_ns``.

    - ``step``: the realtime clock jumps by ``delta_ns`` (monotonic unaffected).
    - ``freq``: the oscillator frequency changes by ``delta_ppb`` from then on (both clocks);
      with ``ramp_ns`` > 0 the change is linear over that long (a ramp), not instantaneous.
    - ``strobe``: for ``duration_ns`` the realtime clock alternates between its normal value
      and normal + ``delta_ns`` every half ``period_ns`` (Jepsen's clock strobe).
    """

    kind: Literal["step", "freq", "strobe"]
    at_ns: int  # true time the fault starts
    delta_ns: int = 0  # step / strobe size, ns (positive: clock jumps ahead)
    delta_ppb: int = 0  # frequency change, ppb (positive: clock runs faster)
    period_ns: int = 0  # strobe period, ns
    duration_ns: int = 0  # strobe duration, ns
    ramp_ns: int = 0  # freq: the change ramps linearly over this long, ns (0: a step)
