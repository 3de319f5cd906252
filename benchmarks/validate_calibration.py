"""Calibration of ``skewlab validate``: repeated real runs of one configuration, each simulated
with the same spec, and what varies between them.

For every run (``--runs`` real runs with seeds 1..R, or ``--reuse`` existing real results
folders) the configuration is simulated with the same spec on the real run's host NTP path
(``sim.validate.simulate_like``, as ``skewlab validate`` does) and both are analysed; printed:

- the receive-side scheduling measured in the real traces (docs/SIMULATION.md): the earlier of
  the two workers' one-way delays, the C − B receipt gap (near 0, and its magnitude when not),
  the share of receipts stalled beyond 1 ms and their size — what ``sim.node.ReceiveScheduling``
  models;
- per source and validated metric: the real values over the runs (mean, sd, min, max), the
  simulated ones, and |sim − real|;
- the host allowances ``sim.validate.derive_allowances`` makes of the real runs (what
  ``sim.validate.ALLOWANCES`` records) and how many of the R real/sim pairs agree with them.

The last line is ``RESULT validate_calibration_pairs_agree <k>/<R> pairs``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from skewlab.analysis import analyze
from skewlab.spec import ExperimentSpec, from_dict, load
from skewlab.store import ResultsDir


def _delays_us(root: Path, coord: str, workers: list[str]) -> dict[str, np.ndarray]:
    s = pl.read_parquet(str(root / "traces" / coord / "events-*.parquet"))
    s = s.select("event_id", pl.col("truth_ns").alias("s"))
    out = {}
    for w in workers:
        r = pl.read_parquet(str(root / "traces" / w / "events-*.parquet"))
        r = r.select("event_id", "truth_ns").join(s, on="event_id").sort("event_id")
        out[w] = r
    ids = out[workers[0]].select("event_id")
    for w in workers[1:]:
        ids = ids.join(out[w].select("event_id"), on="event_id")
    return {
        w: (f.join(ids, on="event_id").sort("event_id").select(pl.col("truth_ns") - pl.col("s"))
            .to_series().to_numpy() / 1e3)
        for w, f in out.items()
    }  # fmt: skip


def scheduling(root: Path, spec: ExperimentSpec) -> dict[str, float]:
    """Receive-side scheduling of the first two workers, from a run's traces (µs)."""
    ws = [w.name for w in spec.workers][:2]
    d = _delays_us(root, spec.coordinator.name, ws)
    a, b = d[ws[0]], d[ws[1]]
    ok = (a < 1000) & (b < 1000)
    gap = (b - a)[ok]
    stalls = np.concatenate([a[a >= 1000], b[b >= 1000]])
    far = np.abs(gap[np.abs(gap) >= 100])
    ntp = pl.read_parquet(str(root / "traces" / ws[0] / "ntp-*.parquet"))
    theta_err = (ntp["offset_ns"] - (ntp["truth_t4_ns"] - ntp["t4_ns"])).to_numpy() / 1e3
    return {
        "first_mean_us": float(np.minimum(a, b)[ok].mean()),
        "first_std_us": float(np.minimum(a, b)[ok].std()),
        "near0_frac": float((np.abs(gap) < 100).mean()),
        "first_sent_first_frac": float((gap[np.abs(gap) >= 100] > 0).mean()),
        "slot_median_us": float(np.median(far)) if far.size else math.nan,
        "slot_std_us": float(far.std()) if far.size else math.nan,
        "stall_frac": stalls.size / (2 * a.size),
        "stall_median_us": float(np.median(stalls)) if stalls.size else math.nan,
        "stall_mean_us": float(stalls.mean()) if stalls.size else math.nan,
        "stall_std_us": float(stalls.std()) if stalls.size else math.nan,
        "ntp_theta_err_median_us": float(np.median(theta_err)),
        "ntp_delay_median_us": float(ntp["delay_ns"].median()) / 1e3,  # type: ignore[operator]
    }


