"""``skewlab run``: an emulated experiment on this host (local launcher), then its analysis."""

from __future__ import annotations

from pathlib import Path

import click

from skewlab.cli import options as opt
from skewlab.cli.common import (
    Progress,
    analyse_results,
    fail,
    interrupted_run,
    interrupts,
    load_spec,
    summary_table,
)


class _ProfileChoice(click.Choice):  # type: ignore[type-arg]
    """The network profiles' names, read only when ``run``'s option is shown or used: reading
    them builds the profiles' pydantic models (~0.25 CPU-s), which every other command (the
    whole CLI is loaded for any command) would pay for nothing."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        from skewlab.net.profiles import profile_names

        return tuple(profile_names())


@click.command()
@opt.config()
@opt.events()
@opt.seed()
@opt.out()
@click.option(
    "--network",
    type=_ProfileChoice(),
    help="Network profile for every path (docs/NETWORK.md); per-link settings of the file stay.",
)
@click.option(
    "--netns",
    is_flag=True,
    help="Namespace mode (root only): each node in its own network namespace (run.netns).",
)
@opt.no_figures()
@opt.quiet()
def run(config: Path | None, events: int | None, seed: int | None, out: Path,
        no_figures: bool, quiet: bool, network: str | None = None,
        netns: bool = False) -> None:  # fmt: skip
    """Run an emulated experiment on this host and analyse it.

    With no arguments: an embedded NTP server, one coordinator and two workers (B: +3 ms,
    +40 ppm; C: −2 ms, −25 ppm; coordinator: +1 ms, +10 ppm), each its own process with its
    own emulated clock, ~300 events in the cycle slow,fast×4,medium. Traces, stats.json, a
    figure and a report land in OUT/<experiment-id>/.
    """
    spec = load_spec(config, events, seed)  # a bad file is refused before the launcher loads
    from skewlab.deploy.local import LaunchError, LocalLauncher
    from skewlab.net.profiles import NetworkSpec

    if network is not None:
        spec.network = NetworkSpec(profile=network, links=spec.network.links)
    if netns:
        spec.run.netns = True
    progress = Progress(not quiet)
    launcher = LocalLauncher(spec, out, progress)
    with interrupts(lambda _e: interrupted_run(launcher, progress)):
        try:
            outcome = launcher.run()
        except LaunchError as e:
            progress.end()
            fail(str(e))
        progress.end()
        stats = analyse_results(outcome.results, make_figures=not no_figures, progress=progress)
    click.echo(summary_table(stats))
    if stats.get("network"):
        from skewlab.analysis.links import format_summary as format_link_summary

        click.echo("\n" + format_link_summary(stats["network"]))
    click.echo(f"\nresults: {outcome.results.root}")
