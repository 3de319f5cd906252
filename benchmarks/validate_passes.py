"""How often ``skewlab validate`` passes on a configuration (default: the built-in experiment):
``--runs`` validations (real run + simulation each, seeds ``--first-seed``..+R−1), and which
metrics failed.

The runs are independent trials (fresh processes, seeds, the host as it is), so the pass rate's
95 % interval is Wilson's (the one place skewlab uses it: docs/METHODOLOGY.md, "Statistics").
The acceptance of issue 17: the default passes in at least 9 of 10. The last line is
``RESULT validate_passes <k>/<R> runs``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from skewlab.analysis.stats_util import wilson
from skewlab.sim.validate import format_comparison, validate
from skewlab.spec import from_dict, load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("experiment", nargs="?", type=Path, help="experiment file (default: built-in)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds first..first+runs-1")
    ap.add_argument("-o", "--out", type=Path, help="keep the results here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every comparison")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="skewlab-validate-"))
    passed = 0
    margins: list[float] = []
    for seed in range(a.first_seed, a.first_seed + a.runs):
        spec = load(a.experiment) if a.experiment else from_dict({})
        spec = spec.model_copy(update={"seed": seed})
        report = validate(spec, out / f"seed{seed}")
        passed += report["agree"]
        bad = [f"{r['source']}.{r['metric']} real {r['real']:.4g} sim {r['sim']:.4g}"
               for r in report["rows"] if not r["ok"] and r["real"] is not None
               and r["sim"] is not None]  # fmt: skip
        worst = max(
            (abs(r["sim"] - r["real"]) / r["tolerance"] for r in report["rows"]
             if r["kind"] in ("rate", "promise") and r["tolerance"]),
            default=0.0,
        )  # fmt: skip
        margins.append(worst)
        verdict = "agree" if report["agree"] else "DISAGREE"
        print(f"seed {seed}: {verdict}  largest rate |d|/tolerance {worst:.2f}  "
              f"{'; '.join(bad)}", flush=True)  # fmt: skip
        if a.verbose:
            print(format_comparison(report))
    lo, hi = wilson(passed, a.runs) or (0.0, 1.0)
    print(f"passed {passed}/{a.runs}; pass rate 95% interval (Wilson, independent runs) "
          f"[{lo:.2f}, {hi:.2f}]; results: {out}")  # fmt: skip
    print(f"RESULT validate_passes {passed}/{a.runs} runs")


if __name__ == "__main__":
    main()
