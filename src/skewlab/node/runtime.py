"""Node processes: embedded NTP server, worker and coordinator.

Each runs as its own OS process (``python -m skewlab.node``), reads time only through its own
emulated oscillator, talks to the launcher over the control channel and writes its own trace.
"""

from __future__ import annotations

import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.net import wire
from skewlab.node.control import ControlLink
from skewlab.node.patterns import delays_ns
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import NtpClient
from skewlab.ntp.server import NtpServer
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir
from skewlab.trace import NTP_SCHEMA, PartWriter, receipt_schema, send_schema

PROGRESS_EVERY_S = 0.5


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

    def install_signals(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            self.link.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def node_clock(self) -> NodeClock:
        n = self.spec.node(self.name)
        osc = Oscillator(
            offset_ns=round(n.offset_ms * 1_000_000),
            drift_ppb=round(n.drift_ppm * 1_000),
            t0_ns=self.t0_ns,
        )
        return NodeClock(osc)


def bind_udp(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NodeFailure(f"cannot bind {what} to {host}:{port}: {e.strerror}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return sock


def run_ntp_server(ctx: NodeContext) -> int:
    spec = ctx.spec
    try:
        server = NtpServer(spec.run.host, spec.ntp.port)
    except OSError as e:
        raise NodeFailure(
            f"cannot bind the NTP server to {spec.run.host}:{spec.ntp.port}: {e.strerror}"
            " (choose another ntp.port, or 0 for any free port)"
        ) from None
    server.start()
    ctx.link.send("ready", port=server.port)
    ctx.link.stop_event.wait()
    server.stop()
    ctx.link.send("done", counts=dict(server.counters))
    return 0


def _start_sync(ctx: NodeContext, clock: NodeClock) -> tuple[SyncState, NtpPoller]:
    assert ctx.ntp_addr is not None
    state = SyncState()
    client = NtpClient(
        ctx.ntp_addr[0], ctx.ntp_addr[1], clock=clock, timeout_s=ctx.spec.ntp.timeout_s
    )
    ntp_writer = PartWriter(ctx.results.node_dir(ctx.name), "ntp", NTP_SCHEMA, batch_rows=64)
    poller = NtpPoller(client, state, ctx.spec.ntp.poll_s, ctx.spec.ntp.burst, ntp_writer).start()
    return state, poller


def _warmup(ctx: NodeContext, clock: NodeClock, state: SyncState, sources: list) -> None:
    """Wait for the warmup time and a first NTP sample, reporting per-source progress."""
    start = time.monotonic()
    deadline = start + ctx.spec.run.warmup_s + ctx.spec.run.ready_timeout_s
    next_report = 0.0
    while not ctx.link.stop_event.is_set():
        now = time.monotonic()
        done_time = now - start >= ctx.spec.run.warmup_s
        if done_time and state.latest is not None:
            return
        if now > deadline:
            raise NodeFailure(
                f"no NTP answer from {ctx.ntp_addr[0]}:{ctx.ntp_addr[1]} within "  # type: ignore[index]
                f"{ctx.spec.run.warmup_s + ctx.spec.run.ready_timeout_s:.0f} s"
            )
        if now >= next_report:
            local = clock.local_ns()
            prog = {}
            for s in sources:
                r = s.read(local)
                prog[s.name] = {
                    "status": r.status.name,
                    "offset_ns": None if r.estimate_ns is None else r.estimate_ns - local,
                    "half_width_ns": None
                    if r.latest_ns is None
                    else (r.latest_ns - r.earliest_ns) // 2,
                }
            ctx.link.send("warmup", elapsed_s=round(now - start, 2), sources=prog)
            next_report = now + PROGRESS_EVERY_S
        time.sleep(0.05)


def run_worker(ctx: NodeContext) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock = ctx.node_clock()
    osc = clock.oscillator
    sock = bind_udp(spec.run.host, node.port, f"worker {ctx.name}")
    state, poller = _start_sync(ctx, clock)
    sources = make_sources(spec.sources, state, spec.source_params)
    writer = PartWriter(ctx.results.node_dir(ctx.name), "events", receipt_schema(spec.sources))
    counts: Counter[str] = Counter()
    try:
        _warmup(ctx, clock, state, sources)
        ctx.link.send("ready", port=sock.getsockname()[1])
        seen: set[int] = set()
        sock.settimeout(0.1)
        stop = ctx.link.stop_event
        recv = sock.recvfrom
        now_ns = time.time_ns
        local_at = osc.local_at
        decode = wire.decode
        append = writer.append
        while True:
            try:
                data, _addr = recv(65535)
            except TimeoutError:
                if stop.is_set():
                    break
                continue
            truth = now_ns()
            local = local_at(truth)
            try:
                pkt = decode(data)
            except wire.WireError as e:
                counts[f"rejected_{e.reason}"] += 1
                counts["rejected"] += 1
                continue
            if pkt.kind == wire.KIND_END:
                counts["end_markers"] += 1
                continue
            if pkt.event_id in seen:
                counts["duplicates"] += 1
                continue
            seen.add(pkt.event_id)
            row: list[int | None] = [pkt.event_id, pkt.seq, truth, local, pkt.local_send_ns]
            for s in sources:
                r = s.read(local)
                row += (r.estimate_ns, r.earliest_ns, r.latest_ns, int(r.status))
            append(row)
            counts["received"] += 1
    finally:
        poller.stop()
        writer.flush()
        sock.close()
    ctx.link.send("done", counts=dict(counts), rows=writer.rows_written, ntp_samples=poller.samples)
    return 0


def run_coordinator(ctx: NodeContext, workers: list[tuple[str, str, int]]) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock = ctx.node_clock()
    sock = bind_udp(spec.run.host, node.port, "the coordinator")
    state, poller = _start_sync(ctx, clock)
    sources = make_sources(spec.sources, state, spec.source_params)
    writer = PartWriter(ctx.results.node_dir(ctx.name), "events", send_schema(spec.sources))
    addrs = [(h, p) for _, h, p in workers]
    counts: Counter[str] = Counter()
    try:
        _warmup(ctx, clock, state, sources)
        ctx.link.send("ready", port=sock.getsockname()[1])
        ctx.link.start_event.wait()
        stop = ctx.link.stop_event
        total = spec.workload.events
        payload = spec.workload.payload_bytes
        mono = time.monotonic_ns
        t_next = mono()
        started = t_next
        next_report = started
        for i, delay in enumerate(delays_ns(spec.workload, spec.seed)):
            if stop.is_set():
                break
            remaining = t_next - mono()
            if remaining > 2_000_000:
                time.sleep((remaining - 1_000_000) / 1e9)
            while mono() < t_next:
                pass
            truth, local = clock.now()
            sent_at = mono()
            data = wire.encode(wire.EventPacket(i, i, local, wire.KIND_EVENT, payload))
            ok = failed = 0
            for a in addrs:
                try:
                    sock.sendto(data, a)
                    ok += 1
                except OSError:
                    failed += 1
            row: list[int | None] = [i, i, truth, local, delay, sent_at - t_next, ok, failed]
            for s in sources:
                r = s.read(local)
                row += (r.estimate_ns, r.earliest_ns, r.latest_ns, int(r.status))
            writer.append(row)
            counts["sent"] += 1
            counts["send_failures"] += failed
            t_next += delay
            if sent_at >= next_report:
                elapsed = (sent_at - started) / 1e9
                ctx.link.send("progress", sent=i + 1, total=total, elapsed_s=round(elapsed, 2))
                next_report = sent_at + int(PROGRESS_EVERY_S * 1e9)
        end = wire.encode(
            wire.EventPacket(counts["sent"], counts["sent"], clock.local_ns(), wire.KIND_END)
        )
        for a in addrs:
            try:
                sock.sendto(end, a)
            except OSError:
                pass
    finally:
        poller.stop()
        writer.flush()
        sock.close()
    ctx.link.send("done", counts=dict(counts), rows=writer.rows_written, ntp_samples=poller.samples)
    return 0
