"""RFC 5905 packet codec with exact integer-nanosecond timestamps.

NTP timestamps are 64-bit: 32 bits of seconds since 1900-01-01 (modulo 2**32, the "era") and
32 bits of fraction. A fraction unit is 2**-32 s ≈ 0.233 ns, finer than 1 ns, so rounding each
way makes the ns → NTP → ns round trip exact. Decoding picks the era that puts the timestamp
nearest a pivot (by default the current host time), so 2036 does not break it.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

NTP_UNIX_DELTA_S = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
NS_PER_S = 1_000_000_000
_ERA_S = 1 << 32
HEADER_LEN = 48
_HEADER = struct.Struct("!BBbbII4sQQQQ")

MODE_CLIENT = 3
MODE_SERVER = 4
LEAP_UNSYNC = 3


class NtpDecodeError(ValueError):
    """A packet that cannot be an NTP header; ``reason`` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def ns_to_ntp64(unix_ns: int) -> int:
    """Unix-epoch nanoseconds → raw 64-bit NTP timestamp (era folded away)."""
    total_ns = unix_ns + NTP_UNIX_DELTA_S * NS_PER_S
    secs, rem = divmod(total_ns, NS_PER_S)
    frac = ((rem << 32) + NS_PER_S // 2) // NS_PER_S
    if frac >> 32:  # rounding carried into the next second
        secs += 1
        frac = 0
    return ((secs % _ERA_S) << 32) | frac


def ntp64_to_ns(raw: int, pivot_unix_ns: int | None = None) -> int:
    """Raw 64-bit NTP timestamp → Unix-epoch ns, choosing the era nearest ``pivot_unix_ns``."""
    if pivot_unix_ns is None:
        pivot_unix_ns = time.time_ns()
    secs = raw >> 32
    frac = raw & 0xFFFF_FFFF
    frac_ns = (frac * NS_PER_S + (1 << 31)) >> 32
    pivot_ntp_s = pivot_unix_ns // NS_PER_S + NTP_UNIX_DELTA_S
    era = pivot_ntp_s // _ERA_S
    best = None
    for e in (era - 1, era, era + 1):
        cand_s = e * _ERA_S + secs
        if best is None or abs(cand_s - pivot_ntp_s) < abs(best - pivot_ntp_s):
            best = cand_s
    assert best is not None
    return (best - NTP_UNIX_DELTA_S) * NS_PER_S + frac_ns


def short_to_ns(raw: int) -> int:
    """NTP short format (16.16 unsigned seconds) → ns, rounded."""
    return (raw * NS_PER_S + (1 << 15)) >> 16


def ns_to_short(ns: int) -> int:
    """ns → NTP short format, rounded up so a dispersion is never understated; saturates."""
    if ns <= 0:
        return 0
    v = -((-ns << 16) // NS_PER_S)  # ceil
    return min(v, 0xFFFF_FFFF)


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """The 48-byte NTP header. Timestamps are kept raw (64-bit) to allow exact origin checks."""

    leap: int = 0
    version: int = 4
    mode: int = MODE_CLIENT
    stratum: int = 0
    poll: int = 0
    precision: int = 0
    root_delay: int = 0  # short format
    root_dispersion: int = 0  # short format
    ref_id: bytes = b"\0\0\0\0"
    ref_ts: int = 0
    origin_ts: int = 0
    receive_ts: int = 0
    transmit_ts: int = 0

    def encode(self) -> bytes:
        first = ((self.leap & 3) << 6) | ((self.version & 7) << 3) | (self.mode & 7)
        return _HEADER.pack(
            first,
            self.stratum & 0xFF,
            self.poll,
            self.precision,
            self.root_delay & 0xFFFF_FFFF,
            self.root_dispersion & 0xFFFF_FFFF,
            self.ref_id[:4].ljust(4, b"\0"),
            self.ref_ts,
            self.origin_ts,
            self.receive_ts,
            self.transmit_ts,
        )

    @classmethod
    def decode(cls, data: bytes) -> NtpPacket:
        """Decode a header; extension fields and MACs after byte 48 are ignored."""
        if len(data) < HEADER_LEN:
            raise NtpDecodeError("truncated", f"{len(data)} bytes < {HEADER_LEN}")
        (first, stratum, poll, precision, rdelay, rdisp, ref_id, ref_ts, org, rec, xmt) = (
            _HEADER.unpack_from(data)
        )
        version = (first >> 3) & 7
        if version not in (3, 4):
            raise NtpDecodeError("bad_version", str(version))
        mode = first & 7
        if mode == 0 or mode == 7:
            raise NtpDecodeError("bad_mode", str(mode))
        return cls(
            leap=first >> 6,
            version=version,
            mode=mode,
            stratum=stratum,
            poll=poll,
            precision=precision,
            root_delay=rdelay,
            root_dispersion=rdisp,
            ref_id=ref_id,
            ref_ts=ref_ts,
            origin_ts=org,
            receive_ts=rec,
            transmit_ts=xmt,
        )

    @property
    def root_delay_ns(self) -> int:
        return short_to_ns(self.root_delay)

    @property
    def root_dispersion_ns(self) -> int:
        return short_to_ns(self.root_dispersion)

    @property
    def kiss_code(self) -> str | None:
        """The kiss-o'-death code (e.g. 'RATE', 'DENY', 'RSTR') of a stratum-0 reply."""
        if self.stratum != 0:
            return None
        return self.ref_id.decode("ascii", "replace").rstrip("\0")


def precision_ns(precision: int) -> int:
    """2**precision seconds in ns (precision is a signed log2)."""
    if precision >= 0:
        return NS_PER_S << precision
    return NS_PER_S >> -precision
