"""What every node process shares: its context (spec, control link, results folder, emulated
clock), the one-line failure it reports, and the experiment's event codec.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from skewlab.clocks.node import node_sync
from skewlab.clocks.oscillator import NodeClock
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import CLOCK_KINDS
from skewlab.net import wire
from skewlab.node.control import ControlLink
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, write_json_atomic
from skewlab.timebase import cpu_s

PROGRESS_EVERY_S = 0.5  # a node's progress reports to the launcher (warmup, broadcast)


class NodeFailure(Exception):
    """A node cannot go on; the message is sent to the launcher as one line."""


@dataclass
class NodeContext:
    spec: ExperimentSpec
    name: str
    link: ControlLink
    results: ResultsDir
    t0_ns: int
    ntp_addr: tuple[str, int] | None = None
    ntp_addrs: list[tuple[str, int]] = field(default_factory=list)  # all servers (multi-server)
    signalled: threading.Event = field(default_factory=threading.Event)  # SIGINT/SIGTERM seen
    event_key: bytes | None = field(default=None, repr=False)  # the run's event HMAC key
    truth_addr: tuple[str, int] | None = None  # measured truth's reference (node/prober.py)
    truth_reference: str | None = None  # ntp-server node: serve the reference (also|only)

    def install_signals(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            self.signalled.set()
            self.link.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def node_sync(self) -> tuple[NodeClock, SyncState]:
        """This node's clock on the host clock and its sync state, as the spec describes them
        (``clocks.node.node_sync``: the simulator builds them the same way); the node's
        scheduled clock faults are recorded."""
        clock, state = node_sync(self.spec, self.name, self.t0_ns)
        self._record_clock_faults()
        return clock, state

    def _record_clock_faults(self) -> None:
        """Record this node's scheduled clock faults: the oscillator applies each exactly at
        its true start instant, so the record holds those instants."""
        mine = [(i, f) for i, f in enumerate(self.spec.faults)
                if f.kind in CLOCK_KINDS and f.node == self.name]  # fmt: skip
        if not mine:
            return
        rec = FaultRecorder(self.results.nemesis_dir, self.name)
        for i, f in mine:
            rec.record(i, f.kind, f.target(), "start", f.start_ns(self.t0_ns), f.detail())
            end = f.end_ns(self.t0_ns)
            if end is not None:
                rec.record(i, f.kind, f.target(), "end", end, f.detail())

    def codec(self) -> wire.WireCodec:
        """This node's event codec (with the run's event key unless ``run.hmac_key = false``)."""
        if self.spec.run.hmac_key and self.event_key is None:
            raise NodeFailure("events are authenticated (run.hmac_key) but no event key arrived")
        return wire_codec(self.spec, self.event_key)

    def report_done(self, counts: dict[str, Any]) -> None:
        """Final counts: to the node's own counts.json (always) and to the launcher (if there)."""
        counts["cpu_s"] = round(cpu_s(), 3)  # this process's CPU time, user + sys
        write_json_atomic(self.results.node_counts_path(self.name), counts)
        self.link.send("done", counts=counts)
        print(f"{self.name}: done {counts}", flush=True)


def wire_codec(spec: ExperimentSpec, key: bytes | None = None) -> wire.WireCodec:
    """The experiment's event codec: its source set and, unless ``run.hmac_key = false``, the
    run's event key (delivered to the node with its control key, never in the spec)."""
    if spec.run.hmac_key and key is None and spec.run.hmac_key is not True:
        key = str(spec.run.hmac_key).encode()  # a fixed key in an in-memory spec (tests)
    return wire.WireCodec(spec.sources, key if spec.run.hmac_key else None)
