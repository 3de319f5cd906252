"""``skewlab export``: a results folder's traces in another format (CSV so far)."""

from __future__ import annotations

from pathlib import Path

import click

from skewlab.cli import options as opt
from skewlab.cli.common import fail


@click.command()
@opt.results_dir_argument()
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the only format so far).")
@opt.out(help="Output folder. Default: RESULTS_DIR/csv.", default=None)
def export(results_dir: Path, as_csv: bool, out: Path | None) -> None:
    """Export a results folder's traces (one file per node and trace) for other tools."""
    from skewlab.export import export_csv
    from skewlab.results import ResultsError
    from skewlab.store import ResultsDir

    res = ResultsDir(results_dir)
    if not as_csv:
        fail("choose an export format: --csv", 2)
    target = out if out is not None else res.csv_dir
    try:
        files = export_csv(res, target)
    except ResultsError as e:  # a damaged or incomplete folder: nothing was written
        fail(str(e), 2)
    except OSError as e:
        fail(f"cannot write to {target}: {e.strerror or e}", 2)
    if not files:
        fail(f"{results_dir} has no traces to export", 2)
    for f in files:
        click.echo(str(f))
