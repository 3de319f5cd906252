"""Local launcher: every node is its own OS process on this host, talking over loopback.

The orchestration (order, readiness, failures, cleanup, metadata) is shared with the SSH and
Slurm launchers (deploy/orchestrator.py); here a node is a child process started with Popen in
its own session and stopped by PID.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from skewlab.deploy.orchestrator import (
    LaunchError,
    NodeProc,
    Orchestrator,
    ProgressFn,
    RunOutcome,
    pid_alive,
)

__all__ = ["LaunchError", "LocalLauncher", "Proc", "ProgressFn", "RunOutcome", "pid_alive"]

Proc = NodeProc  # the name older callers use


class LocalLauncher(Orchestrator):
    """Every node a child process of this one; emulated oscillators, one true clock."""

    launcher_name = "local"

    def start_node(self, role: str, name: str, argv: list[str], log: Path) -> NodeProc:
        cmd = [sys.executable, "-m", "skewlab.node", *argv]
        with open(log, "wb") as logf:
            p = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the launcher, which stops them
            )  # fmt: skip
        return NodeProc(name, role, p, log)
