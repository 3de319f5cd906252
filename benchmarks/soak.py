"""Soak: a long run at a steady rate; every node's memory (RSS) must stay flat.

Default: 20 minutes at 18,200 events/s (half the steady-state lossless rate measured by
benchmarks/throughput.py), two workers, the default five clock sources and commit-wait.
RSS of every node process is sampled every few seconds from /proc. "Start" is the first
sample after the settling time (the longest commit-wait Δ plus 10 s, or a tenth of the run,
whichever is longer: the commit-wait backlog fills for Δ and is then flat); "end" is the last
sample while the coordinator is still sending. Growth = (end − start) / start.

Usage: python benchmarks/soak.py [--duration-s 1200] [--rate 18200] [--out DIR]
Final line: ``RESULT soak_rss_growth <largest growth over the nodes> percent``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process (KiB), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=1200.0)
    ap.add_argument("--rate", type=float, default=18200.0, help="events per second")
    ap.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the results folder")
    a = ap.parse_args()

    from skewlab.deploy.local import LocalLauncher
    from skewlab.node.patterns import effective_commit_wait_ms
    from skewlab.spec import from_dict

    events = int(a.duration_s * a.rate)
    spec = from_dict(
        {
            "name": "soak",
            "workload": {"events": events, "interval_ms": 1000.0 / a.rate},
            "run": {"warmup_s": 1.0, "hmac_key": "soak"},
        }
    )
    cw_max_s = max(effective_commit_wait_ms(spec) or [0]) / 1000
    settle_s = max(cw_max_s + 10, a.duration_s / 10)
    out = a.out or Path(tempfile.mkdtemp(prefix="skewlab-soak-"))
    print(f"soak: {events:,} events at {a.rate:,.0f}/s ({a.duration_s:.0f} s), "
          f"commit-wait Δ up to {cw_max_s:.1f} s, settling {settle_s:.0f} s, "
          f"RSS every {a.sample_s:.0f} s")  # fmt: skip
    launcher = LocalLauncher(spec, out)
    samples: dict[str, list[tuple[float, int]]] = {}
    sending = {"since": None, "until": None}
    stop = threading.Event()

    def sample() -> None:
        coord = spec.coordinator.name
        while not stop.wait(a.sample_s):
            procs = dict(launcher.procs)
            c = procs.get(coord)
            if c is None or c.popen.poll() is not None or c.done is not None:
                if sending["since"] is not None and sending["until"] is None:
                    sending["until"] = time.monotonic()
                continue
            if sending["since"] is None:
                sending["since"] = time.monotonic()
            now = time.monotonic()
            for name, p in procs.items():
                r = rss_kib(p.popen.pid)
                if r is not None:
                    samples.setdefault(name, []).append((now, r))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        outcome = launcher.run()
    finally:
        stop.set()
        th.join()
    print(f"run finished in {time.monotonic() - t0:.0f} s: {outcome.results.root}")
    meta = json.loads(outcome.results.metadata_path.read_text())
    for w, acc in meta["accounting"].items():
        c = json.loads(outcome.results.node_counts_path(w).read_text())
        print(f"  {w}: sent {acc['sent']:,} received {acc['received']:,} lost {acc['lost']} "
              f"kernel drops {c.get('kernel_drops')} "
              f"commit-wait shed {c.get('commit_wait_shed')}")  # fmt: skip
    worst = 0.0
    since = sending["since"] or t0
    for name, ss in sorted(samples.items()):
        after = [(t, r) for t, r in ss if t - since >= settle_s]
        if len(after) < 2:
            print(f"  {name}: too few samples after settling ({len(after)})")
            continue
        start, end = after[0][1], after[-1][1]
        growth = (end - start) / start * 100
        worst = max(worst, growth)
        peak = max(r for _, r in after)
        print(f"  {name:12s} RSS start {start / 1024:8.1f} MiB  end {end / 1024:8.1f} MiB  "
              f"peak {peak / 1024:8.1f} MiB  growth {growth:+6.2f} %  "
              f"({len(after)} samples)")  # fmt: skip
    for name, ss in sorted(samples.items()):  # the curve, about one point a minute
        step = max(1, int(60 / a.sample_s))
        curve = " ".join(f"{r / 1024:.0f}" for _, r in ss[::step])
        print(f"  {name:12s} RSS MiB per minute: {curve}")
    print(f"flat within 10 %: {'yes' if worst <= 10 else 'NO'}")
    if a.out is None and not a.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(f"RESULT soak_rss_growth {worst:.2f} percent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
