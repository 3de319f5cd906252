"""How tight and how trustworthy is each bounded source, on identical sample streams?

One emulated node in virtual time (skewlab.sim.node.NodeSim: the node's own clock, poller and
sources, on a one-node experiment spec) for 8 hours: drift drawn within ±100 ppm, random-walk
frequency wander, asymmetric path delays (base + near-exponential jitter: a Pareto II tail of
shape 100, the spec's nearest distribution to an exponential; no cap), 5 % of the requests
lost, a realtime step (``clock_step``) and a 30-minute NTP outage (``ntp_outage``); the node
runs a disciplined system clock (as hosts running ClockBound do). Every bounded source
subscribes to the same SyncState, so they all see exactly the same samples. Readings at random
instants (uniform gaps, mean ``--read-every-ms``) through the sources' array form
(``NodeSim.read``, checked equal to the scalar ``read`` by tests/unit/test_sim_vector.py). Per
source: coverage (fraction of answered readings with earliest ≤ truth ≤ latest), mean and p99
half-width, and the ratio of skewlab's mean half-width to each source's and to the physical
floor (minimum sample delay / 2). skewlab's retrospective refinement (reading_at, with every
sample of the run) is measured on a random subset of the readings.

The modelled server is the embedded one: its root dispersion claim (1 µs, one NTP short-format
unit on the wire: 15.3 µs) is in every sample's λ. The former harness's server claimed 0, so
every bound is ~15 µs wider than in its figures (RESULT 0.041 → 0.046 at the defaults).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import numpy as np

from skewlab.clocks.base import Status
from skewlab.clocks.sources import SkewlabSource
from skewlab.ntp.sample import NtpSample
from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec

S = 1_000_000_000
HOUR_NS = 3600 * S
BOUNDED = ["truetime", "clockbound", "skewlab"]


def _delay(base_us: float, jitter_us: float) -> dict[str, Any]:
    """``base_us`` plus a near-exponential jitter of mean ``jitter_us`` (Pareto II, shape 100)."""
    return {"dist": "pareto", "min_ms": base_us / 1000, "mean_ms": (base_us + jitter_us) / 1000,
            "shape": 100}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--read-every-ms", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--retro", type=int, default=2000, help="readings re-evaluated by reading_at")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    dur_s = args.hours * 3600
    drift_ppb = round(rng.uniform(-100_000, 100_000))
    offset_ns = round(rng.uniform(-5e6, 5e6))
    step_ms = 5.0
    outage_s = (dur_s * 0.625, dur_s * 0.625 + 1800)
    loss = 0.05
    spec = solo_spec(
        {"offset_ms": offset_ns / 1e6, "drift_ppm": drift_ppb / 1000, "wander_ppb": 0.1,
         "discipline": "disciplined"},
        sources=BOUNDED, seed=args.seed, ntp={"poll_s": 16, "burst": 4},
        network={"links": {f"{SOLO}~ntp-server": {
            "forward": {"delay": _delay(150, 150), "loss": {"model": "bernoulli", "rate": loss}},
            "back": {"delay": _delay(50, 30)}}}},
        faults=[
            {"kind": "clock_step", "node": SOLO, "at_s": dur_s * 0.375 + 7, "delta_ms": step_ms},
            {"kind": "ntp_outage", "at_s": outage_s[0], "duration_s": 1800, "how": "drop"},
        ],
    )  # fmt: skip
    node = NodeSim(spec, SOLO, T0_NS)
    samples: list[NtpSample] = []
    node.state.subscribe(samples.append)

    np_rng = np.random.default_rng(args.seed)
    mean_ns = args.read_every_ms * 1e6
    n_max = int(dur_s * 1e9 / mean_ns * 1.05) + 10
    truth = T0_NS + np.cumsum(np.maximum(1, np.rint(np_rng.uniform(0, 2 * mean_ns, n_max))))
    end = T0_NS + round(dur_s * S)
    truth = truth[truth < end].astype(np.int64)
    n = len(truth)
    lo = {name: np.empty(n, dtype=np.int64) for name in BOUNDED}
    hi = {name: np.empty(n, dtype=np.int64) for name in BOUNDED}
    st = {name: np.empty(n, dtype=np.int8) for name in BOUNDED}
    done = 0

    def read_before(t_out: int, chunk_ns: int = HOUR_NS) -> None:
        """Read the instants before a poll's outcome (an hour's worth at a time)."""
        nonlocal done
        j = int(np.searchsorted(truth, t_out, side="left"))
        if j == done or (t_out < end and truth[done] > t_out - chunk_ns):
            return
        _local, readings = node.read(truth[done:j])
        for name, r in zip(BOUNDED, readings, strict=True):
            lo[name][done:j], hi[name][done:j], st[name][done:j] = r.earliest, r.latest, r.status
        done = j

    started = time.perf_counter()
    node.run_until(end, read_before)
    read_before(end)
    assert done == n
    elapsed = time.perf_counter() - started
    sk = node.source("skewlab")
    assert isinstance(sk, SkewlabSource)
    floor = min(s.delay_ns for s in samples) / 2
    c = node.counts()

    print(f"emulated {dur_s / 3600:.1f} h in {elapsed:.1f} s wall; {n} readings per source")
    print(
        f"node: drift {drift_ppb / 1000:+.1f} ppm, wander 0.1 ppb/√s, step {step_ms:+.1f} ms, "
        f"outage {outage_s[0] / 3600:.2f}-{outage_s[1] / 3600:.2f} h, request loss {loss:.0%}, "
        f"delay out/back base+jitter 150+150 / 50+30 µs"
    )
    print(
        f"samples {len(samples)}, exchanges {c['ntp_exchanges']}, lost "
        f"{c['ntp_exchanges_lost']}, failed polls {c['ntp_failed_polls']}; skewlab steps "
        f"detected {sk.steps}, resets {sk.resets}"
    )
    print(f"physical floor (min sample delay / 2): {floor / 1000:.1f} µs")
    means: dict[str, float] = {}
    print(
        f"{'source':<11} {'answered':>9} {'coverage':>10} {'mean hw µs':>11} {'p99 hw µs':>10} "
        f"{'mean hw µs, synchronized only':>30}"
    )
    for name in BOUNDED:
        ok = st[name] != Status.UNSYNCHRONIZED
        lo_n, hi_n = lo[name][ok], hi[name][ok]
        cov = float(np.mean((lo_n <= truth[ok]) & (truth[ok] <= hi_n)))
        hw = (hi_n - lo_n) / 2.0
        means[name] = float(hw.mean())
        p99 = float(np.quantile(hw, 0.99, method="inverted_cdf"))
        syn = st[name][ok] == Status.SYNCHRONIZED
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
    osc = node.osc
    for k in np.sort(np_rng.choice(n, size=min(n, args.retro), replace=False)).tolist():
        t = int(truth[k])
        r = sk.reading_at(osc.local_at(t), osc.monotonic_at(t))
        if r.earliest_ns is None or r.latest_ns is None:
            continue
        covered += r.earliest_ns <= t <= r.latest_ns
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
