"""Shared fixtures and the rule for tests that need a real component.

``require_command(name)`` skips with the reason when the component is missing, except when
CI=true: then the test fails, because CI must run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Bytecode caches are written during the suite even when PYTHONDONTWRITEBYTECODE is set (as it
# is on this project's machines). The suite starts ~300 Python processes (nodes, commands,
# Slurm tasks); without a cache each one compiled all of skewlab's modules again (~0.2 CPU-s
# per process), and each xdist process rewrote every test module's asserts (~3 CPU-s): ~20 %
# of the suite's CPU on a fresh clone. The caches go where Python puts them by default
# (`__pycache__/`, git-ignored); the subprocesses inherit the setting through the environment.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def require_command(name: str, why: str = "") -> str:
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )
    if path is None:
        msg = f"{name} is not installed{': ' + why if why else ''}"
        if IN_CI:
            pytest.fail(f"{msg} (CI=true: this test must run; .ci/run should install it)")
        pytest.skip(msg)
    return path


def skewlab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "skewlab", *args]


def run_skewlab(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        skewlab_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kw,
    )


@pytest.fixture(scope="session")
def default_style_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``skewlab run`` of tests/e2e/test_run.py's CONFIG (60 events; analysis, figures and
    report on), once per session: (the finished process, its --out folder). The e2e test
    checks it against its own traces; test_report_html.py opens its report.html."""
    from tests.e2e.test_run import CONFIG

    tmp = tmp_path_factory.mktemp("default-style-run")
    cfg = tmp / "exp.toml"
    cfg.write_text(CONFIG)
    out = tmp / "results"
    p = run_skewlab("run", "--config", str(cfg), "--out", str(out), "--events", "60", "-q")
    return p, out


# How the xdist processes share the files (`-n 3 --dist loadfile`, pyproject.toml): one file at a
# time to a free process, so a module's fixtures are made once. Three processes on two cores,
# because many files spend their time waiting on real processes (Slurm, sshd, Flink, real runs)
# and a third process fills those waits: on a fresh clone 182 s against 191 s with two. Two
# changes to xdist's own order, which hands out the files with the most tests first and left the
# few-test, long files (a real Slurm, sshd or Flink, a validation run) to the end, where the
# other processes idle:
# - FIRST: these files go first, longest first (seconds measured on 2 busy cores, Dec 2026), so
#   the many short unit files fill the end; every other file follows in collection order.
# - SAME_PROCESS: files that use one session fixture run in one process, so it is made once
#   (a session fixture is per process: default_style_run, a real run with figures, was made
#   twice); likewise files that share a costly import.
# Only the order and the grouping change; every test runs as before.
FIRST = (
    "tests/integration/test_sweep_slurm.py",  # 71-96 s
    "tests/e2e/test_first_hour.py",  # 80-110 s, with test_run.py and test_report_html.py
    "tests/integration/test_deploy_ssh.py",  # 45-51 s
    "tests/integration/test_flink_oracle.py",  # 27-30 s (40 s with a Python worker)
    "tests/integration/test_interrupts.py",  # 15-35 s
    "tests/integration/test_zero_receipts.py",  # 21-23 s
    "tests/integration/test_sim_validate.py",  # 21 s
    "tests/integration/test_sweep.py",  # 18-23 s
    "tests/integration/test_measured_truth.py",  # 16-19 s
    "tests/integration/test_reliability_faults.py",  # 18 s
    "tests/unit/test_spec_keys.py",  # 11-15 s
    "tests/integration/test_runtime_runs.py",  # 14 s
    "tests/integration/test_deploy_slurm.py",  # 11-12 s
    "tests/integration/test_run_vs_simulate_keys.py",  # 11 s
    "tests/integration/test_netns_run.py",  # 11 s
    "tests/integration/test_sim_cli.py",  # 10-12 s
    "tests/e2e/test_interrupt.py",  # 10 s
    "tests/integration/test_ntp_cli.py",  # 10 s
)
SAME_PROCESS = {
    "tests/e2e/test_run.py": "tests/e2e/test_first_hour.py",  # default_style_run
    "tests/integration/test_report_html.py": "tests/e2e/test_first_hour.py",
    # scipy.stats (the oracle of both) costs ~1.6 CPU-s to import, once per process
    "tests/unit/test_intervals.py": "tests/unit/test_distributions.py",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist", None) != "loadfile":
        return None  # another --dist: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class FileScheduling(LoadScopeScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SAME_PROCESS.get(path, path)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first hand-out: the queue holds every file
                self.ordered = True
                assert self.collection is not None
                at = {}
                for i, nodeid in enumerate(self.collection):
                    at.setdefault(self._split_scope(nodeid), i)
                rank = {f: i for i, f in enumerate(FIRST)}
                units = sorted(self.workqueue.items(),
                               key=lambda u: (rank.get(u[0], len(rank)), at[u[0]]))  # fmt: skip
                self.workqueue.clear()
                self.workqueue.update(units)
            super()._assign_work_unit(node)

    return FileScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run that executed no test is a failure, never a success.
    if session.testscollected == 0 and exitstatus in (0, 5):
        session.exitstatus = 1
