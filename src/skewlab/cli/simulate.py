"""``simulate``, ``validate`` and ``sweep``: virtual-time runs (docs/SIMULATION.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skewlab.cli import options as opt
from skewlab.cli.common import (
    Progress,
    analyse_results,
    fail,
    interrupted_sim,
    interrupts,
    load_spec,
    summary_table,
)

if TYPE_CHECKING:
    from skewlab.spec import ExperimentSpec


@click.command()
@opt.experiment_argument()
@opt.events()
@opt.seed()
@opt.out()
@opt.jobs(1, "Processes for the per-worker work (same traces for any value).")
@click.option("--cw-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Re-evaluate every n-th receipt at T+Δ (commit-wait); 1 = all.")  # fmt: skip
@click.option(
    "--validate",
    is_flag=True,
    help="Also run it in real time (local launcher) and compare the headline metrics.",
)
@opt.no_figures()
@opt.quiet()
def simulate(
    experiment: Path | None,
    events: int | None,
    seed: int | None,
    out: Path,
    jobs: int,
    cw_every: int,
    validate: bool,
    no_figures: bool,
    quiet: bool,
) -> None:
    """Run EXPERIMENT (default: the built-in one) in virtual time, in one process.

    Same oscillators, NTP arithmetic, clock sources and workload as `skewlab run`; network
    delays are drawn from the link profiles. Writes a normal results folder (launcher
    "simulate", truth available) and analyses it.
    """
    spec = load_spec(experiment, events, seed)  # a bad file is refused before the simulator loads
    from skewlab.sim.simulate import SimError, SimOptions
    from skewlab.sim.simulate import simulate as run_sim

    if validate:
        _validate(spec, out, quiet)
        return
    progress = Progress(not quiet)
    done: list[Path] = []
    with interrupts(lambda e: interrupted_sim(e, progress, done[0] if done else None)):
        try:
            res = run_sim(spec, out, SimOptions(jobs=jobs, cw_every=cw_every), progress=progress)
        except SimError as e:
            fail(str(e), 2)
        done.append(res.root)
        progress.end()
        stats = analyse_results(res, make_figures=not no_figures, progress=progress)
    click.echo(summary_table(stats))
    if stats.get("network"):  # emulated paths, requested vs achieved, as `run` shows them
        from skewlab.analysis.links import format_summary as format_link_summary

        click.echo("\n" + format_link_summary(stats["network"]))
    click.echo(f"\nresults: {res.root}")


def _validate(spec: ExperimentSpec, out: Path, quiet: bool) -> None:
    from skewlab.deploy.local import LaunchError
    from skewlab.sim.simulate import SimError
    from skewlab.sim.validate import format_comparison, validate

    progress = Progress(not quiet)

    def after(_e: BaseException) -> str:
        progress.end()
        return f"every node process stopped; what was written is under {out} (status interrupted)"

    with interrupts(after):
        try:
            report = validate(spec, out, progress=progress)
        except SimError as e:  # the spec cannot be simulated: bad input, as in `simulate`
            fail(str(e), 2)
        except LaunchError as e:
            fail(str(e))
    click.echo(format_comparison(report))
    if not report["agree"]:
        fail("simulation and real run disagree beyond the stated tolerances")


@click.command(name="validate")
@opt.experiment_argument()
@opt.events()
@opt.seed()
@opt.out(help="Base folder of both runs.")
@opt.quiet()
def validate(experiment: Path | None, events: int | None, seed: int | None, out: Path,
             quiet: bool) -> None:  # fmt: skip
    """Run EXPERIMENT in real time and in simulation; compare the headline metrics within the
    tolerances of docs/SIMULATION.md (exit 1 if they disagree)."""
    _validate(load_spec(experiment, events, seed), out, quiet)


@click.command()
@click.argument("sweep_file", type=click.Path(path_type=Path, dir_okay=False))
@opt.out(help="Base folder; the sweep goes to OUT/<sweep name>/.")
@opt.jobs(2, "Cells run in parallel (process pool). --real runs one at a time. With "
          "--launcher slurm: the array's limit of tasks at once (%N), default the cluster "
          "file's slurm.array_limit.")  # fmt: skip
@click.option("--real", is_flag=True, help="Run each cell in real time (local launcher).")
@click.option("--figures", "cell_figures", is_flag=True,
              help="Also make every cell's own figures (slower).")  # fmt: skip
@click.option("--launcher", type=click.Choice(["local", "slurm"]),
              help="local: a process pool here (default); slurm: the cells as one Slurm job "
                   "array. Default: the cluster file's `launcher` if it is slurm.")  # fmt: skip
@click.option("--cluster", "cluster_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Cluster file (its [slurm] settings: partition, time, memory, array limit, "
                   "sbatch options; workdir when there is no shared file system).")  # fmt: skip
@click.option("--resume", is_flag=True,
              help="Slurm: after a cancelled or partly failed array (or one still queued), "
                   "submit only the cells still missing.")  # fmt: skip
@click.option("--no-figures", is_flag=True,
              help="Skip the sweep's figures (figures/vs_<parameter>.png; earlier ones are "
                   "removed, as they may not show the new table); the table is written as "
                   "always.")  # fmt: skip
@opt.quiet()
@click.pass_context
def sweep(ctx: click.Context, sweep_file: Path, out: Path, jobs: int, real: bool,
          cell_figures: bool, launcher: str | None, cluster_file: Path | None, resume: bool,
          no_figures: bool, quiet: bool) -> None:  # fmt: skip
    """Run a grid of experiment variants (docs/SIMULATION.md), in simulation unless --real.

    Resumable: cells with a `completed` marker are not rerun. Writes OUT/<name>/sweep.csv,
    sweep.parquet and figures/vs_<parameter>.png, and prints the table. With --launcher slurm
    the cells run as one Slurm job array (docs/DEPLOYMENT.md).
    """
    from skewlab.deploy.local import LaunchError
    from skewlab.sim.simulate import SimError
    from skewlab.sim.sweep import format_table, run_sweep
    from skewlab.spec import SpecError

    if not sweep_file.exists():
        fail(f"sweep file {sweep_file} does not exist", 2)
    cluster = None
    if cluster_file is not None:
        from skewlab.deploy import cluster as cluster_mod

        try:
            cluster = cluster_mod.load(cluster_file)
        except SpecError as e:
            fail(str(e), 2)
    name = launcher or (cluster.launcher if cluster and cluster.launcher == "slurm" else "local")
    say = None if quiet else lambda s: click.echo(s, err=True)
    with interrupts(interrupted_sweep):
        try:
            if name == "slurm":
                r = _slurm_sweep(ctx, sweep_file, out, jobs, real, cell_figures, cluster,
                                 resume, say, not no_figures)  # fmt: skip
            else:
                r = run_sweep(sweep_file, out, jobs=jobs, real=real, figures=cell_figures,
                              progress=say, sweep_figures=not no_figures)  # fmt: skip
        except SpecError as e:
            fail(str(e), 2)
        except SimError as e:  # the spec cannot be simulated: bad input, as in `simulate`
            fail(str(e), 2)
        except LaunchError as e:
            fail(str(e))
    click.echo(format_table(r["rows"]))
    made = "table" if no_figures else "table and figures"
    if name == "slurm":
        job = f" in Slurm array job {r['job_id']}" if r["job_id"] else ""
        peak = f" (at most {r['peak_concurrency']} at once)" if r["timeline"] else ""
        click.echo(f"\n{r['ran']} cell(s) run{job}{peak}, {r['skipped']} reused; "
                   f"{made} in {r['root']}")  # fmt: skip
        return
    click.echo(f"\n{r['ran']} cell(s) run, {r['skipped']} reused; {made} in {r['root']}")


def _slurm_sweep(
    ctx: click.Context, sweep_file: Path, out: Path, jobs: int, real: bool, figures: bool,
    cluster: Any, resume: bool, say: Any, sweep_figures: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """The sweep as one Slurm job array (skewlab.sim.sweep_slurm); failed cells are printed
    with their exit code and log tail before the one-line error."""
    from click.core import ParameterSource

    from skewlab.deploy.cluster import ClusterSpec
    from skewlab.sim.sweep_slurm import SweepFailed, run_sweep_slurm

    explicit = ctx.get_parameter_source("jobs") is ParameterSource.COMMANDLINE
    try:
        return run_sweep_slurm(sweep_file, out, cluster or ClusterSpec(), real=real,
                               figures=figures, resume=resume,
                               limit=jobs if explicit else None, progress=say,
                               sweep_figures=sweep_figures)  # fmt: skip
    except SweepFailed as e:
        click.echo(str(e), err=True)
        fail(f"{len(e.failures)} cell(s) failed in array job {e.job}; "
             "--resume submits only the missing cells")  # fmt: skip


def interrupted_sweep(e: BaseException) -> str:
    """What an interrupted sweep left: its completed cells, reused by the next run."""
    done = getattr(e, "cells_done", None)
    root = getattr(e, "results", None)
    if root is None:
        return "no cell was started"
    job = getattr(e, "slurm_job", None)
    if job:
        return (f"array job {job} cancelled (scancel {job}); {done} cell(s) completed and kept "
                f"in {root}; --resume submits only the missing cells")  # fmt: skip
    return (f"{done} cell(s) completed and kept in {root}; cells cut short are marked "
            "interrupted; the same command resumes")  # fmt: skip
