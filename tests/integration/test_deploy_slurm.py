"""The Slurm launcher against a real single-node Slurm (munged, slurmctld, slurmd on loopback,
configured and started by the test, stopped by PID)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from skewlab.deploy.orchestrator import pid_alive
from skewlab.trace import load_receipts, read_parts
from tests.conftest import skewlab_cmd
from tests.integration.deploy_fixtures import (
    check_measured_truth,
    experiment,
    files_holding,
    key_like_cmdlines,
    start_slurm,
    write_json,
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    yield from start_slurm(tmp_path_factory.mktemp("slurm"))


def test_slurm_sbatch_from_login_node(slurm: dict[str, str], tmp_path: Path) -> None:
    # no SLURM_JOB_ID: deploy submits a batch job, which runs the deploy inside the allocation
    # and places every role with its own srun job step
    cluster = {
        "launcher": "slurm", "control_address": "127.0.0.1", "clocks": "emulated",
        "slurm": {"partition": "debug", "time_limit": "00:10:00"},
        "hosts": [{"name": "@0", "address": "127.0.0.1",
                   "nodes": ["coordinator", "ntp-server", "W0", "W1"]}],
    }  # fmt: skip
    exp = write_json(tmp_path / "exp.json", experiment())
    cl = write_json(tmp_path / "cluster.json", cluster)
    out = tmp_path / "out"
    p = subprocess.Popen(
        skewlab_cmd("deploy", str(exp), "--cluster", str(cl), "-o", str(out), "--no-figures"),
        env=slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    key_words: list[str] = []  # the nodes' keys travel on srun's stdin, never a command line
    looked_at: set[int] = set()
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline:
        key_words += key_like_cmdlines(looked_at)
        time.sleep(0.1)
    stdout, stderr = p.communicate(timeout=10)
    r = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    (res,) = [p for p in out.iterdir() if p.is_dir()]
    job_log = res / "logs" / "slurm-job.log"
    job_out = job_log.read_text() if job_log.exists() else ""
    assert r.returncode == 0, r.stderr + r.stdout + job_out
    job = json.loads((res / "deploy" / "job.json").read_text())["slurm_job_id"]
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["launcher"] == "slurm"
    assert meta["slurm"]["job_id"] == job
    # every node ran as its own job step of that job, and said so in its hello
    steps = {n: info["slurm_step"] for n, info in meta["nodes"].items()}
    assert set(steps) == {"ntp-server", "coordinator", "W0", "W1"}
    assert all(s.startswith(f"{job}.") for s in steps.values())
    assert len(set(steps.values())) == 4
    assert meta["truth_available"] is True  # emulated oscillators, one kernel clock
    sends = read_parts(res / "traces" / "coordinator", "events")
    assert sends.num_rows == 60
    stats = json.loads((res / "stats.json").read_text())
    sources = json.loads((res / "spec.json").read_text())["sources"]
    for w in ("W0", "W1"):
        ids = load_receipts(res / "traces" / w, sources).column("event_id").to_pylist()
        assert stats["workers"][w]["accounting"]["received"] == len(set(ids)) > 0
    check_measured_truth(res, ("coordinator", "W0", "W1"), exact=True)  # on by default
    for n, info in meta["nodes"].items():
        assert not pid_alive(info["pid"]), n
    assert len(looked_at) >= 4  # srun clients and the nodes of the job steps
    assert key_words == [] and files_holding(res) == []  # nothing key-like anywhere
    assert meta["security"]["events"] == "hmac-sha256, fresh per-run key"
    # the job is over and nothing of it is left in the queue
    q = subprocess.run(["squeue", "-h", "-j", job], env=slurm, capture_output=True, text=True)
    assert q.stdout.strip() == ""
