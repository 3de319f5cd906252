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

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run that executed no test is a failure, never a success.
    if session.testscollected == 0 and exitstatus in (0, 5):
        session.exitstatus = 1
