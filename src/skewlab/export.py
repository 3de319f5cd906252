"""A results folder's Parquet traces as CSV (``skewlab export``), for people who want CSV.

One CSV per node and trace (``<out>/<node>/<trace>.csv``). A worker's ``events.csv`` carries
its commit-wait columns beside the receipts, as ``trace.load_receipts`` joins them. Nulls are
empty fields; integers stay exact integers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.csv as pacsv

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
