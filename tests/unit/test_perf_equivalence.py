"""The cached / vectorized retrospective refinement gives bit-identical results to the plain
computation it replaced (issue 6: commit-wait re-evaluation at stream rates).

The oracle below is the original ``SkewlabSource.reading_at``: it rebuilds the archive's time
lists on every call and evaluates ``estimator.interval_at`` on the chosen samples. The fast
paths (``reading_at`` with the archive snapshot and memoized sample groups, and the batched
``readings_at`` over ``estimator.intervals_arrays_near``) must agree with it exactly, field by
field.

The sample streams come from ``NodeSim`` runs of one-node specs (tests/unit/test_sim_node.py):
exponential delay jitter becomes a near-exponential Pareto II tail (shape 100, uncapped), and
the disciplined case runs the spec's ``disciplined`` profile (servo time constant 64 s; the
former harness's 8 s is not a spec setting — the case still checks the discipline's widening).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Any

import numpy as np
import pytest

from skewlab.clocks.base import Reading, Status
from skewlab.clocks.estimator import (
    Sample,
    _polygons,
    feasible_polygon,
    grid_anchor,
    interval_at,
    interval_near,
    intervals_near,
    prepare_group,
    weighted_fit,
)
from skewlab.clocks.sources import SkewlabSource
from skewlab.sim.node import SOLO, T0_NS, NodeSim, solo_spec
from skewlab.spec import ExperimentSpec
from tests.unit.test_sim_node import exp_delay, ntp_path

S = 1_000_000_000
T0 = T0_NS


def one_node(node: dict[str, Any], params: dict[str, Any], out: dict[str, Any],
             back: dict[str, Any], loss: float, poll_s: float, seed: int,
             faults: list[dict[str, Any]] | None = None) -> ExperimentSpec:  # fmt: skip
    """A skewlab-only node whose NTP path has these delays and request ``loss``."""
    return solo_spec(
        {"discipline": "free", **node}, sources=["skewlab"], source_params={"skewlab": params},
        seed=seed,
        faults=faults or [], ntp={"poll_s": poll_s}, network=ntp_path(out, back, loss),
    )  # fmt: skip


def oracle_reading_at(src: SkewlabSource, past_local_ns: int) -> Reading:
    """The original, uncached reading_at (copied from the code before the caching change)."""
    arch = src.archive
    if not arch:
        return Reading.none()
    widen = 0
    j = max(0, bisect_right([e.t4_local_ns for e in arch], past_local_ns) - 1)
    past_mono_ns = past_local_ns - arch[j].gap_ns
    slew = src._slew_ppb()  # how fast the gap can move (the discipline's largest rate so far)
    if slew is not None:
        dist = abs(past_local_ns - arch[j].t4_local_ns)
        widen = -((-dist * slew) // S) if dist > 0 else 0
    ms = [e.sample.m_ns for e in arch]
    i = bisect_right(ms, past_mono_ns)
    near = arch[max(0, i - 1)] if i > 0 else arch[0]
    lo_i = max(0, i - src.window // 2)
    chosen = [e for e in arch[lo_i : lo_i + src.window] if e.epoch == near.epoch]
    if past_mono_ns - max(e.sample.m_ns for e in chosen) > src.unsync_ns:
        return Reading.none()
    # since the polygons are shared by the instants of one 1 ms grid anchor: interval_near
    r = interval_near([e.sample for e in chosen], past_mono_ns, src.w, src.fmax_ppb, src.grid_ns,
                      src.j, src.r)  # fmt: skip
    if r is None:
        return Reading.none()
    lo, est, hi = r
    bracketed = chosen[0].sample.m_ns <= past_mono_ns <= chosen[-1].sample.m_ns
    status = Status.SYNCHRONIZED if bracketed else Status.FREE_RUNNING
    return Reading(est, lo - widen, hi + widen, status, near.t4_local_ns)


CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]] = {
    # name: (node keys, faults, source params)
    "plain": ({"drift_ppm": 40}, [], {}),
    "wander_small_window": ({"drift_ppm": -25, "wander_ppb": 5.0}, [], {"window": 6}),
    "step_and_freq_jump": (
        {"drift_ppm": 10},
        [
            {"kind": "clock_step", "node": SOLO, "at_s": 20, "delta_ms": 3},
            {"kind": "clock_rate", "node": SOLO, "at_s": 35, "delta_ppm": 20},
        ],
        {"window": 10, "archive": 30, "unsync_after_s": 8.0},
    ),
    # the realtime clock steps back by more than the poll interval: the archive's local T4s
    # are no longer ascending, so readings_at selects with bisect (no numpy searchsorted)
    "backward_step": (
        {"drift_ppm": 5},
        [{"kind": "clock_step", "node": SOLO, "at_s": 24, "delta_ms": -7000}],
        {"window": 8},
    ),
    "disciplined_no_wander_allowance": (
        {"offset_ms": 2, "drift_ppm": 30, "discipline": "disciplined"},
        [],
        {"wander_allowance": 0.0, "window": 12},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cached_and_batched_reading_at_equal_the_original(case: str) -> None:
    node_kw, faults, params = CASES[case]
    seed = sorted(CASES).index(case) + 11
    spec = one_node(node_kw, params, exp_delay(80, 200), exp_delay(120, 40), 0.1, 2.0, seed,
                    faults)  # fmt: skip
    node = NodeSim(spec, SOLO, T0)
    assert (node.osc.discipline is not None) == case.startswith("disciplined")
    src = node.source("skewlab")
    assert isinstance(src, SkewlabSource)
    rng = random.Random(seed)
    compared = distinct = 0
    for checkpoint_s in (9, 31, 58):
        node.run_until(T0 + checkpoint_s * S)  # on from where it is to t0 + checkpoint_s
        arch = src.archive
        first, last = arch[0].t4_local_ns, arch[-1].t4_local_ns
        # instants before, between and well after the archived samples; clustered ones share
        # sample groups (the batched path), scattered ones mostly fall back to the scalar path
        centre = rng.randint(first, last)
        queries = [rng.randint(first - 5 * S, last + 15 * S) for _ in range(60)]
        queries += [centre + rng.randint(-S // 2, S // 2) for _ in range(60)]
        queries += [last + 20 * S] * 3
        # dense receipts: several per 1 ms grid anchor, so anchors' polygons are shared
        queries += [centre + rng.randint(-3_000_000, 3_000_000) for _ in range(60)]
        want = [oracle_reading_at(src, q) for q in queries]
        got_one = [src.reading_at(q) for q in queries]
        got_many = src.readings_at(queries)
        assert got_one == want
        assert got_many == want
        # the columnar form the commit-wait pass writes: the same numbers
        est, lo, hi, st, t4 = src.readings_columns(np.array(queries, dtype=np.int64))
        for k, r in enumerate(want):
            assert int(st[k]) == int(r.status)
            if r.status != Status.UNSYNCHRONIZED:
                assert (int(est[k]), int(lo[k]), int(hi[k]), int(t4[k])) == (
                    r.estimate_ns,
                    r.earliest_ns,
                    r.latest_ns,
                    r.as_of_ns,
                )
        assert any(c.group for c in src._view.groups.values())  # the vectorized path ran
        # the selection path: numpy (ascending archive) or bisect (after a backward step)
        assert src._view.sorted == (case != "backward_step" or checkpoint_s < 24)
        compared += len(queries)
        distinct += len({r for r in want if r.estimate_ns is not None})
    # the comparison covered real intervals, not only "no value" answers
    assert distinct > compared // 2
    if "unsync_after_s" in params:
        assert any(r.status == Status.UNSYNCHRONIZED for r in want)


def _random_sample_set(rng: random.Random, inconsistent: bool) -> tuple[list[int], list[Sample]]:
    """1..14 samples of a drifting clock, errors within λ (or up to 1.3 λ: may be inconsistent)."""
    n = rng.randint(1, 14)
    m = sorted(rng.sample(range(0, 600 * S, 7919), n))
    f_true = rng.uniform(-50_000, 50_000)  # ppb
    samples = []
    for mi in m:
        lam = rng.randint(20_000, 3_000_000)
        err = rng.uniform(-1.3, 1.3) * lam if inconsistent else rng.uniform(-1, 1) * lam
        samples.append(Sample(mi, round(5_000_000 + f_true * mi / S + err), lam))
    return m, samples


def test_vectorized_polygons_equal_interval_at_on_random_sample_sets() -> None:
    """The vectorized estimator on random sample sets (including inconsistent ones, which
    give None) against the scalar one, for instants inside and outside the samples."""
    rng = random.Random(5)
    nones = 0
    for trial in range(40):
        m, samples = _random_sample_set(rng, inconsistent=trial % 5 == 0)
        w = rng.choice([0.0, 1.0, 25.0])
        j = rng.choice([0.0, 1000.0])  # the frequency-step allowance J (ppb)
        r = rng.choice([0.0, 10.0])  # the frequency-rate allowance R (ppb/s)
        monos = [rng.randint(m[0] - 60 * S, m[-1] + 120 * S) for _ in range(30)] + m[:3]
        want = [interval_at(samples, p, w, 1e6, j, r) for p in monos]
        got = intervals_near(prepare_group(samples), monos, w, 1e6, 1, j, r)  # grid 1: each instant
        assert got == want
        nones += sum(r is None for r in want)
        # the floats before rounding too: bit for bit, so no rounding edge can ever differ
        A, _F, cnt, y_ref, a, _f = _polygons(prepare_group(samples), np.array(monos), w, 1e6, j, r)
        ok = cnt > 0
        with np.errstate(invalid="ignore"):
            lo, hi = np.fmin.reduce(A, axis=1), np.fmax.reduce(A, axis=1)
        for k, p in enumerate(monos):
            yr = min(samples, key=lambda s, p=p: abs(s.m_ns - p)).y_ns
            assert int(y_ref[k]) == yr
            poly = feasible_polygon(samples, p, yr, w, 1e6, j, r)
            assert bool(ok[k]) == bool(poly)
            if poly:
                assert float(lo[k]) == min(v[0] for v in poly)
                assert float(hi[k]) == max(v[0] for v in poly)
                assert float(a[k]) == weighted_fit(samples, p, yr)[0]
    assert nones > 0  # inconsistent sample sets were exercised


def test_intervals_near_equals_interval_near_and_interval_at_on_the_grid() -> None:
    """The grid-anchored retrospective interval: vectorized (one polygon per anchor, carried
    to each instant) bit-identical to the scalar form; on a grid point it is interval_at."""
    rng = random.Random(9)
    for trial in range(30):
        m, samples = _random_sample_set(rng, inconsistent=trial % 5 == 0)
        w = rng.choice([0.0, 1.0, 25.0])
        j = rng.choice([0.0, 1000.0])
        r = rng.choice([0.0, 10.0])
        grid = rng.choice([1, 1_000_000, 7 * S])
        centre = rng.randint(m[0] - 60 * S, m[-1] + 120 * S)
        monos = [rng.randint(m[0] - 60 * S, m[-1] + 120 * S) for _ in range(20)]
        monos += [centre + rng.randint(-2_000_000, 2_000_000) for _ in range(20)]
        want = [interval_near(samples, p, w, 1e6, grid, j, r) for p in monos]
        assert intervals_near(prepare_group(samples), monos, w, 1e6, grid, j, r) == want
        for p in monos[:5]:
            g = grid_anchor(p, grid)
            assert abs(p - g) <= grid // 2
            assert interval_near(samples, g, w, 1e6, grid, j, r) == interval_at(
                samples, g, w, 1e6, j, r
            )


def test_grid_anchored_retrospective_readings_cover_true_time() -> None:
    """Soundness on a drifting, wandering clock with a noisy path: every retrospective reading
    (commit-wait's readings_columns, dense receipts between the anchors) holds the true time,
    and the grid costs next to nothing in width against the exact per-instant interval."""
    spec = one_node({"drift_ppm": 30, "wander_ppb": 2.0}, {"window": 32}, exp_delay(80, 300),
                    exp_delay(120, 60), 0.05, 1.0, 3)  # fmt: skip
    node = NodeSim(spec, SOLO, T0)
    osc = node.osc
    src = node.source("skewlab")
    assert isinstance(src, SkewlabSource)
    node.run_until(T0 + 120 * S)
    rng = random.Random(4)
    truth = sorted(T0 + 5 * S + rng.randint(0, 100 * S) for _ in range(3000))
    local = np.array([osc.local_at(t) for t in truth], dtype=np.int64)
    est, lo, hi, st, _t4 = src.readings_columns(local)
    assert (st == int(Status.SYNCHRONIZED)).all()
    t = np.array(truth, dtype=np.int64)
    assert ((lo <= t) & (t <= hi)).all()
    assert ((lo <= est) & (est <= hi)).all()
    extra = []
    for k in range(0, len(truth), 97):  # against the exact interval at the instant itself
        mono = osc.monotonic_at(truth[k])
        chosen, m, _w, _t4k = src._select(src._view, int(local[k]), None, None)
        assert m == mono
        exact = interval_at(list(chosen.samples), mono, src.w, src.fmax_ppb, src.j, src.r)
        assert exact is not None
        extra.append((int(hi[k]) - int(lo[k])) - (exact[2] - exact[0]))
    assert max(extra) <= 2_000  # ns: the grid's widening, against bounds of ~100 µs