def main() -> None:
    from skewlab.deploy.local import LocalLauncher
    from skewlab.sim.validate import compare, derive_allowances, headline_values, simulate_like

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("experiment", nargs="?", type=Path, help="experiment file (default: built-in)")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--reuse", type=Path, nargs="*", default=[], help="real results folders")
    ap.add_argument("-o", "--out", type=Path, help="keep the results here")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="skewlab-calib-"))
    reals: list[Path] = list(a.reuse)
    if not reals:
        for seed in range(1, a.runs + 1):
            spec = load(a.experiment) if a.experiment else from_dict({})
            spec = spec.model_copy(update={"seed": seed})
            spec.workload.events = a.events
            reals.append(LocalLauncher(spec, out / "real").run().results.root)
            print(f"real run {seed}: {reals[-1]}", flush=True)
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    sched = []
    for r in reals:
        spec = ExperimentSpec.model_validate_json((r / "spec.json").read_text())
        real = analyze(ResultsDir(r), make_figures=False)
        sim_res, factors = simulate_like(spec, ResultsDir(r), out / "sim")
        sim = analyze(sim_res, make_figures=False)
        pairs.append((real, sim))
        sched.append(
            {
                **scheduling(r, spec),
                "ntp_path_request_factor": factors.get("request", math.nan),
                "ntp_path_reply_factor": factors.get("reply", math.nan),
            }
        )
    print("\nreceive-side scheduling and NTP samples in the real runs (µs):")
    for k in sched[0]:
        v = np.array([s[k] for s in sched])
        print(f"  {k:<16} median {np.nanmedian(v):9.3f}  min {np.nanmin(v):9.3f}  "
              f"max {np.nanmax(v):9.3f}")  # fmt: skip
    hr = [headline_values(p[0]) for p in pairs]
    hs = [headline_values(p[1]) for p in pairs]
    print("\nper source and metric: real over the runs, simulated, |sim − real|")
    print(f"  {'source':<11} {'metric':<25} {'real mean':>11} {'sd':>10} {'min':>10} "
          f"{'max':>10} {'sim mean':>11} {'max |d|':>10}")  # fmt: skip
    for s in hr[0]:
        for m in hr[0][s]:
            rv = [h[s][m].value for h in hr if h[s][m].value is not None]
            sv = [h[s][m].value for h in hs if h.get(s, {}).get(m) and h[s][m].value is not None]
            if not rv or not sv:
                continue
            d = [abs(x.value - y.value) for x, y in  # type: ignore[operator]
                 ((h1[s][m], h2[s][m]) for h1, h2 in zip(hr, hs, strict=True))
                 if x.value is not None and y.value is not None]  # fmt: skip
            print(f"  {s:<11} {m:<25} {np.mean(rv):11.5g} {np.std(rv):10.3g} {min(rv):10.5g} "
                  f"{max(rv):10.5g} {np.mean(sv):11.5g} {max(d):10.3g}")  # fmt: skip
    allow = derive_allowances([p[0] for p in pairs])
    print("\nallowances derived from the real runs (sim/validate.py ALLOWANCES):")
    print(json.dumps(allow, indent=2))
    agree = 0
    for real, sim in pairs:
        rep = compare(real, sim, allow)
        agree += rep["agree"]
        bad = [f"{r['source']}.{r['metric']}" for r in rep["rows"] if not r["ok"]]
        worst = max((abs(r["sim"] - r["real"]) / r["tolerance"] for r in rep["rows"]
                     if r["ok"] and r["kind"] in ("rate", "promise") and r["tolerance"]),
                    default=0.0)  # fmt: skip
        print("  pair:", "agree" if rep["agree"] else f"DISAGREE {bad}",
              f"(largest rate |d| / tolerance {worst:.2f})")  # fmt: skip
    print(f"results: {out}")
    print(f"RESULT validate_calibration_pairs_agree {agree}/{len(pairs)} pairs")


if __name__ == "__main__":
    main()
