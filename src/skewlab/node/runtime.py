"""Node processes: embedded NTP server, worker and coordinator.

Each runs as its own OS process (``python -m skewlab.node``), reads time only through its own
emulated oscillator, talks to the launcher over the control channel and writes its own trace.
"""

from __future__ import annotations

import gc
import signal
import socket
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skewlab.clocks.base import Reading
from skewlab.clocks.discipline import make_discipline
from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.ntp import NtpNemesis
from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import CLOCK_KINDS, NTP_KINDS, clock_faults
from skewlab.net import wire
from skewlab.node.control import ControlLink
from skewlab.node.patterns import Pacer, commit_wait_delays_ms, delays_ns, expected_duration_ns
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import NtpClient
from skewlab.ntp.server import NtpServer
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, write_json_atomic
from skewlab.trace import (
    CW_NO_REFINEMENT,
    NTP_SCHEMA,
    PartWriter,
    commit_wait_prefix,
    commit_wait_schema,
    receipt_schema,
    send_schema,
    wire_sentinel_columns,
)

PROGRESS_EVERY_S = 0.5
END_MARKER_COPIES = 3  # the end-of-stream packet is sent this many times (UDP may drop one)
MAX_COST_SAMPLES = 200_000  # per-packet cost samples kept (evenly strided beyond this)
SOCKET_BUFFER_BYTES = 32 << 20  # requested UDP buffer (the kernel may grant less)
STOP_DRAIN_S = 0.5  # on stop, keep reading what is already queued for at most this long
CW_STOP_BUDGET_S = 10.0  # at stop, commit-wait re-evaluation of a backlog gets this long
# Linux's SO_RCVBUFFORCE / SO_SNDBUFFORCE (<asm-generic/socket.h>): Python's socket module does
# not export them, so without the numbers the *FORCE path was never taken.
_LINUX = sys.platform.startswith("linux")
SO_RCVBUFFORCE: int | None = getattr(socket, "SO_RCVBUFFORCE", 33 if _LINUX else None)
SO_SNDBUFFORCE: int | None = getattr(socket, "SO_SNDBUFFORCE", 32 if _LINUX else None)
CW_BATCH = 65_536  # commit-wait receipts evaluated together at most (one call per source)
CW_MAX_BACKLOG = 4_000_000  # receipts awaiting their longest T+Δ (16 B each); more: shed, counted


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

    def install_signals(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            self.signalled.set()
            self.link.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def node_clock(self) -> NodeClock:
        n = self.spec.node(self.name)
        osc = Oscillator(
            offset_ns=round(n.offset_ms * 1_000_000),
            drift_ppb=round(n.drift_ppm * 1_000),
            t0_ns=self.t0_ns,
            wander_ppb=n.wander_ppb,
            seed=self.spec.seed * 1000 + self.spec.nodes.index(n),
            faults=clock_faults(self.spec, self.name, self.t0_ns),
            # "disciplined": a servo slews the system clock toward NTP (it follows the node's
            # SyncState, see _start_sync); "free": none
            discipline=make_discipline(n.discipline),
        )
        self._record_clock_faults()
        return NodeClock(osc)

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

    def report_done(self, counts: dict[str, Any]) -> None:
        """Final counts: to the node's own counts.json (always) and to the launcher (if there)."""
        counts["cpu_s"] = round(time.process_time(), 3)  # this process's CPU time, user + sys
        write_json_atomic(self.results.node_counts_path(self.name), counts)
        self.link.send("done", counts=counts)
        print(f"{self.name}: done {counts}", flush=True)


def wire_codec(spec: ExperimentSpec) -> wire.WireCodec:
    """The experiment's event codec: its source set and optional HMAC key."""
    key = spec.run.hmac_key.encode() if spec.run.hmac_key else None
    return wire.WireCodec(spec.sources, key)


def effective_commit_wait_ms(spec: ExperimentSpec) -> list[int]:
    """The experiment's commit-wait Δ values (ms), scaled to its scheduled duration."""
    cw = spec.commit_wait
    return commit_wait_delays_ms(
        cw.delays_s, cw.max_fraction, expected_duration_ns(spec.workload, spec.seed)
    )


def bind_udp(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise NodeFailure(f"cannot bind {what} to {host}:{port}: {e.strerror}") from None
    _big_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE)
    _big_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    return sock


def _big_buffer(sock: socket.socket, opt: int, force: int | None) -> None:
    """Ask for a SOCKET_BUFFER_BYTES buffer: it absorbs the receive loop's pauses (batch
    flushes, descheduling). The *FORCE option passes net.core.[rw]mem_max when the process
    may (CAP_NET_ADMIN); otherwise the kernel caps the plain request at that maximum."""
    if force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_BYTES)
            return
        except OSError:
            pass
    sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)


def udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped for this socket (its receive buffer was full), from
    /proc/net/udp[6] matched by inode; None where the kernel does not say (not Linux)."""
    import os

    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
    except OSError:
        return None
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)  # header
                for line in f:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == inode:
                        return int(cols[-1])
        except OSError:
            continue
    return None


def _connected(host: str, addr: tuple[str, int]) -> socket.socket:
    """A UDP socket on ``host`` connected to ``addr`` (one per destination)."""
    s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
    _big_buffer(s, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    s.bind((host, 0))
    s.connect(addr)
    return s


def run_ntp_server(ctx: NodeContext) -> int:
    """Serve ``ntp.servers`` NTP servers (server k on ``ntp.port + k`` if a port is set) and
    apply the spec's NTP faults to them (skewlab.nemesis.ntp)."""
    spec = ctx.spec
    servers: list[NtpServer] = []
    for k in range(spec.ntp.servers):
        port = spec.ntp.port + k if spec.ntp.port else 0
        try:
            servers.append(NtpServer(spec.run.host, port, seed=spec.seed * 100 + k).start())
        except OSError as e:
            for s in servers:
                s.stop()
            raise NodeFailure(
                f"cannot bind the NTP server to {spec.run.host}:{port}: {e.strerror}"
                " (choose another ntp.port, or 0 for any free port)"
            ) from None
    ports = [s.port for s in servers]
    retired: list[NtpServer] = []

    def rebind(k: int) -> NtpServer:
        retired.append(servers[k])
        return NtpServer(spec.run.host, ports[k], seed=spec.seed * 100 + k).start()

    has_faults = any(f.kind in NTP_KINDS for f in spec.faults)
    recorder = FaultRecorder(ctx.results.nemesis_dir, ctx.name) if has_faults else None
    nemesis = NtpNemesis(spec.faults, servers, ctx.t0_ns, recorder, rebind).start()
    ctx.link.send("ready", port=ports[0], ports=ports)
    ctx.link.stop_event.wait()
    nemesis.stop()
    counts: Counter[str] = Counter()
    per_server = []
    for s in servers:
        s.stop()  # idempotent: a server stopped by an outage is simply closed again
    for k, s in enumerate(servers):
        c = Counter(s.counters)
        for old in retired:
            if old.port == ports[k]:
                c.update(old.counters)
        per_server.append(dict(c))
        counts.update(c)
    out: dict[str, Any] = dict(counts)
    if len(servers) > 1:
        out["servers"] = per_server
    out.update(nemesis.counts())
    ctx.link.send("done", counts=out)
    return 0


