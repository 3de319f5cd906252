"""A sweep's cells as one Slurm job array (``skewlab sweep SWEEP_FILE --launcher slurm``).

The launcher plans the sweep exactly as the local one does (``sweep.plan_sweep``: same cells,
keys and folders; completed cells are reused), submits the cells still to run as ONE array
(``sbatch --array=0-(T-1)%N``; T tasks of ``cells_per_task`` cells, N at once), waits with
progress from ``squeue`` and the results folder, and writes the table and figures with the local
sweep's ``finish_sweep``. Each array task runs ``python -m skewlab.sim.sweep_slurm task``: the
cells it was given, each through the local sweep's own ``_run_cell`` (``simulate`` — or, with
``--real``, the local launcher on the task's node — then the analysis), into the shared results
folder, or, when the cluster file sets ``workdir`` (no shared file system), into that folder on
its node, copied back after the task with the deploy agent's ``pack`` through ``srun``.

Bookkeeping lives in ``OUT/<name>/slurm/``: ``arrays.json`` (every submission: job id, its
tasks' cells and keys, how it ended), ``submit-<n>.sh`` (the batch script, the task manifest
inside it), ``logs/<job>_<task>.log``, ``status/<job>_<task>.json`` (the task's exit code, node,
start and end, written by the batch script after the task's Python exits, so a killed task is
still recorded), ``cells/cell-NNN.json`` (one cell's node, start and end) and, at the end,
``timeline.csv``. Ctrl-C or SIGTERM cancels the array by its job id (nothing else) and records
it; ``--resume`` then submits only the cells still missing.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import shlex
import shutil
import socket
import sys
import tarfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skewlab.deploy.agent import SWEEP_COPY
from skewlab.deploy.cluster import ClusterSpec
from skewlab.deploy.orchestrator import LaunchError
from skewlab.deploy.remote import run_capture
from skewlab.sim.sweep import (
    SweepPlan,
    _run_cell,
    cell_at,
    cell_key,
    finish_sweep,
    is_completed,
    mark_interrupted,
    plan_sweep,
)
from skewlab.store import write_json_atomic
from skewlab.timebase import host_ns, sleep

STATE = "slurm"  # the sweep's Slurm bookkeeping, in OUT/<name>/
ARRAYS = "arrays.json"
END = "SKEWLAB_MANIFEST"  # the here-document delimiter of the manifest in the batch script
LOG_TAIL = 15  # lines of a failed task's log in the report
RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
SQUEUE_RETRIES = 5  # consecutive squeue failures tolerated while waiting
COPY_TIMEOUT_S = 600.0


class SweepFailed(LaunchError):
    """Some cells of the array did not complete; ``failures`` says which and why."""

    def __init__(self, message: str, failures: list[dict[str, Any]], job: str) -> None:
        super().__init__(message)
        self.failures = failures
        self.job = job


@dataclass
class Submission:
    """One array: its job id and, per task, the grid indices of its cells."""

    job_id: str
    tasks: list[list[int]]
    keys: dict[int, str]
    remote: str  # the sweep folder as the tasks see it (the results folder, or workdir copy)
    copy: bool
    nodes: dict[int, str] = field(default_factory=dict)  # task → node it was seen on

    def record(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "tasks": self.tasks,
                "keys": {str(i): k for i, k in self.keys.items()},
                "remote": self.remote, "copy": self.copy,
                "nodes": {str(t): n for t, n in self.nodes.items()}}  # fmt: skip

    @classmethod
    def of(cls, rec: dict[str, Any]) -> Submission:
        return cls(str(rec["job_id"]), [list(t) for t in rec["tasks"]],
                   {int(i): k for i, k in rec["keys"].items()}, rec["remote"], rec["copy"],
                   {int(t): n for t, n in (rec.get("nodes") or {}).items()})  # fmt: skip


# -- the bookkeeping file ------------------------------------------------------------------------


def _arrays(state: Path) -> list[dict[str, Any]]:
    p = state / ARRAYS
    return json.loads(p.read_text()) if p.exists() else []


def _update(state: Path, job_id: str, **fields: Any) -> None:
    """Record ``fields`` on the submission ``job_id`` in arrays.json."""
    arrays = _arrays(state)
    for a in arrays:
        if a["job_id"] == job_id:
            a.update(fields)
    write_json_atomic(state / ARRAYS, arrays)


# -- Slurm commands ------------------------------------------------------------------------------


def queue(job: str) -> dict[int, tuple[str, str]] | None:
    """The array's tasks still in the queue: task index → (state, node); None if squeue failed.
    A job Slurm no longer knows is an empty queue."""
    rc, out, err = run_capture(["squeue", "-h", "-r", "-j", job, "-o", "%K|%T|%N"], None, 60)
    if rc != 0:
        if b"Invalid job id" in err:
            return {}
        return None
    tasks: dict[int, tuple[str, str]] = {}
    for line in out.decode(errors="replace").splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].isdigit():
            tasks[int(parts[0])] = (parts[1], parts[2])
    return tasks


def accounting(job: str) -> dict[int, dict[str, str]]:
    """What ``sacct`` knows of the array's tasks (state, exit code, node); {} without
    accounting storage."""
    rc, out, _err = run_capture(
        ["sacct", "-n", "-P", "-X", "-j", job, "-o", "JobID,State,ExitCode,NodeList"], None, 60
    )
    if rc != 0:
        return {}
    found: dict[int, dict[str, str]] = {}
    for line in out.decode(errors="replace").splitlines():
        parts = line.split("|")
        if len(parts) == 4 and "_" in parts[0] and parts[0].split("_", 1)[1].isdigit():
            found[int(parts[0].split("_", 1)[1])] = {"state": parts[1], "exit_code": parts[2],
                                                     "node": parts[3]}  # fmt: skip
    return found


def cancel(job: str, wait_s: float = 60.0) -> bool:
    """``scancel`` of this array job only, then wait until none of its tasks is in the queue."""
    run_capture(["scancel", job], None, 60)
    deadline = host_ns() + int(wait_s * 1e9)
    while host_ns() < deadline:
        q = queue(job)
        if q == {}:
            return True
        sleep(0.3)
    return False


def _cancel_named(name: str) -> None:
    """Cancel the array with this (unique) job name, by its job id, if sbatch submitted it."""
    rc, out, _e = run_capture(["squeue", "-h", f"--name={name}", "-o", "%F"], None, 60)
    for job in sorted(set(out.decode().split())) if rc == 0 else []:
        if job.isdigit():
            cancel(job)


def _slurm_place(cluster: ClusterSpec) -> list[str]:
    s = cluster.slurm
    out = []
    if s.partition:
        out.append(f"--partition={s.partition}")
    if s.account:
        out.append(f"--account={s.account}")
    return out


def launch_doc(cluster: ClusterSpec) -> dict[str, Any]:
    """What a real cell placed by the cluster file depends on beyond its spec (part of its
    key): the hosts and their nodes, the clocks setting and the NTP server."""
    return {"launcher": "slurm", "clocks": cluster.clocks, "ntp": cluster.ntp,
            "hosts": {h.name: sorted(h.nodes) for h in cluster.hosts}}  # fmt: skip


def _shape(plan: SweepPlan, cluster: ClusterSpec) -> list[str]:
    """One node per task; a placed real cell gets one node per host of the cluster file (named
    hosts by name, "@N" ones wherever Slurm puts them)."""
    if not plan.launch:
        return ["--nodes=1", "--ntasks=1"]
    hosts = [h for h in cluster.hosts if h.nodes]
    out = [f"--nodes={len(hosts)}", "--ntasks-per-node=1"]
    named = sorted(h.name for h in hosts if not h.name.startswith("@"))
    if named:
        out.append(f"--nodelist={','.join(named)}")
    return out


def batch_script(python: str, remote: str, manifest: dict[str, Any], copy: bool) -> str:
    """The array's batch script: run this task's cells, then record its exit code, node, start
    and end (also when the Python process was killed: the shell outlives it)."""
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        "# written by skewlab sweep --launcher slurm: one array task runs its cells",
        f"D={q(remote)}",
        'J="${SLURM_ARRAY_JOB_ID:?not a job array task}"',
        'T="${SLURM_ARRAY_TASK_ID:?not a job array task}"',
        'mkdir -p "$D/slurm/logs" "$D/slurm/status" "$D/slurm/cells" || exit 1',
    ]
    if copy:  # Slurm's --output is not on a shared file system: the task keeps its own log
        lines.append('exec >>"$D/slurm/logs/${J}_${T}.log" 2>&1')
    lines += [
        "start=$(date +%s%N)",
        f"{q(python)} -u -m skewlab.sim.sweep_slurm task --dir \"$D\" <<'{END}'",
        json.dumps(manifest, separators=(",", ":")),
        END,
        "rc=$?",
        "end=$(date +%s%N)",
        'S="$D/slurm/status/${J}_${T}.json"',
        'printf \'{"job": "%s", "task": %s, "node": "%s", "exit_code": %s, '
        '"start_ns": %s, "end_ns": %s}\\n\' '
        '"$J" "$T" "${SLURMD_NODENAME:-$(hostname)}" "$rc" "$start" "$end" > "$S.tmp" '
        '&& mv "$S.tmp" "$S"',
        'echo "skewlab sweep task $T of array $J: exit code $rc"',
        'exit "$rc"',
        "",
    ]
    return "\n".join(lines)


def _manifest(plan: SweepPlan, tasks: list[list[int]], figures: bool, copy: bool,
              cluster: ClusterSpec) -> dict[str, Any]:  # fmt: skip
    """What a task needs to build its cells itself: the sweep with its base spec resolved (no
    file to read on the node), the mode, and per task its cells' keys and folder names."""
    from skewlab.sim.sweep import _base_data

    sweep = {k: plan.sweep[k] for k in ("name", "set", "grid") if k in plan.sweep}
    sweep["base_spec"] = _base_data(plan.sweep)
    cells = [i for t in tasks for i in t]
    return {"sweep": sweep, "real": plan.real, "figures": figures, "copy": copy,
            "tasks": tasks, "keys": {str(i): plan.keys[i] for i in cells},
            "dirs": {str(i): plan.dirs[i].name for i in cells}, "launch": plan.launch,
            "cluster": cluster.model_dump(mode="json") if plan.launch else None}  # fmt: skip


