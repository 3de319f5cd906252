"""NTP packet codec: exact timestamp conversion (across eras), header round trip, fuzzing."""

from __future__ import annotations

import calendar

from hypothesis import given
from hypothesis import strategies as st

from skewlab.ntp.packet import (
    DECODE_REASONS,
    HEADER_LEN,
    NS_PER_S,
    NtpDecodeError,
    NtpPacket,
    ns_to_ntp64,
    ns_to_short,
    ntp64_to_ns,
    precision_ns,
    short_to_ns,
)

# 2036-02-07T06:28:16Z: NTP seconds wrap from 2**32 − 1 to 0 (era 0 → era 1).
ERA1_UNIX_S = calendar.timegm((2036, 2, 7, 6, 28, 16, 0, 0, 0))
ERA1_UNIX_NS = ERA1_UNIX_S * NS_PER_S
YEAR_NS = 365 * 86_400 * NS_PER_S

# Unix ns from 1901 to 2200: well inside ±68 years of a pivot drawn near each value.
instants = st.integers(min_value=-69 * YEAR_NS, max_value=230 * YEAR_NS)


def test_era_boundary_known_answer() -> None:
    assert ERA1_UNIX_S + 2_208_988_800 == 1 << 32  # the calendar date is the wrap instant
    assert ns_to_ntp64(ERA1_UNIX_NS) == 0  # seconds field wrapped to 0, fraction 0
    assert ns_to_ntp64(ERA1_UNIX_NS - 1) >> 32 == 0xFFFF_FFFF
    # Half a second after the wrap: fraction is exactly 2**31.
    assert ns_to_ntp64(ERA1_UNIX_NS + NS_PER_S // 2) == 1 << 31
    # The same raw value decodes to 2036 or 1900 depending on the pivot.
    assert ntp64_to_ns(0, ERA1_UNIX_NS + YEAR_NS) == ERA1_UNIX_NS
    assert ntp64_to_ns(0, -70 * YEAR_NS) == -2_208_988_800 * NS_PER_S


def test_unix_epoch_known_answer() -> None:
    assert ns_to_ntp64(0) == 2_208_988_800 << 32
    assert ns_to_ntp64(1) == (2_208_988_800 << 32) | round((1 << 32) / NS_PER_S)


@given(t=instants, skew=st.integers(min_value=-60 * YEAR_NS, max_value=60 * YEAR_NS))
def test_timestamp_round_trip_is_exact(t: int, skew: int) -> None:
    raw = ns_to_ntp64(t)
    assert 0 <= raw < 1 << 64
    assert ntp64_to_ns(raw, t + skew) == t


@given(offset=st.integers(min_value=-10 * NS_PER_S, max_value=10 * NS_PER_S))
def test_round_trip_across_2036_boundary(offset: int) -> None:
    t = ERA1_UNIX_NS + offset
    pivot = ERA1_UNIX_NS - offset  # pivot on the other side of the wrap
    assert ntp64_to_ns(ns_to_ntp64(t), pivot) == t


@given(ns=st.integers(min_value=0, max_value=65_535 * NS_PER_S))
def test_short_format_never_understates(ns: int) -> None:
    back = short_to_ns(ns_to_short(ns))
    assert back >= ns
    assert back - ns <= NS_PER_S // 65_536 + 1  # at most one 16.16 unit (≈15.3 µs) above


def test_precision_known_answers() -> None:
    assert precision_ns(0) == NS_PER_S
    assert precision_ns(-1) == NS_PER_S // 2
    assert precision_ns(-20) == -(-NS_PER_S // (1 << 20))  # 953.67… → 954, rounded up
    assert precision_ns(2) == 4 * NS_PER_S


packets = st.builds(
    NtpPacket,
    leap=st.integers(0, 3),
    version=st.sampled_from([3, 4]),
    mode=st.integers(1, 5),
    stratum=st.integers(0, 255),
    poll=st.integers(-128, 127),
    precision=st.integers(-128, 127),
    root_delay=st.integers(0, 2**32 - 1),
    root_dispersion=st.integers(0, 2**32 - 1),
    ref_id=st.binary(min_size=4, max_size=4),
    ref_ts=st.integers(0, 2**64 - 1),
    origin_ts=st.integers(0, 2**64 - 1),
    receive_ts=st.integers(0, 2**64 - 1),
    transmit_ts=st.integers(0, 2**64 - 1),
)


@given(pkt=packets, ext_words=st.integers(0, 20))
def test_packet_round_trip_ignores_extension_fields(pkt: NtpPacket, ext_words: int) -> None:
    data = pkt.encode()
    assert len(data) == HEADER_LEN
    assert NtpPacket.decode(data) == pkt
    assert NtpPacket.decode(data + b"\xab" * (4 * ext_words)) == pkt


@given(data=st.binary(max_size=200))
def test_random_bytes_decode_or_reject_with_reason(data: bytes) -> None:
    try:
        pkt = NtpPacket.decode(data)
    except NtpDecodeError as e:
        assert e.reason in DECODE_REASONS
        return
    # Accepted: it really is a well-formed header, and re-encodes to the same 48 bytes.
    assert len(data) >= HEADER_LEN and (len(data) - HEADER_LEN) % 4 == 0
    assert pkt.version in (3, 4) and 1 <= pkt.mode <= 5
    assert pkt.encode() == data[:HEADER_LEN]


def test_each_decode_reason_is_reachable() -> None:
    good = NtpPacket(mode=3).encode()
    cases = {
        "truncated": good[:47],
        "bad_length": good + b"\0",
        "bad_version": bytes([(2 << 3) | 3]) + good[1:],
        "bad_mode": bytes([(4 << 3) | 7]) + good[1:],
    }
    for reason, data in cases.items():
        try:
            NtpPacket.decode(data)
        except NtpDecodeError as e:
            assert e.reason == reason
        else:
            raise AssertionError(f"{reason}: accepted")
    assert set(cases) == DECODE_REASONS
