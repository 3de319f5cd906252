"""`skewlab sweep --launcher slurm` against a real single-node Slurm (munged, slurmctld, slurmd
on loopback, started by the test and stopped by PID, as the deploy tests do): the cells as one
job array give the local sweep's table; a killed task is reported and --resume reruns only it;
Ctrl-C leaves nothing of the array in the queue; without a shared file system the cells are
copied back (issue 21)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import skewlab_cmd
from tests.integration.deploy_fixtures import processes, start_slurm, write_json

CELL_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    yield from start_slurm(tmp_path_factory.mktemp("slurm"))


def _sweep_file(tmp: Path, name: str, grid: str, events: int = 60) -> Path:
    f = tmp / f"{name}.toml"
    f.write_text(f'name = "{name}"\n[set]\n"workload.events" = {events}\n'
                 f'"run.warmup_s" = 0.5\n[grid]\n{grid}\n')  # fmt: skip
    return f


def _cluster(tmp: Path, **slurm: object) -> Path:
    settings = {"partition": "debug", "time_limit": "00:10:00", "task_mem": "1M",
                "poll_s": 0.2, **slurm}  # fmt: skip
    return write_json(tmp / "cluster.json", {"launcher": "slurm", "slurm": settings})


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(skewlab_cmd("sweep", *args), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)  # fmt: skip


def _finish(p: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = p.communicate(timeout=CELL_TIMEOUT_S)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _arrays(root: Path) -> list[dict]:
    p = root / "slurm" / "arrays.json"
    return json.loads(p.read_text()) if p.exists() else []


def _wait_for(what: str, cond, p: subprocess.Popen[str], timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        if p.poll() is not None:
            raise AssertionError(f"sweep ended ({p.returncode}) before {what}: "
                                 f"{p.stderr.read() if p.stderr else ''}")  # fmt: skip
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def _task_pids(job: str, task: int | None = None) -> list[int]:
    """PIDs of the Python processes of array ``job``'s tasks (from their environment)."""
    found = []
    for d, cmd in processes():
        if b"skewlab.sim.sweep_slurm" not in cmd:
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLURM_ARRAY_JOB_ID={job}".encode() not in env:
            continue
        if task is None or f"SLURM_ARRAY_TASK_ID={task}".encode() in env:
            found.append(int(d.name))
    return found


def _in_queue(env: dict[str, str], job: str) -> str:
    q = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True)
    return q.stdout.strip()


def test_array_gives_the_local_table_with_cells_at_once(slurm: dict[str, str],
                                                        tmp_path: Path) -> None:  # fmt: skip
    grid = '"ntp.poll_s" = [1, 2]\n"nodes[1].drift_ppm" = [0, 20, 40]'
    f = _sweep_file(tmp_path, "arr", grid)
    # 3 tasks of 2 cells (fewer Python start-ups), one more than the limit of 2 at once
    cl = _cluster(tmp_path, cells_per_task=2)
    # the Slurm sweep (at most 2 tasks at once) and the local sweep of the same file, together
    ps = _start(slurm, str(f), "--cluster", str(cl), "-j", "2", "-o", str(tmp_path / "slurm"))
    pl = _start(slurm, str(f), "-j", "2", "-q", "--no-figures", "-o", str(tmp_path / "local"))
    rs, rl = _finish(ps), _finish(pl)
    assert rl.returncode == 0, rl.stderr
    root = tmp_path / "slurm" / "arr"
    logs = "\n".join(p.read_text() for p in sorted((root / "slurm" / "logs").glob("*.log")))
    assert rs.returncode == 0, rs.stderr + logs
    assert "6 cell(s) run in Slurm array job" in rs.stdout and "0 reused" in rs.stdout
    assert "cells 6 done, 0 running, 0 pending, 0 failed (of 6)" in rs.stderr
    # one array of 3 tasks, at most 2 at once, memory and partition per task as configured
    (sub,) = _arrays(root)
    assert sub["status"] == "completed" and sub["tasks"] == [[0, 1], [2, 3], [4, 5]]
    assert {"--array=0-2%2", "--mem=1M", "--partition=debug"} <= set(sub["command"])
    # the same table: same cells (keys, hence seeds), same metrics per cell
    local = tmp_path / "local" / "arr"
    assert (root / "sweep.csv").read_bytes() == (local / "sweep.csv").read_bytes()
    cells = sorted(p.name for p in root.glob("cell-*"))
    assert cells == sorted(p.name for p in local.glob("cell-*")) and len(cells) == 6
    for c in cells:
        seeds = [json.loads((d / c / "run" / "spec.json").read_text())["seed"]
                 for d in (root, local)]  # fmt: skip
        assert seeds[0] == seeds[1]
    rows = list(csv.DictReader((root / "sweep.csv").open()))
    assert len(rows) == 6 and all(float(r["system.received_fraction"]) == 1.0 for r in rows)
    for name in ("vs_ntp.poll_s.png", "vs_nodes_1_.drift_ppm.png"):
        assert (root / "figures" / name).read_bytes()[:4] == b"\x89PNG"
    # cells ran concurrently under Slurm, never more than the limit: their start/end times
    timeline = list(csv.DictReader((root / "slurm" / "timeline.csv").open()))
    print("per-cell start/end under Slurm (s from the first start):")
    for r in timeline:
        print(f"  cell {r['cell']} task {r['task']} on {r['node']}: {r['start_s']} .. {r['end_s']}")
    assert sorted(int(r["cell"]) for r in timeline) == list(range(6))
    spans = [(int(r["start_ns"]), int(r["end_ns"])) for r in timeline]
    overlapping = sum(1 for i, a in enumerate(spans) for b in spans[i + 1 :]
                      if a[0] < b[1] and b[0] < a[1])  # fmt: skip
    assert overlapping >= 1
    for t, _e in spans:  # at any cell's start, at most 2 cells run (itself included)
        assert sum(1 for s, e in spans if s <= t < e) <= 2
    assert "(at most 2 at once)" in rs.stdout
    assert _in_queue(slurm, sub["job_id"]) == ""


