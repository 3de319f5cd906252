"""Validation mode: a small experiment run in real time (local launcher, loopback) and in
simulation; the headline metrics agree within the tolerances derived from repeated real runs
(sim/validate.py). That validation can fail: tests/unit/test_validate.py; how often the
default passes: benchmarks/validate_passes.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from skewlab.sim.validate import METRICS, format_comparison, validate
from skewlab.spec import from_dict


def test_real_and_simulated_runs_agree(tmp_path: Path) -> None:
    """The default configuration, as its tolerances were calibrated (300 events, ~10 s of
    events): a shorter run is another configuration, whose spread was not measured.

    Validated at most twice: the default passes about 9 validations in 10 on this host under
    the suite's load (``benchmarks/validate_passes.py``, 9/10 on 2026-12-01; the failures are
    the ordering rate of a heavily loaded real run), so one disagreement alone is a one-in-ten
    event, two in a row one in a hundred; a wrong simulation disagrees every time
    (tests/unit/test_validate.py breaks one metric at a time and each is flagged)."""
    spec = from_dict({})
    texts = []
    for attempt in range(2):
        report = validate(spec, tmp_path / f"attempt{attempt}")
        texts.append(format_comparison(report))
        metrics = {r["metric"] for r in report["rows"]}
        assert metrics == set(METRICS)  # every stated metric was compared
        assert all(r["real"] is not None and r["sim"] is not None for r in report["rows"])
        assert "request" in report["ntp_path"], report["ntp_path"]  # the host's path was used
        if report["agree"]:
            return
    pytest.fail("two validations in a row disagree:\n" + "\n\n".join(texts))
