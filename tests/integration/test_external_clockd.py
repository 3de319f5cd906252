"""``skewlab clockd`` read back by a third-party ClockBound client (the ``clockbound`` package).

clockd publishes the ``chronotick`` source, whose segment this test writes byte by byte with
known parameters, so the bound in the ClockBound segment is known by hand:
bound = |offset| + 3σ = 0.5 ms + 0.3 ms. The third-party reader runs in its own Python ≥ 3.13
virtualenv (the package requires it), cached between runs.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, skewlab_cmd

CLOCKBOUND_PKG = "clockbound==0.3.0"  # third-party pure-Python ClockBound v2 client
OFFSET_S, OFF_UNC_S = 0.0005, 1e-4
WANT_BOUND_NS = 500_000 + 300_000


def _python313() -> str:
    cands = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python3.1?")))
    cands += [shutil.which(f"python3.{m}") for m in range(13, 20)]
    probe = "import sys; sys.exit(sys.version_info < (3, 13))"
    for c in cands:  # pyenv shims exist for every version but run only the selected ones
        if c and subprocess.run([c, "-c", probe], capture_output=True).returncode == 0:
            return c
    msg = "no Python >= 3.13 interpreter: the third-party clockbound client requires one"
    if IN_CI:
        pytest.fail(msg + " (CI=true: this test must run)")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def clockbound_python() -> str:
    """A Python >= 3.13 venv with the third-party ``clockbound`` package, cached between runs."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = base / "skewlab-tests" / ("clockbound-" + CLOCKBOUND_PKG.replace("==", "-"))
    py = venv / "bin" / "python"
    ok = py.exists() and subprocess.run([py, "-c", "import clockbound"]).returncode == 0
    if not ok:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([_python313(), "-m", "venv", str(venv)], check=True, timeout=120)
        r = subprocess.run([py, "-m", "pip", "install", "-q", CLOCKBOUND_PKG],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
        if r.returncode != 0:
            pytest.fail(f"cannot install {CLOCKBOUND_PKG} for Python 3.13: {r.stderr[-800:]}")
    return str(py)


def chronotick_segment(now_s: float) -> bytes:
    """A valid ChronoTick segment packed at the documented offsets: no drift, 0.1 ms σ."""
    b = bytearray(128)
    for off, fmt, v in [
        (0, "@d", now_s + OFFSET_S), (8, "@d", now_s), (16, "@d", OFFSET_S), (24, "@d", 0.0),
        (32, "@d", OFF_UNC_S), (40, "@d", 0.0), (48, "@d", now_s), (56, "@d", now_s + 3600),
        (64, "@f", 0.9), (68, "@I", 1), (72, "@I", 15), (76, "@I", 4),
    ]:  # fmt: skip
        struct.pack_into(fmt, b, off, v)
    return bytes(b)


READER = """
import json, sys, time, clockbound
cb = clockbound.Clockbound(sys.argv[1])
before = time.time_ns()
tb = cb.now()
after = time.time_ns()
s = cb.snapshot()
print(json.dumps({"earliest": tb.earliest, "latest": tb.latest, "error_ns": tb.error_ns,
                  "before": before, "after": after, "bound": s.bound, "status": s.clock_status,
                  "generation": s.generation, "max_drift": s.max_drift}))
"""


def test_third_party_client_reads_clockd(tmp_path: Path, clockbound_python: str) -> None:
    ct = tmp_path / "chronotick_shm"
    ct.write_bytes(chronotick_segment(time.time()))
    seg = tmp_path / "clockbound" / "shm0"
    cmd = skewlab_cmd("clockd", "--path", str(seg), "--source", "chronotick",
                      "-p", f"path={ct}", "--interval", "0.2", "--duration", "60")  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if seg.exists() and struct.unpack_from("@H", seg.read_bytes(), 14)[0] >= 2:
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        else:
            pytest.fail("clockd published nothing within 30 s")
        r = subprocess.run([clockbound_python, "-c", READER, str(seg)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)

        from skewlab.clocks.base import Status
        from skewlab.clocks.external.clockbound_shm import ClockBoundShmSource

        ours = ClockBoundShmSource(None, path=str(seg)).read(time.time_ns())
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert got["status"] == 1 and got["generation"] % 2 == 0
    assert got["bound"] == WANT_BOUND_NS  # |0.5 ms| + 3 · 0.1 ms, published by clockd
    # The client grows the bound by max_drift over < 1 s since as_of (clockd's floor 1000 ppb).
    assert got["max_drift"] == 1000
    assert WANT_BOUND_NS <= got["error_ns"] <= WANT_BOUND_NS + 10_000
    # The client's interval is centred on its own realtime read, between before and after.
    mid = (got["earliest"] + got["latest"]) // 2
    assert got["before"] <= mid <= got["after"]
    # Our own reader of the same segment agrees on the bound.
    assert ours.status is Status.SYNCHRONIZED
    assert WANT_BOUND_NS <= ours.latest_ns - ours.estimate_ns <= WANT_BOUND_NS + 10_000
    assert not seg.exists()  # removed on exit (no --keep)
    assert "stopped after" in err


def test_clockd_rejects_point_sources(tmp_path: Path) -> None:
    cmd = skewlab_cmd("clockd", "--path", str(tmp_path / "s"), "--source", "ntp")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stderr.startswith("skewlab: error:") and "no bound" in r.stderr
