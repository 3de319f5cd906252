"""The worker node process: its receive loop (``Receiver``) and the process around it."""

from __future__ import annotations

import select
import socket
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from skewlab.clocks.base import Readings
from skewlab.clocks.oscillator import NodeClock
from skewlab.clocks.sources import make_sources
from skewlab.clocks.track import SourceTrack, simulable
from skewlab.net import wire
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.context import NodeContext
from skewlab.node.counting import Strided, _summary
from skewlab.node.patterns import effective_commit_wait_ms
from skewlab.node.prober import start_prober
from skewlab.node.receipts import packet_fields, receipt_columns, wire_columns
from skewlab.node.startup import _quiet_gc, _start_sync, _warmup
from skewlab.node.udp import bind_udp, udp_drops
from skewlab.ntp import stamps
from skewlab.timebase import HostClock, cpu_s, monotonic_ns, monotonic_s, sleep
from skewlab.trace import PartWriter, receipt_schema, wire_sentinel_columns

STOP_DRAIN_S = 0.5  # on stop, keep reading what is already queued for at most this long


BATCH_RECEIPTS = 4096  # receipts whose readings are evaluated together (at most)
BATCH_DELAY_NS = 50_000_000  # a queued receipt is evaluated at most this long after it arrived
IDLE_POLL_MS = 100  # an idle receive loop waits this long for a datagram between its checks
# A busy stream (its last two receipts closer than this, the latest no older than DRAIN_IDLE_NS)
# is read in drains: the loop sleeps this long between them instead of waiting for the next
# datagram, so the sender's send does not wake it for every datagram (kernel stamps only).
DRAIN_SLEEP_NS = 1_000_000
DRAIN_IDLE_NS = 4 * DRAIN_SLEEP_NS


