"""skewlab: how clock synchronization quality changes distributed stream-processing decisions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skewlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from skewlab.clocks.base import Reading, Status
from skewlab.spec import ExperimentSpec, SpecError

__all__ = ["ExperimentSpec", "Reading", "SpecError", "Status", "__version__"]
