"""RFC 5905 packet codec with exact integer-nanosecond timestamps.

NTP timestamps are 64-bit: 32 bits of seconds since 1900-01-01 (modulo 2**32, the "era") and
32 bits of fraction. A fraction unit is 2**-32 s ≈ 0.233 ns, finer than 1 ns, so rounding each
way makes the ns → NTP → ns round trip exact. Decoding picks the era that puts the timestamp
nearest a pivot (by default the current host time), so 2036 does not break it.

Layout of the 48-byte header (RFC 5905 §7.3), network byte order:
  LI(2) VN(3) Mode(3) | Stratum(8) | Poll(8, signed log2 s) | Precision(8, signed log2 s)
  Root Delay (32, short 16.16 s) | Root Dispersion (32, short 16.16 s) | Reference ID (32)
  Reference, Origin, Receive, Transmit timestamps (64 each)
Anything after byte 48 (extension fields, MAC) is ignored; it must be 32-bit aligned.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from skewlab.timebase import host_ns

NTP_UNIX_DELTA_S = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
NS_PER_S = 1_000_000_000
_ERA_S = 1 << 32
HEADER_LEN = 48
_HEADER = struct.Struct("!BBbbII4sQQQQ")

MODE_SYMMETRIC_ACTIVE = 1
MODE_SYMMETRIC_PASSIVE = 2
MODE_CLIENT = 3
MODE_SERVER = 4
MODE_BROADCAST = 5

LEAP_NONE = 0
LEAP_ADD_SECOND = 1
LEAP_DEL_SECOND = 2
LEAP_UNSYNC = 3  # "alarm": the server's clock is not synchronized

STRATUM_KOD = 0  # a stratum-0 reply is a kiss-o'-death; the reference id holds the code
STRATUM_UNSYNC = 16  # RFC 5905: 16 means unsynchronized; 17..255 are reserved

KOD_RATE = "RATE"  # rate exceeded: back off (poll less often)
KOD_DENY = "DENY"  # access denied: stop querying this server
KOD_RSTR = "RSTR"  # access restricted: stop querying this server
KOD_CODES = (KOD_RATE, KOD_DENY, KOD_RSTR)

# Every reason NtpPacket.decode can reject a datagram with.
DECODE_REASONS = frozenset({"truncated", "bad_length", "bad_version", "bad_mode"})


class NtpDecodeError(ValueError):
    """A packet that cannot be an NTP header; ``reason`` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def ns_to_ntp64(unix_ns: int) -> int:
    """Unix-epoch nanoseconds → raw 64-bit NTP timestamp (era folded away), rounded."""
    total_ns = unix_ns + NTP_UNIX_DELTA_S * NS_PER_S
    secs, rem = divmod(total_ns, NS_PER_S)
    frac = ((rem << 32) + NS_PER_S // 2) // NS_PER_S
    if frac >> 32:  # rounding carried into the next second
        secs += 1
        frac = 0
    return ((secs % _ERA_S) << 32) | frac


def ntp64_to_ns(raw: int, pivot_unix_ns: int | None = None) -> int:
    """Raw 64-bit NTP timestamp → Unix-epoch ns, choosing the era nearest ``pivot_unix_ns``.

    Exact inverse of :func:`ns_to_ntp64` for any instant within 68 years of the pivot.
    """
    if pivot_unix_ns is None:
        pivot_unix_ns = host_ns()
    secs = raw >> 32
    frac = raw & 0xFFFF_FFFF
    frac_ns = (frac * NS_PER_S + (1 << 31)) >> 32
    pivot_ntp_s = pivot_unix_ns // NS_PER_S + NTP_UNIX_DELTA_S
    era = pivot_ntp_s // _ERA_S
    best = min(
        (e * _ERA_S + secs for e in (era - 1, era, era + 1)),
        key=lambda cand: abs(cand - pivot_ntp_s),
    )
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


def precision_ns(precision: int) -> int:
    """2**precision seconds in ns, rounded up (precision is a signed log2)."""
    if precision >= 0:
        return NS_PER_S << min(precision, 64)
    return -((-NS_PER_S) >> -precision)  # ceil: never understate a resolution


@dataclass(frozen=True, slots=True)
class NtpPacket:
    """The 48-byte NTP header. Timestamps are kept raw (64-bit) to allow exact origin checks."""

    leap: int = LEAP_NONE  # 0..3, LEAP_UNSYNC = server not synchronized
    version: int = 4  # 3 or 4
    mode: int = MODE_CLIENT
    stratum: int = 0  # 0 = kiss-o'-death, 1 = primary, 16 = unsynchronized
    poll: int = 0  # log2 seconds, signed
    precision: int = 0  # log2 seconds, signed (e.g. -20 ≈ 1 µs)
    root_delay: int = 0  # short format (16.16 s), round trip to the primary reference
    root_dispersion: int = 0  # short format (16.16 s), error bound to the primary reference
    ref_id: bytes = b"\0\0\0\0"  # 4 bytes; ASCII code at stratum 0/1, address above
    ref_ts: int = 0  # raw NTP timestamp: when the server's clock was last set
    origin_ts: int = 0  # raw: the request's transmit timestamp, echoed
    receive_ts: int = 0  # raw: T2, server receive
    transmit_ts: int = 0  # raw: T3 (in a reply) or the client's T1 field (in a request)

    def encode(self) -> bytes:
        """The 48 header bytes (values are masked to their field widths)."""
        first = ((self.leap & 3) << 6) | ((self.version & 7) << 3) | (self.mode & 7)
        return _HEADER.pack(
            first,
            self.stratum & 0xFF,
            _signed8(self.poll),
            _signed8(self.precision),
            self.root_delay & 0xFFFF_FFFF,
            self.root_dispersion & 0xFFFF_FFFF,
            bytes(self.ref_id[:4]).ljust(4, b"\0"),
            self.ref_ts & 0xFFFF_FFFF_FFFF_FFFF,
            self.origin_ts & 0xFFFF_FFFF_FFFF_FFFF,
            self.receive_ts & 0xFFFF_FFFF_FFFF_FFFF,
            self.transmit_ts & 0xFFFF_FFFF_FFFF_FFFF,
        )

    @classmethod
    def decode(cls, data: bytes) -> NtpPacket:
        """Decode a header; raises NtpDecodeError with a reason in DECODE_REASONS.

        Extension fields and MACs after byte 48 are ignored, but must keep 32-bit alignment.
        """
        if len(data) < HEADER_LEN:
            raise NtpDecodeError("truncated", f"{len(data)} bytes < {HEADER_LEN}")
        if (len(data) - HEADER_LEN) % 4:
            raise NtpDecodeError("bad_length", f"{len(data)} bytes is not 32-bit aligned")
        (first, stratum, poll, precision, rdelay, rdisp, ref_id, ref_ts, org, rec, xmt) = (
            _HEADER.unpack_from(data)
        )
        version = (first >> 3) & 7
        if version not in (3, 4):
            raise NtpDecodeError("bad_version", str(version))
        mode = first & 7
        if mode == 0 or mode > MODE_BROADCAST:  # 0 reserved, 6 control, 7 private
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
        if self.stratum != STRATUM_KOD:
            return None
        return self.ref_id.decode("ascii", "replace").rstrip("\0")


def _signed8(v: int) -> int:
    """Wrap an int into the signed 8-bit range of the poll/precision fields."""
    return ((v + 128) & 0xFF) - 128
