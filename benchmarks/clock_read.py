"""Median cost of one reading per source, as in the worker's receive loop.

Each source stands on a SyncState fed with a realistic stream of samples (the virtual-time
harness, 10 minutes of 16 s polls); the node clock is a plain oscillator read from the host
clock, exactly as ``skewlab run``'s worker does. Per source we time batches of ``read(local)``
calls with ``perf_counter_ns`` and report the median per-call cost over the batches.
Also printed (not part of the result): the skewlab read on a disciplined clock, and the
commit-wait cost per receipt of ``reading_at`` versus the batched ``readings_at``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from skewlab.clocks.discipline import Discipline
from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.sim.harness import Harness

S = 1_000_000_000
NAMES = ["system", "ntp", "truetime", "clockbound", "skewlab"]


def _median_read(read, local_at, args: argparse.Namespace) -> float:  # type: ignore[no-untyped-def]
    """Median over batches of the per-call cost (ns) of ``read(local)``."""
    per_call = []
    for _ in range(args.batches):
        local = local_at(time.time_ns())
        t = time.perf_counter_ns()
        for _ in range(args.batch):
            read(local)
        per_call.append((time.perf_counter_ns() - t) / args.batch)
    return statistics.median(per_call)


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
    state = SyncState(clock=NodeClock(osc))
    sources = make_sources(NAMES, state)
    for s in sim.samples:
        state.add(s)
    local_at = osc.local_at
    medians: dict[str, float] = {}
    for src in sources:
        read = src.read
        medians[src.name] = _median_read(read, local_at, args)
        r = read(local_at(time.time_ns()))
        print(f"{src.name:<11} {medians[src.name]:>8.0f} ns/read   status {r.status.name}")
    # Informational: the skewlab read on a disciplined node clock (the gap is read back from
    # the clock on every read to notice steps), and the commit-wait path: one reading_at per
    # receipt versus readings_at over a batch of receipts (identical values).
    dosc = Oscillator(offset_ns=3_000_000, drift_ppb=40_000, t0_ns=now - 600 * S)
    dstate = SyncState(clock=NodeClock(dosc))
    disc = Discipline()
    dosc.attach(disc)
    disc.follow(dstate)
    dsk = make_sources(["skewlab"], dstate)[0]
    for s in sim.samples:
        dstate.add(s)
    print(
        f"{'skewlab':<11} {_median_read(dsk.read, dosc.local_at, args):>8.0f} ns/read"
        "   (disciplined node clock; not part of the result)"
    )
    sk = next(s for s in sources if s.name == "skewlab")
    last = sim.samples[-1].t4_ns
    past = [last - 5 * S + k * (S // 2048) for k in range(2048)]  # receipts 5 s ago, 1 s span
    t = time.perf_counter_ns()
    one = [sk.reading_at(p) for p in past[:200]]
    per_one = (time.perf_counter_ns() - t) / 200
    sk.readings_at(past[::64])  # warm-up: numpy's first use, and the sample group memoized
    t = time.perf_counter_ns()
    many = sk.readings_at(past)
    per_many = (time.perf_counter_ns() - t) / len(past)
    assert many[:200] == one  # the batch path gives the same readings
    print(
        f"commit-wait skewlab reading_at {per_one / 1000:.1f} us/receipt, readings_at "
        f"(batch of {len(past)}) {per_many / 1000:.1f} us/receipt"
    )
    worst = max(medians.values())
    print(f"slowest of {', '.join(NAMES)}: {worst:.0f} ns (target ≤ 1000 ns)")
    print(f"RESULT clock_read_slowest_median {worst:.0f} ns")


if __name__ == "__main__":
    main()
