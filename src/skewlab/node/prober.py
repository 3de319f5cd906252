"""A node's truth prober: frequent NTP exchanges with a reference clock, recorded as the node's
truth trace (``traces/<node>/truth-*.parquet``) for measured truth (docs/METHODOLOGY.md,
"Measured truth").

The prober reads the node's own clock (``NodeClock``: the host clock on real hosts, the emulated
oscillator on emulated runs — the reading every source stands on) for T1 and T4, through an
``NtpClient`` on its own socket (T4 from the kernel's arrival stamp where Linux offers
``SO_TIMESTAMPNS``). It runs in its own thread, feeds no ``SyncState`` and is read by no clock
source: the sources under test never see it. A thread, not a process: on an emulated node the
clock's servo follows the node's own NTP samples, which only this process holds.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from skewlab.clocks.oscillator import NodeClock
from skewlab.node.context import NodeContext
from skewlab.ntp.client import NtpClient, NtpError
from skewlab.timebase import HOST_CLOCK, Scheduler, host_ns, monotonic_ns
from skewlab.trace import TRUTH_PREFIX, TRUTH_SCHEMA, PartWriter

TRUTH_BATCH_ROWS = 512  # rows per truth part (about 50 s at 10 exchanges per second)
REFERENCE_NAME = "truth-reference"  # the reference's name in samples and link paths
GAP_READ_MAX_NS = 20_000  # a host gap read whose monotonic reads are further apart is retried


def host_gap() -> tuple[int, int]:
    """(realtime − monotonic of the host, how far off that may be): it changes only when the
    host's realtime clock is stepped (slewing moves both clocks alike). The realtime read is
    bracketed by two monotonic reads; a read interrupted for longer is retried (3 times)."""
    for _ in range(3):
        m1 = monotonic_ns()
        r = host_ns()
        m2 = monotonic_ns()
        if m2 - m1 <= GAP_READ_MAX_NS:
            break
    return r - (m1 + m2) // 2, (m2 - m1 + 1) // 2 + 1


class TruthProber:
    """Exchanges with the reference every 1/``rate_hz`` s (a missed tick is skipped, never made
    up in a burst); every valid exchange is one row of TRUTH_SCHEMA."""

    def __init__(
        self,
        host: str,
        port: int,
        clock: NodeClock,
        rate_hz: float,
        timeout_s: float,
        writer: PartWriter | None = None,
        scheduler: Scheduler = HOST_CLOCK,
    ) -> None:
        self.client = NtpClient(host, port, clock=clock, timeout_s=timeout_s, name=REFERENCE_NAME)
        self.clock = clock
        self.period_ns = max(1, round(1e9 / rate_hz))
        self.rate_hz = rate_hz
        self.writer = writer
        self.scheduler = scheduler
        self.stop_event = threading.Event()
        self.exchanges = 0
        self.failed: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="truth-prober", daemon=True)

    @property
    def kernel_timestamps(self) -> bool:
        """Whether T4 comes from the kernel's receive stamp (``ntp/stamps.py``)."""
        return self.client._local_at is not None

    def start(self) -> TruthProber:
        self._thread.start()
        return self

    def probe_once(self) -> bool:
        """One exchange; its row appended if it gave a valid sample."""
        g1, u1 = host_gap()
        try:
            s = self.client.exchange()
        except NtpError as e:
            self.failed[e.reason] += 1
            return False
        g4, u4 = host_gap()
        osc = self.clock.oscillator
        if s.truth_t1_ns is not None and s.truth_t4_ns is not None:  # an emulated clock's own
            g1 += osc.gaps_at(s.truth_t1_ns)[1]  # steps and strobes, at T1 and T4 exactly
            g4 += osc.gaps_at(s.truth_t4_ns)[1]
        self.exchanges += 1
        if self.writer is not None:
            self.writer.append((s.t1_ns, s.t2_ns, s.t3_ns, s.t4_ns, s.truth_t1_ns, s.truth_t4_ns,
                                g1, g4, max(u1, u4)))  # fmt: skip
        return True

    def _run(self) -> None:
        sch = self.scheduler
        due = sch.now_ns()
        while not self.stop_event.is_set():
            self.probe_once()
            due += self.period_ns
            now = sch.now_ns()
            if due < now:  # late (a slow reply, a busy host): next tick from now
                due = now + self.period_ns
            if not sch.wait_until(due, self.stop_event):
                return

    def stop(self) -> dict[str, Any]:
        """Stop, flush the trace, close the socket; the prober's counts."""
        self.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.client.timeout_s + 2)
        if self.writer is not None:
            self.writer.flush()
        self.client.close()
        return self.counts()

    def counts(self) -> dict[str, Any]:
        return {
            "truth_exchanges": self.exchanges,
            "truth_failed": sum(self.failed.values()),
            **{f"truth_failed_{k}": v for k, v in sorted(self.failed.items())},
            "truth_reference": self.client.address,
            "truth_rate_hz": self.rate_hz,
            "truth_kernel_timestamps": self.kernel_timestamps,
            "truth_hardware_timestamps": False,  # not implemented (docs/METHODOLOGY.md)
        }


def start_prober(ctx: NodeContext, clock: NodeClock) -> TruthProber | None:
    """The node's truth prober, started, if the launcher gave it a reference (``--truth``)."""
    addr = ctx.truth_addr
    if addr is None:
        return None
    t = ctx.spec.truth
    writer = PartWriter(ctx.results.node_dir(ctx.name), TRUTH_PREFIX, TRUTH_SCHEMA,
                        batch_rows=TRUTH_BATCH_ROWS)  # fmt: skip
    return TruthProber(addr[0], addr[1], clock, t.rate_hz, t.timeout_s, writer).start()
