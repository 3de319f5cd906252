"""The names of the clock sources, for validating a spec without importing the sources.

A leaf module: ``skewlab.spec`` checks ``sources = [...]`` against ``SOURCE_NAMES`` and the
external-source registry answers "built in" for ``BUILTIN_SOURCE_NAMES``. The factories are
registered under the same names in ``clocks/sources.py`` (``SOURCES``) and
``clocks/external/__init__.py`` (``EXTERNAL_SOURCES``); tests/unit/test_layers.py checks the
three agree.
"""

from __future__ import annotations

BUILTIN_SOURCE_NAMES: tuple[str, ...] = ("system", "ntp", "truetime", "clockbound", "skewlab")
# Backed by real host services (ChronoTick, chrony, ClockBound): clocks/external/.
EXTERNAL_SOURCE_NAMES: tuple[str, ...] = (
    "chronotick",
    "chronotick_mcp",
    "chrony",
    "clockbound_shm",
)
SOURCE_NAMES: tuple[str, ...] = BUILTIN_SOURCE_NAMES + EXTERNAL_SOURCE_NAMES
