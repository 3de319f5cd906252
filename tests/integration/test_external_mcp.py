"""ChronoTick MCP transport against a small MCP server built with the official MCP SDK.

Run as a script (``python test_external_mcp.py --serve MODE``) this file is that server: a
stdio MCP server whose ``get_time`` tool returns ChronoTick's fields computed from the host
clock with the fixed parameters below.
"""

from __future__ import annotations

import sys
import time

import pytest

OFFSET_S = 0.002  # offset_correction the server reports
OFF_UNC_S = 1e-4  # offset_uncertainty (1σ); drift_uncertainty is 0, so 3σ is exact


def serve(mode: str) -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("chronotick-test")

    @server.tool()
    def get_time() -> dict:
        """ChronoTick's corrected time and its model parameters."""
        t = time.time()
        valid_until = t + 30 if mode != "stale" else t - 60
        return {
            "corrected_time": t + OFFSET_S, "system_time": t, "offset_correction": OFFSET_S,
            "drift_rate": 1e-6, "offset_uncertainty": OFF_UNC_S, "drift_uncertainty": 0.0,
            "time_uncertainty": OFF_UNC_S, "confidence": 0.9, "source": "fusion",
            "prediction_time": t, "valid_until": valid_until, "is_valid": mode != "invalid",
            "is_ntp_ready": True, "is_models_ready": True, "call_latency_ms": 0.0,
        }  # fmt: skip

    server.run("stdio")


def _source(mode: str):
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.sync import SyncState

    params = {"command": sys.executable, "args": [__file__, "--serve", mode], "poll_s": 0.3}
    return SOURCES["chronotick_mcp"](SyncState(), **params)


def test_reads_get_time_through_mcp() -> None:
    from skewlab.clocks.base import Status

    src = _source("ok")
    try:
        assert src.wait_first(60), src.last_error
        t = time.time_ns()
        r = src.read(t)
    finally:
        src.close()
    assert r.status is Status.SYNCHRONIZED
    # estimate = t + 2 ms + 1 ppm·(t − prediction_time), prediction_time ≤ t by under 60 s
    assert 2_000_000 <= r.estimate_ns - t <= 2_000_000 + 60_000
    assert r.latest_ns - r.estimate_ns == 300_000  # ceil(3 · 100 µs), no drift term
    assert r.estimate_ns - r.earliest_ns == 300_000
    assert r.as_of_ns is not None and r.as_of_ns <= t  # the server's system_time of the reply
    assert src.replies >= 1 and src.last_latency_ns is not None


@pytest.mark.parametrize("mode", ["stale", "invalid"])
def test_stale_and_invalid_replies_give_no_value(mode: str) -> None:
    from skewlab.clocks.base import Status

    src = _source(mode)
    try:
        assert src.wait_first(60), src.last_error  # the reply arrived ...
        r = src.read(time.time_ns())
    finally:
        src.close()
    assert r.status is Status.UNSYNCHRONIZED and r.estimate_ns is None  # ... and says no


def test_unstarted_server_is_unavailable() -> None:
    from skewlab.clocks.external import availability

    ok, why = availability("chronotick_mcp", {"command": "/nonexistent/chronotick-mcp"})
    assert not ok and "not found" in why
    ok, why = availability("chronotick_mcp", {})
    assert not ok and "no MCP server configured" in why


if __name__ == "__main__":
    serve(sys.argv[sys.argv.index("--serve") + 1])
