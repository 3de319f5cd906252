"""ChronoTick shared-memory source: segments written byte by byte from the published layout."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest

from skewlab.clocks.base import Status
from skewlab.clocks.external.chronotick_mcp import McpReplyError, params_from_reply
from skewlab.clocks.external.chronotick_shm import ChronoTickShmSource, available

VALID, NTP_READY, MODELS_READY, WARMUP = 1, 2, 4, 8
PRED_S = 1_700_000_000.0  # exactly representable: the hand computations below stay exact


def segment(**over: float) -> bytes:
    """A 128-byte segment, each field packed at its documented offset (native order)."""
    f = {
        "corrected": PRED_S + 0.0015, "system": PRED_S + 1.5, "offset": 0.0015,
        "drift": 2e-6, "off_unc": 1e-4, "drift_unc": 1e-7, "pred": PRED_S,
        "valid_until": PRED_S + 10.0, "confidence": 0.95, "seq": 7,
        "flags": VALID | NTP_READY | MODELS_READY | WARMUP, "source": 4, "count": 42,
        "last_sync": PRED_S - 1.0, "uptime": 3600.0, "corrections": 9, "latency": 0.25,
    }  # fmt: skip
    f.update(over)
    b = bytearray(128)
    for off, fmt, key in [
        (0, "@d", "corrected"), (8, "@d", "system"), (16, "@d", "offset"), (24, "@d", "drift"),
        (32, "@d", "off_unc"), (40, "@d", "drift_unc"), (48, "@d", "pred"),
        (56, "@d", "valid_until"), (64, "@f", "confidence"), (68, "@I", "seq"),
        (72, "@I", "flags"), (76, "@I", "source"), (80, "@I", "count"), (88, "@d", "last_sync"),
        (96, "@d", "uptime"), (104, "@I", "corrections"), (112, "@f", "latency"),
    ]:  # fmt: skip
        struct.pack_into(fmt, b, off, f[key])
    return bytes(b)


def source_on(tmp_path: Path, data: bytes, **kw) -> ChronoTickShmSource:
    p = tmp_path / "chronotick_shm"
    p.write_bytes(data)
    return ChronoTickShmSource(None, path=str(p), **kw)


def test_known_answer(tmp_path: Path) -> None:
    src = source_on(tmp_path, segment())
    local = 1_700_000_002_000_000_000  # 2 s after prediction_time
    r = src.read(local)
    # estimate = t + 1.5 ms + 2 ppm · 2 s = t + 1_500_000 + 4_000 ns
    assert r.estimate_ns == local + 1_504_000
    # σ = sqrt(100 µs² + (1e-7 · 2 s)²) = sqrt(100_000² + 200²) ns; 3σ rounded up
    half = math.ceil(3 * math.sqrt(100_000**2 + 200**2))
    assert half == 300_001
    assert (r.earliest_ns, r.latest_ns) == (r.estimate_ns - half, r.estimate_ns + half)
    assert r.status is Status.SYNCHRONIZED
    assert r.as_of_ns == 1_700_000_001_500_000_000  # system_timestamp of the published state


def test_k_is_configurable(tmp_path: Path) -> None:
    r = source_on(tmp_path, segment(), k=1.0).read(1_700_000_000_000_000_000)
    assert r.latest_ns - r.estimate_ns == 100_000  # 1σ at prediction_time = offset_uncertainty


def test_stale_then_unsynchronized(tmp_path: Path) -> None:
    src = source_on(tmp_path, segment(), stale_grace_s=10.0)
    valid_until = 1_700_000_010_000_000_000
    assert src.read(valid_until).status is Status.SYNCHRONIZED
    stale = src.read(valid_until + 5_000_000_000)
    assert stale.status is Status.FREE_RUNNING and stale.estimate_ns is not None
    gone = src.read(valid_until + 11_000_000_000)
    assert gone.status is Status.UNSYNCHRONIZED and gone.estimate_ns is None


@pytest.mark.parametrize(
    ("over", "status"),
    [
        ({"flags": 0}, Status.UNSYNCHRONIZED),  # not VALID
        ({"flags": NTP_READY | MODELS_READY}, Status.UNSYNCHRONIZED),
        ({"source": 0}, Status.UNSYNCHRONIZED),  # no_data
        ({"off_unc": float("nan")}, Status.UNSYNCHRONIZED),
        ({"drift_unc": -1e-7}, Status.UNSYNCHRONIZED),
        ({"flags": VALID | MODELS_READY}, Status.FREE_RUNNING),  # valid, NTP not ready
    ],
)
def test_invalid_states(tmp_path: Path, over: dict, status: Status) -> None:
    r = source_on(tmp_path, segment(**over)).read(1_700_000_001_000_000_000)
    assert r.status is status
    assert (r.estimate_ns is None) == (status is Status.UNSYNCHRONIZED)


class Sequence:
    """A buffer whose content changes between accesses, like a segment being rewritten."""

    def __init__(self, states: list[bytes]) -> None:
        self.states = states
        self.reads = 0

    def __getitem__(self, sl: slice) -> bytes:
        i = min(self.reads, len(self.states) - 1)
        self.reads += 1
        return self.states[i][sl]


def test_torn_read_is_retried(tmp_path: Path) -> None:
    old, new = segment(seq=7), segment(seq=8, offset=0.0025)
    src = ChronoTickShmSource(None, path=str(tmp_path / "none"))
    # seq read from the old state, the copy already from the new one: retry, then consistent
    buf = Sequence([old, new, new, new, new])
    src.set_buffer(buf)
    r = src.read(1_700_000_000_000_000_000)
    assert r.estimate_ns == 1_700_000_000_000_000_000 + 2_500_000
    assert buf.reads == 6  # two attempts of three accesses each
    assert src.torn_reads == 0


def test_always_torn_falls_back_to_last_consistent(tmp_path: Path) -> None:
    src = ChronoTickShmSource(None, path=str(tmp_path / "none"), retries=5)
    assert src.read(1).status is Status.UNSYNCHRONIZED  # nothing mapped: no value, no guess
    src.set_buffer(segment(seq=3))
    first = src.read(1_700_000_000_000_000_000)
    flapping = [segment(seq=s, offset=0.009) for s in range(100, 160)]
    src.set_buffer(Sequence(flapping))
    again = src.read(1_700_000_000_000_000_000)
    assert src.torn_reads == 1
    assert again == first  # the last consistent copy, not the torn data


def test_segment_rewritten_in_place_is_seen(tmp_path: Path) -> None:
    p = tmp_path / "chronotick_shm"
    p.write_bytes(segment(seq=1))
    src = ChronoTickShmSource(None, path=str(p))
    t = 1_700_000_000_000_000_000
    assert src.read(t).estimate_ns == t + 1_500_000
    with open(p, "r+b") as f:  # the daemon rewrites the same object
        f.write(segment(seq=2, offset=-0.002))
    assert src.read(t).estimate_ns == t - 2_000_000


def test_available_reports_reasons(tmp_path: Path) -> None:
    ok, why = available(path=str(tmp_path / "missing"))
    assert not ok and "no ChronoTick segment" in why
    (tmp_path / "short").write_bytes(b"\0" * 64)
    ok, why = available(path=str(tmp_path / "short"))
    assert not ok and "64 bytes" in why
    (tmp_path / "good").write_bytes(segment())
    assert available(path=str(tmp_path / "good"))[0]


def test_mcp_reply_mapping() -> None:
    reply = {
        "corrected_time": PRED_S + 0.001, "system_time": PRED_S, "offset_correction": 0.001,
        "drift_rate": 0.0, "offset_uncertainty": 2e-4, "drift_uncertainty": 0.0,
        "time_uncertainty": 2e-4, "confidence": 0.9, "source": "fusion",
        "prediction_time": PRED_S, "valid_until": PRED_S + 5, "is_valid": True,
        "is_ntp_ready": False, "is_models_ready": True, "call_latency_ms": 3.0,
    }  # fmt: skip
    p = params_from_reply(reply)
    assert (p.flags, p.source) == (VALID | MODELS_READY, 4)
    del reply["valid_until"]
    with pytest.raises(McpReplyError, match="valid_until"):
        params_from_reply(reply)
