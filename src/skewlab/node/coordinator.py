"""The coordinator node process: the paced broadcast of the workload to every worker."""

from __future__ import annotations

import socket
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import Any

from skewlab.clocks.oscillator import NodeClock
from skewlab.clocks.sources import make_sources
from skewlab.net import wire
from skewlab.node.context import PROGRESS_EVERY_S, NodeContext
from skewlab.node.counting import Strided, _summary
from skewlab.node.patterns import Pacer, delays_ns
from skewlab.node.prober import start_prober
from skewlab.node.startup import _quiet_gc, _start_sync, _warmup
from skewlab.node.udp import _connected, bind_udp
from skewlab.timebase import cpu_s
from skewlab.trace import PartWriter, send_schema

END_MARKER_COPIES = 3  # the end-of-stream packet is sent this many times (UDP may drop one)


def run_coordinator(ctx: NodeContext, workers: list[tuple[str, str, int]]) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock, state = ctx.node_sync()
    sock = bind_udp(spec.run.host, node.port, "the coordinator")
    poller = _start_sync(ctx, clock, state)
    prober = start_prober(ctx, clock)  # measured truth: its own thread and socket, or None
    sources = make_sources(spec.sources, state, spec.source_params)
    writer = PartWriter(ctx.results.node_dir(ctx.name), "events", send_schema(spec.sources),
                        spec.run.batch_rows)  # fmt: skip
    counts: dict[str, Any] = {}
    try:
        _warmup(ctx, clock, state, sources)
        ctx.link.send("ready", port=sock.getsockname()[1])
        ctx.link.start_event.wait()
        cpu0 = cpu_s()
        _quiet_gc()
        counts = broadcast(ctx, sock, clock, sources, writer, workers)
        counts["cpu_run_s"] = round(cpu_s() - cpu0, 3)  # sending phase only
    finally:
        poller.stop()
        truth_counts = prober.stop() if prober is not None else {}
        writer.flush()
        sock.close()
    counts.update(truth_counts)
    counts.update(rows=writer.rows_written, parts=writer.parts_written, **poller.counts())
    ctx.report_done(counts)
    return 0


