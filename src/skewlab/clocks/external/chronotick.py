"""ChronoTick: the parameters its daemon publishes and the one formula that turns them into bounds.

Both transports (shared memory and MCP) decode into :class:`ChronoTickParams`; this module is
the single home of the extrapolation, the uncertainty growth and the status rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skewlab.clocks.base import Reading, Status

# Flag bits of the shared-memory segment (the MCP transport maps its booleans onto them).
FLAG_VALID = 1
FLAG_NTP_READY = 2
FLAG_MODELS_READY = 4
FLAG_WARMUP_COMPLETE = 8

# Prediction source codes of the shared-memory segment.
SOURCE_NAMES = {0: "no_data", 1: "ntp", 2: "cpu", 3: "gpu", 4: "fusion"}
SOURCE_CODES = {v: k for k, v in SOURCE_NAMES.items()}
SOURCE_NO_DATA = 0


@dataclass(frozen=True, slots=True)
class ChronoTickParams:
    """One published ChronoTick model state. Times are host system-clock seconds (float64)."""

    system_timestamp_s: float  # host system time when the daemon published this state
    offset_correction_s: float  # true − system at prediction_time (s); positive: system is behind
    drift_rate: float  # d(offset)/dt (s/s)
    offset_uncertainty_s: float  # 1σ of offset_correction (s)
    drift_uncertainty: float  # 1σ of drift_rate (s/s)
    prediction_time_s: float  # system time the offset refers to (s)
    valid_until_s: float  # system time after which the daemon no longer vouches for it (s)
    flags: int  # FLAG_* bits
    source: int  # SOURCE_* code
    confidence: float = math.nan  # daemon's own confidence in [0, 1] (informational)
    sequence: int = 0  # shm sequence number (0 for MCP)
    last_ntp_sync_s: float = math.nan  # system time of the daemon's last NTP sync (s)

    def is_sane(self) -> bool:
        """False when a field the formula needs is not finite or an uncertainty is negative."""
        needed = (
            self.system_timestamp_s,
            self.offset_correction_s,
            self.drift_rate,
            self.offset_uncertainty_s,
            self.drift_uncertainty,
            self.prediction_time_s,
            self.valid_until_s,
        )
        if not all(math.isfinite(v) for v in needed):
            return False
        return self.offset_uncertainty_s >= 0 and self.drift_uncertainty >= 0


def _s_to_ns(v: float) -> int:
    return round(v * 1e9)


def chronotick_status(p: ChronoTickParams, t_ns: int, stale_grace_ns: int) -> Status:
    """Status at system time ``t_ns``.

    UNSYNCHRONIZED: not VALID, no data source, insane fields, or stale for longer than the
    grace. SYNCHRONIZED: valid, within ``valid_until`` and NTP-ready. FREE_RUNNING otherwise
    (valid but not NTP-ready, or past ``valid_until`` within the grace: stale).
    """
    if not (p.flags & FLAG_VALID) or p.source == SOURCE_NO_DATA or not p.is_sane():
        return Status.UNSYNCHRONIZED
    past = t_ns - _s_to_ns(p.valid_until_s)
    if past <= 0:
        return Status.SYNCHRONIZED if p.flags & FLAG_NTP_READY else Status.FREE_RUNNING
    if past <= stale_grace_ns:
        return Status.FREE_RUNNING
    return Status.UNSYNCHRONIZED


def chronotick_reading(p: ChronoTickParams, t_ns: int, k: float, stale_grace_ns: int) -> Reading:
    """ChronoTick's answer at host system time ``t_ns`` (integer ns).

    estimate = t + offset_correction + drift_rate·(t − prediction_time);
    σ(t) = sqrt(offset_uncertainty² + (drift_uncertainty·(t − prediction_time))²);
    [earliest, latest] = estimate ∓ ceil(k·σ(t)).
    """
    status = chronotick_status(p, t_ns, stale_grace_ns)
    if status is Status.UNSYNCHRONIZED:
        return Reading.none()
    dt_ns = t_ns - _s_to_ns(p.prediction_time_s)
    est = t_ns + _s_to_ns(p.offset_correction_s) + round(p.drift_rate * dt_ns)
    sigma_ns = math.hypot(p.offset_uncertainty_s * 1e9, p.drift_uncertainty * dt_ns)
    half = math.ceil(k * sigma_ns)
    return Reading(est, est - half, est + half, status, _s_to_ns(p.system_timestamp_s))
