"""`skewlab run --netns`: a real 2-worker run with every node in its own network namespace.

The NTP server, the coordinator and workers B and C each run in a namespace of their own; the
launcher's control server and the `lan` link relays live in the hub namespace beside the bridge.
Checked from the run's own traces, then: no namespace and no node process is left, after a
normal end and after Ctrl-C. All traffic stays inside the namespaces the run creates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from skewlab.net import netns
from tests.conftest import IN_CI, require_command, run_skewlab, skewlab_cmd
from tests.e2e.test_run import _pid_gone, _read, _results_dir

pytestmark = pytest.mark.needs_root
EVENTS = 100
CONFIG = """
name = "netns"
seed = 11

[workload]
events = 100
interval_ms = 5

[run]
warmup_s = 0  # ready at the first NTP sample
"""


def _need_netns() -> None:
    require_command("ip", "namespace mode needs iproute2")
    why = "namespace mode needs root" if os.geteuid() != 0 else netns.available()[1]
    if why:
        if IN_CI:
            pytest.fail(f"{why} (CI=true runs as root: namespace mode must work)")
        pytest.skip(why)


def _left_behind(meta: dict) -> list[str]:
    """Namespaces of this run (by the names it recorded) that still exist."""
    ours = {meta["netns"]["hub"], *meta["netns"]["nodes"].values()}
    return sorted(ours & set(netns.list_namespaces()))


def test_run_with_netns_then_nothing_left(tmp_path: Path) -> None:
    _need_netns()
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "results"
    p = run_skewlab("run", "--netns", "--network", "lan", "--config", str(cfg), "--out", str(out),
                    "--no-figures", "-q", timeout=180)  # fmt: skip
    assert p.returncode == 0, p.stderr
    res = _results_dir(out)
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "completed"
    # each node ran in its own namespace, and bound that namespace's own address
    nodes_ns = meta["netns"]["nodes"]
    assert sorted(nodes_ns) == sorted(["ntp-server", "coordinator", "B", "C"])
    assert len(set(nodes_ns.values()) | {meta["netns"]["hub"]}) == 5
    assert json.loads((res / "spec.json").read_text())["run"]["netns"] is True

    sends = _read(res / "traces" / "coordinator", "events")
    assert sends.height == EVENTS
    stats = json.loads((res / "stats.json").read_text())
    for w in ("B", "C"):
        rec = _read(res / "traces" / w, "events")
        # every sent event is accounted for: received or counted lost
        received = rec.join(sends.select("event_id"), on="event_id", how="semi").height
        acc = stats["workers"][w]["accounting"]
        assert acc["received"] == received
        assert acc["received"] + acc["lost"] == sends.height
        assert rec["event_id"].n_unique() == rec.height
        # every receipt's true time is after its true send time
        j = rec.join(sends.select("event_id", pl.col("truth_ns").alias("send")), on="event_id")
        assert j.height == received and (j["truth_ns"] > j["send"]).all()
        # the events went through the relay in the hub: it saw every one the coordinator sent
        # (plus the coordinator's few control datagrams) and delivered at least every receipt
        link = pl.from_arrow(pq.read_table(res / "traces" / "_links" / f"coordinator~{w}.parquet"))
        forward = link.filter(pl.col("direction") == 0)
        assert forward.filter(pl.col("copy") == 0).height >= sends.height
        assert forward.filter(pl.col("fate") == 0).height >= received

    # nothing outlives the run: namespaces removed, every node process gone
    assert _left_behind(meta) == []
    for name, pid in meta["pids"].items():
        assert _pid_gone(pid), f"{name} (pid {pid}) left running"


def test_netns_run_interrupted_leaves_nothing(tmp_path: Path) -> None:
    _need_netns()
    cfg = tmp_path / "exp.toml"
    cfg.write_text("[workload]\nevents = 5000\ninterval_ms = 5\n"
                   "[run]\nwarmup_s = 0\nbatch_rows = 50\n")  # fmt: skip
    out = tmp_path / "results"
    proc = subprocess.Popen(
        skewlab_cmd("run", "--netns", "--config", str(cfg), "--out", str(out), "-q"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    meta: dict = {}
    try:
        deadline = time.monotonic() + 90
        sending = False  # the coordinator's first part file (50 sends) exists
        while time.monotonic() < deadline and not sending:
            for m in out.glob("*/metadata.json"):
                try:
                    meta = json.loads(m.read_text())
                except json.JSONDecodeError:
                    pass
            sending = bool(list(out.glob("*/traces/coordinator/events-*")))
            time.sleep(0.1)
        assert "coordinator" in meta.get("pids", {}) and sending, "the broadcast never started"
        assert len(_left_behind(meta)) == 5  # hub + 4 nodes exist while it runs
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err.strip().splitlines()[-1]
    assert _left_behind(meta) == []
    for name, pid in meta["pids"].items():
        assert _pid_gone(pid), f"{name} (pid {pid}) left running"
    final = json.loads(next(out.glob("*/metadata.json")).read_text())
    assert final["status"] == "interrupted"
