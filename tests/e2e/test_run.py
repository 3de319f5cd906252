"""End to end: `skewlab run` in a subprocess, checked against its own traces."""

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

from tests.conftest import run_skewlab, skewlab_cmd

CONFIG = """
name = "e2e"
seed = 7

[workload]
events = 80
interval_ms = 10

[run]
warmup_s = 0.5

# free-running hosts: the raw clocks' errors are what this test checks
[[nodes]]
name = "coordinator"
role = "coordinator"
offset_ms = 1.0
drift_ppm = 10
discipline = "free"

[[nodes]]
name = "B"
offset_ms = 3.0
drift_ppm = 40
discipline = "free"

[[nodes]]
name = "C"
offset_ms = -50.0   # 50 ms behind true time
drift_ppm = 0
discipline = "free"
"""


def _read(dir_: Path, prefix: str) -> pl.DataFrame:
    files = sorted(dir_.glob(f"{prefix}-*.parquet"))
    assert files, f"no {prefix} parts in {dir_}"
    return pl.concat([pl.from_arrow(pq.read_table(f)) for f in files])


def _results_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_default_style_run_end_to_end(
    default_style_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    # the run (tests/conftest.py): `skewlab run --config CONFIG --events 60 -q`, once per
    # session; tests/integration/test_report_html.py opens the same run's report.html
    p, out = default_style_run
    assert p.returncode == 0, p.stderr
    res = _results_dir(out)
    assert str(res) in p.stdout
    stats = json.loads((res / "stats.json").read_text())
    sends = _read(res / "traces" / "coordinator", "events")
    assert sends.height == 60

    for w in ("B", "C"):
        rec = _read(res / "traces" / w, "events")
        # every sent event is accounted for: received or counted lost
        received = rec.join(sends.select("event_id"), on="event_id", how="semi").height
        acc = stats["workers"][w]["accounting"]
        assert acc["received"] == received
        assert acc["received"] + acc["lost"] == sends.height
        assert rec["event_id"].n_unique() == rec.height
        # every receipt's true time is after its true send time
        j = rec.join(
            sends.select("event_id", pl.col("truth_ns").alias("send_truth")), on="event_id"
        )
        assert (j["truth_ns"] > j["send_truth"]).all()

    # computed from the traces: C's raw clock is 50 ms behind, so its receipts look earlier
    # than the coordinator's sends (which is 1 ms ahead) in the nodes' own frames.
    rec_c = _read(res / "traces" / "C", "events")
    j = rec_c.join(sends, on="event_id", suffix="_send")
    sys_viol = j.filter(pl.col("system_estimate_ns") < pl.col("system_estimate_ns_send")).height
    ntp_viol = j.filter(pl.col("ntp_estimate_ns") < pl.col("ntp_estimate_ns_send")).height
    assert sys_viol > 0.9 * j.height
    assert ntp_viol <= sys_viol / 10
    c_stats = stats["workers"]["C"]["sources"]
    assert c_stats["system"]["causality"]["violations"] == sys_viol
    assert c_stats["ntp"]["causality"]["violations"] == ntp_viol
    # error vs truth: the raw clock is ~−50 ms off; NTP corrects most of it
    assert abs(c_stats["system"]["error_vs_truth"]["mean_ns"] + 50e6) < 1e6
    assert c_stats["ntp"]["error_vs_truth"]["max_abs_ns"] < 5e6
    assert list((res / "figures").glob("*.png"))
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "completed"


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie child of an exited parent is reaped by init; treat state Z as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_worker_killed_mid_run_fails_cleanly(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    # small batches: the coordinator's first part file shows that it is sending; no warmup
    # beyond the first NTP sample (nothing here depends on it)
    cfg.write_text(CONFIG.replace("events = 80", "events = 3000")
                   .replace("warmup_s = 0.5", "warmup_s = 0\nbatch_rows = 50"))  # fmt: skip
    out = tmp_path / "results"
    proc = subprocess.Popen(
        skewlab_cmd("run", "--config", str(cfg), "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        pids: dict[str, int] = {}
        while time.monotonic() < deadline:
            metas = list(out.glob("*/metadata.json"))
            if metas:
                try:
                    pids = json.loads(metas[0].read_text()).get("pids", {})
                except json.JSONDecodeError:
                    pids = {}
                # the coordinator is spawned once both workers reported ready; once it has
                # written its first batch of sends, kill B mid-run
                if "coordinator" in pids and list(out.glob("*/traces/coordinator/events-*")):
                    break
            time.sleep(0.1)
        assert "B" in pids, "worker B never started"
        os.kill(pids["B"], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    last = err.strip().splitlines()[-1]
    assert last.startswith("skewlab: error: worker B"), err
    assert "killed by signal 9" in last
    for name, pid in pids.items():
        assert _pid_gone(pid), f"{name} (pid {pid}) left running"


def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[workload]\nevents = "many"\n')
    p = run_skewlab("run", "--config", str(cfg), "--out", str(tmp_path / "r"))
    assert p.returncode == 2
    assert "workload.events" in p.stderr
    assert not (tmp_path / "r").exists()


def test_ntp_port_in_use_is_reported(tmp_path: Path) -> None:
    import socket

    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        cfg = tmp_path / "exp.toml"
        cfg.write_text(f"[ntp]\nport = {port}\n")
        p = run_skewlab("run", "--config", str(cfg), "--out", str(tmp_path / "r"), "-q")
    finally:
        busy.close()
    assert p.returncode == 1
    line = p.stderr.strip().splitlines()[-1]
    assert f"127.0.0.1:{port}" in line and "in use" in line, p.stderr
    # the local pre-flight finds the port taken before any folder or process exists
    assert "pre-flight" in line and not list((tmp_path / "r").glob("*/metadata.json"))


@pytest.mark.parametrize("bad", ["nodes = []", 'sources = ["sundial"]'])
def test_config_validation_names_the_key(tmp_path: Path, bad: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(bad + "\n")
    p = run_skewlab("run", "--config", str(cfg))
    assert p.returncode == 2
    assert "error" in p.stderr and len(p.stderr.strip().splitlines()) == 1
