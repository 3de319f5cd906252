"""Node clocks (oscillators) and clock sources (readings with bounds).

Only the plain types are re-exported here: this ``__init__`` runs before every ``skewlab.clocks``
module (the spec's leaf modules too), so it must not import numpy. Oscillators live in
``skewlab.clocks.oscillator``.
"""

from skewlab.clocks.base import ClockSource, Reading, Status

__all__ = ["ClockSource", "Reading", "Status"]
