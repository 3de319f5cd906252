"""Faults during short runs, each recorded in the history (traces/_nemesis): a falseticker
among three NTP servers, clock steps and a strobe, an NTP outage, a killed coordinator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from skewlab.deploy.local import LocalLauncher
from skewlab.nemesis.record import load_faults
from skewlab.spec import from_dict
from skewlab.trace import load_receipts, read_parts
from tests.conftest import skewlab_cmd
from tests.e2e.test_run import _pid_gone

BOUNDED = ["truetime", "clockbound", "skewlab"]
SYNC, FREE, UNSYNC = 2, 1, 0


def _spec(events: int, faults: list[dict], **extra):
    fast = {"stale_after_s": 0.5}  # FREE_RUNNING after half a second without a sample
    return from_dict({
        "name": "rel",
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
    faults = [
        {"kind": "ntp_falseticker", "at_s": 0, "server": 2, "offset_ms": 100},
        {"kind": "clock_step", "at_s": 4, "node": "B", "delta_ms": 50},
        {"kind": "clock_step", "at_s": 4, "node": "C", "delta_ms": -50},
        {"kind": "clock_strobe", "at_s": 5.5, "node": "B", "delta_ms": 50, "period_ms": 200,
         "duration_s": 1.5},
    ]  # fmt: skip
    spec = _spec(2000, faults, ntp={"poll_s": 0.2, "burst": 2, "timeout_s": 0.2, "servers": 3})
    res = LocalLauncher(spec, tmp_path).run().results
    rows = load_faults(res.nemesis_dir).to_pylist()
    assert sorted((r["fault"], r["phase"]) for r in rows) == [
        (0, "start"), (1, "start"), (2, "start"), (3, "end"), (3, "start")]  # fmt: skip
    t0 = json.loads(res.metadata_path.read_text())["t0_ns"]
    step_at = t0 + 4_000_000_000
    for w in ("B", "C"):
        counts = json.loads(res.node_counts_path(w).read_text())
        sel = counts["ntp_selection"]
        liar = [k for k, v in sel.items() if "selected" not in v]
        assert len(liar) == 1 and sel[liar[0]].get("falseticker:outside_intersection", 0) > 0
        used = set(read_parts(res.node_dir(w), "ntp").column("server").to_pylist())
        assert used and liar[0] not in used  # no sample of the falseticker was ever used
        rec = load_receipts(res.node_dir(w), spec.sources).to_pylist()
        assert counts["received"] == len(rec) == 2000
        assert any(r["truth_ns"] > step_at for r in rec)  # the run saw the step
        for r in rec:
            # skewlab: a bound that misses truth is never reported; at worst no bound
            if r["skewlab_status"] != UNSYNC:
                assert _covers(r, "skewlab"), r
        # before the step every bounded source covers truth: the liar did not pull them off
        for s in BOUNDED:
            assert all(_covers(r, s) for r in rec if r["truth_ns"] < step_at - 10**8)


def test_ntp_outage_free_running_then_resync(tmp_path: Path) -> None:
    # at_s counts from t0; nodes start sending ~2-5 s later (more on a loaded machine), so the
    # outage is placed well inside the 12 s of events
    spec = _spec(3000, [{"kind": "ntp_outage", "at_s": 8, "duration_s": 2}],
                 ntp={"poll_s": 0.2, "burst": 2, "timeout_s": 0.2})  # fmt: skip
    res = LocalLauncher(spec, tmp_path).run().results
    rows = {r["phase"]: r["truth_ns"] for r in load_faults(res.nemesis_dir).to_pylist()}
    start, end = rows["start"], rows["end"]
    for w in ("B", "C"):
        rec = load_receipts(res.node_dir(w), spec.sources).to_pylist()
        assert any(r["truth_ns"] > end + 10**9 for r in rec)
        for s in BOUNDED:
            assert all(_covers(r, s) for r in rec), s  # coverage 1.0 throughout
            free = [r for r in rec if start < r["truth_ns"] < end and r[f"{s}_status"] == FREE]
            assert len(free) > 20, (s, len(free))
            width = [r[f"{s}_latest_ns"] - r[f"{s}_earliest_ns"] for r in free]
            assert width[-1] > width[0]  # the bound grows while nobody answers
            back = [r[f"{s}_status"] for r in rec if r["truth_ns"] > end + 10**9]
            assert back and set(back) == {SYNC}, s  # resynchronized once the server returned
        assert json.loads(res.node_counts_path(w).read_text())["ntp_failed_polls"] > 0


def test_coordinator_and_launcher_killed_workers_flush_and_exit(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        "[workload]\nevents = 20000\ninterval_ms = 2\n"
        "[run]\nwarmup_s = 0.5\nidle_exit_s = 1.0\nbatch_rows = 500\n"
    )
    out = tmp_path / "results"
    launcher = subprocess.Popen(skewlab_cmd("run", "--config", str(cfg), "--out", str(out)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            meta = next(out.glob("*/metadata.json"), None)
            if meta is not None:
                try:
                    pids = json.loads(meta.read_text()).get("pids", {})
                except json.JSONDecodeError:
                    pass
            if "coordinator" in pids and list(out.glob("*/traces/B/events-*.parquet")):
                break
            time.sleep(0.05)
        assert "coordinator" in pids, "the run never reached the coordinator"
        os.kill(launcher.pid, signal.SIGKILL)
        os.kill(pids["coordinator"], signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(_pid_gone(p) for p in pids.values()):
            time.sleep(0.1)
        left = {n: p for n, p in pids.items() if not _pid_gone(p)}
        assert not left, f"still running after the launcher died: {left}"
    finally:
        for p in pids.values():
            if not _pid_gone(p):
                os.kill(p, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
    res = next(out.iterdir())
    for w in ("B", "C"):
        counts = json.loads((res / "traces" / w / "counts.json").read_text())
        assert counts["exit_reason"] == "control lost and no events"
        rec = read_parts(res / "traces" / w, "events")
        assert rec.num_rows == counts["received"] == counts["rows"] > 0  # flushed, complete
        assert counts["coordinator_sent"] is None and counts["lost"] is None  # unknown: no end


def test_link_loss_in_a_real_run_drops_exactly_the_window(tmp_path: Path) -> None:
    """A link_loss fault on coordinator~B in a real run (relays on loopback): B loses events,
    all of them sent inside the recorded blackout; C, on another path, loses none; the
    loss is exact in the accounting and the relay's own per-datagram trace shows the drops."""
    spec = _spec(
        3000,
        [{"kind": "link_loss", "at_s": 7, "path": "coordinator~B", "duration_s": 1.5}],
        network={"profile": "loopback", "links": {"coordinator~B": {"profile": "lan"}}},
    )
    res = LocalLauncher(spec, tmp_path).run().results
    rows = {r["phase"]: r["truth_ns"] for r in load_faults(res.nemesis_dir).to_pylist()}
    start, end = rows["start"], rows["end"]
    assert end - start >= 1_400_000_000
    meta = json.loads(res.metadata_path.read_text())
    sends = read_parts(res.node_dir(spec.coordinator.name), "events")
    send_truth = dict(zip(sends.column("event_id").to_pylist(),
                          sends.column("truth_ns").to_pylist(), strict=True))  # fmt: skip
    assert min(send_truth.values()) < start and max(send_truth.values()) > end  # window inside
    got = set(load_receipts(res.node_dir("B"), spec.sources).column("event_id").to_pylist())
    missing = [e for e in send_truth if e not in got]
    assert meta["accounting"]["B"]["lost"] == len(missing) > 200  # ~1.5 s at 250 events/s
    slack = 50_000_000  # a datagram in flight when the fault began or ended (lan: ~ms)
    assert all(start - slack <= send_truth[e] <= end + slack for e in missing)
    assert meta["accounting"]["C"]["lost"] == 0
    # the relay's own trace (lan: no random loss) shows each of those drops, in the window
    import pyarrow.parquet as pq

    link = pq.read_table(res.root / "traces" / "_links" / "coordinator~B.parquet").to_pylist()
    dropped = [r["truth_in_ns"] for r in link if r["direction"] == 0 and r["fate"] == 1]
    assert len(dropped) == len(missing)
    assert all(start - slack <= t <= end + slack for t in dropped)