def _start_sync(ctx: NodeContext, clock: NodeClock) -> tuple[SyncState, NtpPoller]:
    assert ctx.ntp_addr is not None
    state = SyncState(clock=clock)  # sources map local readings to monotonic time through it
    disc = getattr(clock.oscillator, "discipline", None)
    if disc is not None:
        disc.follow(state)  # subscribed before the first poll: every sample updates the servo
    addrs = ctx.ntp_addrs or [ctx.ntp_addr]
    clients = [NtpClient(h, p, clock=clock, timeout_s=ctx.spec.ntp.timeout_s) for h, p in addrs]
    ntp_writer = PartWriter(ctx.results.node_dir(ctx.name), "ntp", NTP_SCHEMA, batch_rows=64)
    poller = NtpPoller(
        clients if len(clients) > 1 else clients[0], state, ctx.spec.ntp.poll_s,
        ctx.spec.ntp.burst, ntp_writer,
    ).start()  # fmt: skip
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
                    if r.latest_ns is None or r.earliest_ns is None
                    else (r.latest_ns - r.earliest_ns) // 2,
                }
            ctx.link.send("warmup", elapsed_s=round(now - start, 2), sources=prog)
            next_report = now + PROGRESS_EVERY_S
        time.sleep(0.05)


def percentile(sorted_values: Sequence[int], q: int) -> int | None:
    """Nearest-rank percentile (integer q in 1..100) of an ascending sequence; None if empty."""
    n = len(sorted_values)
    if n == 0:
        return None
    rank = max(1, -(-q * n // 100))  # ceil(q·n/100), exact in integers
    return int(sorted_values[rank - 1])


class Strided:
    """Every ``stride``-th value of a stream of ``total`` (at most about ``cap`` values), in
    a buffer allocated and zero-filled up front, so a long run's memory does not creep."""

    def __init__(self, total: int, cap: int = MAX_COST_SAMPLES) -> None:
        self.stride = max(1, total // cap)
        self._buf = array("q", bytes(8 * (total // self.stride + 1)))
        self._n = 0

    def add(self, value: int) -> None:
        if self._n < len(self._buf):
            self._buf[self._n] = value
            self._n += 1

    def values(self) -> array:
        return self._buf[: self._n]


def _summary(samples: array, prefix: str) -> dict[str, int | None]:
    s = sorted(samples)
    return {
        f"{prefix}_samples": len(s),
        f"{prefix}_median_ns": percentile(s, 50),
        f"{prefix}_p99_ns": percentile(s, 99),
        f"{prefix}_max_ns": int(s[-1]) if s else None,
    }


# -- commit-wait re-evaluation ------------------------------------------------------------------


class CommitWaitEvaluator:
    """Re-evaluates each receipt's bounded readings at T+Δ, in a background thread.

    The receive loop only appends the receipt's event id and local time to two flat integer
    arrays (the backlog, shared by every Δ: 16 bytes per receipt, no object per receipt); the
    thread evaluates a receipt once the node's local clock has passed receipt + Δ, asking each
    source for its retrospective reading of the receipt instant (``readings_columns`` or
    ``readings_at`` / ``reading_at(past_local_ns)``, which may use NTP samples taken after it)
    and writes whole columns. A source without ``reading_at`` gets status
    ``CW_NO_REFINEMENT`` and no values: nothing is invented. Each row also records the actual
    age of the evaluation (≥ Δ). One part-file series per Δ (``cw<Δ>-NNNNNN.parquet``).
    """

    def __init__(
        self,
        sources: Sequence[Any],
        delays_ms: Sequence[int],
        local_now: Callable[[], int],
        directory: Any,
        batch_rows: int = 8192,
        poll_s: float | None = None,
        max_backlog: int = CW_MAX_BACKLOG,
    ) -> None:
        self.sources = [s for s in sources if _wants_commit_wait(s)]
        self.max_backlog = max_backlog  # receipts not yet evaluated for every Δ: the bound
        self.shed = 0  # receipts not queued because the backlog was full (no T+Δ columns)
        self.names = [s.name for s in self.sources]
        self.delays_ms = list(delays_ms) if self.sources else []
        self.local_now = local_now
        self._refine = [getattr(s, "reading_at", None) for s in self.sources]
        self._refine_many = [getattr(s, "readings_at", None) for s in self.sources]
        self._columns = [getattr(s, "readings_columns", None) for s in self.sources]
        # The backlog: receipts [base, base + len) of the stream; Δ k has evaluated up to
        # cursor[k] (the longest Δ is the furthest behind). Only the receive loop appends; only
        # the thread drops the prefix every Δ is done with (appends and prefix drops commute).
        self._ids = array("Q")
        self._locals = array("q")
        self._base = 0
        self._cursor = [0] * len(self.delays_ms)
        self._writers = [
            PartWriter(directory, commit_wait_prefix(d), commit_wait_schema(self.names, d),
                       batch_rows)
            for d in self.delays_ms
        ]  # fmt: skip
        shortest = min(self.delays_ms) if self.delays_ms else 1000
        self.poll_s = poll_s if poll_s is not None else min(0.5, shortest / 1000 / 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-wait", daemon=True)
        self.evaluated = [0] * len(self.delays_ms)
        self.batches = 0  # evaluation calls (each: every source, one batch of receipts)
        self.cpu_eval_s = 0.0  # thread CPU time in the sources' retrospective readings
        self.cpu_write_s = 0.0  # thread CPU time appending and writing the cw parts
        self.errors = 0
        self.first_error: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.delays_ms)

    def backlog(self) -> int:
        """Receipts queued and not yet evaluated for the longest Δ."""
        return self._base + len(self._locals) - self._cursor[-1] if self._cursor else 0

    def push(self, event_id: int, local_ns: int) -> None:
        """Queue one receipt (called from the receive loop: two array appends). When the
        backlog is full the receipt is shed for every Δ and counted."""
        if self._base + len(self._locals) - self._cursor[-1] >= self.max_backlog:
            self.shed += 1
            return
        self._ids.append(event_id)
        self._locals.append(local_ns)

    def start(self) -> CommitWaitEvaluator:
        if self.active:
            self._thread.start()
        return self

    def _evaluate(self, ids, locals_, now_local: int) -> list[Any]:  # type: ignore[no-untyped-def]
        """Columns for due receipts evaluated when the clock read ``now_local``: each source's
        retrospective readings of the whole batch at once where the source can (identical
        results), else one by one. ``ids``, ``locals_``: int arrays."""
        import numpy as np
        import pyarrow as pa

        n = len(ids)
        cols: list[Any] = [pa.array(ids, type=pa.uint64()),
                           pa.array(now_local - locals_, type=pa.int64())]  # fmt: skip
        for fn, many, colfn in zip(self._refine, self._refine_many, self._columns, strict=True):
            if fn is None:
                cols += (pa.nulls(n, pa.int64()), pa.nulls(n, pa.int64()),
                         pa.array(np.full(n, CW_NO_REFINEMENT, dtype=np.int8)))  # fmt: skip
                continue
            if colfn is not None:
                try:
                    _est, lo, hi, st, _t4 = colfn(locals_)
                except Exception:  # counted below, receipt by receipt
                    pass
                else:
                    none = st == 0  # UNSYNCHRONIZED: no values
                    cols += (pa.array(lo, mask=none), pa.array(hi, mask=none), pa.array(st))
                    continue
            loc_list = locals_.tolist()
            rs: list[Reading | None] | None = None
            if many is not None:
                try:
                    rs = many(loc_list)
                except Exception:  # counted below, receipt by receipt
                    rs = None
            if rs is None:
                rs = [self._one(fn, local) for local in loc_list]
            cols.append(pa.array([None if r is None else r[1] for r in rs], type=pa.int64()))
            cols.append(pa.array([None if r is None else r[2] for r in rs], type=pa.int64()))
            cols.append(pa.array([None if r is None else int(r[3]) for r in rs], type=pa.int8()))
        return cols

    def _one(self, fn: Callable[[int], Reading], local_ns: int) -> Reading | None:
        """One retrospective reading; a broken source must not lose the trace: count it."""
        try:
            return fn(local_ns)
        except Exception as e:
            self.errors += 1
            if self.first_error is None:
                self.first_error = f"{type(e).__name__}: {e}"
            return None

    def run_due(self, budget_s: float | None = None) -> int:
        """Evaluate every queued receipt whose T+Δ has passed (within ``budget_s`` of wall time
        if given), in batches of at most CW_BATCH; return how many were done."""
        import numpy as np

        done = 0
        until = None if budget_s is None else time.monotonic() + budget_s
        for k, d in enumerate(self.delays_ms):
            w = self._writers[k]
            delta = d * 1_000_000
            # what is due at this instant, not what falls due while evaluating: chasing that
            # frontier would evaluate a trickle of receipts per call, many calls per poll
            now_local = self.local_now()
            while True:
                if until is not None and time.monotonic() > until:
                    break
                start = self._cursor[k] - self._base
                avail = min(len(self._ids), len(self._locals)) - start
                if avail <= 0:
                    break
                stop = start + min(avail, CW_BATCH)
                locs = np.frombuffer(self._locals[start:stop], dtype=np.int64)  # copies
                late = locs + delta > now_local  # receipts in arrival order: due ones lead
                n = int(np.argmax(late)) if late.any() else len(locs)
                if n == 0:
                    break
                ids = np.frombuffer(self._ids[start : start + n], dtype=np.uint64)
                c0 = time.thread_time()
                cols = self._evaluate(ids, locs[:n], self.local_now())  # age: as evaluated
                c1 = time.thread_time()
                w.append_columns(cols)
                self.cpu_eval_s += c1 - c0
                self.cpu_write_s += time.thread_time() - c1
                self.batches += 1
                self._cursor[k] += n
                done += n
                self.evaluated[k] += n
        self._compact()
        return done

    def _compact(self) -> None:
        """Drop the backlog's prefix every Δ has evaluated, once it is worth the copy."""
        if not self._cursor:
            return
        k = min(self._cursor) - self._base
        if k > 0 and k >= len(self._locals) // 2:
            del self._ids[:k]
            del self._locals[:k]
            self._base += k

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.run_due()

    def stop(self) -> dict[str, Any]:
        """Stop the thread, evaluate what is due, flush; receipts not yet due are counted."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.active:
            self.run_due(CW_STOP_BUDGET_S)  # a backlog beyond the budget stays unevaluated
        for w in self._writers:
            w.flush()
        end = self._base + min(len(self._ids), len(self._locals))
        return {
            "commit_wait_ms": self.delays_ms,
            "commit_wait_sources": self.names,
            "commit_wait_evaluated": dict(zip(map(str, self.delays_ms), self.evaluated,
                                              strict=True)),
            "commit_wait_not_done_at_stop": {str(d): end - c for d, c in
                                            zip(self.delays_ms, self._cursor, strict=True)},
            "commit_wait_errors": self.errors,
            "commit_wait_shed": self.shed,
            "commit_wait_batches": self.batches,
            "commit_wait_cpu_eval_s": round(self.cpu_eval_s, 3),
            "commit_wait_cpu_write_s": round(self.cpu_write_s, 3),
            "commit_wait_first_error": self.first_error,
        }  # fmt: skip


def _wants_commit_wait(source: Any) -> bool:
    """Bounded sources and any source with retrospective refinement are re-evaluated."""
    return bool(getattr(source, "bounded", False)) or hasattr(source, "reading_at")


# -- worker ---------------------------------------------------------------------------------------


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
        now_ns = time.time_ns
        mono = time.monotonic_ns
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


def _quiet_gc() -> None:
    """Before a hot loop: move what exists to the permanent generation and collect young
    objects every 100,000 allocations instead of every 700. The data path allocates tuples of
    integers (no reference cycles), and each default young collection walked the pending
    batch's rows: about 8 % of the receive loop's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 20, 20)


def run_worker(ctx: NodeContext) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock = ctx.node_clock()
    sock = bind_udp(spec.run.host, node.port, f"worker {ctx.name}")
    state, poller = _start_sync(ctx, clock)
    sources = make_sources(spec.sources, state, spec.source_params)
    node_dir = ctx.results.node_dir(ctx.name)
    writer = PartWriter(node_dir, "events", receipt_schema(spec.sources), spec.run.batch_rows,
                        wire_sentinel_columns(spec.sources))  # fmt: skip
    cw = CommitWaitEvaluator(sources, effective_commit_wait_ms(spec), clock.local_ns, node_dir,
                             spec.run.batch_rows)  # fmt: skip
    rx = Receiver(
        sock, wire_codec(spec), clock, sources, writer, spec.workload.events,
        ctx.link.stop_event, lambda: ctx.link.lost, ctx.signalled, spec.run.idle_exit_s,
        cw.push if cw.active else None,
    )  # fmt: skip
    cw_counts: dict[str, Any] = {}
    try:
        _warmup(ctx, clock, state, sources)
        cw.start()
        ctx.link.send("ready", port=sock.getsockname()[1], commit_wait_ms=cw.delays_ms)
        cw_counts["rcvbuf_bytes"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        cpu0, wall0 = time.process_time(), time.monotonic()
        _quiet_gc()
        rx.run()
        cw_counts["cpu_run_s"] = round(time.process_time() - cpu0, 3)  # receive phase only
        cw_counts["run_s"] = round(time.monotonic() - wall0, 3)
    finally:
        poller.stop()
        writer.flush()
        cw_counts.update(cw.stop())
        cw_counts["kernel_drops"] = udp_drops(sock)  # shed by the kernel: receive buffer full
        sock.close()
    counts = rx.counts()
    counts.update(cw_counts, rows=writer.rows_written, parts=writer.parts_written,
                  **poller.counts())  # fmt: skip
    ctx.report_done(counts)
    return 0


# -- coordinator ----------------------------------------------------------------------------------


def run_coordinator(ctx: NodeContext, workers: list[tuple[str, str, int]]) -> int:
    spec = ctx.spec
    node = spec.node(ctx.name)
    clock = ctx.node_clock()
    sock = bind_udp(spec.run.host, node.port, "the coordinator")
    state, poller = _start_sync(ctx, clock)
    sources = make_sources(spec.sources, state, spec.source_params)
    writer = PartWriter(ctx.results.node_dir(ctx.name), "events", send_schema(spec.sources),
                        spec.run.batch_rows)  # fmt: skip
    counts: dict[str, Any] = {}
    try:
        _warmup(ctx, clock, state, sources)
        ctx.link.send("ready", port=sock.getsockname()[1])
        ctx.link.start_event.wait()
        cpu0 = time.process_time()
        _quiet_gc()
        counts = broadcast(ctx, sock, clock, sources, writer, workers)
        counts["cpu_run_s"] = round(time.process_time() - cpu0, 3)  # sending phase only
    finally:
        poller.stop()
        writer.flush()
        sock.close()
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
    codec = wire_codec(spec)
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
    append = writer.append
    now = clock.now
    # one connected socket per worker: a cheaper send, and a dead worker's ICMP error surfaces
    # as a counted send failure
    outs = [_connected(ctx.spec.run.host, a) for a in addrs]
    sends = [o.send for o in outs]
    pacer = Pacer()
    mono = pacer.clock
    lateness = Strided(total)
    stride = lateness.stride
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
        own: tuple = ()
        for read in readers:
            r = read(local, truth)  # Reading: (estimate, earliest, latest, status, as_of)
            e = r[0]
            if e is None:
                flat += none_flat
                own += (None, None, None, r[3])
            else:
                flat += (r[3], e, r[1], r[2])
                own += r[:4]
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
        append((i, i, truth, local, delay, late, ok, nw - ok, *own))
        if i % stride == 0:
            lateness.add(late)
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
