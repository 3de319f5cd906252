"""Reading a host service's shared-memory segment file (ChronoTick, ClockBound).

The file is mapped read-only on first use, re-stat'ed at most once a second, and mapped anew
when the service recreates it (a new inode). Until then the old mapping, if any, is kept: its
data ages into staleness honestly instead of vanishing.
"""

from __future__ import annotations

import math
import mmap
import os
from pathlib import Path
from typing import Any

from skewlab.timebase import monotonic_s

RECHECK_S = 1.0  # seconds between stats of the segment file


class MappedSegment:
    """Mixin: ``self._buf`` is the mapped segment (``segment_size`` bytes) or None."""

    segment_size: int  # bytes mapped (the layout's fixed size)

    def _init_segment(self, path: Path) -> None:
        self.path = path
        self.last_error: str | None = None  # why the file could not be stat'ed, if it could not
        self._buf: Any = None
        self._ino: int | None = None
        self._next_check = 0.0  # monotonic_s() of the next stat

    def set_buffer(self, buf: Any) -> None:
        """Read from ``buf`` (anything sliceable) instead of the file: for tests and tools."""
        self._buf = buf
        self._next_check = math.inf

    def _open(self) -> None:
        now = monotonic_s()
        if self._buf is not None and now < self._next_check:
            return
        self._next_check = now + RECHECK_S
        try:
            st = os.stat(self.path)
        except OSError as e:
            self.last_error = f"{self.path}: {e.strerror}"
            return  # keep the old mapping (if any)
        if (self._buf is not None and st.st_ino == self._ino) or st.st_size < self.segment_size:
            return
        with open(self.path, "rb") as f:
            self._buf = mmap.mmap(f.fileno(), self.segment_size, access=mmap.ACCESS_READ)
        self._ino = st.st_ino
