"""Clock sources backed by real host services: ChronoTick (shm, MCP), chrony, AWS ClockBound.

They read the host's system clock (``local_ns`` is taken to be CLOCK_REALTIME), so they are
meant for nodes on real hosts, not for emulated oscillators. Each has ``available(**params)``
returning (ok, reason); :func:`require_available` fails fast on a configured source that is
absent unless its params say ``optional = true``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from skewlab.clocks.external.chronotick_mcp import ChronoTickMcpSource
from skewlab.clocks.external.chronotick_shm import ChronoTickShmSource
from skewlab.clocks.external.chrony import ChronySource
from skewlab.clocks.external.clockbound_shm import ClockBoundShmSource, ClockBoundWriter
from skewlab.clocks.names import BUILTIN_SOURCE_NAMES

EXTERNAL_SOURCES: dict[str, Callable[..., Any]] = {
    "chronotick": ChronoTickShmSource,
    "chronotick_mcp": ChronoTickMcpSource,
    "chrony": ChronySource,
    "clockbound_shm": ClockBoundShmSource,
}

__all__ = [
    "EXTERNAL_SOURCES",
    "ChronoTickMcpSource",
    "ChronoTickShmSource",
    "ChronySource",
    "ClockBoundShmSource",
    "ClockBoundWriter",
    "SourceUnavailable",
    "availability",
    "is_optional",
    "require_available",
    "unavailable_sources",
]


class SourceUnavailable(RuntimeError):
    """A configured, non-optional source's service is absent; the message gives the reason."""


def is_optional(params: Mapping[str, Any] | None) -> bool:
    """``source_params.<name>.optional``: run even when the source is unavailable."""
    return bool((params or {}).get("optional", False))


def availability(name: str, params: Mapping[str, Any] | None = None) -> tuple[bool, str]:
    """(ok, reason) for a source by name; sources without a host service are always available."""
    factory = EXTERNAL_SOURCES.get(name)
    if factory is None:
        if name in BUILTIN_SOURCE_NAMES:
            return True, "built in (no host service needed)"
        return False, f"unknown clock source {name!r}"
    check = getattr(factory, "available", None)
    if check is None:
        return True, "built in (no host service needed)"
    kw = {k: v for k, v in (params or {}).items() if k != "optional"}
    try:
        return check(**kw)
    except Exception as e:  # a broken check is an unavailable source, said plainly
        return False, f"availability check failed: {type(e).__name__}: {e}"


def unavailable_sources(
    names: Iterable[str], params: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """One line per configured, non-optional source that is unavailable on this host."""
    params = params or {}
    out = []
    for n in names:
        p = params.get(n, {})
        if is_optional(p):
            continue
        ok, reason = availability(n, p)
        if not ok:
            out.append(
                f"clock source {n!r} is unavailable: {reason} "
                f"(set source_params.{n}.optional = true to run without it)"
            )
    return out


def require_available(spec: Any) -> None:
    """Raise :class:`SourceUnavailable` when the spec configures an absent non-optional source."""
    problems = unavailable_sources(spec.sources, spec.source_params)
    if problems:
        raise SourceUnavailable("; ".join(problems))
