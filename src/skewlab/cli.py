"""The ``skewlab`` command."""

from __future__ import annotations

from pathlib import Path

import click

from skewlab import __version__
from skewlab.cli_util import Progress, fail, load_spec, summary_table
from skewlab.net.profiles import NetworkSpec, profile_names

__all__ = ["Progress", "cli", "fail", "main", "summary_table"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skewlab")
def cli() -> None:
    """skewlab: measure how clock synchronization quality changes the decisions of
    distributed stream processors."""


@cli.command()
@click.option(
    "-c",
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Experiment file (TOML, YAML or JSON). Default: the built-in experiment.",
)
@click.option("-n", "--events", type=click.IntRange(min=1), help="Number of events to broadcast.")
@click.option("--seed", type=int, help="Random seed (oscillator wander, workload randomness).")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Base folder; the run goes to OUT/<experiment-id>/.",
)
@click.option(
    "--network",
    type=click.Choice(profile_names()),
    help="Network profile for every path (docs/NETWORK.md); per-link settings of the file stay.",
)
@click.option(
    "--netns",
    is_flag=True,
    help="Namespace mode (root only): each node in its own network namespace (run.netns).",
)
@click.option("--no-figures", is_flag=True, help="Skip figures (stats.json only).")
@click.option("-q", "--quiet", is_flag=True, help="No live progress.")
def run(config: Path | None, events: int | None, seed: int | None, out: Path,
        no_figures: bool, quiet: bool, network: str | None = None,
        netns: bool = False) -> None:  # fmt: skip
    """Run an emulated experiment on this host and analyse it.

    With no arguments: an embedded NTP server, one coordinator and two workers (B: +3 ms,
    +40 ppm; C: −2 ms, −25 ppm; coordinator: +1 ms, +10 ppm), each its own process with its
    own emulated clock, ~300 events in the cycle slow,fast×4,medium. Traces, stats.json, a
    figure and a report land in OUT/<experiment-id>/.
    """
    from skewlab.analysis import analyze
    from skewlab.analysis.links import format_summary as format_link_summary
    from skewlab.deploy.local import LaunchError, LocalLauncher

    spec = load_spec(config, events, seed)
    if network is not None:
        spec.network = NetworkSpec(profile=network, links=spec.network.links)
    if netns:
        spec.run.netns = True
    progress = Progress(not quiet)
    launcher = LocalLauncher(spec, out, progress)
    try:
        outcome = launcher.run()
    except LaunchError as e:
        progress.end()
        fail(str(e))
    except KeyboardInterrupt:
        progress.end()
        fail("interrupted; all node processes stopped", 130)
    progress.end()
    stats = analyze(outcome.results, make_figures=not no_figures)
    click.echo(summary_table(stats))
    if stats.get("network"):
        click.echo("\n" + format_link_summary(stats["network"]))
    click.echo(f"\nresults: {outcome.results.root}")


@cli.command()
@click.argument("results_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--no-figures", is_flag=True, help="Skip figures (stats.json only).")
def analyze(results_dir: Path, no_figures: bool) -> None:
    """Rerun the analysis on a stored results folder (rewrites stats.json and figures)."""
    from skewlab.analysis import analyze as run_analysis
    from skewlab.store import ResultsDir

    res = ResultsDir(results_dir)
    if not res.spec_path.exists():
        fail(f"{results_dir} is not a skewlab results folder (no spec.json)", 2)
    stats = run_analysis(res, make_figures=not no_figures)
    click.echo(summary_table(stats))


from skewlab.ntp.cli import ntp_query, ntp_server  # noqa: E402

cli.add_command(ntp_server)
cli.add_command(ntp_query)

from skewlab.clockd import clockd  # noqa: E402
from skewlab.sources_cli import sources  # noqa: E402

cli.add_command(clockd)
cli.add_command(sources)

from skewlab.export import export  # noqa: E402

cli.add_command(export)

from skewlab.deploy.cli import deploy  # noqa: E402

cli.add_command(deploy)

from skewlab.sim.cli import simulate, sweep, validate_cmd  # noqa: E402

cli.add_command(simulate)
cli.add_command(sweep)
cli.add_command(validate_cmd)

from skewlab.analysis.importer import import_legacy_cmd  # noqa: E402

cli.add_command(import_legacy_cmd)

from skewlab.analysis.compare import compare_cmd  # noqa: E402

cli.add_command(compare_cmd)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
