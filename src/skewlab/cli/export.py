"""``skewlab export``: a results folder's traces in another format (CSV so far)."""

from __future__ import annotations

from pathlib import Path

import click

from skewlab.cli import options as opt
from skewlab.cli.common import fail


@click.command()
@opt.results_dir_argument()
@click.option("--csv", "as_csv", is_flag=True, help="Write every trace as CSV.")
@click.option(
    "--flink",
    "as_flink",
    is_flag=True,
    help="Write the receipts in true arrival order with one event-time column per source "
    "(receipts.csv) and a Flink SQL table over it (flink.sql), for a stream processor to replay.",
)
@opt.out(help="Output folder. Default: RESULTS_DIR/csv (--csv), RESULTS_DIR/flink (--flink).",
         default=None)  # fmt: skip
def export(results_dir: Path, as_csv: bool, as_flink: bool, out: Path | None) -> None:
    """Export a results folder's traces (one file per node and trace) for other tools."""
    from skewlab.export import export_csv, export_flink
    from skewlab.results import ResultsError
    from skewlab.store import ResultsDir

    res = ResultsDir(results_dir)
    if as_csv == as_flink:
        fail("choose one export format: --csv or --flink", 2)
    target = out if out is not None else (res.csv_dir if as_csv else res.root / "flink")
    try:
        files = export_csv(res, target) if as_csv else export_flink(res, target)
    except ResultsError as e:  # a damaged or incomplete folder: nothing was written
        fail(str(e), 2)
    except ValueError as e:  # no true time: no arrival order
        fail(str(e), 2)
    except OSError as e:
        fail(f"cannot write to {target}: {e.strerror or e}", 2)
    if not files:
        fail(f"{results_dir} has no traces to export", 2)
    for f in files:
        click.echo(str(f))
