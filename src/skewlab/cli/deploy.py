"""``skewlab deploy``: run an experiment through the local, SSH or Slurm launcher, then analyse
it (also what a failed run left: partial results are kept and analysed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from skewlab.cli import options as opt
from skewlab.cli.common import (
    Progress,
    fail,
    interrupted_run,
    interrupts,
    load_spec,
    summary_table,
)


def _analyse_and_report(res: Any, make_figures: bool, meta: dict[str, Any]) -> bool:
    """Analyse a results folder (complete or partial) and print the summary; False on failure."""
    from skewlab.analysis import analyze

    try:
        stats = analyze(res, make_figures=make_figures)
    except Exception as e:  # partial results can be too partial: say so, keep the folder
        click.echo(f"skewlab: analysis of {res.root} failed: {type(e).__name__}: {e}", err=True)
        return False
    click.echo(summary_table(stats))
    if not meta.get("truth_available", True):
        click.echo("(no ground truth on real hosts: truth-based metrics are unavailable)")
    return True


def _ended(progress: Progress, what: str) -> str:
    progress.end()
    return what


@click.command()
@opt.experiment_argument(required=True)
@click.option(
    "--launcher",
    type=click.Choice(["local", "ssh", "slurm"]),
    help="How nodes are started. Default: the cluster file's `launcher`, else local.",
)
@click.option(
    "--cluster",
    "cluster_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Cluster file (hosts, node placement, SSH/Slurm settings); needed for ssh and slurm.",
)
@opt.out()
@opt.events()
@click.option("--preflight-only", is_flag=True, help="Only check the hosts; start nothing.")
@opt.no_figures()
@opt.quiet()
@click.option("--results-dir", type=click.Path(path_type=Path, file_okay=False), hidden=True)
def deploy(
    experiment: Path, launcher: str | None, cluster_file: Path | None, out: Path,
    events: int | None, preflight_only: bool, no_figures: bool, quiet: bool,
    results_dir: Path | None,
) -> None:  # fmt: skip
    """Deploy EXPERIMENT on this host, on hosts over SSH, or in a Slurm allocation.

    Checks every host first (reachable, same skewlab version, ports free, clock sources
    available, clocks roughly sane), starts the workers, waits for their readiness over the
    control channel, starts the coordinator, collects the traces into one results folder,
    analyses them and writes metadata.json. Every node started is stopped on success, failure
    and Ctrl-C; if a node fails, what was recorded is kept and analysed, and metadata.json
    names the node. See docs/DEPLOYMENT.md.
    """
    spec = load_spec(experiment, events)  # a bad file is refused before the launchers load
    from skewlab.deploy import cluster as cluster_mod
    from skewlab.deploy.launchers import make_launcher
    from skewlab.deploy.orchestrator import LaunchError
    from skewlab.spec import SpecError
    from skewlab.store import ResultsDir, write_json_atomic

    try:
        cluster = cluster_mod.load(cluster_file) if cluster_file else None
    except SpecError as e:
        fail(str(e), 2)
    name = launcher or (cluster.launcher if cluster else None) or "local"
    if name != "local" and cluster is None:
        fail(f"--launcher {name} needs --cluster FILE (hosts and node placement)", 2)
    if cluster is not None:
        try:
            cluster.check_against(spec, str(cluster_file))
        except SpecError as e:
            fail(str(e).replace("\n", "; "), 2)
    progress = Progress(not quiet)

    if name == "slurm" and not os.environ.get("SLURM_JOB_ID"):
        if preflight_only:
            fail("the Slurm pre-flight runs inside an allocation: salloc, then deploy", 2)
        from skewlab.deploy.slurm import job_outcome, submit

        with interrupts(lambda _e: _ended(progress, "the batch job was cancelled")):
            try:
                res, job = submit(spec, cluster, out, not no_figures, progress)
            except LaunchError as e:
                progress.end()
                fail(str(e))
        progress.end()
        meta = job_outcome(res)
        click.echo(f"slurm job {job}: {meta.get('status')}")
        if (res.root / "stats.json").exists():
            click.echo((res.root / "report.md").read_text() if (res.root / "report.md").exists()
                       else "")  # fmt: skip
        click.echo(f"results: {res.root}")
        if meta.get("status") != "completed":
            fail(f"deploy failed in job {job}: {meta.get('error', 'unknown error')}")
        return

    runner = make_launcher(name, spec, cluster, out, progress, results_dir)
    if preflight_only:
        try:
            runner.preflight()
        except LaunchError as e:
            progress.end()
            fail(str(e))
        progress.end()
        click.echo("pre-flight: every check passed")
        return

    def not_started(error: str | None) -> None:
        """Nothing was started: on the sbatch path, tell the waiting side."""
        if results_dir is not None and runner.results is None:
            write_json_atomic(ResultsDir(results_dir).metadata_path,
                              {"status": "failed", "error": error, "launcher": name})  # fmt: skip

    def interrupted(_e: BaseException) -> str:
        not_started("interrupted")
        return interrupted_run(runner, progress)

    error: str | None = None
    with interrupts(interrupted):
        try:
            runner.run()
        except LaunchError as e:
            error = str(e)
        progress.end()
        res = runner.results
        if res is None:  # failed before anything was started
            not_started(error)
            fail(error or "the launcher failed before starting anything")
        meta = runner.meta
        if meta.get("failed_nodes"):
            failed = ", ".join(f"{n} ({why})" for n, why in meta["failed_nodes"].items())
            click.echo(f"failed node(s): {failed}; analysing the partial results", err=True)
        analysed = _analyse_and_report(res, not no_figures, meta)
    click.echo(f"\nresults: {res.root}")
    if error:
        fail(error)
    if not analysed:
        sys.exit(1)
