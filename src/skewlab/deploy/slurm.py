"""Slurm launcher: one allocation; every node is an ``srun --overlap`` job step on its host.

Inside an allocation (SLURM_JOB_ID set: ``salloc``, or the batch script) the launcher places
each role with its own job step and stops a step by its id (``scancel JOB.STEP``), which the
node reports in its hello. From a login node, :func:`submit` asks ``sbatch`` for the allocation
with a batch script that runs this same deploy inside it, waits for the job, and cancels it
(by job id) on Ctrl-C. Results are read in place: the results folder must be on a file system
every node shares (the pre-flight checks that it is visible).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from skewlab.deploy.cluster import ClusterSpec, HostSpec
from skewlab.deploy.orchestrator import LaunchError, NodeProc, ProgressFn
from skewlab.deploy.remote import AGENT_TIMEOUT_S, RemoteLauncher, run_capture
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, new_experiment_id, write_json_atomic
from skewlab.timebase import sleep


class SlurmNode(NodeProc):
    """A node in its own job step; the carrier is the local ``srun``."""

    def __init__(self, host_name: str, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.host_name = host_name

    @property
    def step(self) -> str | None:
        return self.hello.get("slurm_step")

    def where(self) -> str:
        step = f", step {self.step}" if self.step else ""
        return f"pid {self.pid} on {self.host_name}{step}" if self.pid else f"on {self.host_name}"

    def terminate(self) -> None:
        if self.step:
            run_capture(["scancel", "--quiet", "--signal=TERM", self.step], None, 30)
        else:  # no step id yet: srun forwards SIGTERM to its step
            super().terminate()

    def kill(self) -> None:
        if self.step:
            run_capture(["scancel", "--quiet", self.step], None, 30)
        super().kill()


class SlurmLauncher(RemoteLauncher):
    launcher_name = "slurm"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.job_id = os.environ.get("SLURM_JOB_ID")
        self._alloc: list[str] | None = None

    def allocation_nodes(self) -> list[str]:
        """The allocation's node names, in order (``scontrol show hostnames``)."""
        if self._alloc is None:
            nodelist = os.environ.get("SLURM_JOB_NODELIST", "")
            rc, out, err = run_capture(["scontrol", "show", "hostnames", nodelist], None, 30)
            if rc != 0 or not out.strip():
                raise LaunchError(f"cannot list the allocation's nodes: {err.decode().strip()}")
            self._alloc = out.decode().split()
        return self._alloc

    def host_name(self, host: HostSpec) -> str:
        if host.name.startswith("@"):
            nodes = self.allocation_nodes()
            try:
                return nodes[int(host.name[1:])]
            except (ValueError, IndexError):
                have = f"{len(nodes)} node(s) ({', '.join(nodes)})"
                raise LaunchError(f"host {host.name}: the allocation has {have}") from None
        return host.name

    def srun_cmd(self, host: HostSpec, job_name: str) -> list[str]:
        return [
            "srun", f"--jobid={self.job_id}", "--overlap", "--nodes=1", "--ntasks=1",
            f"--nodelist={self.host_name(host)}", f"--job-name={job_name}", "--quiet",
            "--kill-on-bad-exit=0", *self.cluster.slurm.srun_args,
        ]  # fmt: skip

    def run_agent(
        self, host: HostSpec, args: list[str], stdin: bytes | None = None,
        timeout: float = AGENT_TIMEOUT_S,
    ) -> tuple[int, bytes, bytes]:  # fmt: skip
        cmd = [*self.srun_cmd(host, "skewlab-agent"), self.python_of(host)]
        return run_capture([*cmd, "-m", "skewlab.deploy.agent", *args], stdin, timeout)

    def preflight(self) -> None:
        if not self.job_id:
            raise LaunchError(
                "the Slurm launcher places nodes inside an allocation (SLURM_JOB_ID is not set); "
                "run it under salloc/sbatch, or let `skewlab deploy` submit with sbatch"
            )
        if self.cluster.workdir or any(h.workdir for h in self.cluster.hosts):
            raise LaunchError(
                "the Slurm launcher reads results in place on a shared file system; "
                "remove workdir from the cluster file"
            )
        super().preflight()

    def start_node(self, role: str, name: str, argv: list[str], log: Path) -> NodeProc:
        host = self.host_of(name)
        cmd = [*self.srun_cmd(host, f"skewlab-{name}"), self.python_of(host), "-u",
               "-m", "skewlab.node", *argv]  # fmt: skip
        with open(log, "wb") as logf:
            p = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return SlurmNode(self.host_name(host), name, role, p, log)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["slurm"] = {"job_id": self.job_id, "nodes": self.allocation_nodes()}
        return d


