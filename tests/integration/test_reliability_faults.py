"""Faults in short real runs, each recorded in the history (traces/_nemesis): what only
processes can show. The NTP server process's nemesis really stops one of three servers
(rebinding it afterwards) and makes another lie, and the real nodes see both; the launcher's
link nemesis makes the relay drop exactly its window; a killed coordinator and launcher leave
workers that flush and exit.

What the node's own objects do under these faults (sources FREE_RUNNING with a growing bound
during an NTP outage and synchronized again after it, the falseticker rejected at every poll,
skewlab never reporting a bound that misses truth across clock steps and a strobe) is checked
in virtual time on the same specs: tests/unit/test_sim_faults.py. A clock step in a real run is
tests/integration/test_run_vs_simulate_keys.py::test_clock_step_fault.
"""

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
SYNC = 2  # Status.SYNCHRONIZED in the traces


# free-running hosts (the default nodes, undisciplined): the faults' effects on the bounds are
# then the bounds' own (a servo would slew ClockBound's |offset| term away during an outage)
FREE_NODES = [
    {"name": "coordinator", "role": "coordinator", "offset_ms": 1.0, "drift_ppm": 10.0,
     "discipline": "free"},
    {"name": "B", "offset_ms": 3.0, "drift_ppm": 40.0, "discipline": "free"},
    {"name": "C", "offset_ms": -2.0, "drift_ppm": -25.0, "discipline": "free"},
]  # fmt: skip


def _spec(events: int, faults: list[dict], interval_ms: float = 4, **extra):
    fast = {"stale_after_s": 0.5}  # FREE_RUNNING after half a second without a sample
    return from_dict({
        "name": "rel",
        "nodes": FREE_NODES,
        "workload": {"events": events, "interval_ms": interval_ms},
        "run": {"warmup_s": 0.5, "drain_s": 0.3, "hmac_key": "rel"},
        "commit_wait": {"delays_s": [0.1]},
        "source_params": {s: fast for s in BOUNDED},
        "faults": faults,
        **extra,
    })  # fmt: skip


def _covers(r: dict, s: str) -> bool:
    return r[f"{s}_earliest_ns"] <= r["truth_ns"] <= r[f"{s}_latest_ns"]


