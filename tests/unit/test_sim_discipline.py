"""Clock discipline: NodeSpec.discipline = "disciplined" slews a worker's system clock toward
NTP; a "free" worker keeps its error. Errors come from the receipts trace (local_ns − truth_ns
at every receipt).

Run in virtual time (``skewlab simulate`` runs the node's own servo, ``clocks/discipline.py``,
on the same samples as a node process). The same servo in a real run, and its agreement with
the simulation within 100 µs, is tests/integration/test_run_vs_simulate_keys.py
(``test_discipline``: a real disciplined worker slews 20 ms away, monotonically, never
stepping; ``test_clock_step_fault``: a real free worker keeps its error exactly).
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from skewlab.sim.simulate import simulate
from skewlab.spec import SpecError, from_dict
from skewlab.trace import load_receipts, read_parts

OFFSET_MS = 20.0  # both workers start 20 ms ahead; neither drifts


def _spec() -> object:
    return from_dict(
        {
            "name": "discipline",
            "nodes": [
                {"name": "coordinator", "role": "coordinator"},
                # a disciplined host starts converged (its system clock reads true time at t0),
                # so D's 20 ms is a step of its system clock at t0, for its servo to slew away
                {"name": "D", "discipline": "disciplined"},
                {"name": "F", "offset_ms": OFFSET_MS, "discipline": "free"},
            ],
            "faults": [{"kind": "clock_step", "node": "D", "at_s": 0, "delta_ms": OFFSET_MS}],
            "sources": ["system", "ntp", "skewlab"],
            "workload": {"events": 120, "interval_ms": 25.0},
            "run": {"warmup_s": 0.5, "drain_s": 0.3},
            "ntp": {"poll_s": 0.5},
            "commit_wait": {"delays_s": [0.2]},
        }
    )


def test_unknown_discipline_profile_is_rejected() -> None:
    nodes = [{"name": "c", "role": "coordinator"}, {"name": "B", "discipline": "ntpd"},
             {"name": "C"}]  # fmt: skip
    with pytest.raises(SpecError, match=r"nodes\[1\]\.discipline"):
        from_dict({"nodes": nodes})
    default = from_dict({"nodes": [nodes[0], {"name": "B"}, {"name": "C"}]})
    assert default.nodes[1].discipline == "disciplined"  # realistic hosts by default


def test_disciplined_worker_error_shrinks_free_one_does_not(tmp_path: Path) -> None:
    spec = _spec()
    res = simulate(spec, tmp_path)
    assert json.loads(res.metadata_path.read_text())["status"] == "completed"
    shrink = {}
    for name in ("D", "F"):
        rec = load_receipts(res.node_dir(name), spec.sources).sort_by("truth_ns")
        local, truth = rec.column("local_ns").to_pylist(), rec.column("truth_ns").to_pylist()
        err = [loc - t for loc, t in zip(local, truth, strict=True)]
        assert len(err) > 50
        shrink[name] = abs(err[0]) - abs(err[-1])
        if name == "F":
            # a free, driftless oscillator: the error is its offset at every receipt
            assert set(err) == {round(OFFSET_MS * 1_000_000)}
        else:
            # slewed, never stepped: the error moves toward 0 without jumping past it
            assert all(e > 0 for e in err)
            assert all(b <= a for a, b in pairwise(err))
            # the node's own NTP measurements see the same: |θ| decreases
            theta = read_parts(res.node_dir(name), "ntp").column("offset_ns").to_pylist()
            assert abs(theta[-1]) < abs(theta[0])
        counts = json.loads(res.node_counts_path(name).read_text())
        assert counts["commit_wait_errors"] == 0
    assert shrink["F"] == 0
    assert shrink["D"] > 0
