"""chrony: bounds from a local chronyd's tracking report (``chronyc -c -n tracking``).

chronyc is a subprocess, so a background thread polls it and ``read`` only grows the cached
report with the time elapsed since it was taken. The bound follows chrony's own documented
error budget: true time lies within root_delay/2 + root_dispersion of chronyd's estimate of
true time, and that dispersion grows at (skew + |residual frequency| + max clock error).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from skewlab.clocks.base import Reading, Status
from skewlab.clocks.external._poll import Poller
from skewlab.clocks.sync import SyncState
from skewlab.timebase import host_ns

LEAP_UNSYNC = "Not synchronised"
PPM = 1e-6


class ChronyError(RuntimeError):
    """chronyc failed or printed something that is not a tracking report."""


@dataclass(frozen=True, slots=True)
class Tracking:
    """One ``chronyc -c tracking`` report (seconds, ppm), plus when it was taken."""

    ref_id: str  # reference ID (hex)
    ref_name: str  # reference address or name
    stratum: int
    ref_time_s: float  # system time of the last update from the reference (s since epoch)
    system_time_s: float  # remaining correction: true − system (s); positive: clock is slow
    last_offset_s: float
    rms_offset_s: float
    frequency_ppm: float
    residual_freq_ppm: float
    skew_ppm: float
    root_delay_s: float
    root_dispersion_s: float
    update_interval_s: float
    leap_status: str  # Normal, Insert second, Delete second, Not synchronised
    taken_ns: int  # host system time just before chronyc was started (ns)
    ref_time_ns: int = 0  # ref_time exactly, parsed from its decimal text (ns since epoch)


def decimal_s_to_ns(text: str) -> int:
    """Seconds written in decimal (``1795864589.408744974``) to exact integer ns."""
    whole, _, frac = text.strip().partition(".")
    sign = -1 if whole.startswith("-") else 1
    return int(whole) * 1_000_000_000 + sign * int((frac + "000000000")[:9])


def parse_tracking(line: str, taken_ns: int) -> Tracking:
    """Parse the 14 comma-separated fields of ``chronyc -c tracking``."""
    f = line.strip().split(",")
    if len(f) < 14:
        raise ChronyError(f"unexpected tracking report ({len(f)} fields): {line.strip()!r}")
    try:
        return Tracking(
            ref_id=f[0],
            ref_name=f[1],
            stratum=int(f[2]),
            ref_time_s=float(f[3]),
            system_time_s=float(f[4]),
            last_offset_s=float(f[5]),
            rms_offset_s=float(f[6]),
            frequency_ppm=float(f[7]),
            residual_freq_ppm=float(f[8]),
            skew_ppm=float(f[9]),
            root_delay_s=float(f[10]),
            root_dispersion_s=float(f[11]),
            update_interval_s=float(f[12]),
            leap_status=f[13],
            taken_ns=taken_ns,
            ref_time_ns=decimal_s_to_ns(f[3]),
        )
    except ValueError as e:
        raise ChronyError(f"unparsable tracking report: {e}") from None


def chronyc_command(chronyc: str = "chronyc", host: str | None = None) -> list[str]:
    cmd = [chronyc, "-n", "-c"]
    if host:
        cmd += ["-h", host]
    return [*cmd, "tracking"]


def query_tracking(chronyc: str = "chronyc", host: str | None = None, timeout_s: float = 2.0
                   ) -> Tracking:  # fmt: skip
    """Run chronyc once and parse its report (slow: a subprocess; never in a receive loop)."""
    taken = host_ns()
    try:
        r = subprocess.run(
            chronyc_command(chronyc, host), capture_output=True, text=True,
            timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        raise ChronyError(f"{chronyc} not found") from None
    except subprocess.TimeoutExpired:
        raise ChronyError(f"chronyc did not answer within {timeout_s} s") from None
    if r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise ChronyError(f"chronyc failed: {msg[0] if msg else f'exit code {r.returncode}'}")
    return parse_tracking(r.stdout.strip().splitlines()[0] if r.stdout.strip() else "", taken)


def chrony_reading(tr: Tracking, t_ns: int, max_clock_error_ppm: float, stale_after_ns: int
                   ) -> Reading:  # fmt: skip
    """chrony's bound at host system time ``t_ns`` from one tracking report.

    estimate = t + system_time; half-width = root_delay/2 + root_dispersion +
    (t − taken)·(skew + |residual_freq| + max_clock_error). UNSYNCHRONIZED when chronyd says
    "Not synchronised" or stratum is 0; FREE_RUNNING when its last reference update is older
    than ``stale_after_ns``; SYNCHRONIZED otherwise.
    """
    if tr.leap_status == LEAP_UNSYNC or tr.stratum == 0:
        return Reading.none()
    vals = (tr.system_time_s, tr.root_delay_s, tr.root_dispersion_s, tr.skew_ppm,
            tr.residual_freq_ppm)  # fmt: skip
    if not all(math.isfinite(v) for v in vals) or tr.root_delay_s < 0 or tr.root_dispersion_s < 0:
        return Reading.none()
    elapsed_ns = max(0, t_ns - tr.taken_ns)
    rate = (tr.skew_ppm + abs(tr.residual_freq_ppm) + max_clock_error_ppm) * PPM
    half = math.ceil((tr.root_delay_s / 2 + tr.root_dispersion_s) * 1e9 + elapsed_ns * rate)
    est = t_ns + round(tr.system_time_s * 1e9)
    ref_ns = tr.ref_time_ns
    status = Status.SYNCHRONIZED if t_ns - ref_ns <= stale_after_ns else Status.FREE_RUNNING
    return Reading(est, est - half, est + half, status, ref_ns)


def available(chronyc: str = "chronyc", host: str | None = None, timeout_s: float = 2.0,
              **_: Any) -> tuple[bool, str]:  # fmt: skip
    """Whether chronyc exists and a chronyd answers a tracking request."""
    if shutil.which(chronyc) is None:
        return False, f"{chronyc} is not installed"
    try:
        tr = query_tracking(chronyc, host, timeout_s)
    except ChronyError as e:
        return False, str(e)
    if tr.leap_status == LEAP_UNSYNC:
        return True, f"chronyd answers but is not synchronised (reference {tr.ref_name})"
    return True, f"chronyd synchronised to {tr.ref_name} at stratum {tr.stratum}"


class ChronySource:
    """chronyd's bounds, from tracking reports polled in the background (host clock).

    Parameters: ``chronyc`` (path), ``host`` (chronyc -h: address or command-socket path),
    ``poll_s`` (default 1), ``timeout_s`` (default 2), ``max_clock_error_ppm`` (default 1,
    chrony's own maxclockerror default), ``stale_after_s`` (default: 4 × update interval,
    at least 16 s). UNSYNCHRONIZED until the first report arrives.
    """

    name = "chrony"
    bounded = True
    available = staticmethod(available)

    def __init__(
        self,
        state: SyncState | None = None,
        chronyc: str = "chronyc",
        host: str | None = None,
        poll_s: float = 1.0,
        timeout_s: float = 2.0,
        max_clock_error_ppm: float = 1.0,
        stale_after_s: float | None = None,
        start: bool = True,
        **_: Any,
    ) -> None:
        self.max_clock_error_ppm = float(max_clock_error_ppm)
        self.stale_after_s = stale_after_s
        self.poller: Poller[Tracking] = Poller(
            lambda: query_tracking(chronyc, host, timeout_s), poll_s, "chrony-poller"
        )
        if start:
            self.poller.start()

    def close(self) -> None:
        self.poller.stop()

    def read(self, local_ns: int, host_ns: int | None = None) -> Reading:
        tr = self.poller.latest
        if tr is None:
            return Reading.none()
        stale_s = self.stale_after_s
        if stale_s is None:
            stale_s = max(16.0, 4 * tr.update_interval_s)
        return chrony_reading(tr, local_ns, self.max_clock_error_ppm, round(stale_s * 1e9))
