"""CPU of one figure set: every analysis figure (PNG at 300 DPI and SVG) of one run.

A run of the default experiment is simulated (``--events``, default 2,000: the two figures that
plot traces downsample to at most 20,000 points, so the set costs about the same for longer
runs), analysed once without figures, then ``figures.make_all`` draws the set ``--repeat`` times
in this process (the first, which loads fonts, is not counted). Prints each figure's CPU seconds
(median over the repeats) and the set's; every ``skewlab run`` and ``analyze`` pays one set.

    .venv/bin/python benchmarks/figure_speed.py [--events N] [--repeat 3]

Last line: ``RESULT figure_set_cpu <seconds> s`` (median CPU-s of the whole set).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _PerFigure:
    """make_all's progress callback: ``figures k/n: name`` arrives before each figure, so the
    CPU between two calls is the previous figure's."""

    def __init__(self, per: dict[str, list[float]]) -> None:
        self.per = per
        self.start = self.mark = _cpu()
        self.name = ""

    def __call__(self, line: str) -> None:
        self._close()
        self.name = line.split(": ", 1)[1]

    def _close(self) -> None:
        now = _cpu()
        if self.name:
            self.per[self.name].append(now - self.mark)
        self.mark = now

    def finish(self) -> float:
        self._close()
        return self.mark - self.start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from skewlab.analysis import figures
    from skewlab.analysis.load import load
    from skewlab.analysis.run import compute
    from skewlab.sim.simulate import simulate
    from skewlab.spec import ExperimentSpec, from_dict

    with tempfile.TemporaryDirectory() as tmp:
        data = ExperimentSpec().model_dump(mode="json")
        data["workload"] = {**data["workload"], "events": a.events}
        res = simulate(from_dict(data), Path(tmp) / "out")
        traces = load(res)
        stats = compute(traces)
        figures.make_all(traces, stats, Path(tmp) / "warm")  # fonts, caches
        per: dict[str, list[float]] = {name: [] for name in figures.FIGURES}
        sets: list[float] = []
        for k in range(a.repeat):
            clock = _PerFigure(per)
            figures.make_all(traces, stats, Path(tmp) / f"set{k}", clock)
            sets.append(clock.finish())
    for name, xs in per.items():
        print(f"{name:24s} {statistics.median(xs):6.3f} CPU-s")
    med = statistics.median(sets)
    print(f"figure set ({len(figures.FIGURES)} figures, PNG + SVG): {med:.2f} CPU-s "
          f"(runs: {', '.join(f'{s:.2f}' for s in sets)})")  # fmt: skip
    print(f"RESULT figure_set_cpu {med:.2f} s")


if __name__ == "__main__":
    main()
