"""Measured truth on this host: the default experiment (`skewlab run`, emulated clocks) with truth
probes on, under each network profile for every path (loopback, lan, datacenter, wan).

Per profile: the truth half-width over every receipt and send (median, p99, nearest rank), the
exchanges' median δ, the share of receipts whose truth interval contains the exact truth (must
be 1), and the fraction of decisions measured truth leaves undecided — causality (is the receipt
after its send?) and the estimates' window assignment at each window size, pooled over sources
(docs/METHODOLOGY.md, "Measured truth"). Final line: the loopback median half-width.

Usage: python benchmarks/measured_truth.py [--events N] [--profiles loopback,lan,...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from skewlab.analysis.truth import Exchanges, node_intervals, ppb_of, segments
from skewlab.trace import TRUTH_PREFIX, part_files

PROFILES = ("loopback", "lan", "datacenter", "wan")


def run(profile: str, events: int, out: Path) -> Path:
    cfg = out / f"{profile}.toml"
    cfg.write_text(f'name = "mt-{profile}"\n[truth]\nmeasured = true\n')
    cmd = [sys.executable, "-m", "skewlab", "run", "-c", str(cfg), "-n", str(events),
           "--network", profile, "-o", str(out / profile), "--no-figures", "-q"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"{profile}: skewlab run failed: {r.stderr.strip()[-500:]}")
    (d,) = [p for p in (out / profile).iterdir() if p.is_dir()]
    return d


def half_widths(res: Path, nodes: list[str], ppm: float) -> tuple[np.ndarray, float]:
    """Every receipt's and send's truth half-width (ns), recomputed from the traces, and the
    share of them whose interval contains the exact truth."""
    hws, inside, total = [], 0, 0
    for n in nodes:
        d = res / "traces" / n
        t = pl.read_parquet([str(f) for f in part_files(d, TRUTH_PREFIX)])
        ex = Exchanges(*[t.get_column(c).to_numpy() for c in (
            "t1_ns", "t2_ns", "t3_ns", "t4_ns", "step_gap_t1_ns", "step_gap_t4_ns",
            "step_gap_unc_ns")])  # fmt: skip
        ev = pl.read_parquet([str(f) for f in part_files(d, "events")])
        seg = segments(ex, ppb_of(ppm))
        lo, hi, ok, _ = node_intervals(ev.get_column("local_ns").to_numpy(), seg, ppb_of(ppm))
        tr = ev.get_column("truth_ns").to_numpy()
        hws.append((hi[ok] - lo[ok]) / 2)
        inside += int((ok & (lo <= tr) & (tr <= hi)).sum())
        total += tr.size
    return np.concatenate(hws), inside / total if total else float("nan")


def nearest_rank(x: np.ndarray, q: float) -> float:
    s = np.sort(x)
    return float(s[max(0, int(np.ceil(q * s.size)) - 1)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300, help="events per run (default 300)")
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--keep", action="store_true", help="keep the results folders")
    args = ap.parse_args()
    profiles = [p for p in args.profiles.split(",") if p]
    tmp = Path(tempfile.mkdtemp(prefix="skewlab-mt-"))
    med_loopback = None
    print(f"{'profile':<11} {'δ p50 µs':>9} {'hw p50 µs':>10} {'hw p99 µs':>10} {'inside':>7} "
          f"{'causality undecided':>20}  window undecided (est., pooled over sources)")  # fmt: skip
    for prof in profiles:
        res = run(prof, args.events, tmp)
        stats = json.loads((res / "stats.json").read_text())
        mt = stats["measured_truth"]
        nodes = list(mt["nodes"])
        hw, inside = half_widths(res, nodes, mt["max_drift_ppm"])
        delays = [mt["nodes"][n]["delay_ns"]["p50_ns"] for n in nodes]
        ct = mt["causality_truth"]
        und: dict[str, list[int]] = {}
        for src in mt["sources"].values():
            for size, w in src["windows"].items():
                u = und.setdefault(size, [0, 0])
                u[0] += w["point"]["undecided"]
                u[1] += w["point"]["claims"]
        wins = "  ".join(f"{s} ms {k / n:.2%}" for s, (k, n) in und.items() if n)
        p50, p99 = nearest_rank(hw, 0.5) / 1e3, nearest_rank(hw, 0.99) / 1e3
        print(f"{prof:<11} {float(np.median(delays)) / 1e3:9.1f} {p50:10.1f} {p99:10.1f} "
              f"{inside:7.2%} {ct['undecided'] / ct['claims']:20.2%}  {wins}")  # fmt: skip
        for n in nodes:
            print(f"  {n}: {mt['nodes'][n]['decided_by']}")
        if prof == "loopback":
            med_loopback = p50
    if args.keep:
        print(f"results kept in {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    if med_loopback is not None:
        print(f"RESULT measured_truth_halfwidth_us_loopback {med_loopback:.1f} us")


if __name__ == "__main__":
    main()
