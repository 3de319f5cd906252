"""Median cost of one reading per source, as in the worker's receive loop.

Each source stands on a SyncState fed with a realistic stream of samples (the virtual-time
harness, 10 minutes of 16 s polls); the node clock is a plain oscillator read from the host
clock, exactly as ``skewlab run``'s worker does. Per source we time batches of ``read(local)``
calls with ``perf_counter_ns`` and report the median per-call cost over the batches.
"""

from __future__ import annotations

import argparse
import statistics
import time

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.sim.harness import Harness

S = 1_000_000_000
NAMES = ["system", "ntp", "truetime", "clockbound", "skewlab"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=201)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args()

    now = time.time_ns()
    osc = Oscillator(offset_ns=3_000_000, drift_ppb=40_000, t0_ns=now - 600 * S)
    # Samples from a harness run that ends now, then replayed into a state whose clock is the
    # host clock (so the skewlab source reads the gap the way a worker does).
    sim = Harness(Oscillator(offset_ns=3_000_000, drift_ppb=40_000, t0_ns=now - 600 * S), ["ntp"])
    for _ in sim.run(600, 1000):
        pass
    from skewlab.clocks.sync import SyncState

    state = SyncState(clock=NodeClock(osc))
    sources = make_sources(NAMES, state)
    for s in sim.samples:
        state.add(s)
    local_at = osc.local_at
    medians: dict[str, float] = {}
    for src in sources:
        read = src.read
        per_call = []
        for _ in range(args.batches):
            local = local_at(time.time_ns())
            t = time.perf_counter_ns()
            for _ in range(args.batch):
                read(local)
            per_call.append((time.perf_counter_ns() - t) / args.batch)
        medians[src.name] = statistics.median(per_call)
        r = read(local_at(time.time_ns()))
        print(f"{src.name:<11} {medians[src.name]:>8.0f} ns/read   status {r.status.name}")
    worst = max(medians.values())
    print(f"slowest of {', '.join(NAMES)}: {worst:.0f} ns (target ≤ 1000 ns)")
    print(f"RESULT clock_read_slowest_median {worst:.0f} ns")


if __name__ == "__main__":
    main()
