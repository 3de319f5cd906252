"""``skewlab export``: a results folder's Parquet traces as CSV, for people who want CSV.

One CSV per node and trace (``<out>/<node>/<trace>.csv``). A worker's ``events.csv`` carries
its commit-wait columns beside the receipts, as ``trace.load_receipts`` joins them. Nulls are
empty fields; integers stay exact integers.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pyarrow.csv as pacsv

from skewlab.cli_util import fail
from skewlab.store import ResultsDir
from skewlab.trace import load_receipts, read_parts

_PART = re.compile(r"^(?P<prefix>[A-Za-z0-9_]+)-\d{6}\.parquet$")
_CW = re.compile(r"^cw\d+$")


def export_csv(res: ResultsDir, out: Path) -> list[Path]:
    """Write every trace of ``res`` as CSV under ``out``; return the files written."""
    from skewlab.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate_json(res.spec_path.read_text())
    workers = {w.name for w in spec.workers}
    written: list[Path] = []
    for node in res.nodes_with_traces():
        d = res.node_dir(node)
        prefixes = sorted({m.group("prefix") for p in d.iterdir() if (m := _PART.match(p.name))})
        for prefix in prefixes:
            if node in workers and _CW.match(prefix):
                continue  # joined into events.csv
            if node in workers and prefix == "events":
                table = load_receipts(d, spec.sources)
            else:
                table = read_parts(d, prefix)
            target = out / node / f"{prefix}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            pacsv.write_csv(table, target)
            written.append(target)
    return written


@click.command()
@click.argument("results_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the only format so far).")
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder. Default: RESULTS_DIR/csv.",
)
def export(results_dir: Path, as_csv: bool, out: Path | None) -> None:
    """Export a results folder's traces (one file per node and trace) for other tools."""
    res = ResultsDir(results_dir)
    if not as_csv:
        fail("choose an export format: --csv", 2)
    if not res.spec_path.is_file():
        fail(f"{results_dir} is not a skewlab results folder (no spec.json)", 2)
    target = out if out is not None else res.csv_dir
    try:
        files = export_csv(res, target)
    except OSError as e:
        fail(f"cannot write to {target}: {e.strerror or e}", 2)
    if not files:
        fail(f"{results_dir} has no traces to export", 2)
    for f in files:
        click.echo(str(f))