# -- from a login node: sbatch -------------------------------------------------------------------


def batch_command(
    cluster: ClusterSpec, experiment: Path, cluster_file: Path, root: Path, make_figures: bool
) -> list[str]:
    """The deploy command the batch script runs inside the allocation."""
    cmd = [cluster.python, "-m", "skewlab", "deploy", str(experiment),
           "--cluster", str(cluster_file), "--launcher", "slurm",
           "--results-dir", str(root), "--quiet"]  # fmt: skip
    if not make_figures:
        cmd.append("--no-figures")
    return cmd


def submit(
    spec: ExperimentSpec,
    cluster: ClusterSpec,
    out_dir: Path,
    make_figures: bool = True,
    progress: ProgressFn | None = None,
) -> tuple[ResultsDir, str]:
    """Submit the deploy as a batch job and wait for it; returns (results folder, job id).

    The job's own metadata.json says how the run went. Ctrl-C cancels the job (by its id).
    """
    say = progress or (lambda _s: None)
    cluster.check_against(spec)
    res = ResultsDir.create(out_dir.resolve(), new_experiment_id(spec.name))
    d = res.root / "deploy"
    d.mkdir()
    (res.root / "logs").mkdir()
    experiment, cluster_file = d / "experiment.json", d / "cluster.json"
    experiment.write_text(spec.to_json())
    cluster_file.write_text(cluster.model_dump_json(indent=2))
    script = d / "job.sh"
    script.write_text(
        "#!/bin/sh\n# written by skewlab deploy: the deploy runs inside this allocation\n"
        "exec " + shlex.join(batch_command(cluster, experiment, cluster_file, res.root,
                                           make_figures)) + "\n"
    )  # fmt: skip
    script.chmod(0o755)
    hosts = {cluster.host_of(n.name, spec).name for n in spec.nodes}
    if cluster.ntp == "embedded":
        hosts.add(cluster.host_of("ntp-server", spec).name)
    named = sorted(h for h in hosts if not h.startswith("@"))
    s = cluster.slurm
    cmd = ["sbatch", "--parsable", f"--job-name=skewlab-{spec.name}", f"--nodes={len(hosts)}",
           "--ntasks-per-node=1", f"--time={s.time_limit}",
           f"--output={res.root / 'logs' / 'slurm-job.log'}", f"--chdir={res.root}"]  # fmt: skip
    if named:
        cmd.append(f"--nodelist={','.join(named)}")
    if s.partition:
        cmd.append(f"--partition={s.partition}")
    if s.account:
        cmd.append(f"--account={s.account}")
    cmd += [*s.sbatch_args, str(script)]
    rc, out, err = run_capture(cmd, None, 120)
    if rc != 0:
        raise LaunchError(f"sbatch failed: {err.decode(errors='replace').strip() or rc}")
    job = out.decode().strip().split(";")[0]
    write_json_atomic(res.root / "deploy" / "job.json", {"slurm_job_id": job, "command": cmd})
    say(f"submitted batch job {job}; results: {res.root}")
    try:
        last = None
        while True:
            rc, out, err = run_capture(["squeue", "-h", "-j", job, "-o", "%T"], None, 60)
            state = out.decode().strip()
            if rc != 0 and b"Invalid job id" not in err:
                raise LaunchError(f"squeue failed: {err.decode(errors='replace').strip()}")
            if not state:
                break
            if state != last:
                say(f"job {job}: {state}")
                last = state
            sleep(s.poll_s)
    except BaseException:
        run_capture(["scancel", job], None, 60)  # our job, by id: nothing else
        raise
    return res, job


def job_outcome(res: ResultsDir) -> dict[str, Any]:
    """The batch job's metadata.json, or a failure saying there is none."""
    if not res.metadata_path.exists():
        return {
            "status": "failed",
            "error": "the job wrote no metadata.json; see logs/slurm-job.log",
        }
    return json.loads(res.metadata_path.read_text())
