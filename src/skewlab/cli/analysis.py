"""Commands on stored results: ``analyze``, ``compare`` and ``import-legacy``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from skewlab.cli import options as opt
from skewlab.cli.common import (
    EXIT_BAD_INPUT,
    Progress,
    analyse_results,
    fail,
    run_state_note,
    summary_table,
)


@click.command()
@opt.results_dir_argument()
@opt.no_figures()
@opt.quiet()
def analyze(results_dir: Path, no_figures: bool, quiet: bool) -> None:
    """Rerun the analysis on a stored results folder (rewrites stats.json and figures).

    Every trace part is checked first, and each node's events against its counts.json; a
    damaged folder is refused in one line naming the file (exit 2), and its old stats.json is
    removed so that nothing reads a stale analysis."""
    from skewlab.store import ResultsDir

    res = ResultsDir(results_dir)
    stats = analyse_results(res, make_figures=not no_figures, progress=Progress(not quiet))
    click.echo(summary_table(stats))
    if note := run_state_note(res):
        click.echo(note, err=True)


@click.command("compare")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False))
@opt.out(help="Figure path (.png at 300 DPI, or .svg).", default=Path("compare.png"), file=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Also write the comparison as JSON to this path ('-' for stdout, then no table).",
)
@click.option("--window", type=int, help="Window size (ms) for the window rates. Default 100.")
@click.option("--no-figure", is_flag=True, help="Table (and JSON) only.")
def compare(
    dirs: tuple[Path, ...], out: Path, json_path: Path | None, window: int | None, no_figure: bool
) -> None:
    """Put several analysed runs side by side: a table of each source's headline rates (95%
    intervals) per run, keyed by the parameters that differ, and a figure."""
    from skewlab.analysis.compare import CompareError, figure, format_table
    from skewlab.analysis.compare import compare as compare_runs

    try:
        doc = compare_runs(list(dirs), window)
    except CompareError as e:
        fail(str(e), 2)
    to_stdout = json_path is not None and str(json_path) == "-"
    if json_path is not None:
        text = json.dumps(doc, indent=2, default=str) + "\n"
        if to_stdout:
            sys.stdout.write(text)
        else:
            json_path.write_text(text)
    if not to_stdout:
        click.echo(format_table(doc))
    if not no_figure:
        p = figure(doc, out)
        if not to_stdout:
            click.echo(f"\nfigure: {p}")


@click.command("import-legacy")
@click.argument("src_dir", type=click.Path(path_type=Path, file_okay=False))
@opt.out(help="Base folder; the import goes to OUT/legacy-<SRC_DIR name>/.")
@click.option("--name", help="Experiment id of the new results folder.")
@click.option("--analyze", "run_analysis", is_flag=True, help="Run the analysis afterwards.")
@opt.no_figures()
@opt.quiet()
def import_legacy(
    src_dir: Path, out: Path, name: str | None, run_analysis: bool, no_figures: bool, quiet: bool
) -> None:
    """Import a folder of the original evaluation framework (coordinator.csv and
    worker_<node>.csv files) as a skewlab results folder (no true time: truth-based metrics
    are reported unavailable). Then: skewlab analyze <folder>, or --analyze here
    (--no-figures: stats.json and the reports, without figures)."""
    from skewlab.analysis.importer import LegacyImportError
    from skewlab.analysis.importer import import_legacy as import_folder

    if no_figures and not run_analysis:
        fail("--no-figures applies to --analyze (skewlab analyze draws figures later)",
             EXIT_BAD_INPUT)  # fmt: skip
    try:
        res = import_folder(src_dir, out, name)
    except LegacyImportError as e:
        fail(str(e), EXIT_BAD_INPUT)
    click.echo(f"imported: {res.root}")
    if run_analysis:
        stats = analyse_results(res, make_figures=not no_figures, progress=Progress(not quiet))
        click.echo(summary_table(stats))
