"""The ``simulate``, ``sweep`` and ``validate`` commands (virtual-time runs, docs/SIMULATION.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from skewlab.cli_util import Progress, fail, load_spec, summary_table
from skewlab.spec import SpecError


@click.command()
@click.argument("experiment", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-n", "--events", type=click.IntRange(min=1), help="Number of events to broadcast.")
@click.option("--seed", type=int, help="Random seed (every random stream of the run).")
@click.option("-o", "--out", type=click.Path(path_type=Path, file_okay=False),
              default=Path("results"), show_default=True,
              help="Base folder; the run goes to OUT/<experiment-id>/.")  # fmt: skip
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes for the per-worker work (same traces for any value).")  # fmt: skip
@click.option("--cw-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Re-evaluate every n-th receipt at T+Δ (commit-wait); 1 = all.")  # fmt: skip
@click.option(
    "--validate",
    is_flag=True,
    help="Also run it in real time (local launcher) and compare the headline metrics.",
)
@click.option("--no-figures", is_flag=True, help="Skip figures (stats.json only).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
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
    from skewlab.analysis import analyze
    from skewlab.sim.simulate import SimError, SimOptions
    from skewlab.sim.simulate import simulate as run_sim

    spec = load_spec(experiment, events, seed)
    if validate:
        _validate(spec, out, quiet)
        return
    progress = Progress(not quiet)
    try:
        res = run_sim(spec, out, SimOptions(jobs=jobs, cw_every=cw_every), progress=progress)
    except SimError as e:
        fail(str(e), 2)
    progress.end()
    stats = analyze(res, make_figures=not no_figures)
    click.echo(summary_table(stats))
    click.echo(f"\nresults: {res.root}")


def _validate(spec: Any, out: Path, quiet: bool) -> None:
    from skewlab.deploy.local import LaunchError
    from skewlab.sim.simulate import SimError
    from skewlab.sim.validate import format_comparison, validate

    try:
        report = validate(spec, out, progress=Progress(not quiet))
    except (SimError, LaunchError) as e:
        fail(str(e))
    click.echo(format_comparison(report))
    if not report["agree"]:
        fail("simulation and real run disagree beyond the stated tolerances")


@click.command(name="validate")
@click.argument("experiment", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("-n", "--events", type=click.IntRange(min=1), help="Number of events to broadcast.")
@click.option("--seed", type=int, help="Random seed.")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Base folder of both runs.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def validate_cmd(experiment: Path | None, events: int | None, seed: int | None, out: Path,
                 quiet: bool) -> None:  # fmt: skip
    """Run EXPERIMENT in real time and in simulation; compare the headline metrics within the
    tolerances of docs/SIMULATION.md (exit 1 if they disagree)."""
    _validate(load_spec(experiment, events, seed), out, quiet)


@click.command()
@click.argument("sweep_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("-o", "--out", type=click.Path(path_type=Path, file_okay=False),
              default=Path("results"), show_default=True,
              help="Base folder; the sweep goes to OUT/<sweep name>/.")  # fmt: skip
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Cells run in parallel (process pool). --real runs one at a time.")  # fmt: skip
@click.option("--real", is_flag=True, help="Run each cell in real time (local launcher).")
@click.option("--figures", "cell_figures", is_flag=True,
              help="Also make every cell's own figures (slower).")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def sweep(sweep_file: Path, out: Path, jobs: int, real: bool, cell_figures: bool,
          quiet: bool) -> None:  # fmt: skip
    """Run a grid of experiment variants (docs/SIMULATION.md), in simulation unless --real.

    Resumable: cells with a `completed` marker are not rerun. Writes OUT/<name>/sweep.csv,
    sweep.parquet and figures/vs_<parameter>.png, and prints the table.
    """
    from skewlab.deploy.local import LaunchError
    from skewlab.sim.simulate import SimError
    from skewlab.sim.sweep import format_table, run_sweep

    if not sweep_file.exists():
        fail(f"sweep file {sweep_file} does not exist", 2)
    try:
        r = run_sweep(sweep_file, out, jobs=jobs, real=real, figures=cell_figures,
                      progress=None if quiet else lambda s: click.echo(s, err=True))  # fmt: skip
    except SpecError as e:
        fail(str(e), 2)
    except (SimError, LaunchError) as e:
        fail(str(e))
    click.echo(format_table(r["rows"]))
    click.echo(f"\n{r['ran']} cell(s) run, {r['skipped']} reused; table and figures in {r['root']}")
