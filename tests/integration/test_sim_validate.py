"""Validation mode: a small experiment run in real time (local launcher, loopback) and in
simulation; the headline metrics agree within the tolerances derived from repeated real runs
(sim/validate.py). That validation can fail: tests/unit/test_validate.py; how often the
default passes: benchmarks/validate_passes.py."""

from __future__ import annotations

from pathlib import Path

from skewlab.sim.validate import METRICS, format_comparison, validate
from skewlab.spec import from_dict


def test_real_and_simulated_runs_agree(tmp_path: Path) -> None:
    """The default configuration, as its tolerances were calibrated (300 events, ~10 s of
    events): a shorter run is another configuration, whose spread was not measured."""
    spec = from_dict({})
    report = validate(spec, tmp_path)
    text = format_comparison(report)
    metrics = {r["metric"] for r in report["rows"]}
    assert metrics == set(METRICS)  # every stated metric was compared
    assert all(r["real"] is not None and r["sim"] is not None for r in report["rows"])
    assert report["agree"], text
