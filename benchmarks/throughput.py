"""Highest event rate one coordinator and two workers sustain on loopback with zero loss.

Steps the rate up (each step a full ``skewlab`` run through the local launcher, all default
sources on, ``--duration`` seconds of events), then bisects between the last lossless rate and
the first failing one. A rate passes when both workers lost nothing (exact accounting from the
nodes' own counts) and the coordinator achieved at least 97 % of the rate.

Steady state, not a cold start: before the events start, every run lets the nodes synchronize
for ``--settle`` seconds (run.warmup_s, default 70 s: the skewlab estimator's 64-sample window is
full at the default 1 s poll), so the commit-wait re-evaluation costs what it costs in a long
run. ``--settle 1`` measures the cold start (a near-empty register is cheaper to evaluate).
Prints per-rate loss, CPU of each node during the sending phase, the coordinator's pacing
error, and the worker's per-packet cost (receive → row buffered) median and p99.

Event authentication (``run.hmac_key``): ``--auth both`` (default) searches once with the
default per-run HMAC-SHA256 key on every event and once with ``run.hmac_key = false``, and
prints both lossless rates; ``--auth on`` / ``--auth off`` searches one mode only.

``--ab RATE`` instead runs ``--pairs`` interleaved pairs (auth on, auth off) at one fixed rate
and prints, per mode, how many runs were lossless and on pace and the median CPU per event of
the coordinator and of each worker: on a machine shared with other work, the interleaving
spreads the others' load over both modes, and CPU per event is steadier than a pass/fail rate.

Last line: ``RESULT max_lossless_rate <events/s> events/s`` — with authentication (the
default configuration) unless ``--auth off``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from skewlab.deploy.local import LaunchError, LocalLauncher
from skewlab.spec import ExperimentSpec, from_dict

WORKERS = ("B", "C")


def make_spec(
    rate: float,
    duration_s: float,
    sources: list[str] | None,
    commit_wait: bool = True,
    settle_s: float = 70.0,
    auth: bool = True,
) -> ExperimentSpec:
    base = ExperimentSpec()
    data = json.loads(base.to_json())
    data.update(
        name="throughput",
        workload={"events": max(1, round(rate * duration_s)), "interval_ms": 1000.0 / rate},
        run={**data["run"], "warmup_s": settle_s, "drain_s": 1.0, "hmac_key": auth},
    )
    if sources:
        data["sources"] = sources
    if not commit_wait:
        data["commit_wait"] = {**data["commit_wait"], "delays_s": []}
    return from_dict(data)


def run_rate(
    rate: float,
    duration_s: float,
    sources: list[str] | None,
    out: Path,
    cw: bool = True,
    settle_s: float = 70.0,
    auth: bool = True,
) -> dict:
    spec = make_spec(rate, duration_s, sources, cw, settle_s, auth)
    load0 = os.getloadavg()[0]
    try:
        outcome = LocalLauncher(spec, out).run()
    except LaunchError as e:
        return {"rate": rate, "ok": False, "error": str(e)}
    meta = json.loads(outcome.results.metadata_path.read_text())
    nodes = {n: v.get("counts") or {} for n, v in meta["nodes"].items()}
    coord = nodes[spec.coordinator.name]
    acc = meta["accounting"]
    lost = sum(acc[w]["lost"] for w in WORKERS)
    achieved = coord.get("achieved_rate_per_s") or 0.0
    elapsed = coord.get("elapsed_s") or 0.0
    r = {
        "rate": rate,
        "auth": auth,
        "load1": (load0, os.getloadavg()[0]),  # 1-min load average before / after the run
        "sources": spec.sources,
        "achieved": achieved,
        "lost": lost,
        "lost_by_worker": {w: acc[w]["lost"] for w in WORKERS},
        "sent": coord.get("sent"),
        "elapsed_s": elapsed,
        "cpu_pct": {
            n: round(100 * c.get("cpu_run_s", 0.0) / elapsed, 1) if elapsed else None
            for n, c in nodes.items()
            if n != "ntp-server"
        },
        "pacing_p99_us": (coord.get("pacing_error_p99_ns") or 0) / 1e3,
        "cost_median_us": {w: (nodes[w].get("cost_median_ns") or 0) / 1e3 for w in WORKERS},
        "cost_p99_us": {w: (nodes[w].get("cost_p99_ns") or 0) / 1e3 for w in WORKERS},
        # CPU per event of each worker over its whole receive phase (receive loop, trace
        # writes, commit-wait thread)
        "cpu_per_event_us": {
            w: round(1e6 * nodes[w].get("cpu_run_s", 0.0) / max(1, coord.get("sent") or 1), 1)
            for w in (*WORKERS, spec.coordinator.name)
        },
    }
    r["ok"] = lost == 0 and achieved >= 0.97 * rate
    return r


def show(r: dict) -> None:
    if "error" in r:
        print(f"rate {r['rate']:>9,.0f}/s  FAILED: {r['error'][:300]}", flush=True)
        return
    cpu = "  ".join(f"{n} {v:5.1f}%" for n, v in r["cpu_pct"].items())
    med = " ".join(f"{v:.1f}" for v in r["cost_median_us"].values())
    p99 = " ".join(f"{v:.1f}" for v in r["cost_p99_us"].values())
    print(
        f"auth {'on ' if r['auth'] else 'off'}  "
        f"rate {r['rate']:>9,.0f}/s  achieved {r['achieved']:>9,.0f}/s  lost {r['lost']:>6}"
        f"  {'ok  ' if r['ok'] else 'FAIL'}  cpu: {cpu}  pacing p99 {r['pacing_p99_us']:.0f} us"
        f"  worker cost median {med} us, p99 {p99} us"
        f"  CPU/event {' '.join(f'{n} {v}' for n, v in r['cpu_per_event_us'].items())} us"
        f"  load {r['load1'][0]:.1f}->{r['load1'][1]:.1f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of events per rate")
    ap.add_argument(
        "--settle", type=float, default=70.0, help="seconds of NTP sync before events (warmup)"
    )
    ap.add_argument("--start", type=float, default=5000.0, help="first rate, events/s")
    ap.add_argument("--factor", type=float, default=1.5, help="step-up factor")
    ap.add_argument("--max-rate", type=float, default=200_000.0)
    ap.add_argument("--bisect", type=int, default=3, help="bisection steps after a failure")
    ap.add_argument("--sources", help="comma list (default: the experiment's default sources)")
    ap.add_argument(
        "--no-commit-wait", action="store_true", help="diagnostic: no T+Δ re-evaluation pass"
    )
    ap.add_argument(
        "--auth", choices=["both", "on", "off"], default="both",
        help="event authentication (run.hmac_key): search with it, without it, or both",
    )  # fmt: skip
    ap.add_argument("--ab", type=float, help="interleaved auth on/off pairs at this rate")
    ap.add_argument("--pairs", type=int, default=3, help="with --ab: number of pairs")
    a = ap.parse_args()
    sources = a.sources.split(",") if a.sources else None
    cw = not a.no_commit_wait
    print(
        f"sources: {make_spec(1000, 1, sources).sources}; {a.duration:g} s per rate "
        f"after {a.settle:g} s of sync; "
        f"commit-wait {'on' if cw else 'OFF'}; load average {os.getloadavg()[0]:.2f}"
    )
    if a.ab:
        ab(a, sources, cw)
        return
    modes = {"both": [True, False], "on": [True], "off": [False]}[a.auth]
    found: dict[bool, float] = {}
    with tempfile.TemporaryDirectory(prefix="skewlab-throughput-") as tmp:
        for auth in modes:
            print(f"-- event authentication {'ON (per-run HMAC-SHA256 key)' if auth else 'OFF'}")
            found[auth] = search(a, sources, Path(tmp), cw, auth)
    for auth in modes:
        label = "with" if auth else "without"
        print(f"max lossless rate {label} event authentication: {found[auth]:,.0f} events/s")
    print(f"RESULT max_lossless_rate {found[modes[0]]:.0f} events/s")


def ab(a: argparse.Namespace, sources: list[str] | None, cw: bool) -> None:
    """Interleaved pairs at one rate; per mode: runs passed, median CPU per event per node."""
    import statistics

    runs: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="skewlab-throughput-") as tmp:
        for _ in range(a.pairs):
            for auth in (True, False):
                r = run_rate(a.ab, a.duration, sources, Path(tmp), cw, a.settle, auth)
                show(r)
                runs[auth].append(r)
    for auth in (True, False):
        rs = [r for r in runs[auth] if "error" not in r]
        ok = sum(r["ok"] for r in rs)
        nodes = rs[0]["cpu_per_event_us"] if rs else {}
        cpu = "  ".join(
            f"{n} {statistics.median(r['cpu_per_event_us'][n] for r in rs):.1f}" for n in nodes
        )
        print(f"auth {'on ' if auth else 'off'} at {a.ab:,.0f}/s: lossless and on pace in "
              f"{ok}/{len(runs[auth])} runs; median CPU/event (us): {cpu}")  # fmt: skip
    ok_on = sum(r.get("ok", False) for r in runs[True])
    print(f"RESULT ab_auth_on_passed {ok_on} runs")


def search(a: argparse.Namespace, sources: list[str] | None, out: Path, cw: bool,
           auth: bool) -> float:  # fmt: skip
    """Step the rate up, then bisect; the highest lossless rate found."""
    results: list[dict] = []
    good, bad = 0.0, None
    rate = a.start
    while rate <= a.max_rate:
        r = run_rate(rate, a.duration, sources, out, cw, a.settle, auth)
        show(r)
        results.append(r)
        if not r["ok"]:
            bad = rate
            break
        good = rate
        rate = round(rate * a.factor)
    for _ in range(a.bisect if bad is not None else 0):
        mid = round((good + bad) / 2, -2)
        if mid <= good or mid >= bad:
            break
        r = run_rate(mid, a.duration, sources, out, cw, a.settle, auth)
        show(r)
        results.append(r)
        if r["ok"]:
            good = mid
        else:
            bad = mid
    best = next((r for r in results if r["rate"] == good and r.get("ok")), None)
    if best is not None:
        for w in WORKERS:
            print(
                f"worker {w} per-packet cost at {good:,.0f}/s (receive → row buffered): "
                f"median {best['cost_median_us'][w]:.2f} us, p99 {best['cost_p99_us'][w]:.2f} us"
            )
    return good


if __name__ == "__main__":
    main()
