"""Node clocks (oscillators) and clock sources (readings with bounds)."""

from skewlab.clocks.base import ClockSource, Reading, Status
from skewlab.clocks.oscillator import NodeClock, Oscillator

__all__ = ["ClockSource", "NodeClock", "Oscillator", "Reading", "Status"]
