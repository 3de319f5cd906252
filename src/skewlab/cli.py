"""The ``skewlab`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from skewlab import __version__
from skewlab.net.profiles import NetworkSpec, profile_names
from skewlab.spec import ExperimentSpec, SpecError


class Progress:
    """One status line, rewritten in place on a terminal and printed sparingly otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        import time

        if self.tty:
            pad = max(0, self._width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            sys.stderr.flush()
            self._width = len(line)
        else:
            now = time.monotonic()
            if now - self._last >= 2.0 or not line.startswith(("sent", "warmup")):
                click.echo(line, err=True)
                self._last = now

    def end(self) -> None:
        if self.enabled and self.tty and self._width:
            sys.stderr.write("\n")
            self._width = 0


def fail(msg: str, code: int = 1) -> None:
    click.echo(f"skewlab: error: {msg}", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skewlab")
def cli() -> None:
    """skewlab: measure how clock synchronization quality changes the decisions of
    distributed stream processors."""


def _load_spec(config: Path | None) -> ExperimentSpec:
    from skewlab import spec as spec_mod

    return spec_mod.load(config) if config else ExperimentSpec()


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
@click.option("--no-figures", is_flag=True, help="Skip figures (stats.json only).")
@click.option("-q", "--quiet", is_flag=True, help="No live progress.")
def run(config: Path | None, events: int | None, seed: int | None, out: Path,
        no_figures: bool, quiet: bool, network: str | None = None) -> None:  # fmt: skip
    """Run an emulated experiment on this host and analyse it.

    With no arguments: an embedded NTP server, one coordinator and two workers (B: +3 ms,
    +40 ppm; C: −2 ms, −25 ppm; coordinator: +1 ms, +10 ppm), each its own process with its
    own emulated clock, ~300 events in the cycle slow,fast×4,medium. Traces, stats.json, a
    figure and a report land in OUT/<experiment-id>/.
    """
    from skewlab.analysis import analyze
    from skewlab.deploy.local import LaunchError, LocalLauncher
    from skewlab.net.link import format_summary as format_link_summary

    try:
        spec = _load_spec(config)
        if events is not None:
            spec.workload.events = events
        if seed is not None:
            spec.seed = seed
        if network is not None:
            spec.network = NetworkSpec(profile=network, links=spec.network.links)
    except SpecError as e:
        fail(str(e), 2)
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


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v / 1e6:8.3f}"


def _pct(r: dict[str, Any] | None) -> str:
    """A stats.json rate as a percentage; — when not applicable, unavailable or n = 0."""
    return "—" if not r or r.get("rate") is None else f"{100 * r['rate']:.2f}"


def summary_table(stats: dict[str, Any]) -> str:
    """Per worker and source: accounting, causality, error vs truth; for bounded sources also
    bound coverage and the share of causality decisions left ambiguous (in %)."""
    lines = []
    hdr = f"{'worker':<8} {'source':<11} {'recv':>6} {'lost':>5} {'causal viol':>12} " \
          f"{'mean err ms':>12} {'p99 |err| ms':>13} {'max |err| ms':>13} " \
          f"{'cover %':>8} {'ambig %':>8}"  # fmt: skip
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for w, ws in stats["workers"].items():
        acc = ws["accounting"]
        for src, ss in ws["sources"].items():
            c, e = ss["causality"], ss["error_vs_truth"]
            viol = f"{c['violations']}/{c['decided']}"
            bq = ss.get("bound_quality") or {}
            amb = (c.get("bounded") or {}).get("ambiguous_rate")
            lines.append(
                f"{w:<8} {src:<11} {acc['received']:>6} {acc['lost']:>5} {viol:>12} "
                f"{_ms(e.get('mean_ns')):>12} {_ms(e.get('p99_abs_ns')):>13} "
                f"{_ms(e.get('max_abs_ns')):>13} {_pct(bq.get('coverage')):>8} {_pct(amb):>8}"
            )
    return "\n".join(lines)


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
