"""skewlab: how clock synchronization quality changes distributed stream-processing decisions."""

# The one home of the version: pyproject.toml reads it from here (setuptools' dynamic ``attr``),
# so no process pays for importlib.metadata (~50 ms) to learn it.
__version__ = "0.1.0"

from skewlab.clocks.base import Reading, Status
from skewlab.spec import ExperimentSpec, SpecError

__all__ = ["ExperimentSpec", "Reading", "SpecError", "Status", "__version__"]
