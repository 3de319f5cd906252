"""A results folder's Parquet traces as CSV (``skewlab export``), for people who want CSV.

One CSV per node and trace (``<out>/<node>/<trace>.csv``). A worker's ``events.csv`` carries
its commit-wait columns beside the receipts, as ``trace.load_receipts`` joins them. Nulls are
empty fields; integers stay exact integers.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv

from skewlab.results import open_results
from skewlab.store import ResultsDir
from skewlab.trace import load_receipts, read_parts

_PART = re.compile(r"^(?P<prefix>[A-Za-z0-9_]+)-\d{6}\.parquet$")
_CW = re.compile(r"^cw\d+$")


def export_csv(res: ResultsDir, out: Path) -> list[Path]:
    """Write every trace of ``res`` as CSV under ``out``; return the files written.

    The folder is checked first (``skewlab.results.open_results``: ResultsError naming a
    damaged file), and the CSVs are written into a hidden sibling of ``out`` that replaces
    ``out`` only when every file is written: a failed export leaves no partial folder."""
    open_results(res.root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        files = _write_all(res, tmp)
        if not files:
            shutil.rmtree(tmp)
            return []
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / f.relative_to(tmp) for f in files]


def _write_all(res: ResultsDir, out: Path) -> list[Path]:
    spec = json.loads(res.spec_path.read_text())  # as data: sources this build may not know
    workers = {n["name"] for n in spec.get("nodes", []) if n.get("role", "worker") == "worker"}
    sources = list(spec.get("sources") or [])
    written: list[Path] = []
    for node in res.nodes_with_traces():
        d = res.node_dir(node)
        prefixes = sorted({m.group("prefix") for p in d.iterdir() if (m := _PART.match(p.name))})
        for prefix in prefixes:
            if node in workers and _CW.match(prefix):
                continue  # joined into events.csv
            if node in workers and prefix == "events":
                table = load_receipts(d, sources)
            else:
                table = read_parts(d, prefix)
            target = out / node / f"{prefix}.csv"
            target.parent.mkdir(parents=True, exist_ok=True)
            pacsv.write_csv(table, target)
            written.append(target)
    return written
