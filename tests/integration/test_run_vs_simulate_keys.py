"""The spec keys most likely to diverge between ``skewlab run`` and ``skewlab simulate`` give
the same trace property in both modes, within stated tolerances (sim/keys.py: SPEC_KEYS; the
perturbation checks of every key in virtual time are tests/unit/test_spec_keys.py).

One small experiment (loopback, 6 s of events, ~8 s in all; nodes ready at their first NTP
sample, ``run.warmup_s = 0``) is run once with the local launcher and once in simulation:
worker D starts 20 ms ahead with ``discipline = "disciplined"``; worker F is free and
driftless, with a ``clock_step`` fault of +5 ms at ``at_s = 5``; ``ntp.poll_s = 0.5``;
``commit_wait.delays_s = [0.5]``. (It was 8 s of events, the step at 6 s and Δ = 1 s, ~12 s
in all; the servo check measured 1.79 ms removed in 6 s, real and simulated ≤ 1 µs apart.)
Times are compared from the run's origin ``t0`` (``metadata.json``), or, for the servo, from
the node's first NTP sample, since a real node process starts ~1 s later than the
simulator's 0.3 s.

Acceptance (issue 15): ``skewlab simulate`` of a disciplined spec gives system-clock errors
within the same tolerance as ``skewlab run`` of it — ``test_discipline``; its companion
``test_discipline_check_fails_for_a_free_simulation`` shows the check fails when simulate
ignores ``discipline``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skewlab.deploy.local import LocalLauncher
from skewlab.nemesis.record import load_faults
from skewlab.node.commit_wait import CW_MIN_POLL_S
from skewlab.sim.simulate import simulate
from skewlab.spec import from_dict
from skewlab.store import ResultsDir
from skewlab.trace import read_parts

NS_PER_MS = 1_000_000
OFFSET_MS = 20.0
POLL_S = 0.5
STEP_AT_S, STEP_MS = 5.0, 5.0
DELTA_S = 0.5
EVENTS = 120  # 6 s at 50 ms
CW = f"cw{round(DELTA_S * 1000)}"  # its trace series

SPEC: dict[str, Any] = {
    "name": "keys",
    "nodes": [
        {"name": "coordinator", "role": "coordinator", "discipline": "free"},
        # a disciplined host starts converged; its clock is stepped OFFSET_MS ahead at t0 for
        # its servo to slew away
        {"name": "D", "discipline": "disciplined"},
        {"name": "F", "discipline": "free"},
    ],
    "sources": ["system", "ntp", "truetime"],
    "workload": {"events": EVENTS, "interval_ms": 50.0},
    "run": {"warmup_s": 0, "drain_s": 0.3},
    "ntp": {"poll_s": POLL_S},
    "commit_wait": {"delays_s": [DELTA_S]},
    "faults": [
        {"kind": "clock_step", "node": "F", "at_s": STEP_AT_S, "delta_ms": STEP_MS},
        {"kind": "clock_step", "node": "D", "at_s": 0, "delta_ms": OFFSET_MS},
    ],
}

# Tolerances, and why the modes may differ by that much:
# - servo (D's local − truth at the same time since its first NTP sample): 100 µs. The servo
#   slews the 20 ms at its 500 ppm limit (500 µs of error per second), so what can differ is
#   when samples arrive and what they measure: a real poll comes ~1 ms later than the
#   simulated one (the burst and the wakeup), and a host busy with other tests can delay a poll
#   by tens of ms,
#   each 10 ms of accumulated lateness moving the error by ~5 µs; a sample's θ error is
#   µs on loopback in both. Measured on this host: ≤ 1 µs apart. A simulation that runs D
#   free (the bug of issue 15) is 1.9 ms off by the end (2.3 ms with the former 8 s).
SERVO_TOL_NS = 100_000
# - NTP sample spacing (median): 10 ms from poll_s in each mode. The next poll starts poll_s
#   after the previous burst ended; the burst (4 exchanges) takes ~0.2 ms, a real wakeup a
#   little more (measured: real 501.1 ms, simulated 500.5 ms).
POLL_TOL_NS = 10 * NS_PER_MS
# - commit-wait: a receipt is re-evaluated at the first pass of the commit-wait thread after
#   its local time + Δ; passes run every min(0.5 s, Δ/10) = 50 ms, so the age exceeds Δ by
#   less than that period, plus 50 ms in a real run for a pass delayed by a busy host.
CW_PERIOD_NS = round(min(0.5, max(CW_MIN_POLL_S, DELTA_S / 10)) * 1e9)  # the thread period
CW_REAL_SLACK_NS = 50 * NS_PER_MS


# The real run is repeated (up to twice) when its broadcast began too late to see F's step:
# the nodes start ~1 s after t0 on a quiet host, but a host busy with other tests has delayed
# them by more than STEP_AT_S − 1 s (twice in a row once, on a host ~1.8× slower than the one
# this test was written on, with a calibration running beside the suite), and a run whose
# receipts all follow the step cannot show it.
REAL_ATTEMPTS = 3


def _broadcast_starts_before_the_step(res: ResultsDir) -> bool:
    truth, _ = _errors(res, "F")
    return bool(truth.size) and int(truth[0]) < _t0(res) + round((STEP_AT_S - 1) * 1e9)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ResultsDir]:
    out = tmp_path_factory.mktemp("run-vs-sim")
    for attempt in range(REAL_ATTEMPTS):
        real = LocalLauncher(from_dict(SPEC), out / f"real{attempt}").run().results
        meta = json.loads(real.metadata_path.read_text())
        assert meta["status"] == "completed", meta
        if _broadcast_starts_before_the_step(real):
            break
    return {"run": real, "simulate": simulate(from_dict(SPEC), out / "sim")}


def _t0(res: ResultsDir) -> int:
    return int(json.loads(res.metadata_path.read_text())["t0_ns"])


def _errors(res: ResultsDir, node: str) -> tuple[np.ndarray, np.ndarray]:
    """(true time of each receipt, local − truth of the node's system clock), in order."""
    r = read_parts(res.node_dir(node), "events").sort_by("truth_ns")
    truth = r.column("truth_ns").to_numpy()
    return truth, r.column("local_ns").to_numpy() - truth


def _servo_curve(res: ResultsDir) -> tuple[np.ndarray, np.ndarray]:
    """D's (time since its first NTP sample, local − truth) at each receipt."""
    truth, err = _errors(res, "D")
    first = int(read_parts(res.node_dir("D"), "ntp").column("truth_t4_ns").to_numpy().min())
    return truth - first, err


def _servo_gap_ns(real: ResultsDir, sim: ResultsDir) -> float:
    """Largest |run − simulate| of D's error over the times both cover (simulate
    interpolated at the run's receipts)."""
    (tr, er), (ts, es) = _servo_curve(real), _servo_curve(sim)
    both = (tr >= max(tr[0], ts[0])) & (tr <= min(tr[-1], ts[-1]))
    assert both.sum() > 60  # of 120 receipts (the real and simulated first samples differ)
    return float(np.abs(er[both] - np.interp(tr[both], ts, es)).max())


def test_discipline(runs: dict[str, ResultsDir]) -> None:
    """D's system-clock error as a function of the time since its first NTP sample: the same
    servo slewing 20 ms away in both modes, within SERVO_TOL_NS."""
    for mode, res in runs.items():
        err = _servo_curve(res)[1]
        assert err[0] < round(OFFSET_MS * NS_PER_MS)
        assert err[0] - err[-1] > 1_500_000, f"{mode}: the servo removes > 1.5 ms in 6 s"
        assert (np.diff(err) <= 0).all(), f"{mode}: slewed toward 0, never stepped"
    gap = _servo_gap_ns(runs["run"], runs["simulate"])
    assert gap <= SERVO_TOL_NS, f"max |run − simulate| {gap} ns"


def test_discipline_check_fails_for_a_free_simulation(
    runs: dict[str, ResultsDir], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Companion: a simulator that ignores ``discipline`` (issue 15's bug: D runs free) is
    far outside the tolerance against the same real run."""
    import skewlab.clocks.node as clocks_node

    monkeypatch.setattr(clocks_node, "make_discipline", lambda _profile, **_params: None)
    free = simulate(from_dict(SPEC), tmp_path)
    assert _servo_gap_ns(runs["run"], free) > 10 * SERVO_TOL_NS


def test_ntp_poll_s(runs: dict[str, ResultsDir]) -> None:
    """Every node's NTP samples are poll_s apart (median) in both modes."""
    poll_ns = round(POLL_S * 1e9)
    for mode, res in runs.items():
        for node in ("coordinator", "D", "F"):
            t1 = np.sort(read_parts(res.node_dir(node), "ntp").column("truth_t1_ns").to_numpy())
            spacing = float(np.median(np.diff(t1)))
            assert abs(spacing - poll_ns) <= POLL_TOL_NS, f"{mode} {node}: {spacing} ns"


def test_clock_step_fault(runs: dict[str, ResultsDir]) -> None:
    """F's local − truth jumps by exactly +5 ms between the two receipts around t0 + 5 s, and
    is exactly 0 before and 5 ms after (a free, driftless clock), in both modes."""
    for mode, res in runs.items():
        truth, err = _errors(res, "F")
        at = _t0(res) + round(STEP_AT_S * 1e9)
        assert truth[0] < at < truth[-1], f"{mode}: the step falls inside the broadcast"
        assert set(err[truth < at]) == {0}, mode
        assert set(err[truth >= at]) == {round(STEP_MS * NS_PER_MS)}, mode
    # the nemesis's history says the same in both: D applied its step at t0, F at t0 + 5 s
    recs = {mode: sorted((r["actor"], r["fault"], r["kind"], r["target"], r["phase"],
                          r["truth_ns"] - _t0(res))
                         for r in load_faults(res.nemesis_dir).to_pylist())
            for mode, res in runs.items()}  # fmt: skip
    assert (
        recs["run"]
        == recs["simulate"]
        == [("D", 1, "clock_step", "D", "start", 0),
            ("F", 0, "clock_step", "F", "start", round(STEP_AT_S * 1e9))]
    ), recs  # fmt: skip


def test_commit_wait_delays(runs: dict[str, ResultsDir]) -> None:
    """One cw part series per effective Δ (0.5 s: not scaled), every receipt re-evaluated once,
    at an age of Δ to Δ + the thread's period (+ slack in a real run; + the step for ages
    across F's step, as age is local time), in both modes."""
    delta_ns = round(DELTA_S * 1e9)
    for mode, res in runs.items():
        for node in ("D", "F"):
            ndir = res.node_dir(node)
            series = {p.name.rsplit("-", 1)[0] for p in ndir.glob("cw*.parquet")}
            assert series == {CW}, f"{mode} {node}: {series}"
            cw = read_parts(ndir, CW)
            received = read_parts(ndir, "events").num_rows
            ids = cw.column("event_id").to_numpy()
            assert cw.num_rows == received == len(set(ids.tolist())), f"{mode} {node}"
            late = cw.column(f"{CW}_age_ns").to_numpy() - delta_ns
            slack = CW_REAL_SLACK_NS if mode == "run" else 0
            if node == "F":  # age is local time: F's step adds 5 ms to the ages across it
                slack += round(STEP_MS * NS_PER_MS)
            assert late.min() >= 0 and late.max() <= CW_PERIOD_NS + slack, (
                f"{mode} {node}: age − Δ in [{late.min()}, {late.max()}] ns"
            )


def test_results_are_comparable(runs: dict[str, ResultsDir]) -> None:
    """Both folders hold the same nodes and trace kinds (so the comparisons above are of like
    with like), and every event reached both workers."""
    kinds = {}
    for mode, res in runs.items():
        kinds[mode] = {
            (d.name, p.name.rsplit("-", 1)[0])
            for d in (res.root / "traces").iterdir()
            if d.is_dir() and not d.name.startswith("_")
            for p in d.glob("*.parquet")
        }
        for node in ("D", "F"):
            assert read_parts(res.node_dir(node), "events").num_rows == EVENTS, (mode, node)
    assert kinds["run"] == kinds["simulate"]
