"""The worker node process: its receive loop (``Receiver``) and the process around it."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from skewlab.clocks.oscillator import NodeClock
from skewlab.clocks.sources import make_sources
from skewlab.net import wire
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.context import NodeContext
from skewlab.node.counting import Strided, _summary
from skewlab.node.patterns import effective_commit_wait_ms
from skewlab.node.prober import start_prober
from skewlab.node.startup import _quiet_gc, _start_sync, _warmup
from skewlab.node.udp import bind_udp, udp_drops
from skewlab.timebase import cpu_s, monotonic_ns, monotonic_s
from skewlab.trace import PartWriter, receipt_schema, wire_sentinel_columns

STOP_DRAIN_S = 0.5  # on stop, keep reading what is already queued for at most this long


class Receiver:
    """The worker's receive loop and its exact counts (kept apart from process setup so tests
    can drive it over a socket pair)."""

    def __init__(
        self,
        sock: socket.socket,
        codec: wire.WireCodec,
        clock: NodeClock,
        sources: Sequence[Any],
        writer: PartWriter,
        total_events: int,
        stop: threading.Event,
        control_lost: Callable[[], bool] = lambda: False,
        signalled: threading.Event | None = None,
        idle_exit_s: float = 5.0,
        on_receipt: Callable[[int, int], None] | None = None,
    ) -> None:
        self.sock = sock
        self.codec = codec
        self.clock = clock
        self.sources = list(sources)
        self.writer = writer
        self.total = total_events
        self.stop = stop
        self.control_lost = control_lost
        self.signalled = signalled or threading.Event()
        self.idle_exit_ns = int(idle_exit_s * 1e9)
        self.on_receipt = on_receipt
        # one bit per event id: dedupe (written through now, so its pages are resident from the
        # start and memory does not creep as event ids grow)
        self.seen = bytearray(b"\0") * ((total_events >> 3) + 1)
        self.received = 0
        self.duplicates = 0
        self.reordered = 0  # arrived with a sequence number below one already seen
        self.end_markers = 0
        self.coordinator_sent: int | None = None  # from the end-of-stream marker
        self.rejected: Counter[str] = Counter()
        self.costs = Strided(total_events)  # receive → row buffered, ns (strided sample)
        self.exit_reason = ""

    def run(self) -> None:
        """Receive until stopped (stop/signal), or until control is lost and events stopped."""
        sock = self.sock
        recv = sock.recv
        bufsize = self.codec.head_len + 1500 + wire.MAC_LEN + 1  # +1: oversize is detectable
        now_ns = self.clock.host.now_ns  # true time (the host clock's C function, unwrapped)
        mono = monotonic_ns  # idle and drain limits: the host's own wall time
        local_at = self.clock.oscillator.local_at
        decode = self.codec.decode_fields
        werr = wire.WireError
        kind_event = wire.KIND_EVENT
        append = self.writer.append
        readers = [s.read for s in self.sources]
        seen = self.seen
        total = self.total
        rejected = self.rejected
        add_cost = self.costs.add
        stride = self.costs.stride
        push = self.on_receipt
        stop = self.stop
        received = dup = reordered = 0
        max_seq = -1
        last_rx = mono()
        drain_until = 0
        sock.settimeout(0.1)
        try:
            while True:
                if stop.is_set() and not drain_until:
                    if not self.control_lost() or self.signalled.is_set():
                        # asked to stop: read what is already queued, without waiting
                        drain_until = mono() + int(STOP_DRAIN_S * 1e9)
                        sock.settimeout(0.0)
                    elif mono() - last_rx > self.idle_exit_ns:
                        self.exit_reason = "control lost and no events"
                        break
                try:
                    data = recv(bufsize)
                except (TimeoutError, BlockingIOError):
                    if drain_until:
                        self.exit_reason = "signal" if self.signalled.is_set() else "stop"
                        break
                    continue
                truth = now_ns()
                local = local_at(truth)
                if drain_until and mono() > drain_until:
                    self.exit_reason = "stop (drain time limit)"
                    break
                try:
                    v = decode(data)
                except werr as e:
                    rejected[e.reason] += 1
                    continue
                last_rx = mono()
                if v[2] != kind_event:
                    self.end_markers += 1
                    self.coordinator_sent = v[6]
                    continue
                eid = v[6]
                if eid >= total:
                    rejected["unknown_event"] += 1
                    continue
                byte = seen[eid >> 3]
                bit = 1 << (eid & 7)
                if byte & bit:
                    dup += 1
                    continue
                seen[eid >> 3] = byte | bit
                seq = v[7]
                if seq < max_seq:
                    reordered += 1
                else:
                    max_seq = seq
                row = (eid, seq, truth, local, v[8])
                for read in readers:
                    row += read(local, truth)[:4]  # (estimate, earliest, latest, status)
                append(row + v[10:])
                if push is not None:
                    push(eid, local)
                received += 1
                if received % stride == 0:
                    add_cost(now_ns() - truth)
        finally:
            self.received, self.duplicates, self.reordered = received, dup, reordered

    def counts(self) -> dict[str, Any]:
        """Exact counts of this worker (``lost`` needs the coordinator's end marker)."""
        sent = self.coordinator_sent
        out: dict[str, Any] = {
            "received": self.received,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "rejected": sum(self.rejected.values()),
            **{f"rejected_{k}": v for k, v in sorted(self.rejected.items())},
            "end_markers": self.end_markers,
            "coordinator_sent": sent,
            "lost": None if sent is None else sent - self.received,
            "exit_reason": self.exit_reason,
        }
        out.update(_summary(self.costs.values(), "cost"))
        return out


def run_worker(ctx: NodeContext) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock, state = ctx.node_sync()
    sock = bind_udp(spec.run.host, node.port, f"worker {ctx.name}")
    poller = _start_sync(ctx, clock, state)
    prober = start_prober(ctx, clock)  # measured truth: its own thread and socket, or None
    sources = make_sources(spec.sources, state, spec.source_params)
    node_dir = ctx.results.node_dir(ctx.name)
    writer = PartWriter(node_dir, "events", receipt_schema(spec.sources), spec.run.batch_rows,
                        wire_sentinel_columns(spec.sources))  # fmt: skip
    cw = CommitWaitEvaluator(sources, effective_commit_wait_ms(spec), clock.local_ns, node_dir,
                             spec.run.batch_rows)  # fmt: skip
    rx = Receiver(
        sock, ctx.codec(), clock, sources, writer, spec.workload.events,
        ctx.link.stop_event, lambda: ctx.link.lost, ctx.signalled, spec.run.idle_exit_s,
        cw.push if cw.active else None,
    )  # fmt: skip
    cw_counts: dict[str, Any] = {}
    try:
        _warmup(ctx, clock, state, sources)
        cw.start()
        ctx.link.send("ready", port=sock.getsockname()[1], commit_wait_ms=cw.delays_ms)
        cw_counts["rcvbuf_bytes"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        cpu0, wall0 = cpu_s(), monotonic_s()
        _quiet_gc()
        rx.run()
        cw_counts["cpu_run_s"] = round(cpu_s() - cpu0, 3)  # receive phase only
        cw_counts["run_s"] = round(monotonic_s() - wall0, 3)
    finally:
        poller.stop()
        if prober is not None:
            cw_counts.update(prober.stop())
        writer.flush()
        cw_counts.update(cw.stop())
        cw_counts["kernel_drops"] = udp_drops(sock)  # shed by the kernel: receive buffer full
        sock.close()
    counts = rx.counts()
    counts.update(cw_counts, rows=writer.rows_written, parts=writer.parts_written,
                  **poller.counts())  # fmt: skip
    ctx.report_done(counts)
    return 0
