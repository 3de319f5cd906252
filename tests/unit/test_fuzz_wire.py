"""Property tests of the event decoder: any bytes are accepted or rejected with a known reason,
only canonical packets are accepted, and no change to a signed packet gets through."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from skewlab.net.wire import KIND_EVENT, REASONS, WireCodec, WireError

SOURCES = ["system", "ntp", "skewlab"]
KEY = b"fuzz key"
SIGNED = WireCodec(SOURCES, KEY)
PLAIN = WireCodec(SOURCES)
NONE = (0, None, None, None)


def _good(codec: WireCodec, eid: int, payload: int) -> bytes:
    flat = (2, 10 * eid, 10 * eid - 5, 10 * eid + 5) + (0,) + (-(2**63),) * 3 + (1, 7, 6, 8)
    return codec.encode_flat(KIND_EVENT, eid, eid + 1, 123 * eid, flat, payload)


@settings(max_examples=400)
@given(data=st.binary(max_size=400), signed=st.booleans())
def test_any_bytes_accepted_or_rejected_with_a_reason(data: bytes, signed: bool) -> None:
    codec = SIGNED if signed else PLAIN
    try:
        v = codec.decode_fields(data)
    except WireError as e:
        assert e.reason in REASONS
        return
    # accepted: header and readings are exactly what this codec encodes for those fields
    again = codec.encode_flat(v[2], v[6], v[7], v[8], tuple(v[10:]), v[9])
    assert len(again) == len(data)
    assert again[: codec.head_len] == data[: codec.head_len]


@settings(max_examples=400)
@given(
    eid=st.integers(0, 2**32),
    payload=st.integers(0, 64),
    pos=st.integers(0, 10_000),
    xor=st.integers(1, 255),
)
def test_no_single_byte_change_of_a_signed_packet_passes(
    eid: int, payload: int, pos: int, xor: int
) -> None:
    good = _good(SIGNED, eid, payload)
    assert SIGNED.decode_fields(good)[6] == eid
    bad = bytearray(good)
    bad[pos % len(bad)] ^= xor
    try:
        SIGNED.decode_fields(bytes(bad))
    except WireError as e:
        assert e.reason in REASONS
    else:
        raise AssertionError(f"changed byte {pos % len(bad)} of a signed packet was accepted")


@settings(max_examples=200)
@given(eid=st.integers(0, 2**32), cut=st.integers(0, 200), extra=st.binary(min_size=1, max_size=8))
def test_truncated_or_extended_packets_are_rejected(eid: int, cut: int, extra: bytes) -> None:
    for codec in (SIGNED, PLAIN):
        good = _good(codec, eid, 3)
        for data in (good[: cut % len(good)], good + extra):
            try:
                codec.decode_fields(data)
            except WireError as e:
                assert e.reason in ("truncated", "bad_length", "bad_mac")
            else:
                raise AssertionError("a truncated or extended packet was accepted")
