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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run that executed no test is a failure, never a success.
    if session.testscollected == 0 and exitstatus in (0, 5):
        session.exitstatus = 1
