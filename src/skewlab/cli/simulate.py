"""``simulate``, ``validate`` and ``sweep``: virtual-time runs (docs/SIMULATION.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    from skewlab.sim.simulate import SimError, SimOptions
    from skewlab.sim.simulate import simulate as run_sim

    spec = load_spec(experiment, events, seed)
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
        stats = analyse_results(res, make_figures=not no_figures)
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
@opt.jobs(2, "Cells run in parallel (process pool). --real runs one at a time.")
@click.option("--real", is_flag=True, help="Run each cell in real time (local launcher).")
@click.option("--figures", "cell_figures", is_flag=True,
              help="Also make every cell's own figures (slower).")  # fmt: skip
@opt.quiet()
def sweep(sweep_file: Path, out: Path, jobs: int, real: bool, cell_figures: bool,
          quiet: bool) -> None:  # fmt: skip
    """Run a grid of experiment variants (docs/SIMULATION.md), in simulation unless --real.

    Resumable: cells with a `completed` marker are not rerun. Writes OUT/<name>/sweep.csv,
    sweep.parquet and figures/vs_<parameter>.png, and prints the table.
    """
    from skewlab.deploy.local import LaunchError
    from skewlab.sim.simulate import SimError
    from skewlab.sim.sweep import format_table, run_sweep
    from skewlab.spec import SpecError

    if not sweep_file.exists():
        fail(f"sweep file {sweep_file} does not exist", 2)
    say = None if quiet else lambda s: click.echo(s, err=True)
    with interrupts(interrupted_sweep):
        try:
            r = run_sweep(sweep_file, out, jobs=jobs, real=real, figures=cell_figures,
                          progress=say)  # fmt: skip
        except SpecError as e:
            fail(str(e), 2)
        except SimError as e:  # the spec cannot be simulated: bad input, as in `simulate`
            fail(str(e), 2)
        except LaunchError as e:
            fail(str(e))
    click.echo(format_table(r["rows"]))
    click.echo(f"\n{r['ran']} cell(s) run, {r['skipped']} reused; table and figures in {r['root']}")


def interrupted_sweep(e: BaseException) -> str:
    """What an interrupted sweep left: its completed cells, reused by the next run."""
    done = getattr(e, "cells_done", None)
    root = getattr(e, "results", None)
    if root is None:
        return "no cell was started"
    return (f"{done} cell(s) completed and kept in {root}; cells cut short are marked "
            "interrupted; the same command resumes")  # fmt: skip
