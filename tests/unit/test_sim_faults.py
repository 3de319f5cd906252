"""Faults in virtual time: what the node's own objects do under NTP and link faults and clock
steps and strobes, checked on the traces of ``skewlab simulate``.

These were properties of real runs (tests/integration/test_reliability_faults.py, 12-17 s
each); the simulator runs the same objects (oscillator and its clock faults, sync state,
sources, ``NtpPoller`` with server selection; fault windows from ``nemesis.timed``), so the
same specs and the same assertions run here in about a second. What only processes can show
stays real there: the nemesis in the NTP server process really stops and falsifies servers
and a real node sees it; the link relay really drops the window; killed nodes flush.

Fault windows come from the spec (``t0_ns`` of a simulation is ``T0_NS``), not from a
recorded history (the simulator writes none).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skewlab.sim.node import T0_NS
from skewlab.sim.simulate import simulate
from skewlab.spec import ExperimentSpec, from_dict
from skewlab.trace import load_receipts, read_parts
from tests.integration.test_reliability_faults import FREE_NODES  # the same hosts

BOUNDED = ["truetime", "clockbound", "skewlab"]
SYNC, FREE, UNSYNC = 2, 1, 0
S = 1_000_000_000


def _spec(events: int, faults: list[dict], **extra: Any) -> ExperimentSpec:
    """The specs of test_reliability_faults.py (same keys, same values)."""
    fast = {"stale_after_s": 0.5}  # FREE_RUNNING after half a second without a sample
    return from_dict({
        "name": "rel",
        "nodes": FREE_NODES,
        "workload": {"events": events, "interval_ms": 4},
        "run": {"warmup_s": 0.5, "drain_s": 0.3, "hmac_key": "rel"},
        "commit_wait": {"delays_s": [0.1]},
        "source_params": {s: fast for s in BOUNDED},
        "faults": faults,
        **extra,
    })  # fmt: skip


def _covers(r: dict, s: str) -> bool:
    return r[f"{s}_earliest_ns"] <= r["truth_ns"] <= r[f"{s}_latest_ns"]


def test_falseticker_rejected_and_skewlab_survives_steps_and_strobe(tmp_path: Path) -> None:
    """Server 2 lies by 100 ms from the start: every poll rejects it as a falseticker and no
    sample of it is used; B and C step by ±50 ms at 4 s and B strobes from 5.5 s: skewlab
    never reports a bound that misses truth, and before the step every bounded source covers
    truth (the liar did not pull them off)."""
    faults = [
        {"kind": "ntp_falseticker", "at_s": 0, "server": 2, "offset_ms": 100},
        {"kind": "clock_step", "at_s": 4, "node": "B", "delta_ms": 50},
        {"kind": "clock_step", "at_s": 4, "node": "C", "delta_ms": -50},
        {"kind": "clock_strobe", "at_s": 5.5, "node": "B", "delta_ms": 50, "period_ms": 200,
         "duration_s": 1.5},
    ]  # fmt: skip
    spec = _spec(2000, faults, ntp={"poll_s": 0.2, "burst": 2, "timeout_s": 0.2, "servers": 3})
    res = simulate(spec, tmp_path)
    step_at = T0_NS + 4 * S
    strobe = (T0_NS + 5_500_000_000, T0_NS + 7 * S)
    for w in ("B", "C"):
        counts = json.loads(res.node_counts_path(w).read_text())
        sel = counts["ntp_selection"]
        assert "selected" not in sel["ntp-server-2"]
        assert sel["ntp-server-2"]["falseticker:outside_intersection"] > 10
        assert all(sel[k]["selected"] > 10 for k in ("ntp-server", "ntp-server-1"))
        used = set(read_parts(res.node_dir(w), "ntp").column("server").to_pylist())
        assert used and "ntp-server-2" not in used  # no sample of the falseticker was used
        rec = load_receipts(res.node_dir(w), spec.sources).to_pylist()
        assert counts["received"] == len(rec) == 2000
        assert rec[0]["truth_ns"] < step_at - S and rec[-1]["truth_ns"] > strobe[1] + S
        # the clock faults happened to this node's clock: local − truth moved by the step
        err = [r["local_ns"] - r["truth_ns"] for r in rec]
        jump = 50_000_000 if w == "B" else -50_000_000
        before = [e for r, e in zip(rec, err, strict=True) if r["truth_ns"] < step_at]
        after = [e for r, e in zip(rec, err, strict=True) if step_at <= r["truth_ns"] < strobe[0]]
        assert before and after and abs(after[0] - before[-1] - jump) < 1_000_000
        if w == "B":  # the strobe: ±50 ms back and forth inside its window
            inside = {round((e - after[-1]) / 1e7) for r, e in zip(rec, err, strict=True)
                      if strobe[0] <= r["truth_ns"] < strobe[1]}  # fmt: skip
            assert inside == {0, 5}
        for r in rec:
            # skewlab: a bound that misses truth is never reported; at worst no bound
            if r["skewlab_status"] != UNSYNC:
                assert _covers(r, "skewlab"), r
        assert any(r["skewlab_status"] == FREE for r in rec if r["truth_ns"] >= step_at)
        # before the step every bounded source covers truth: the liar did not pull them off
        for s in BOUNDED:
            assert all(_covers(r, s) for r in rec if r["truth_ns"] < step_at - 10**8)


def test_ntp_outage_free_running_then_resync(tmp_path: Path) -> None:
    """The only server is down for 2 s mid-broadcast: every bounded source covers truth
    throughout, turns FREE_RUNNING in the window with a bound that grows, and is synchronized
    again a second after the server is back; the nodes count failed polls."""
    spec = _spec(3000, [{"kind": "ntp_outage", "at_s": 8, "duration_s": 2}],
                 ntp={"poll_s": 0.2, "burst": 2, "timeout_s": 0.2})  # fmt: skip
    res = simulate(spec, tmp_path)
    start, end = T0_NS + 8 * S, T0_NS + 10 * S
    for w in ("B", "C"):
        rec = load_receipts(res.node_dir(w), spec.sources).to_pylist()
        assert rec[0]["truth_ns"] < start and any(r["truth_ns"] > end + S for r in rec)
        t1 = read_parts(res.node_dir(w), "ntp").column("truth_t1_ns").to_pylist()
        assert not [t for t in t1 if start <= t < end]  # no sample while the server is down
        for s in BOUNDED:
            assert all(_covers(r, s) for r in rec), s  # coverage 1.0 throughout
            free = [r for r in rec if start < r["truth_ns"] < end and r[f"{s}_status"] == FREE]
            assert len(free) > 20, (s, len(free))
            width = [r[f"{s}_latest_ns"] - r[f"{s}_earliest_ns"] for r in free]
            assert width[-1] > width[0]  # the bound grows while nobody answers
            back = [r[f"{s}_status"] for r in rec if r["truth_ns"] > end + S]
            assert back and set(back) == {SYNC}, s  # resynchronized once the server returned
        assert json.loads(res.node_counts_path(w).read_text())["ntp_failed_polls"] > 0


def test_link_loss_drops_exactly_the_window(tmp_path: Path) -> None:
    """A link_loss fault on coordinator~B (a lan link, no random loss): B loses exactly the
    events sent inside the window, C (another path) none, and the accounting says so."""
    spec = _spec(
        3000,
        [{"kind": "link_loss", "at_s": 7, "path": "coordinator~B", "duration_s": 1.5}],
        network={"profile": "loopback", "links": {"coordinator~B": {"profile": "lan"}}},
    )
    res = simulate(spec, tmp_path)
    start, end = T0_NS + 7 * S, T0_NS + 8_500_000_000
    sends = read_parts(res.node_dir(spec.coordinator.name), "events")
    send_truth = dict(zip(sends.column("event_id").to_pylist(),
                          sends.column("truth_ns").to_pylist(), strict=True))  # fmt: skip
    assert min(send_truth.values()) < start and max(send_truth.values()) > end  # window inside
    got = set(load_receipts(res.node_dir("B"), spec.sources).column("event_id").to_pylist())
    missing = {e for e in send_truth if e not in got}
    assert missing == {e for e, t in send_truth.items() if start <= t < end}
    assert len(missing) == 375  # 1.5 s at one event per 4 ms
    meta = json.loads(res.metadata_path.read_text())
    assert meta["accounting"]["B"]["lost"] == len(missing)
    assert meta["accounting"]["C"]["lost"] == 0
