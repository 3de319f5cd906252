"""The launcher for a name: ``local``, ``ssh`` or ``slurm`` (each imported only when chosen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_launcher(
    name: str, spec: Any, cluster: Any, out: Path, progress: Any, results_dir: Path | None
) -> Any:
    """The launcher object for ``name`` (the Slurm one only inside an allocation)."""
    if name == "local":
        from skewlab.deploy.local import LocalLauncher

        return LocalLauncher(spec, out, progress, results_dir)
    if name == "ssh":
        from skewlab.deploy.ssh import SshLauncher

        return SshLauncher(spec, out, cluster, progress, results_dir)
    from skewlab.deploy.slurm import SlurmLauncher

    return SlurmLauncher(spec, out, cluster, progress, results_dir)