def test_killed_task_is_reported_and_resume_reruns_only_it(slurm: dict[str, str],
                                                           tmp_path: Path) -> None:  # fmt: skip
    # cell 1 is the long one (~3 s on a quiet host; 60 events take ~0.8 s): it is killed while
    # it runs. With 400 events it took ~0.7 s, no longer than the others, and the kill could
    # come after it had finished (the test failed once in five full-suite runs).
    f = _sweep_file(tmp_path, "kill", '"workload.events" = [60, 2500, 60]')
    cl = _cluster(tmp_path)
    out = tmp_path / "out"
    root = out / "kill"
    p = _start(slurm, str(f), "--cluster", str(cl), "-j", "2", "-o", str(out))
    job = _wait_for("submission", lambda: (_arrays(root) or [{}])[0].get("job_id"), p)
    log = root / "slurm" / "logs" / f"{job}_1.log"
    _wait_for("cell 1 running", lambda: log.exists() and "cell 1: start" in log.read_text(), p)
    (pid,) = _wait_for("task 1's process", lambda: _task_pids(job, 1), p)
    os.kill(pid, signal.SIGKILL)
    r = _finish(p)
    assert r.returncode == 1, r.stderr
    assert "1 cell(s) of array job" in r.stderr
    assert "cell 1 (workload.events=2500), task 1 on " in r.stderr
    assert "exit code 137" in r.stderr and "| cell 1: start" in r.stderr  # the log's tail
    assert "--resume" in r.stderr
    # cell 1's folder exists only if the kill came after the cell had begun writing it (CI once
    # killed the task between "cell 1: start" and the folder's creation)
    done = {c.name[:8]: (c / "completed").exists() for c in root.glob("cell-*")}
    assert done.get("cell-000") and done.get("cell-002") and not done.get("cell-001")
    assert not (root / "sweep.csv").exists()
    (sub,) = _arrays(root)
    assert sub["status"] == "failed" and sub["failed_cells"] == [1]
    # without --resume: refused, nothing submitted
    r = subprocess.run(skewlab_cmd("sweep", str(f), "--cluster", str(cl), "-o", str(out)),
                       env=slurm, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 1 and "--resume submits only what is missing" in r.stderr
    assert len(_arrays(root)) == 1
    stamps = {c: (c / "row.json").stat().st_mtime_ns for c in root.glob("cell-00[02]-*")}
    assert len(stamps) == 2
    r = subprocess.run(skewlab_cmd("sweep", str(f), "--cluster", str(cl), "-o", str(out),
                                   "--resume", "--no-figures"), env=slurm, capture_output=True,
                       text=True, timeout=CELL_TIMEOUT_S)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "1 cell(s) run in Slurm array job" in r.stdout and "2 reused" in r.stdout
    _first, second = _arrays(root)
    assert second["tasks"] == [[1]] and second["status"] == "completed"
    assert {c: (c / "row.json").stat().st_mtime_ns for c in stamps} == stamps
    cells = sorted(root.glob("cell-*"))
    assert len(cells) == 3 and all((c / "completed").exists() for c in cells)
    assert len(list(csv.DictReader((root / "sweep.csv").open()))) == 3


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_cancels_the_array_and_records_it(slurm: dict[str, str], tmp_path: Path,
                                                 sig: signal.Signals) -> None:  # fmt: skip
    f = _sweep_file(tmp_path, "stop", '"ntp.poll_s" = [1, 2, 4]', events=800)
    out = tmp_path / "out"
    root = out / "stop"
    p = _start(slurm, str(f), "--cluster", str(_cluster(tmp_path)), "-j", "1", "-o", str(out))
    job = _wait_for("submission", lambda: (_arrays(root) or [{}])[0].get("job_id"), p)
    _wait_for("a running task", lambda: _task_pids(job), p)
    p.send_signal(sig)
    r = _finish(p)
    assert r.returncode == 128 + sig, r.stderr  # 130 for SIGINT, 143 for SIGTERM
    assert f"interrupted by {sig.name}; array job {job} cancelled (scancel {job})" in r.stderr
    assert _in_queue(slurm, job) == ""  # nothing of the array is left in the queue
    deadline = time.monotonic() + 30
    while _task_pids(job) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _task_pids(job) == []
    (sub,) = _arrays(root)
    assert sub["status"] == "cancelled" and sub["cancelled_by"] == sig.name
    assert sub["left_queue"] is True
    assert not any((c / "completed").exists() for c in root.glob("cell-*"))


def test_interrupted_while_sbatch_runs_cancels_what_it_submitted(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    # an sbatch that submits, then hangs: Ctrl-C arrives before the launcher knows the job id;
    # the array is found by its unique job name and cancelled by its id
    import shutil

    real = shutil.which("sbatch", path=slurm.get("PATH"))
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "submitted"
    wrapper = bin_dir / "sbatch"
    wrapper.write_text(f'#!/bin/sh\n"{real}" "$@" > "{seen}.tmp" && mv "{seen}.tmp" "{seen}"\n'
                       f'cat "{seen}"\nsleep 60\n')  # fmt: skip
    wrapper.chmod(0o755)
    env = {**slurm, "PATH": f"{bin_dir}:{slurm.get('PATH', '')}"}
    f = _sweep_file(tmp_path, "hang", '"ntp.poll_s" = [1, 2]', events=400)
    p = _start(env, str(f), "--cluster", str(_cluster(tmp_path)), "-o", str(tmp_path / "out"))
    job = _wait_for("the array submitted", lambda: seen.exists() and seen.read_text().strip(), p)
    job = str(job).split(";")[0]
    p.send_signal(signal.SIGINT)
    r = _finish(p)
    assert r.returncode == 130, r.stderr
    assert _in_queue(slurm, job) == ""
    assert _arrays(tmp_path / "out" / "hang") == []  # never recorded: nothing to resume


def test_cells_are_copied_back_without_a_shared_file_system(slurm: dict[str, str],
                                                            tmp_path: Path) -> None:  # fmt: skip
    # workdir: every task writes on its node, the launcher copies each finished task's cells
    # back through srun (the deploy agent's pack) and removes the node's copy
    f = _sweep_file(tmp_path, "copy", '"ntp.poll_s" = [1, 2]')
    remote = tmp_path / "node-disk"
    remote.mkdir()
    cl = write_json(tmp_path / "cluster.json", {
        "launcher": "slurm", "workdir": str(remote),
        "slurm": {"partition": "debug", "poll_s": 0.2, "array_limit": 2},
    })  # fmt: skip
    out = tmp_path / "out"
    r = subprocess.run(skewlab_cmd("sweep", str(f), "--cluster", str(cl), "-o", str(out),
                                   "--no-figures"), env=slurm, capture_output=True, text=True,
                       timeout=CELL_TIMEOUT_S)  # fmt: skip
    root = out / "copy"
    assert r.returncode == 0, r.stderr
    (sub,) = _arrays(root)
    assert sub["copy"] is True and sub["tasks"] == [[0], [1]]
    assert sub["remote"] == str(remote / "copy")
    assert set(sub["nodes"]) == {"0", "1"}
    cells = sorted(root.glob("cell-*"))
    assert len(cells) == 2 and all((c / "completed").exists() for c in cells)
    assert len(list(csv.DictReader((root / "sweep.csv").open()))) == 2
    job = sub["job_id"]
    for t in (0, 1):
        status = json.loads((root / "slurm" / "status" / f"{job}_{t}.json").read_text())
        assert status["exit_code"] == 0
        assert "exit code 0" in (root / "slurm" / "logs" / f"{job}_{t}.log").read_text()
    assert list(remote.iterdir()) == []  # the node's copy was removed after collection


def test_real_cells_run_where_the_cluster_file_places_their_nodes(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    # --real with hosts in the cluster file: each task is an allocation of one node per host,
    # and its cell is deployed inside it by the Slurm launcher (every role an srun job step)
    from tests.integration.deploy_fixtures import experiment

    write_json(tmp_path / "exp.json", experiment())
    f = tmp_path / "real.toml"
    f.write_text('name = "real"\nbase = "exp.json"\n[grid]\n"ntp.poll_s" = [0.5]\n')
    cl = write_json(tmp_path / "cluster.json", {
        "launcher": "slurm", "control_address": "127.0.0.1", "clocks": "emulated",
        "slurm": {"partition": "debug", "poll_s": 0.2},
        "hosts": [{"name": "@0", "address": "127.0.0.1",
                   "nodes": ["coordinator", "ntp-server", "W0", "W1"]}],
    })  # fmt: skip
    out = tmp_path / "out"
    r = subprocess.run(skewlab_cmd("sweep", str(f), "--cluster", str(cl), "--real", "-o",
                                   str(out), "--no-figures"), env=slurm, capture_output=True,
                       text=True, timeout=CELL_TIMEOUT_S)  # fmt: skip
    root = out / "real"
    logs = "\n".join(p.read_text() for p in sorted((root / "slurm" / "logs").glob("*.log")))
    assert r.returncode == 0, r.stderr + logs
    (sub,) = _arrays(root)
    assert {"--nodes=1", "--ntasks-per-node=1", "--exclusive"} <= set(sub["command"])
    (c,) = sorted(root.glob("cell-*"))
    assert json.loads((c / "cell.json").read_text())["launcher"] == "slurm"
    meta = json.loads((c / "run" / "metadata.json").read_text())
    assert meta["launcher"] == "slurm" and meta["status"] == "completed"
    assert meta["truth_available"] is True  # emulated clocks on one kernel
    job = meta["slurm"]["job_id"]  # the array task's own job: every node a step of it
    steps = {n: info["slurm_step"] for n, info in meta["nodes"].items()}
    assert set(steps) == {"ntp-server", "coordinator", "W0", "W1"}
    assert all(s.startswith(f"{job}.") for s in steps.values())
    rows = list(csv.DictReader((root / "sweep.csv").open()))
    assert len(rows) == 1 and float(rows[0]["system.received_fraction"]) > 0


def test_a_placed_real_cell_has_its_own_key_and_local_keys_stay() -> None:
    """No Slurm needed: the placement is part of a placed real cell's key; without it the key
    is the local sweep's (mode and spec only), so local sweeps keep reusing their cells."""
    import hashlib

    from skewlab.deploy.cluster import ClusterSpec, HostSpec
    from skewlab.sim.sweep import cell_key
    from skewlab.sim.sweep_slurm import launch_doc, peak_concurrency
    from skewlab.spec import ExperimentSpec

    spec = ExperimentSpec()
    doc = {"mode": "real", "spec": json.loads(spec.to_json())}
    assert cell_key(spec, True) == hashlib.sha256(
        json.dumps(doc, sort_keys=True).encode()).hexdigest()  # fmt: skip
    a = ClusterSpec(hosts=[HostSpec(name="@0", nodes=[n.name for n in spec.nodes])])
    b = a.model_copy(update={"clocks": "emulated"})
    keys = {cell_key(spec, True), cell_key(spec, True, launch_doc(a)),
            cell_key(spec, True, launch_doc(b))}  # fmt: skip
    assert len(keys) == 3
    # the most cells at once: an end at the instant of a start comes first
    rows = [{"start_ns": 0, "end_ns": 10}, {"start_ns": 5, "end_ns": 20},
            {"start_ns": 10, "end_ns": 30}, {"start_ns": 30, "end_ns": 40}]  # fmt: skip
    assert peak_concurrency(rows) == 2 and peak_concurrency(rows[:1]) == 1
