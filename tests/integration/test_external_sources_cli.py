"""``skewlab sources``: availability with reasons and a live reading from a real segment."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from tests.conftest import run_skewlab


def test_sources_lists_availability_and_live_reading(tmp_path: Path) -> None:
    seg = tmp_path / "chronotick_shm"
    now = time.time()
    b = bytearray(128)
    for off, fmt, v in [
        (8, "@d", now), (16, "@d", -0.004), (32, "@d", 2e-4), (48, "@d", now),
        (56, "@d", now + 600), (68, "@I", 5), (72, "@I", 1 | 2), (76, "@I", 1),
    ]:  # fmt: skip
        struct.pack_into(fmt, b, off, v)
    seg.write_bytes(bytes(b))
    r = run_skewlab("sources", "--json", "--wait", "0", "-p", f"chronotick.path={seg}",
                    "-p", f"clockbound_shm.path={tmp_path / 'none'}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = {row["source"]: row for row in json.loads(r.stdout)}
    ct = rows["chronotick"]
    assert ct["available"] and ct["status"] == "SYNCHRONIZED"
    assert -4_000_000 - 1_000 <= ct["offset_ns"] <= -4_000_000 + 1_000  # o = −4 ms, no drift
    assert ct["latest_ns"] - ct["estimate_ns"] == 600_000  # 3 · 0.2 ms
    cb = rows["clockbound_shm"]
    assert not cb["available"] and "no ClockBound segment" in cb["reason"]
    assert cb["status"] is None
    assert rows["system"]["available"] and rows["system"]["status"] == "FREE_RUNNING"