def submit(plan: SweepPlan, cluster: ClusterSpec, limit: int, figures: bool,
           say: Any) -> Submission:  # fmt: skip
    """Write the batch script and submit the cells still to run as one job array."""
    s = cluster.slurm
    state = plan.root / STATE
    per = s.cells_per_task
    tasks = [plan.todo[k : k + per] for k in range(0, len(plan.todo), per)]
    copy = cluster.workdir is not None
    remote = (str(Path(cluster.workdir) / plan.sweep["name"]) if copy  # type: ignore[arg-type]
              else str(plan.root.resolve()))  # fmt: skip
    n = len(_arrays(state)) + 1
    script = state / f"submit-{n}.sh"
    script.write_text(batch_script(cluster.python, remote,
                                   _manifest(plan, tasks, figures, copy, cluster),
                                   copy))  # fmt: skip
    script.chmod(0o755)
    log = "/dev/null" if copy else str(plan.root.resolve() / STATE / "logs" / "%A_%a.log")
    name = f"skewlab-sweep-{plan.sweep['name']}-{secrets.token_hex(4)}"  # this array only
    cmd = ["sbatch", "--parsable", f"--job-name={name}",
           f"--array=0-{len(tasks) - 1}%{limit}", *_shape(plan, cluster),
           f"--cpus-per-task={s.cpus_per_task}", f"--time={s.task_time_limit or s.time_limit}",
           f"--output={log}", "--open-mode=append",
           f"--chdir={'/tmp' if copy else plan.root.resolve()}"]  # fmt: skip
    if s.task_mem:
        cmd.append(f"--mem={s.task_mem}")
    if plan.real:  # a real-time cell owns its nodes' clocks and CPUs (the local sweep's -j 1)
        cmd.append("--exclusive")
    cmd += [*_slurm_place(cluster), *s.sbatch_args, str(script)]
    try:
        rc, out, err = run_capture(cmd, None, 120)
    except BaseException:  # interrupted while sbatch ran: it may have submitted; find it by
        _cancel_named(name)  # its unique name and cancel that job id only
        raise
    if rc != 0:
        raise LaunchError(f"sbatch failed: {err.decode(errors='replace').strip() or rc}")
    job = out.decode().strip().split(";")[0]
    sub = Submission(job, tasks, {i: plan.keys[i] for t in tasks for i in t}, remote, copy)
    arrays = _arrays(state)
    arrays.append({**sub.record(), "script": script.name, "command": cmd, "limit": limit,
                   "submitted_ns": host_ns(), "status": "submitted"})  # fmt: skip
    write_json_atomic(state / ARRAYS, arrays)
    say(f"submitted array job {job}: {len(plan.todo)} cell(s) in {len(tasks)} task(s), "
        f"at most {limit} at once")  # fmt: skip
    return sub