def broadcast(
    ctx: NodeContext,
    sock: socket.socket,
    clock: NodeClock,
    sources: Sequence[Any],
    writer: PartWriter,
    workers: list[tuple[str, str, int]],
) -> dict[str, Any]:
    """Pace the schedule, stamping each event with every source from one clock read."""
    spec = ctx.spec
    stop = ctx.link.stop_event
    codec = ctx.codec()
    encode = codec.encode_flat
    kind_event = wire.KIND_EVENT
    none_flat = (0, wire.NO_VALUE, wire.NO_VALUE, wire.NO_VALUE)
    total = spec.workload.events
    payload = spec.workload.payload_bytes
    names = [w[0] for w in workers]
    addrs = [(h, p) for _, h, p in workers]
    nw = len(addrs)
    failed_to = [0] * nw
    errors: Counter[str] = Counter()
    readers = [s.read for s in sources]
    lateness = Strided(total)
    rows = _SendRows(writer, len(readers), nw, spec.run.batch_rows, lateness)
    batch_rows = rows.batch_rows
    add_row = rows.buf.extend
    pending = 0
    now = clock.now
    # one connected socket per worker: a cheaper send, and a dead worker's ICMP error surfaces
    # as a counted send failure
    outs = [_connected(ctx.spec.run.host, a) for a in addrs]
    sends = [o.send for o in outs]
    pacer = Pacer()
    mono = pacer.clock
    report_every = int(PROGRESS_EVERY_S * 1e9)
    sent = 0
    prev_delay = 0
    due = started = mono()
    next_report = started + report_every
    for i, delay in enumerate(delays_ns(spec.workload, spec.seed)):
        if stop.is_set():
            break
        actual = pacer.wait_until(due, prev_delay)
        truth, local = now()
        flat: tuple = ()
        for read in readers:
            r = read(local, truth)  # Reading: (estimate, earliest, latest, status, as_of)
            e = r[0]
            flat += none_flat if e is None else (r[3], e, r[1], r[2])
        data = encode(kind_event, i, i, local, flat, payload)
        ok = nw
        for j, snd in enumerate(sends):  # successes per worker: sent − failures (at the end)
            try:
                snd(data)
            except OSError as err:
                failed_to[j] += 1
                errors[type(err).__name__] += 1
                ok -= 1
        late = actual - due
        add_row((i, truth, local, delay, late, ok))
        add_row(flat)
        pending += 1
        if pending == batch_rows:
            rows.flush()
            add_row = rows.buf.extend
            pending = 0
        sent += 1
        prev_delay = delay
        due += delay
        if actual >= next_report:
            ctx.link.send(
                "progress", sent=sent, total=total, elapsed_s=round((actual - started) / 1e9, 3),
                behind_ms=round(late / 1e6, 3),
            )  # fmt: skip
            next_report = actual + report_every
    elapsed = mono() - started
    rows.flush()
    # End of stream, carrying the number of events sent, a few times (UDP may drop one).
    local = clock.local_ns()
    end = encode(wire.KIND_END, sent, sent, local, none_flat * len(readers), payload)
    for _ in range(END_MARKER_COPIES):
        for snd in sends:
            try:
                snd(end)
            except OSError:
                pass
    for o in outs:
        o.close()
    counts: dict[str, Any] = {
        "sent": sent,
        "sent_to": {n: sent - f for n, f in zip(names, failed_to, strict=True)},
        "send_failures": dict(zip(names, failed_to, strict=True)),
        "send_errors": dict(errors),
        "elapsed_s": round(elapsed / 1e9, 6),
        "achieved_rate_per_s": round(sent / (elapsed / 1e9), 3) if elapsed > 0 else None,
        "wakeups": pacer.sleeps,
    }
    counts.update(_summary(lateness.values(), "pacing_error"))
    return counts


class _SendRows:
    """The coordinator's send rows while it broadcasts: per event, 6 + 4 × sources integers
    appended to one int64 buffer (id, truth, local, scheduled delay, lateness, successful
    sends, then the readings as the wire tuple it already built: two C-level extends, no
    per-row tuple for numpy to convert), handed to the writer as arrow columns every
    ``batch_rows`` events (``send_schema`` order; a wire NO_VALUE is null); the pacing-error
    sample (``Strided``) is taken there."""

    def __init__(self, writer: PartWriter, n_sources: int, n_workers: int, batch_rows: int,
                 lateness: Strided) -> None:  # fmt: skip
        self.writer = writer
        self.n_sources = n_sources
        self.n_workers = n_workers
        self.batch_rows = max(1, batch_rows)
        self.lateness = lateness
        self.buf = array("q")

    def flush(self) -> None:
        if not self.buf:
            return
        import numpy as np
        import pyarrow as pa

        from skewlab.clocks.base import Readings
        from skewlab.node.receipts import reading_columns

        m = np.frombuffer(self.buf, dtype=np.int64).reshape(-1, 6 + 4 * self.n_sources)
        self.buf = array("q")  # a new buffer (m views the old one): the caller rebinds extend
        ids = m[:, 0].astype(np.uint64)
        ok = m[:, 5]
        stride = self.lateness.stride
        self.lateness.add_many(m[:, 4][m[:, 0] % stride == 0])
        cols = [pa.array(ids, pa.uint64()), pa.array(ids, pa.uint64())]
        cols += [pa.array(m[:, k], pa.int64()) for k in (1, 2, 3, 4)]
        cols += [pa.array(ok, pa.uint16()), pa.array(self.n_workers - ok, pa.uint16())]
        for k in range(self.n_sources):
            st, e, lo, hi = (m[:, 6 + 4 * k + j] for j in range(4))
            r = Readings(e, lo, hi, st.astype(np.int8), e != wire.NO_VALUE)
            cols += reading_columns(r, "est")
        self.writer.append_columns(cols)
