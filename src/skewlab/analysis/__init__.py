"""Pure analysis: traces in, metrics, figures and reports out. No sockets, no wall clock."""

from skewlab.analysis.run import analyze

__all__ = ["analyze"]
