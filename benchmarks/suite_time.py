"""Wall time of the whole test suite, with what the host did meanwhile.

Runs the README's test command (``python -m pytest``, pyproject.toml's options: three xdist
processes) ``--runs`` times from the repository root and prints, per run: wall seconds, the CPU
seconds of pytest and every process it waited for (user + system), and the machine's shares of
busy, idle and steal time from /proc/stat over the run. The suite is CPU-bound on two cores, so
its wall time follows the CPU the same work costs, and that moves with the host: on this
machine, on one day, identical commits took 185 CPU-s (127 s of wall) and 330 CPU-s (219 s),
with up to 17 % steal. A wall time is only comparable with another measured under a similar
steal and CPU cost: compare commits back to back, or use ``--runs`` > 1 and the medians.

``--fresh`` removes the repository's bytecode caches before each run (what a fresh clone
starts from). The target (issue 15) is 180 s.

Usage: python benchmarks/suite_time.py [--runs 1] [--fresh] [-- extra pytest arguments]

Last line: ``RESULT suite_wall_median <seconds> s``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_times() -> list[int]:
    """The machine's cumulative CPU times (USER_HZ ticks) from /proc/stat's first line."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def _shares(before: list[int], after: list[int]) -> tuple[float, float, float]:
    """(busy, idle, steal) shares of the machine between two /proc/stat readings."""
    d = [b - a for a, b in zip(before, after, strict=False)]
    total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle, steal = d[3] + d[4], d[7] if len(d) > 7 else 0
    return (total - idle - steal) / total, idle / total, steal / total


def _drop_caches() -> None:
    for top in ("src", "tests", "benchmarks"):
        for d in (ROOT / top).rglob("__pycache__"):
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--fresh", action="store_true", help="remove bytecode caches before each run")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    a = ap.parse_args()
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    walls = []
    for i in range(a.runs):
        if a.fresh:
            _drop_caches()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *a.pytest_args]
        r0, s0, t0 = os.times(), _cpu_times(), time.monotonic()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)  # fmt: skip
        wall, r1, s1 = time.monotonic() - t0, os.times(), _cpu_times()
        cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
        busy, idle, steal = _shares(s0, s1)
        last = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"run {i + 1}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s, machine busy {busy:4.0%} "
              f"idle {idle:4.0%} steal {steal:4.0%}, exit {p.returncode}: {last}",
              flush=True)  # fmt: skip
        if p.returncode != 0:
            sys.stdout.write(p.stdout[-12000:])
            raise SystemExit(f"the suite failed (exit {p.returncode}): not a timing")
        walls.append(wall)
    print(f"RESULT suite_wall_median {statistics.median(walls):.1f} s")


if __name__ == "__main__":
    main()
