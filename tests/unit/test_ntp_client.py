"""Client arithmetic and reply validation, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skewlab.ntp.client import (
    ALL_REASONS,
    CLIENT_PRECISION,
    NOT_OURS_REASONS,
    REPLY_REASONS,
    NtpError,
    check_reply,
    compute_sample,
    sample_from_reply,
)
from skewlab.ntp.packet import (
    MODE_CLIENT,
    MODE_SERVER,
    NtpPacket,
    ns_to_ntp64,
    ns_to_short,
    precision_ns,
)

T0 = 1_800_000_000 * 10**9  # an instant in 2027, Unix ns


def test_compute_sample_known_answer() -> None:
    # Local clock 5 ms ahead; 2 ms out, 1 ms server hold, 4 ms back (asymmetric path).
    ahead = 5_000_000
    t1 = T0 + ahead
    t2 = T0 + 2_000_000
    t3 = t2 + 1_000_000
    t4 = T0 + 2_000_000 + 1_000_000 + 4_000_000 + ahead
    s = compute_sample("x", t1, t2, t3, t4, root_delay_ns=300, root_dispersion_ns=70, precision=-10)
    # θ = ((2 − 5) + (3 − 12)) / 2 ms = −6 ms; truth is −5 ms: error (2 − 4)/2 = −1 ms.
    assert s.offset_ns == -6_000_000
    assert s.delay_ns == 6_000_000  # 7 ms round trip − 1 ms hold
    expected_distance = (
        3_000_000 + 1 + 150 + 70 + precision_ns(-10) + precision_ns(CLIENT_PRECISION)
    )
    assert s.root_distance_ns == expected_distance
    assert s.earliest_offset_ns <= -ahead <= s.latest_offset_ns


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(NtpError) as ei:
        compute_sample("x", 100, 50, 200, 120)  # server held 150 ns of a 20 ns round trip
    assert ei.value.reason == "negative_delay"


@given(
    truth_offset=st.integers(-(10**9), 10**9),
    d_out=st.integers(0, 10**8),
    d_back=st.integers(0, 10**8),
    hold=st.integers(0, 10**7),
)
def test_interval_always_holds_truth(truth_offset: int, d_out: int, d_back: int, hold: int) -> None:
    """Any asymmetry: θ errs by (d_out − d_back)/2 and [θ − λ, θ + λ] holds the truth."""
    # truth_offset = reference − local
    t1 = T0 - truth_offset
    t2 = T0 + d_out
    t3 = t2 + hold
    t4 = t3 + d_back - truth_offset
    s = compute_sample("x", t1, t2, t3, t4)
    assert s.delay_ns == d_out + d_back
    assert abs(2 * (s.offset_ns - truth_offset) - (d_out - d_back)) <= 1
    assert s.earliest_offset_ns <= truth_offset <= s.latest_offset_ns


def _reply(xmt: int, **kw: object) -> bytes:
    base: dict[str, object] = {
        "mode": MODE_SERVER,
        "stratum": 1,
        "origin_ts": xmt,
        "receive_ts": ns_to_ntp64(T0),
        "transmit_ts": ns_to_ntp64(T0 + 1000),
        "root_dispersion": ns_to_short(1000),
    }
    base.update(kw)
    return NtpPacket(**base).encode()  # type: ignore[arg-type]


XMT = ns_to_ntp64(T0) ^ 0x5A


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"mode": MODE_CLIENT}, "bad_mode"),
        ({"origin_ts": XMT ^ 1}, "bad_origin"),
        ({"stratum": 0, "ref_id": b"RATE", "leap": 3}, "kod_rate"),
        ({"stratum": 0, "ref_id": b"DENY", "leap": 3}, "kod_deny"),
        ({"stratum": 0, "ref_id": b"RSTR", "leap": 3}, "kod_rstr"),
        ({"stratum": 0, "ref_id": b"INIT"}, "kod_other"),
        ({"leap": 3}, "server_unsynchronized"),
        ({"stratum": 16}, "bad_stratum"),
        ({"transmit_ts": 0}, "zero_transmit"),
        ({"receive_ts": 0}, "zero_receive"),
    ],
)
def test_check_reply_rejects_with_reason(kw: dict[str, object], reason: str) -> None:
    with pytest.raises(NtpError) as ei:
        check_reply(_reply(XMT, **kw), XMT)
    assert ei.value.reason == reason


def test_server_times_backwards_are_rejected() -> None:
    pkt = check_reply(_reply(XMT, transmit_ts=ns_to_ntp64(T0 - 1000)), XMT)
    with pytest.raises(NtpError) as ei:
        sample_from_reply("x", pkt, T0, T0 + 5000)
    assert ei.value.reason == "bad_server_times"


def test_good_reply_gives_sample() -> None:
    pkt = check_reply(_reply(XMT), XMT)
    s = sample_from_reply("x", pkt, T0 - 500, T0 + 1500)
    assert (s.t2_ns, s.t3_ns) == (T0, T0 + 1000)
    assert s.offset_ns == 0 and s.delay_ns == 1000
    assert s.root_dispersion_ns >= 1000


@given(data=st.binary(max_size=120), xmt=st.integers(0, 2**64 - 1))
def test_random_bytes_never_crash_the_reply_check(data: bytes, xmt: int) -> None:
    try:
        pkt = check_reply(data, xmt)
    except NtpError as e:
        assert e.reason in NOT_OURS_REASONS | REPLY_REASONS
        assert e.reason in ALL_REASONS
        return
    assert pkt.origin_ts == xmt and pkt.mode == MODE_SERVER  # only our reply passes


@given(
    leap=st.integers(0, 3),
    stratum=st.integers(0, 255),
    rec=st.integers(0, 2**64 - 1),
    xmt_ts=st.integers(0, 2**64 - 1),
    ref=st.binary(min_size=4, max_size=4),
)
def test_reply_acceptance_matches_the_rules(
    leap: int, stratum: int, rec: int, xmt_ts: int, ref: bytes
) -> None:
    """A reply with the right origin passes iff every rule holds (rules restated here)."""
    data = _reply(XMT, leap=leap, stratum=stratum, receive_ts=rec, transmit_ts=xmt_ts, ref_id=ref)
    ok = stratum != 0 and leap != 3 and stratum < 16 and xmt_ts != 0 and rec != 0
    try:
        check_reply(data, XMT)
        accepted = True
    except NtpError as e:
        assert e.reason in REPLY_REASONS
        accepted = False
    assert accepted == ok