class Receiver:
    """The worker's receive loop and its exact counts (kept apart from process setup so tests
    can drive it over a socket pair).

    Per datagram the loop only takes the receipt's true instant, decodes and checks the packet,
    dedupes it and queues it. The instant is the kernel's arrival stamp (``ntp.stamps``, the
    host realtime clock when the datagram reached the socket: ``receipt_stamps`` "kernel") when
    the node clock reads the real host clock and every source is read on arrays; then a busy
    stream is read in drains (``DRAIN_SLEEP_NS``), since waiting in the socket no longer moves
    the instant. Otherwise (a virtual host clock, no stamp option, or a source that reads a
    host service, ``clocks.track.simulable`` false: chrony, ChronoTick..., read right there at
    the receipt's instant) it is the host clock read when the receive returns ("user").

    The queued receipts' local readings and the readings of every other source are evaluated
    together on arrays (``_evaluate``) when BATCH_RECEIPTS are queued or the oldest has waited
    BATCH_DELAY_NS, and at the end: the node clock's
    ``local_gaps_at_array`` and each source's ``read_many`` on the snapshot in force at each
    receipt's true instant (``SourceTrack``), the same kernels as one ``read`` at the instant,
    and the same path as the simulator's. A value is a function of the receipt's instant and
    the state then, not of when it is computed.
    """

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
        on_receipts: Callable[[Any, Any], None] | None = None,
        track: SourceTrack | None = None,
    ) -> None:
        """``on_receipts(event ids, local readings)`` (numpy arrays) gets each batch of receipts
        as it is evaluated (commit-wait). Without ``track`` the array-readable sources are
        tracked on their sync state from now on (``SourceTrack.follow``)."""
        self.sock = sock
        self.codec = codec
        self.clock = clock
        self.sources = list(sources)
        # sources read on arrays (through ``track``: built here, recording now, when the caller
        # has not subscribed one to the sync state) and sources read at the instant
        arrayed = [s for s in self.sources if simulable(s)]
        if track is None:
            track = SourceTrack(arrayed)
            states = {id(s.state): s.state for s in arrayed}
            if not states:
                track.record(clock.host.now_ns())
            for state in states.values():
                track.follow(state, clock.host.now_ns)
        elif [id(s) for s in track.sources] != [id(s) for s in arrayed]:
            raise ValueError("the track must hold exactly the array-readable sources")
        self.track = track
        self.instant = [s for s in self.sources if not simulable(s)]
        self._array_read = [simulable(s) for s in self.sources]  # else read at the instant
        self.writer = writer
        self.total = total_events
        self.stop = stop
        self.control_lost = control_lost
        self.signalled = signalled or threading.Event()
        self.idle_exit_ns = int(idle_exit_s * 1e9)
        self.on_receipts = on_receipts
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
        self.batches = 0
        self.exit_reason = ""
        # kernel arrival stamps: exact for a clock on the real host clock, and only where no
        # source is read at the instant (that read comes after the receive returns)
        self.kernel_stamps = (
            isinstance(clock.host, HostClock) and not self.instant and stamps.enable(sock)
        )
        self.user_stamped = 0  # kernel-stamped loop: datagrams that came without a stamp
        self.drain_sleeps = 0  # sleeps between drains of a busy stream
        self._last_rx = 0
        self._head_format = codec.head.format

    def run(self) -> None:
        """Receive until stopped (stop/signal), or until control is lost and events stopped."""
        sock = self.sock
        recv = sock.recv
        bufsize = self.codec.head_len + 1500 + wire.MAC_LEN + 1  # +1: oversize is detectable
        kernel = self.kernel_stamps
        recvmsg = sock.recvmsg
        anc_size = stamps.ANC_SIZE
        unpack_ts = stamps.TIMESPEC.unpack_from
        user_stamped = drain_sleeps = 0
        now_ns = self.clock.host.now_ns  # true time (the host clock's C function, unwrapped)
        mono = monotonic_ns  # idle and drain limits: the host's own wall time
        local_at = self.clock.oscillator.local_at
        decode = self.codec.decode_fields
        werr = wire.WireError
        kind_event = wire.KIND_EVENT
        instant = [s.read for s in self.instant]
        seen = self.seen
        total = self.total
        rejected = self.rejected
        stride = self.costs.stride
        stop = self.stop
        evaluate = self._evaluate
        truths: list[int] = []
        packets: list[bytes] = []  # the datagrams, decoded again on arrays
        at_instant: list[tuple] = []
        marks: list[int] = []  # sampled receipts' ns from receipt to queued
        add_truth, add_packet, add_instant = truths.append, packets.append, at_instant.append
        batch = BATCH_RECEIPTS
        received = dup = reordered = 0
        max_seq = -1
        self._last_rx = mono()
        drain_until = 0
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        try:
            while True:
                try:
                    if kernel:
                        data, anc, _flags, _addr = recvmsg(bufsize, anc_size)
                    else:
                        data = recv(bufsize)
                except BlockingIOError:  # nothing queued
                    if drain_until:
                        self.exit_reason = "signal" if self.signalled.is_set() else "stop"
                        break
                    if stop.is_set():
                        if not self.control_lost() or self.signalled.is_set():
                            # asked to stop: read what is already queued, without waiting
                            drain_until = mono() + int(STOP_DRAIN_S * 1e9)
                            continue
                        if mono() - self._last_rx > self.idle_exit_ns:
                            self.exit_reason = "control lost and no events"
                            break
                    wait_ms = IDLE_POLL_MS
                    if truths:  # evaluate the queued receipts once the oldest is due
                        age = now_ns() - truths[0]
                        if age >= BATCH_DELAY_NS:
                            evaluate(truths, packets, at_instant, marks)
                            continue
                        wait_ms = -(-(BATCH_DELAY_NS - age) // 1_000_000)
                    if (
                        kernel
                        and len(truths) > 1
                        and truths[-1] - truths[-2] < DRAIN_SLEEP_NS
                        and now_ns() - truths[-1] < DRAIN_IDLE_NS
                    ):  # a busy stream: let datagrams gather (their stamps are the kernel's)
                        sleep(DRAIN_SLEEP_NS / 1e9)
                        drain_sleeps += 1
                    else:
                        poller.poll(wait_ms)
                    continue
                if kernel:
                    t_rx = now_ns()
                    if anc and len(anc[0][2]) >= 16:
                        sec, nsec = unpack_ts(anc[0][2])
                        truth = sec * 1_000_000_000 + nsec
                    else:  # no stamp on this datagram: the instant the receive returned
                        truth = t_rx
                        user_stamped += 1
                else:
                    truth = t_rx = now_ns()
                if drain_until and mono() > drain_until:
                    self.exit_reason = "stop (drain time limit)"
                    break
                try:
                    v = decode(data)
                except werr as e:
                    rejected[e.reason] += 1
                    continue
                if v[2] != kind_event:
                    self._last_rx = mono()
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
                add_truth(truth)
                add_packet(data)
                if instant:
                    local = local_at(truth)
                    add_instant(tuple(read(local, truth)[:4] for read in instant))
                received += 1
                if received % stride == 0:
                    marks.append(now_ns() - t_rx)
                if len(truths) >= batch:
                    evaluate(truths, packets, at_instant, marks)
                    if (
                        stop.is_set()
                        and not drain_until
                        and (not self.control_lost() or self.signalled.is_set())
                    ):  # asked to stop while events keep coming: drain for a limited time
                        drain_until = mono() + int(STOP_DRAIN_S * 1e9)
        finally:
            if truths:
                evaluate(truths, packets, at_instant, marks)
            self.received, self.duplicates, self.reordered = received, dup, reordered
            self.user_stamped, self.drain_sleeps = user_stamped, drain_sleeps

    def _evaluate(self, truths: list[int], packets: list[bytes], at_instant: list[tuple],
                  marks: list[int]) -> None:  # fmt: skip
        """Evaluate the queued receipts (lists emptied in place): local readings and every
        array-readable source's readings on arrays, rows buffered as columns, receipts handed
        to commit-wait. The per-packet cost samples taken in the loop get the batch's
        evaluation cost per receipt added."""
        now_ns = self.clock.host.now_ns
        t0 = now_ns()
        n = len(truths)
        t = np.array(truths, dtype=np.int64)
        local, gap, step_gap = self.clock.oscillator.local_gaps_at_array(t)
        arrays = self.track.read(t, local, gap, step_gap)
        instant = _instant_readings(at_instant, len(self.instant)) if self.instant else []
        by_kind = (iter(instant), iter(arrays))  # each kind in source order
        reads = [next(by_kind[a]) for a in self._array_read]
        rec = packet_fields(packets, self._head_format, self.codec.head_len)
        eid = rec["f6"].astype(np.uint64)
        wire_fields = [rec[f"f{j}"] for j in range(10, 10 + 4 * self.codec.n)]
        cols = receipt_columns(eid, rec["f7"].astype(np.uint64), t, local,
                               rec["f8"].astype(np.int64), reads,
                               wire_columns(wire_fields))  # fmt: skip
        self.writer.append_columns(cols)
        if self.on_receipts is not None:
            self.on_receipts(eid, local)
        truths.clear()
        packets.clear()
        at_instant.clear()
        self.batches += 1
        self._last_rx = monotonic_ns()
        if marks:
            share = (now_ns() - t0) // n
            add = self.costs.add
            for cost in marks:
                add(cost + share)
            marks.clear()

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
            "receipt_stamps": "kernel" if self.kernel_stamps else "user",
        }
        if self.kernel_stamps:
            out["receipts_user_stamped"] = self.user_stamped
            out["drain_sleeps"] = self.drain_sleeps
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
        cw.push_many if cw.active else None,
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


def _instant_readings(rows: list[tuple], n_sources: int) -> list[Readings]:
    """Readings taken at the instant (one tuple of (estimate, earliest, latest, status) per
    source per receipt) as arrays; None values (no reading) are invalid."""
    out = []
    for k in range(n_sources):
        col = [r[k] for r in rows]
        valid = np.array([x[0] is not None for x in col], dtype=bool)
        vals = [np.array([0 if x[j] is None else x[j] for x in col], dtype=np.int64)
                for j in range(3)]  # fmt: skip
        st = np.array([int(x[3]) for x in col], dtype=np.int8)
        st[~valid] = 0
        out.append(Readings(vals[0], vals[1], vals[2], st, valid))
    return out