def test_ntp_and_link_faults_in_a_real_run(tmp_path: Path) -> None:
    """One short real run with three NTP servers and an emulated link coordinator~B:

    - server 0 is stopped (socket closed) for the first 5 s and server 2 lies by 100 ms
      throughout. The workers poll from their start: while server 0 is down, one truechimer
      and the liar make no majority, so their polls fail (and they become ready only after
      the outage); afterwards the rebound server 0 is selected again, the liar is rejected at
      every poll and none of its samples is used. Every bounded source covers truth and is
      synchronized at every receipt (all come after the outage).
    - the link coordinator~B drops everything for 0.5 s mid-broadcast: B loses events, all
      sent inside the recorded blackout, C (another path) none; the loss is exact in the
      accounting and the relay's own per-datagram trace shows the drops.

    The outage at the start also pins the broadcast's start (~1-2 s after it ends, when the
    coordinator is up), so the link window can be placed inside a short broadcast.
    """
    spec = _spec(
        1500,
        [
            {"kind": "ntp_falseticker", "at_s": 0, "server": 2, "offset_ms": 100},
            # 5 s: the workers' first polls fall inside it even on a loaded host (CI), where
            # starting the node processes can take 3-4 s
            {"kind": "ntp_outage", "at_s": 0, "server": 0, "duration_s": 5.0},
            {"kind": "link_loss", "at_s": 8.0, "path": "coordinator~B", "duration_s": 0.5},
        ],
        ntp={"poll_s": 0.2, "burst": 2, "timeout_s": 0.2, "servers": 3},
        interval_ms=2,
        network={"profile": "loopback", "links": {"coordinator~B": {"profile": "lan"}}},
    )
    res = LocalLauncher(spec, tmp_path).run().results
    rows = load_faults(res.nemesis_dir).to_pylist()
    assert sorted((r["fault"], r["phase"]) for r in rows) == [
        (0, "start"), (1, "end"), (1, "start"), (2, "end"), (2, "start")]  # fmt: skip
    at = {(r["fault"], r["phase"]): r["truth_ns"] for r in rows}
    outage_end = at[1, "end"]
    start, end = at[2, "start"], at[2, "end"]
    assert end - start >= 400_000_000
    for w in ("B", "C"):
        counts = json.loads(res.node_counts_path(w).read_text())
        sel = counts["ntp_selection"]  # per server, named as in the spec: verdict counts
        # the names the simulator gives them too; where each one listened is in the counts
        assert set(sel) == set(counts["ntp_servers"]) == {"ntp-server", "ntp-server-1",
                                                          "ntp-server-2"}  # fmt: skip
        assert all(a.startswith("127.0.0.1:") for a in counts["ntp_servers"].values())
        (liar,) = [k for k, v in sel.items() if "selected" not in v]
        assert sel[liar].get("falseticker:outside_intersection", 0) > 0
        rejected = {k: sum(n for t, n in v.items() if t.startswith("rejected:"))
                    for k, v in sel.items()}  # fmt: skip
        down = max(rejected, key=rejected.__getitem__)  # server 0: no answer while stopped
        assert down != liar and rejected[down] > 0
        assert sel[down].get("selected", 0) > 0  # ... and selected again once rebound
        assert counts["ntp_failed_polls"] > 0  # no majority while server 0 was down
        ntp = read_parts(res.node_dir(w), "ntp")
        used = set(ntp.column("server").to_pylist())
        assert used and liar not in used  # no sample of the falseticker was ever used
        # no sample during the outage (its end is recorded just after server 0 is rebound)
        assert min(ntp.column("truth_t1_ns").to_pylist()) > outage_end - 50_000_000
        rec = load_receipts(res.node_dir(w), spec.sources).to_pylist()
        assert rec and min(r["truth_ns"] for r in rec) > outage_end
        for s in BOUNDED:
            assert all(_covers(r, s) for r in rec), s  # the liar did not pull them off
            assert {r[f"{s}_status"] for r in rec} == {SYNC}, s
    meta = json.loads(res.metadata_path.read_text())
    sends = read_parts(res.node_dir(spec.coordinator.name), "events")
    send_truth = dict(zip(sends.column("event_id").to_pylist(),
                          sends.column("truth_ns").to_pylist(), strict=True))  # fmt: skip
    assert min(send_truth.values()) < start and max(send_truth.values()) > end  # window inside
    got = set(load_receipts(res.node_dir("B"), spec.sources).column("event_id").to_pylist())
    missing = [e for e in send_truth if e not in got]
    assert meta["accounting"]["B"]["lost"] == len(missing) > 100  # ~0.5 s at 500 events/s
    slack = 50_000_000  # a datagram in flight when the fault began or ended (lan: ~ms)
    assert all(start - slack <= send_truth[e] <= end + slack for e in missing)
    assert meta["accounting"]["C"]["lost"] == 0
    # the relay's own trace (lan: no random loss) shows each of those drops, in the window
    import pyarrow.parquet as pq

    link = pq.read_table(res.root / "traces" / "_links" / "coordinator~B.parquet").to_pylist()
    dropped = [r["truth_in_ns"] for r in link if r["direction"] == 0 and r["fate"] == 1]
    assert len(dropped) == len(missing)
    assert all(start - slack <= t <= end + slack for t in dropped)


def test_coordinator_and_launcher_killed_workers_flush_and_exit(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        "[workload]\nevents = 20000\ninterval_ms = 2\n"
        "[run]\nwarmup_s = 0\nidle_exit_s = 0.5\nbatch_rows = 100\n"
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
