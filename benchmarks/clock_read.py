"""Median cost of one reading per source, on both paths a reading takes.

Each source stands on a SyncState fed with a realistic stream of samples (a virtual-time run
of the node, ``sim.node.NodeSim``, 10 minutes of 16 s polls); the node clock and sync state are
built from the same one-node spec by ``clocks.node.node_sync`` reading the host clock, exactly
as ``skewlab run``'s nodes build them, on the default host: disciplined (an NTP daemon's servo
slews the system clock, so sources that watch for steps read the clock's gaps at the
reading's instant).

- The worker's path (the result): its receive loop evaluates receipts in batches on arrays
  (``node.worker.Receiver``: up to 4,096 receipts, or what arrived within 50 ms). Per source
  we time ``SourceTrack.read``'s per-source ``read_many`` over batches of ``--worker-batch``
  receipts (default 1,024: 50 ms at ~20,000 events/s; also printed at 64, a worker at ~1,300
  events/s), plus the batch's share of the clock's ``local_gaps_at_array`` counted once per
  receipt, and report the median per-reading cost.
- The coordinator's path (printed, not the result): one ``read(local, truth)`` at the send
  instant, the packet carrying it; timed in batches of calls, median per call.

Also printed: the scalar path on a free-running node, and the commit-wait cost per receipt of
``reading_at`` versus the batched ``readings_at``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from skewlab.clocks.node import node_sync
from skewlab.clocks.sources import make_sources
from skewlab.ntp.sample import NtpSample
from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec

S = 1_000_000_000
NAMES = ["system", "ntp", "truetime", "clockbound", "skewlab"]
NODE = {"offset_ms": 3.0, "drift_ppm": 40.0}  # no wander nor faults: see _moved


def _moved(s: NtpSample, d_ns: int) -> NtpSample:
    """The sample taken ``d_ns`` later by the same node whose clock's origin moved by
    ``d_ns`` too: every timestamp + d_ns (exact for a clock without wander or faults, whose
    reading depends only on the time since its origin)."""
    assert s.truth_t1_ns is not None and s.truth_t4_ns is not None
    return dataclasses.replace(
        s, t1_ns=s.t1_ns + d_ns, t2_ns=s.t2_ns + d_ns, t3_ns=s.t3_ns + d_ns,
        t4_ns=s.t4_ns + d_ns, truth_t1_ns=s.truth_t1_ns + d_ns, truth_t4_ns=s.truth_t4_ns + d_ns,
    )  # fmt: skip


def _median_read(read, local_at, args: argparse.Namespace) -> float:  # type: ignore[no-untyped-def]
    """Median over batches of the per-call cost (ns) of ``read(local, truth)``, the local
    reading taken once per batch (once per receipt in the worker)."""
    per_call = []
    for _ in range(args.batches):
        truth = time.time_ns()
        local = local_at(truth)
        t = time.perf_counter_ns()
        for _ in range(args.batch):
            read(local, truth)
        per_call.append((time.perf_counter_ns() - t) / args.batch)
    return statistics.median(per_call)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=201)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--worker-batch", type=int, default=1024)
    args = ap.parse_args()

    now = time.time_ns()
    start = now - 600 * S
    # Samples from a virtual-time run of the node (from T0_NS), moved to end now, then replayed
    # into the node's sync state on the host clock, its oscillator's origin at the run's start
    # (so the skewlab source reads the gap the way a worker does).
    spec = solo_spec(NODE, sources=NAMES, ntp={"poll_s": 16})
    sim = NodeSim(spec, SOLO, T0_NS)
    sim.run_until(T0_NS + 600 * S - 1)
    samples = [_moved(s, start - T0_NS) for s in sim.state.history]
    clock, state = node_sync(spec, SOLO, start)
    osc = clock.oscillator
    sources = make_sources(NAMES, state)
    for s in samples:
        state.add(s)
    local_at = osc.local_at
    medians: dict[str, float] = {}
    for src in sources:
        read = src.read
        medians[src.name] = _median_read(read, local_at, args)
        r = read(local_at(time.time_ns()))
        print(f"{src.name:<11} {medians[src.name]:>8.0f} ns/read   status {r.status.name}")
    # Informational: the same sources on a free-running node (a gapless clock: no gap to read),
    # and the commit-wait path: one reading_at per receipt versus readings_at over a batch of
    # receipts (identical values).
    fspec = solo_spec({**NODE, "discipline": "free"}, sources=NAMES)
    fclock, fstate = node_sync(fspec, SOLO, start)
    fsrc = make_sources(NAMES, fstate)
    for s in samples:
        fstate.add(s)
    free = {x.name: _median_read(x.read, fclock.oscillator.local_at, args) for x in fsrc}
    print("free-running node (not part of the result): " +
          ", ".join(f"{k} {v:.0f} ns" for k, v in free.items()))  # fmt: skip
    sk = next(s for s in sources if s.name == "skewlab")
    last = samples[-1].t4_ns
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
    print(f"coordinator's path (scalar read): slowest {max(medians.values()):.0f} ns")
    batched = {}
    for size in sorted({args.worker_batch, 64}, reverse=True):
        per = _batched(clock, sources, size, args)
        batched[size] = per
        print(f"worker's path, batches of {size}: " +
              ", ".join(f"{k} {v:.0f} ns" for k, v in per.items()))  # fmt: skip
    worst = max(batched[args.worker_batch].values())
    print(f"slowest of {', '.join(NAMES)} (worker's path, batches of {args.worker_batch}): "
          f"{worst:.0f} ns (target ≤ 1000 ns)")  # fmt: skip
    print(f"RESULT clock_read_slowest_median {worst:.0f} ns")


def _batched(clock, sources, size: int, args: argparse.Namespace) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median per-reading cost (ns) of each source on the worker's path: ``read_many`` on the
    snapshots ``SourceTrack`` hands it, for a batch of ``size`` receipts, plus the batch's
    local readings and gaps per receipt."""
    import numpy as np

    from skewlab.clocks.track import SourceTrack

    track = SourceTrack(sources)
    track.record(0)
    osc = clock.oscillator
    clock_cost, per_source = [], {s.name: [] for s in sources}
    reps = max(5, args.batches * args.batch // (size * 20))
    for _ in range(reps):
        base = time.time_ns()
        t = base - np.arange(size, dtype=np.int64)[::-1] * 30_000  # 30 µs apart, ending now
        c0 = time.perf_counter_ns()
        local, gap, sgap = osc.local_gaps_at_array(t)
        clock_cost.append((time.perf_counter_ns() - c0) / size)
        window = np.asarray(track.visible, dtype=np.int64)
        k = np.searchsorted(window, t, side="right") - 1
        for s, snaps in zip(track.sources, track._snaps, strict=True):
            c0 = time.perf_counter_ns()
            s.read_many(snaps, k, local, gap, sgap)
            per_source[s.name].append((time.perf_counter_ns() - c0) / size)
    share = statistics.median(clock_cost)
    return {k: statistics.median(v) + share for k, v in per_source.items()}


if __name__ == "__main__":
    main()
