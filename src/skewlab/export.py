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
from collections.abc import Callable
from pathlib import Path

import pyarrow.csv as pacsv

from skewlab.results import open_results
from skewlab.store import ResultsDir
from skewlab.trace import load_receipts, read_parts, source_columns

_PART = re.compile(r"^(?P<prefix>[A-Za-z0-9_]+)-\d{6}\.parquet$")
_CW = re.compile(r"^cw\d+$")


def export_csv(res: ResultsDir, out: Path) -> list[Path]:
    """Write every trace of ``res`` as CSV under ``out``; return the files written.

    The folder is checked first (``skewlab.results.open_results``: ResultsError naming a
    damaged file), and the CSVs are written into a hidden sibling of ``out`` that replaces
    ``out`` only when every file is written: a failed export leaves no partial folder."""
    open_results(res.root)
    files: list[Path] = []

    def write(tmp: Path) -> bool:
        files.extend(f.relative_to(tmp) for f in _write_all(res, tmp))
        return bool(files)

    return [out / f for f in files] if _staged(out, write) else []


def _staged(out: Path, write: Callable[[Path], bool]) -> bool:
    """Run ``write`` into a hidden sibling folder of ``out`` and let it replace ``out`` only
    if ``write`` returns True; on failure (or False) nothing of it is left. Returns that."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        if not write(tmp):
            shutil.rmtree(tmp)
            return False
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


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


# -- a run's receipts as a stream a Flink or Kafka pipeline can replay ------------------------

FLINK_FILE = "receipts.csv"
FLINK_DDL = "flink.sql"


def export_flink(res: ResultsDir, out: Path) -> list[Path]:
    """Write every worker's receipts merged in true arrival order as one CSV (``receipts.csv``)
    with one event-time column per source (ms, Flink's resolution: the reading floored), and
    ``flink.sql``, a Flink SQL table over it with a bounded out-of-orderness watermark. The
    order of the rows is the order a stream processor would see them (docs/TRACES.md)."""
    import polars as pl

    from skewlab.analysis import eventtime as et
    from skewlab.analysis.load import load

    open_results(res.root)
    t = load(res)
    cols = _flink_columns(t.sources, t.bounded)
    frames = []
    for i, w in enumerate(t.workers):
        sel = [pl.col("event_id"), pl.col("truth_ns")]
        for s in t.sources:
            e, _, hi, _ = source_columns(s)
            sel += [pl.col(e).alias(f"{s}_ms")]
            if t.bounded[s]:
                sel += [pl.col(hi).alias(f"{s}_latest_ms")]
        df = t.receipts[w].select(sel).unique(subset="event_id", keep="first", maintain_order=True)
        frames.append(df.with_columns(pl.lit(w).alias("worker"), pl.lit(i).alias("_w")).collect())
    df = pl.concat(frames, how="vertical_relaxed")
    if df.get_column("truth_ns").null_count():
        raise ValueError(f"{res.root}: receipts without true time: no arrival order to export")
    df = df.sort(["truth_ns", "_w", "event_id"])
    tick = et.TICK_NS
    df = df.with_columns(
        pl.int_range(0, df.height, dtype=pl.Int64).alias("arrival"),
        (pl.col("truth_ns") // tick).alias("true_ms"),
        *[(pl.col(c) // tick).alias(c) for c in cols[5:]],
    ).select(cols)

    def write(tmp: Path) -> bool:
        with open(tmp / FLINK_FILE, "w") as f:  # a '#' header: Flink's csv.allow-comments
            f.write("#" + ",".join(cols) + "\n")
            df.write_csv(f, include_header=False)
        (tmp / FLINK_DDL).write_text(flink_ddl(cols, t.sources[0] if t.sources else "true"))
        return True

    _staged(out, write)
    return [out / FLINK_FILE, out / FLINK_DDL]


def _flink_columns(sources: list[str], bounded: dict[str, bool]) -> list[str]:
    cols = ["arrival", "worker", "event_id", "truth_ns", "true_ms"]
    for s in sources:
        cols.append(f"{s}_ms")
        if bounded.get(s):
            cols.append(f"{s}_latest_ms")
    return cols


def flink_ddl(cols: list[str], source: str, delay_ms: int = 5) -> str:
    """A Flink SQL table over receipts.csv: ``source``'s column as event time, watermark
    ``rt − (delay + 1) ms`` — the value BoundedOutOfOrdernessWatermarks(delay) emits."""
    types = {"worker": "STRING"}
    fields = ",\n  ".join(f"`{c}` {types.get(c, 'BIGINT')}" for c in cols)
    return (
        f"-- skewlab export --flink: one row per receipt, in true arrival order.\n"
        f"-- Event time: any *_ms column (epoch ms; empty = the source gave no reading).\n"
        f"-- Replace `{source}_ms` and the delay to study another source or delay.\n"
        f"CREATE TABLE receipts (\n  {fields},\n"
        f"  rt AS TO_TIMESTAMP_LTZ(`{source}_ms`, 3),\n"
        f"  WATERMARK FOR rt AS rt - INTERVAL '{delay_ms + 1}' MILLISECOND\n"
        f") WITH (\n  'connector' = 'filesystem',\n  'path' = '{FLINK_FILE}',\n"
        f"  'format' = 'csv',\n  'csv.allow-comments' = 'true',\n"
        f"  'scan.watermark.emit.strategy' = 'on-event'\n);\n"
    )
