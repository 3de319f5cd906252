"""Fault schedules (``[[faults]]`` in the spec): applied during a run and recorded in the
history (``traces/_nemesis/``). The nemesis never judges: the analysis reads the record."""

from skewlab.nemesis.record import FAULT_SCHEMA, FaultRecorder, load_faults
from skewlab.nemesis.schedule import FaultSpec, check_faults, clock_faults, ntp_server_name

__all__ = [
    "FAULT_SCHEMA",
    "FaultRecorder",
    "FaultSpec",
    "check_faults",
    "clock_faults",
    "load_faults",
    "ntp_server_name",
]
