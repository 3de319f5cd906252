"""Simulation scale: N workers × E broadcast events over H emulated hours (all default sources),
traces streamed to disk per node in part files; prints wall time, peak memory, receipts/s.

Default: 100 workers × 100,000 events over 8 h (10,000,000 receipts). The NTP poll interval
(``--poll-s``, default 64 s: chrony's default minimum poll) and the commit-wait stride
(``--cw-every``, default 1000: every 1000th receipt re-evaluated at T+Δ) are printed: both are
per-sample / per-receipt Python work (the skewlab estimator's model update, its retrospective
interval); the rest is vectorized.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from skewlab.sim.simulate import SimOptions, simulate
from skewlab.spec import from_dict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--poll-s", type=float, default=64.0)
    ap.add_argument("--cw-every", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="keep the results under this folder")
    a = ap.parse_args()
    nodes = [{"name": "coordinator", "role": "coordinator", "offset_ms": 1, "drift_ppm": 10}]
    for i in range(a.workers):
        nodes.append({"name": f"W{i}", "offset_ms": (i % 7) - 3, "drift_ppm": (i % 11) * 8 - 40,
                      "wander_ppb": 1.0})  # fmt: skip
    spec = from_dict({
        "name": "sim-scale",
        "nodes": nodes,
        "workload": {"events": a.events, "mode": "duration", "duration_s": a.hours * 3600},
        "ntp": {"poll_s": a.poll_s},
        "run": {"batch_rows": 65536},
    })  # fmt: skip
    base = a.keep or Path(tempfile.mkdtemp(prefix="sim-scale-"))
    print(f"sim_scale: {a.workers} workers x {a.events} events over {a.hours} h, "
          f"sources {spec.sources}, ntp.poll_s {a.poll_s}, commit-wait every {a.cw_every}th "
          f"receipt, {a.jobs} processes")  # fmt: skip
    t = time.monotonic()
    res = simulate(spec, base, SimOptions(jobs=a.jobs, cw_every=a.cw_every))
    wall = time.monotonic() - t
    meta = res.read_json(res.metadata_path)
    receipts = meta["simulation"]["receipts"]
    size = sum(p.stat().st_size for p in res.root.rglob("*.parquet"))
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"virtual duration  {meta['simulation']['virtual_duration_s']:.0f} s")
    print(f"receipts          {receipts:,}")
    print(f"wall time         {wall:.1f} s")
    print(f"peak RSS          main {self_kb / 1024:.0f} MiB, "
          f"largest child {kids_kb / 1024:.0f} MiB")  # fmt: skip
    print(f"trace size        {size / 2**20:.0f} MiB in {res.root}")
    if a.keep is None:
        shutil.rmtree(base, ignore_errors=True)
    print(f"RESULT sim_receipts_per_second {receipts / wall:.0f} receipts/s")


if __name__ == "__main__":
    main()
