"""Link faults during a run: an emulated path drops every datagram for a time window.

Runs as a thread in the launcher, beside the link relays (``skewlab.net.link``). While a
``link_loss`` fault is active, both directions of the path decide "lost" for every datagram;
the relay's own per-datagram trace therefore shows each drop, and the transitions are recorded
in the nemesis trace.
"""

from __future__ import annotations

from typing import Any

from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import FaultSpec
from skewlab.nemesis.timed import TimedNemesis
from skewlab.timebase import HOST_CLOCK, Scheduler


class _Blackout:
    """Wraps a direction model: while ``on`` every datagram is lost, else the model decides."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.on = False

    def decide(self, size: int, mono_in: int) -> list[tuple[int, int, int, bool]]:
        if self.on:
            return []
        return self.model.decide(size, mono_in)


class LinkNemesis(TimedNemesis):
    """Applies the ``link_loss`` faults of a spec to the relays of a ``Network``."""

    thread_name = "link-nemesis"

    def __init__(
        self,
        faults: list[FaultSpec],
        network: Any,
        t0_ns: int,
        recorder: FaultRecorder | None,
        clock: Scheduler = HOST_CLOCK,
    ) -> None:
        self.network = network
        super().__init__(faults, t0_ns, ("link_loss",), recorder, clock)

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

    def transition(self, f: FaultSpec, phase: str) -> str | None:
        bl = self._blackouts(str(f.path))
        if bl is None:  # the relay is only created once a node uses the path
            return f"no relay on {f.path}"
        for b in bl:
            b.on = phase == "start"
        return None
