"""skewlab: how clock synchronization quality changes distributed stream-processing decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The one home of the version: pyproject.toml reads it from here (setuptools' dynamic ``attr``),
# so no process pays for importlib.metadata (~50 ms) to learn it.
__version__ = "0.1.0"

__all__ = ["ExperimentSpec", "Reading", "SpecError", "Status", "__version__"]

# The package's names are loaded on first use (PEP 562), not when any skewlab module is
# imported: the spec's pydantic models cost ~0.3 CPU-s, which `skewlab --help`, `ntp-query`
# or `ntp-server` never need.
_LAZY = {
    "ExperimentSpec": "skewlab.spec",
    "SpecError": "skewlab.spec",
    "Reading": "skewlab.clocks.base",
    "Status": "skewlab.clocks.base",
}

if TYPE_CHECKING:
    from skewlab.clocks.base import Reading, Status
    from skewlab.spec import ExperimentSpec, SpecError


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skewlab' has no attribute {name!r}")
