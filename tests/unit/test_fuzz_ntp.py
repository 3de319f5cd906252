"""Property tests of the NTP reply path on mutated valid replies (random bytes and field-level
rules are in test_ntp_client.py / test_ntp_packet.py): a mutation is either rejected with a
known reason or yields a sample whose interval is consistent with the bytes that passed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from skewlab.ntp.client import ALL_REASONS, NtpError, check_reply, sample_from_reply
from skewlab.ntp.packet import MODE_SERVER, NtpPacket, ns_to_ntp64, ns_to_short

T1 = 1_800_000_000 * 10**9  # client transmit, Unix ns
XMT = ns_to_ntp64(T1) ^ 0x3C  # transmit field as sent (T1 with random low bits)


def _good() -> bytes:
    return NtpPacket(
        mode=MODE_SERVER,
        stratum=2,
        origin_ts=XMT,
        receive_ts=ns_to_ntp64(T1 + 40_000),
        transmit_ts=ns_to_ntp64(T1 + 50_000),
        root_dispersion=ns_to_short(2_000),
        ref_id=b"SKEW",
    ).encode()


GOOD = _good()


@settings(max_examples=500)
@given(
    edits=st.lists(st.tuples(st.integers(0, 47), st.integers(1, 255)), min_size=1, max_size=6),
    tail=st.binary(max_size=24),
)
def test_mutated_reply_is_rejected_with_a_reason_or_checked(
    edits: list[tuple[int, int]], tail: bytes
) -> None:
    data = bytearray(GOOD)
    for pos, xor in edits:
        data[pos] ^= xor
    data = bytes(data) + tail
    try:
        pkt = check_reply(data, XMT)
        s = sample_from_reply("x", pkt, T1, T1 + 100_000)
    except NtpError as e:
        assert e.reason in ALL_REASONS
        return
    # what passed is our reply, and the sample is the on-wire arithmetic of the bytes
    assert pkt.origin_ts == XMT and pkt.mode == MODE_SERVER and 0 < pkt.stratum < 16
    assert s.delay_ns >= 0 and s.root_distance_ns >= (s.delay_ns + 1) // 2
    assert s.t3_ns >= s.t2_ns


@settings(max_examples=300)
@given(pos=st.integers(24, 31), xor=st.integers(1, 255))
def test_any_change_of_the_origin_field_is_not_ours(pos: int, xor: int) -> None:
    """Bytes 24..31 hold the origin timestamp: a reply echoing anything else is ignored."""
    data = bytearray(GOOD)
    data[pos] ^= xor
    try:
        check_reply(bytes(data), XMT)
    except NtpError as e:
        assert e.reason == "bad_origin"
    else:
        raise AssertionError("a reply with a changed origin timestamp was accepted")