# -- copy-back (no shared file system) -----------------------------------------------------------


def _srun_on(cluster: ClusterSpec, node: str, args: list[str]) -> tuple[int, bytes, bytes]:
    """Run the deploy agent on ``node`` through its own short ``srun`` job."""
    cmd = ["srun", "--nodes=1", "--ntasks=1", f"--nodelist={node}", "--time=10",
           "--job-name=skewlab-sweep-copy", "--quiet", *_slurm_place(cluster),
           *cluster.slurm.srun_args, cluster.python, "-m", "skewlab.deploy.agent",
           *args]  # fmt: skip
    return run_capture(cmd, None, COPY_TIMEOUT_S)


def _candidates(sub: Submission, task: int, cluster: ClusterSpec) -> list[str]:
    """Nodes a finished task may have run on: as seen in the queue, else from accounting,
    else every node of the partition."""
    if task in sub.nodes:
        return [sub.nodes[task]]
    acct = accounting(sub.job_id).get(task, {}).get("node")
    if acct and acct not in ("None assigned", ""):
        return [acct]
    cmd = ["sinfo", "-h", "-N", "-o", "%N"]
    if cluster.slurm.partition:
        cmd.append(f"--partition={cluster.slurm.partition}")
    rc, out, _e = run_capture(cmd, None, 60)
    return list(dict.fromkeys(out.decode().split())) if rc == 0 else []


