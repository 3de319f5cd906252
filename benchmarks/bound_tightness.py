"""How tight and how trustworthy is each bounded source, on identical sample streams?

One emulated node in virtual time (skewlab.sim.harness) for 8 hours: drift drawn within
±100 ppm, random-walk frequency wander, asymmetric exponential path delays capped at the
configured maximum, exchange loss, a realtime step and a 30-minute NTP outage; the node runs a
disciplined system clock (as hosts running ClockBound do). Every bounded source subscribes to
the same SyncState, so they all see exactly the same samples. Per source: coverage (fraction of
answered readings with earliest ≤ truth ≤ latest), mean and p99 half-width, and the ratio of
skewlab's mean half-width to each source's and to the physical floor (minimum sample delay / 2).
skewlab's retrospective refinement (reading_at, with every sample of the run) is measured on a
random subset of the readings.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from skewlab.clocks.base import Status
from skewlab.clocks.discipline import Discipline
from skewlab.clocks.oscillator import ClockFault, Oscillator
from skewlab.clocks.sources import SkewlabSource
from skewlab.sim.harness import DelayModel, Harness, Outage, PathModel

S = 1_000_000_000
BOUNDED = ["truetime", "clockbound", "skewlab"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--read-every-ms", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-delay-us", type=float, default=2000.0)
    ap.add_argument("--retro", type=int, default=2000, help="readings re-evaluated by reading_at")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    t0 = 1_700_000_000 * S
    dur_s = args.hours * 3600
    drift_ppb = round(rng.uniform(-100_000, 100_000))
    step_ns = 5_000_000
    osc = Oscillator(
        offset_ns=round(rng.uniform(-5e6, 5e6)),
        drift_ppb=drift_ppb,
        t0_ns=t0,
        wander_ppb=0.1,
        seed=args.seed,
        faults=(ClockFault("step", t0 + round(dur_s * 0.375 * S) + 7 * S, step_ns),),
    )
    path = PathModel(
        out=DelayModel(150.0, 150.0, args.max_delay_us),
        back=DelayModel(50.0, 30.0, args.max_delay_us),
        loss=0.05,
    )
    outage = Outage(dur_s * 0.625, dur_s * 0.625 + 1800)
    h = Harness(
        osc,
        BOUNDED,
        path=path,
        poll_s=16,
        burst=4,
        outages=(outage,),
        discipline=Discipline(),
        seed=args.seed,
    )
    n_max = int(dur_s * 1000 / args.read_every_ms * 1.05) + 10
    truth_a = np.empty(n_max, dtype=np.int64)
    lo = {n: np.empty(n_max, dtype=np.int64) for n in BOUNDED}
    hi = {n: np.empty(n_max, dtype=np.int64) for n in BOUNDED}
    st = {n: np.empty(n_max, dtype=np.int8) for n in BOUNDED}
    keep_rng = random.Random(args.seed + 1)
    retro_every = max(1, round(n_max / max(1, args.retro)))
    retro: list[tuple[int, int, int]] = []  # (truth, local, monotonic)
    started = time.perf_counter()
    i = 0
    for truth, local, rs in h.run(dur_s, args.read_every_ms):
        truth_a[i] = truth
        for name, r in zip(BOUNDED, rs, strict=True):
            if r.earliest_ns is None:
                st[name][i] = Status.UNSYNCHRONIZED
                lo[name][i] = hi[name][i] = 0
            else:
                st[name][i] = r.status
                lo[name][i] = r.earliest_ns
                hi[name][i] = r.latest_ns
        if keep_rng.randrange(retro_every) == 0:
            retro.append((truth, local, osc.monotonic_at(truth)))
        i += 1
    elapsed = time.perf_counter() - started
    n = i
    sk = h.source("skewlab")
    assert isinstance(sk, SkewlabSource)
    floor = min(s.delay_ns for s in h.samples) / 2

    print(f"emulated {dur_s / 3600:.1f} h in {elapsed:.1f} s wall; {n} readings per source")
    print(
        f"node: drift {drift_ppb / 1000:+.1f} ppm, wander 0.1 ppb/√s, "
        f"step {step_ns / 1e6:+.1f} ms, "
        f"outage {outage.start_s / 3600:.2f}-{outage.end_s / 3600:.2f} h, loss {path.loss:.0%}, "
        f"delay out/back ≤ {args.max_delay_us:.0f} µs"
    )
    print(
        f"samples {len(h.samples)}, exchanges {h.exchanges}, lost {h.lost}, failed polls "
        f"{h.failed_polls}; skewlab steps detected {sk.steps}, resets {sk.resets}"
    )
    print(f"physical floor (min sample delay / 2): {floor / 1000:.1f} µs")
    t = truth_a[:n]
    means: dict[str, float] = {}
    print(
        f"{'source':<11} {'answered':>9} {'coverage':>10} {'mean hw µs':>11} {'p99 hw µs':>10} "
        f"{'mean hw µs, synchronized only':>30}"
    )
    for name in BOUNDED:
        ok = st[name][:n] != Status.UNSYNCHRONIZED
        lo_n, hi_n = lo[name][:n][ok], hi[name][:n][ok]
        cov = float(np.mean((lo_n <= t[ok]) & (t[ok] <= hi_n)))
        hw = (hi_n - lo_n) / 2.0
        means[name] = float(hw.mean())
        p99 = float(np.quantile(hw, 0.99, method="inverted_cdf"))
        syn = st[name][:n][ok] == Status.SYNCHRONIZED
        print(
            f"{name:<11} {ok.mean():>9.4f} {cov:>10.6f} {means[name] / 1000:>11.1f} "
            f"{p99 / 1000:>10.1f} {hw[syn].mean() / 1000:>30.1f}"
        )
    for name in BOUNDED:
        if name != "skewlab":
            print(f"skewlab mean half-width / {name}: {means['skewlab'] / means[name]:.4f}")
    print(f"skewlab mean half-width / physical floor: {means['skewlab'] / floor:.2f}")

    covered = 0
    hws = []
    for truth, local, mono in retro:
        r = sk.reading_at(local, mono)
        if r.earliest_ns is None:
            continue
        covered += r.earliest_ns <= truth <= r.latest_ns
        hws.append((r.latest_ns - r.earliest_ns) / 2.0)
    if hws:
        print(
            f"skewlab reading_at (retrospective, {len(hws)} readings): coverage "
            f"{covered / len(hws):.6f}, mean half-width {np.mean(hws) / 1000:.1f} µs"
        )
    ratio = means["skewlab"] / means["clockbound"]
    print(f"RESULT skewlab_vs_clockbound_halfwidth {ratio:.4f} ratio")


if __name__ == "__main__":
    main()
