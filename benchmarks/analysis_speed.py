"""Analysis speed: synthetic traces in the real schema, then the full analysis timed.

Default: 5,000,000 events × 2 workers × 5 sources (10 M receipts); targets ≤ 30 s and ≤ 6 GB
peak memory for the analysis without figures. The analysis runs in a child process so its peak
resident memory is measured apart from the generator's.

The rates' intervals rest on time blocks of the NTP poll (docs/METHODOLOGY.md, "Statistics"):
the synthetic run has no NTP trace, so the block is the spec's ``ntp.poll_s`` (``--poll-s``,
default 1 s: 500 blocks over the 500 s of events). Counting per block takes another path when
blocks are many (an 8-hour run at a 1 s poll has 28,800): ``--poll-s 0.02`` (25,000 blocks)
measures that one.

    .venv/bin/python benchmarks/analysis_speed.py [--events N] [--keep DIR] [--poll-s S]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skewlab.trace import receipt_schema, send_schema, send_source_columns, source_columns

SOURCES = ["system", "ntp", "truetime", "clockbound", "skewlab"]
BOUNDED = {"truetime": 2_000_000, "clockbound": 500_000, "skewlab": 200_000}  # mean ε, ns
CHUNK = 1_000_000
MS = 1_000_000


def _readings(rng: np.random.Generator, truth: np.ndarray, s: str) -> dict[str, np.ndarray]:
    """One source's (estimate, earliest, latest, status) around truth, with some misses."""
    n = truth.size
    if s == "system":
        est = truth + 3 * MS + rng.integers(-50_000, 50_000, n)
        lo = hi = est
    elif s == "ntp":
        est = truth + rng.integers(-300_000, 300_000, n)
        lo = hi = est
    else:
        eps = BOUNDED[s] + rng.integers(-BOUNDED[s] // 2, BOUNDED[s] // 2, n)
        est = truth + rng.integers(-BOUNDED[s], BOUNDED[s], n)  # sometimes misses truth
        lo, hi = est - eps, est + eps
    e, l_, h, st = source_columns(s)
    return {e: est, l_: lo, h: hi, st: np.full(n, 2, dtype=np.int8)}


def generate(root: Path, events: int, seed: int = 1, poll_s: float = 1.0) -> None:
    """Write spec.json, metadata.json and the coordinator's + two workers' traces."""
    rng = np.random.default_rng(seed)
    nodes = [{"name": "coordinator", "role": "coordinator"}, {"name": "B", "role": "worker"},
             {"name": "C", "role": "worker"}]  # fmt: skip
    (root / "spec.json").write_text(json.dumps({"name": "bench", "seed": seed, "nodes": nodes,
                                                "sources": SOURCES,
                                                "ntp": {"poll_s": poll_s}}))  # fmt: skip
    (root / "metadata.json").write_text(json.dumps({"truth_available": True}))
    t0 = 1_700_000_000 * 10**9
    # Parquet encoding dominates and releases the GIL: the three nodes' parts are written on
    # parallel threads, with the runtime's own writer settings (so reading them costs the same).
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
    pending: list = []
    for part, start in enumerate(range(0, events, CHUNK)):
        for f in pending:  # at most one chunk's tables in memory besides the one being built
            f.result()
        pending = []
        n = min(CHUNK, events - start)
        ids = np.arange(start, start + n, dtype=np.uint64)
        send_truth = t0 + ids.astype(np.int64) * 100_000  # 10 k events/s
        sends = {"event_id": ids, "seq": ids, "truth_ns": send_truth, "local_ns": send_truth,
                 "scheduled_delay_ns": np.full(n, 100_000), "pacing_error_ns": np.zeros(n, int),
                 "workers_sent": np.full(n, 2, np.uint16),
                 "workers_failed": np.zeros(n, np.uint16)}  # fmt: skip
        send_reads = {s: _readings(rng, send_truth, s) for s in SOURCES}
        for s in SOURCES:
            sends.update(send_reads[s])
        pending.append(
            pool.submit(_write, root / "traces" / "coordinator", part, sends, send_schema(SOURCES))
        )
        for w in ("B", "C"):
            keep = rng.random(n) > 0.001  # 0.1% loss
            truth = send_truth + rng.integers(50_000, 400_000, n)
            rec = {"event_id": ids[keep], "seq": ids[keep], "truth_ns": truth[keep],
                   "local_ns": truth[keep], "send_local_ns": send_truth[keep]}  # fmt: skip
            for s in SOURCES:
                rec.update({k: v[keep] for k, v in _readings(rng, truth, s).items()})
                st, e, lo, hi = send_source_columns(s)
                se, slo, shi, sst = source_columns(s)
                rec.update(
                    {
                        st: send_reads[s][sst][keep],
                        e: send_reads[s][se][keep],
                        lo: send_reads[s][slo][keep],
                        hi: send_reads[s][shi][keep],
                    }
                )
            pending.append(
                pool.submit(_write, root / "traces" / w, part, rec, receipt_schema(SOURCES))
            )
    for f in pending:
        f.result()
    pool.shutdown()


def _write(d: Path, part: int, cols: dict[str, np.ndarray], schema: pa.Schema) -> None:
    d.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)
    pq.write_table(table, d / f"events-{part:06d}.parquet", compression="lz4")


CHILD = """
import json, resource, sys, time
from skewlab.analysis import analyze
from skewlab.store import ResultsDir
t = time.perf_counter()
analyze(ResultsDir(__import__('pathlib').Path(sys.argv[1])), make_figures=sys.argv[2] == '1')
print(json.dumps({"seconds": time.perf_counter() - t,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run_analysis(root: Path, figures: bool) -> dict[str, float]:
    p = subprocess.run([sys.executable, "-c", CHILD, str(root), "1" if figures else "0"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--keep", type=Path, help="generate into (and keep) this folder")
    ap.add_argument("--poll-s", type=float, default=1.0,
                    help="spec ntp.poll_s: the rates' time block (default 1 s)")  # fmt: skip
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="skewlab-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        generate(root, a.events, poll_s=a.poll_s)
        print(f"generated {a.events} events x 2 workers x {len(SOURCES)} sources "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        # other processes share the CPU: the 1-minute load average says how much
        print(f"load average before the analysis: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
        no_fig = run_analysis(root, figures=False)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        blocks = json.loads((root / "stats.json").read_text())["settings"]["intervals"]["blocks"]
        print(f"time blocks: {blocks}")
        print(f"analysis without figures: {no_fig['seconds']:.1f} s, "
              f"peak RSS {no_fig['max_rss_kb'] / 1e6:.2f} GB")  # fmt: skip
        fig = run_analysis(root, figures=True)
        print(f"analysis with figures:    {fig['seconds']:.1f} s, "
              f"peak RSS {fig['max_rss_kb'] / 1e6:.2f} GB")  # fmt: skip
        _ = resource  # (child's RSS is read inside the child)
        print(f"RESULT analysis_seconds_{2 * a.events // 1_000_000}m_receipts "
              f"{no_fig['seconds']:.2f} s")  # fmt: skip
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