def copy_back(sub: Submission, task: int, plan: SweepPlan, cluster: ClusterSpec) -> str | None:
    """Fetch a finished task's cells, status, log and timings from its node into the results
    folder (a cell's old local folder is replaced). None, or why it failed."""
    cells = sub.tasks[task]
    paths = [f"slurm/status/{sub.job_id}_{task}.json", f"slurm/logs/{sub.job_id}_{task}.log"]
    paths += [f"slurm/cells/cell-{i:03d}.json" for i in cells]
    paths += [plan.dirs[i].name for i in cells]
    args = ["pack", "--dir", sub.remote] + [w for p in paths for w in ("--path", p)]
    why = "no node to copy from"
    for node in _candidates(sub, task, cluster):
        rc, out, err = _srun_on(cluster, node, args)
        if rc != 0:
            why = f"copy-back from {node} failed: {err.decode(errors='replace').strip() or rc}"
            continue
        with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
            members = []
            for m in tar:
                members.append(m)
                if m.name == paths[0]:
                    sub.nodes[task] = node
        if not members:
            why = f"nothing of task {task} on {node}"
            continue
        for i in cells:  # the node's copy replaces whatever an earlier attempt left here
            if any(m.name.split("/", 1)[0] == plan.dirs[i].name for m in members):
                shutil.rmtree(plan.dirs[i], ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links out, devices
                tar.extractall(plan.root, filter="data")
            else:
                tar.extractall(plan.root, members=[m for m in tar if m.isfile() or m.isdir()])
        return None
    return why


def remove_remote(sub: Submission, cluster: ClusterSpec, say: Any) -> None:
    """Delete the task folder on every node a task ran on (unless keep_remote)."""
    for node in sorted(set(sub.nodes.values())):
        rc, out, err = _srun_on(cluster, node, ["remove", "--dir", sub.remote])
        if rc != 0 or not json.loads(out or b"{}").get("removed"):
            say(f"could not remove {sub.remote} on {node}: "
                f"{(err or out).decode(errors='replace').strip()}")  # fmt: skip


# -- waiting -------------------------------------------------------------------------------------


def _tail(path: Path, n: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _outcome(sub: Submission, task: int, plan: SweepPlan, why: str | None) -> list[dict]:
    """The failed cells of a finished task (empty when every cell completed)."""
    state = plan.root / STATE
    failed = [i for i in sub.tasks[task] if not is_completed(plan.dirs[i], plan.keys[i])]
    if not failed:
        return []
    status_path = state / "status" / f"{sub.job_id}_{task}.json"
    status: dict[str, Any] = {}
    if status_path.exists():
        status = json.loads(status_path.read_text())
    exit_code = status.get("exit_code")
    if not status:
        acct = accounting(sub.job_id).get(task)
        reason = (f"Slurm says {acct['state']}, exit code {acct['exit_code']}" if acct else
                  "the task ended without a status (cancelled, or killed by Slurm: "
                  "time or memory limit; see the log)")  # fmt: skip
    else:
        reason = f"exit code {exit_code}"
    if why:
        reason += f"; {why}"
    out = []
    for i in failed:
        cell_rec = state / "cells" / f"cell-{i:03d}.json"
        err = None
        if cell_rec.exists():
            err = json.loads(cell_rec.read_text()).get("error")
        out.append({"cell": i, "parameters": plan.grid[i][0], "task": task,
                    "job": sub.job_id, "exit_code": exit_code, "node": status.get("node"),
                    "reason": reason + (f"; {err}" if err else ""),
                    "log": str(state / "logs" / f"{sub.job_id}_{task}.log"),
                    "log_tail": _tail(state / "logs" / f"{sub.job_id}_{task}.log")})  # fmt: skip
    return out


def watch(sub: Submission, plan: SweepPlan, cluster: ClusterSpec,
          say: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Wait until no task of the array is in the queue; progress line on every change; copy
    back finished tasks' cells (copy mode). Returns the failed cells."""
    ended: set[int] = set()
    unsure: dict[int, int] = {}  # task gone without status or marker: polls waited for them
    failures: list[dict[str, Any]] = []
    misses = 0
    last = ""
    total = len(plan.grid)
    while True:
        q = queue(sub.job_id)
        if q is None:
            misses += 1
            if misses > SQUEUE_RETRIES:
                raise LaunchError(f"squeue does not answer about array job {sub.job_id}")
            sleep(cluster.slurm.poll_s)
            continue
        misses = 0
        for t, (_st, node) in q.items():
            if node and t not in sub.nodes:
                sub.nodes[t] = node
        for t in range(len(sub.tasks)):
            if t in q or t in ended:
                continue
            why = copy_back(sub, t, plan, cluster) if sub.copy else None
            status = plan.root / STATE / "status" / f"{sub.job_id}_{t}.json"
            done = all(is_completed(plan.dirs[i], plan.keys[i]) for i in sub.tasks[t])
            if not done and not status.exists() and unsure.get(t, 0) < 3 and q:
                unsure[t] = unsure.get(t, 0) + 1  # a shared file system may show it late
                continue
            ended.add(t)
            failures += _outcome(sub, t, plan, why)
        bad = {f["cell"] for f in failures}
        running = sum(len(sub.tasks[t]) for t, (st, _n) in q.items() if st in RUNNING)
        pending = sum(len(sub.tasks[t]) for t, (st, _n) in q.items() if st not in RUNNING)
        done = sum(1 for i in plan.rows if i not in sub.keys)  # reused
        done += sum(1 for t in ended for i in sub.tasks[t] if i not in bad)
        line = (f"array {sub.job_id}: cells {done} done, {running} running, {pending} pending, "
                f"{len(bad)} failed (of {total})")  # fmt: skip
        if line != last:
            say(line)
            last = line
        if not q and len(ended) == len(sub.tasks):
            return failures
        sleep(cluster.slurm.poll_s)


# -- the timeline --------------------------------------------------------------------------------


def timeline(plan: SweepPlan, job: str) -> list[dict[str, Any]]:
    """Every cell the array ``job`` ran: node, start and end (host clock ns), from its record."""
    rows = []
    for i in range(len(plan.grid)):
        p = plan.root / STATE / "cells" / f"cell-{i:03d}.json"
        if p.exists():
            rec = json.loads(p.read_text())
            if str(rec.get("job")) == job and "end_ns" in rec:
                rows.append(rec)
    return rows


def peak_concurrency(rows: list[dict[str, Any]]) -> int:
    """The most cells running at one instant (an end at the instant of a start comes first)."""
    ev = sorted([(r["start_ns"], 1) for r in rows] + [(r["end_ns"], -1) for r in rows])
    peak = cur = 0
    for _t, d in ev:
        cur += d
        peak = max(peak, cur)
    return peak


def write_timeline(plan: SweepPlan, rows: list[dict[str, Any]]) -> str:
    """slurm/timeline.csv: cell, task, job, node, start and end (ns), seconds from the first
    start."""
    t0 = min((r["start_ns"] for r in rows), default=0)
    path = plan.root / STATE / "timeline.csv"
    lines = ["cell,task,job,node,start_ns,end_ns,start_s,end_s"]
    for r in sorted(rows, key=lambda r: r["start_ns"]):
        lines.append(f"{r['cell']},{r['task']},{r['job']},{r['host']},{r['start_ns']},"
                     f"{r['end_ns']},{(r['start_ns'] - t0) / 1e9:.3f},"
                     f"{(r['end_ns'] - t0) / 1e9:.3f}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return str(path.relative_to(plan.root))


# -- the launcher --------------------------------------------------------------------------------


def run_sweep_slurm(
    sweep_file: Path,
    out: Path,
    cluster: ClusterSpec,
    real: bool = False,
    figures: bool = False,
    resume: bool = False,
    limit: int | None = None,
    progress: Any = None,
    sweep_figures: bool = True,
) -> dict[str, Any]:
    """Run the sweep's missing cells as one Slurm job array, then write the table and figures
    as the local sweep does (``sweep_figures`` as there). Raises ``SweepFailed`` (cells, exit
    codes, log tails) when some cells did not complete; Ctrl-C/SIGTERM cancels the array
    (``scancel`` of its job id)."""
    say = progress or (lambda _s: None)
    launch = launch_doc(cluster) if real and cluster.hosts else None
    if launch and cluster.workdir:
        raise LaunchError(
            "real cells placed by the cluster file run through the Slurm deploy launcher, "
            "which reads results in place on a shared file system: remove workdir"
        )
    plan = plan_sweep(sweep_file, out, real, launch)
    if launch:  # every cell's nodes placed exactly once, before anything is submitted
        for params, spec in plan.grid:
            label = ", ".join(f"{k}={v}" for k, v in params.items())
            cluster.check_against(spec, f"cluster (cell {label})")
    state = plan.root / STATE
    for sub_dir in ("logs", "status", "cells"):
        (state / sub_dir).mkdir(parents=True, exist_ok=True)
    limit = limit or cluster.slurm.array_limit
    arrays = _arrays(state)
    if arrays:
        plan = _after_earlier(arrays[-1], plan, cluster, resume, say, sweep_file, out)
    say(f"sweep {plan.sweep['name']}: {len(plan.grid)} cells, {plan.skipped} already done, "
        f"{len(plan.todo)} to run")  # fmt: skip
    sub: Submission | None = None
    if plan.todo:
        try:
            sub = submit(plan, cluster, limit, figures, say)
            failures = watch(sub, plan, cluster, say)
        except BaseException as e:
            _stopped(e, sub, plan, say)
            raise
        _update(state, sub.job_id, nodes={str(t): n for t, n in sub.nodes.items()},
                ended_ns=host_ns(), status="failed" if failures else "completed",
                failed_cells=[f["cell"] for f in failures])  # fmt: skip
        if sub.copy and not cluster.keep_remote:
            remove_remote(sub, cluster, say)
        if failures:
            raise SweepFailed(format_failures(failures, sub.job_id), failures, sub.job_id)
    for i in plan.todo:
        plan.rows[i] = json.loads((plan.dirs[i] / "row.json").read_text())
    files = finish_sweep(plan, sweep_figures)
    rows = timeline(plan, sub.job_id) if sub else []
    if rows:
        files.append(write_timeline(plan, rows))
    ordered = [plan.rows[i] for i in range(len(plan.grid))]
    return {"root": str(plan.root), "rows": ordered, "ran": len(plan.todo),
            "skipped": plan.skipped, "files": files, "job_id": sub.job_id if sub else None,
            "peak_concurrency": peak_concurrency(rows), "timeline": rows}  # fmt: skip


def _after_earlier(last: dict[str, Any], plan: SweepPlan, cluster: ClusterSpec, resume: bool,
                   say: Any, sweep_file: Path, out: Path) -> SweepPlan:  # fmt: skip
    """An earlier array of this sweep: still queued → wait for it (``--resume``) or refuse;
    ended with cells of this grid still missing → submit them only with ``--resume``."""
    sub = Submission.of(last)
    q = queue(sub.job_id)
    if q:
        same = all(i < len(plan.keys) and plan.keys[i] == k for i, k in sub.keys.items())
        if not same:
            raise LaunchError(
                f"array job {sub.job_id} of this sweep is still in the queue and runs other "
                f"cells than this sweep file now gives; wait for it, or scancel {sub.job_id}"
            )
        if not resume:
            raise LaunchError(
                f"array job {sub.job_id} of this sweep is still in the queue ({len(q)} task(s)): "
                f"--resume waits for it and then submits what is missing; or scancel {sub.job_id}"
            )
        say(f"array job {sub.job_id} of this sweep is still in the queue: waiting for it")
        try:
            failures = watch(sub, plan, cluster, say)
        except BaseException as e:
            _stopped(e, sub, plan, say)
            raise
        _update(plan.root / STATE, sub.job_id, ended_ns=host_ns(),
                status="failed" if failures else "completed",
                failed_cells=[f["cell"] for f in failures])  # fmt: skip
        return plan_sweep(sweep_file, out, plan.real, plan.launch)
    missing = [i for i in plan.todo if plan.keys[i] in set(sub.keys.values())]
    if missing and not resume:
        how = last.get("status", "submitted")
        raise LaunchError(
            f"array job {sub.job_id} of this sweep ended ({how}) with {len(missing)} cell(s) "
            f"of this grid not completed ({', '.join(map(str, missing[:10]))}"
            f"{', ...' if len(missing) > 10 else ''}); --resume submits only what is missing"
        )
    return plan


def _stopped(e: BaseException, sub: Submission | None, plan: SweepPlan, say: Any) -> None:
    """The launcher is leaving on an exception (Ctrl-C, SIGTERM, an error): cancel the array by
    its job id, wait until it has left the queue, record it, mark cut-short cells."""
    if sub is not None:
        gone = cancel(sub.job_id)
        sig = getattr(e, "name", None) or type(e).__name__
        _update(plan.root / STATE, sub.job_id, status="cancelled", cancelled_by=sig,
                ended_ns=host_ns(), left_queue=gone,
                nodes={str(t): n for t, n in sub.nodes.items()})  # fmt: skip
        say(
            f"array job {sub.job_id} cancelled (scancel {sub.job_id})"
            + ("" if gone else "; some of its tasks were still in the queue after 60 s")
        )
    if not isinstance(e, KeyboardInterrupt):
        return
    for i in plan.todo:
        mark_interrupted(plan.dirs[i])
    e.results = plan.root  # type: ignore[attr-defined]
    e.cells_done = sum(1 for i in range(len(plan.grid))  # type: ignore[attr-defined]
                       if is_completed(plan.dirs[i], plan.keys[i]))  # fmt: skip
    e.slurm_job = sub.job_id if sub else None  # type: ignore[attr-defined]


def format_failures(failures: list[dict[str, Any]], job: str) -> str:
    """One paragraph per failed cell: cell, parameters, task, exit code/reason, log tail."""
    out = [f"{len(failures)} cell(s) of array job {job} did not complete:"]
    for f in failures:
        params = ", ".join(f"{k}={v}" for k, v in f["parameters"].items())
        out.append(f"  cell {f['cell']} ({params}), task {f['task']} on "
                   f"{f.get('node') or 'an unknown node'}: {f['reason']}")  # fmt: skip
        out.append(f"    log {f['log']}, last lines:")
        out += [f"    | {line}" for line in f["log_tail"].splitlines()]
    out.append("the same command with --resume submits only the missing cells")
    return "\n".join(out)


# -- inside an array task ------------------------------------------------------------------------


def run_task(d: Path, manifest: dict[str, Any], task: int, job: str) -> int:
    """Run this task's cells one after another, each as the local sweep runs a cell; record
    each cell's node, start and end. Exit code 1 if any cell failed."""
    if manifest.get("copy"):
        write_json_atomic(d / SWEEP_COPY, {"sweep": manifest["sweep"]["name"]})
    real, figures = bool(manifest["real"]), bool(manifest["figures"])
    launch = manifest.get("launch")
    cluster = ClusterSpec.model_validate(manifest["cluster"]) if launch else None
    rc = 0
    for i in manifest["tasks"][task]:
        key = manifest["keys"][str(i)]
        folder = d / manifest["dirs"][str(i)]
        rec: dict[str, Any] = {"cell": i, "task": task, "job": job,
                               "host": socket.gethostname(), "start_ns": host_ns()}  # fmt: skip
        print(f"cell {i}: start on {rec['host']}", flush=True)
        try:
            params, spec = cell_at(manifest["sweep"], i)
            if cell_key(spec, real, launch) != key:
                raise RuntimeError(
                    f"this node's skewlab resolves cell {i} to another spec than the "
                    "launcher's (install the same skewlab version on every node)"
                )
            if not is_completed(folder, key):  # a requeued task does not redo finished cells
                _run_cell((spec.to_json(), str(folder), params, real, figures, key), cluster)
            rec["ok"] = True
        except Exception as e:
            traceback.print_exc()
            rec["ok"] = False
            rec["error"] = f"{type(e).__name__}: {e}"
            rc = 1
        rec["end_ns"] = host_ns()
        write_json_atomic(d / STATE / "cells" / f"cell-{i:03d}.json", rec)
        print(f"cell {i}: {'done' if rec['ok'] else 'failed'}", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    """``python -m skewlab.sim.sweep_slurm task --dir D`` (manifest on stdin), what the batch
    script runs; the task index and job id come from Slurm's environment."""
    import os

    ap = argparse.ArgumentParser(prog="python -m skewlab.sim.sweep_slurm")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("task")
    t.add_argument("--dir", required=True)
    a = ap.parse_args(argv)
    manifest = json.loads(sys.stdin.read())
    task = int(os.environ["SLURM_ARRAY_TASK_ID"])
    job = os.environ.get("SLURM_ARRAY_JOB_ID", "?")
    return run_task(Path(a.dir), manifest, task, job)


if __name__ == "__main__":
    sys.exit(main())
