"""Link faults during a run: an emulated path drops every datagram for a time window.

Runs as a thread in the launcher, beside the link relays (``skewlab.net.link``). While a
``link_loss`` fault is active, both directions of the path decide "lost" for every datagram;
the relay's own per-datagram trace therefore shows each drop, and the transitions are recorded
in the nemesis trace.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import FaultSpec


class _Blackout:
    """Wraps a direction model: while ``on`` every datagram is lost, else the model decides."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.on = False

    def decide(self, size: int, mono_in: int) -> list[tuple[int, int, int, bool]]:
        if self.on:
            return []
        return self.model.decide(size, mono_in)


class LinkNemesis:
    """Applies the ``link_loss`` faults of a spec to the relays of a ``Network``."""

    def __init__(
        self, faults: list[FaultSpec], network: Any, t0_ns: int, recorder: FaultRecorder | None
    ) -> None:
        self.network = network
        self.recorder = recorder
        self.plan: list[tuple[int, int, int, str, FaultSpec]] = []
        for i, f in enumerate(faults):
            if f.kind != "link_loss":
                continue
            self.plan.append((f.start_ns(t0_ns), 2 * i + 1, i, "start", f))
            end = f.end_ns(t0_ns)
            if end is not None:
                self.plan.append((end, 2 * i, i, "end", f))
        self.plan.sort(key=lambda p: (p[0], p[1]))
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="link-nemesis", daemon=True)

    def start(self) -> LinkNemesis:
        if self.plan:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _blackouts(self, path: str) -> list[_Blackout] | None:
        hub = getattr(self.network, "hub", None)
        link = None if hub is None else hub.links.get(path)
        if link is None:
            return None
        out = []
        for d, m in list(link.models.items()):
            if not isinstance(m, _Blackout):
                m = _Blackout(m)
                link.models[d] = m
            out.append(m)
        return out

    def _run(self) -> None:
        for due, _, index, phase, f in self.plan:
            wait = (due - time.time_ns()) / 1e9
            if wait > 0 and self._stop.wait(wait):
                return
            bl = self._blackouts(str(f.path))
            if bl is None:  # the relay is only created once a node uses the path
                self.errors.append(f"faults[{index}] {phase}: no relay on {f.path}")
                continue
            for b in bl:
                b.on = phase == "start"
            if self.recorder is not None:
                self.recorder.record(index, f.kind, f.target(), phase, time.time_ns(), f.detail())
