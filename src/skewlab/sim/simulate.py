"""Virtual-time execution of a whole experiment (``skewlab simulate``): one process, no sockets.

The same spec, oscillators (``Oscillator``, clock faults), NTP arithmetic (``compute_sample``,
server selection), clock sources (``make_sources``: they see every sample exactly as in a node)
and workload schedule (``delays_ns``) as ``skewlab run``; datagram delays and losses are drawn
from the link profiles (``network``), loopback paths from :data:`LOOPBACK`. Traces are written
in the run's schema into a normal results folder (launcher ``simulate``), so ``skewlab analyze``
works unchanged. Readings are evaluated on arrays between NTP samples (``sim.vector``).

Timeline (true time from ``t0``): workers start polling NTP at ``t0 + STARTUP``; the coordinator
starts when the workers are ready (after ``run.warmup_s``) and the broadcast starts after its own
warmup, as the local launcher does. Each node polls every ``ntp.poll_s`` after the end of its
previous burst; the burst's exchanges go back to back (a lost one costs ``ntp.timeout_s``).
Deterministic for a seed: every random stream is seeded from (seed, node, purpose).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skewlab import __version__
from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.schedule import clock_faults, ntp_server_name
from skewlab.net.distributions import LognormalDelay
from skewlab.net.profiles import NTP_SERVER_NODE, DirectionSpec, path_name
from skewlab.net.sampling import LossProcess, delay_stream, sample_n
from skewlab.node.patterns import delays_ns
from skewlab.ntp.client import NtpError, compute_sample
from skewlab.ntp.packet import ns_to_short, short_to_ns
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.select import select
from skewlab.ntp.server import SERVER_PRECISION
from skewlab.sim.vector import Readings, SourceTrack
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, new_experiment_id, write_json_atomic
from skewlab.timebase import VirtualClock
from skewlab.trace import (
    COMPRESSION,
    CW_NO_REFINEMENT,
    NTP_SCHEMA,
    PartWriter,
    commit_wait_prefix,
    commit_wait_schema,
    ntp_row,
    receipt_schema,
    send_schema,
)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
T0_NS = 1_700_000_000 * NS_PER_S  # virtual time origin (fixed: a seed alone fixes the run)
STARTUP_NS = 300 * NS_PER_MS  # a node process's start-up before its first NTP poll
# Loopback paths (no emulated link), one way, documented in docs/SIMULATION.md. Measured on
# this 2-core host under load: an NTP exchange (blocking client, small packet) takes ~60 µs
# round trip; an event reaches the worker's receive loop ~150 µs after the coordinator's clock
# read, with a long tail (scheduling), and the coordinator's sends go out one after another.
LOOPBACK_NTP = DirectionSpec(delay=LognormalDelay(mean_ms=0.035, std_ms=0.015, min_ms=0.015))
LOOPBACK = DirectionSpec(delay=LognormalDelay(mean_ms=0.2, std_ms=0.3, min_ms=0.05))
SEND_STEP_NS = 30_000  # the coordinator's j-th worker datagram leaves j·30 µs after its read
SERVER_HOLD_NS = 20_000  # embedded server: receive → transmit timestamp
CLIENT_TURN_NS = 30_000  # client: one exchange's reply → the next request of a burst
SERVER_ROOT_DISPERSION_NS = short_to_ns(ns_to_short(1_000))  # embedded server's claim, on wire


class SimError(ValueError):
    """The spec cannot be simulated; the message is one actionable line."""


@dataclass
class SimOptions:
    """Knobs of the simulator itself (not of the experiment)."""

    jobs: int = 1  # worker processes for the per-node work (1: in this process)
    cw_every: int = 1  # re-evaluate every n-th receipt at T+Δ (1: all; reported in metadata)


def _seed(spec: ExperimentSpec, node_index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, node_index, purpose])


def _direction(spec: ExperimentSpec, src: str, dst: str, back: bool) -> DirectionSpec:
    r = spec.network.resolve(path_name(src, dst))
    if r is None:
        return LOOPBACK_NTP if dst.startswith(NTP_SERVER_NODE) else LOOPBACK
    return r.back if back else r.forward


def _windows(spec: ExperimentSpec, t0: int, kinds: tuple[str, ...], **match: Any) -> list[tuple]:
    """(start, end, fault) of faults of the given kinds matching ``match`` (end None: forever)."""
    out = []
    for f in spec.faults:
        if f.kind in kinds and all(getattr(f, k) == v for k, v in match.items()):
            end = f.end_ns(t0)
            out.append((f.start_ns(t0), end if end is not None else 1 << 62, f))
    return out


def node_oscillator(spec: ExperimentSpec, name: str, t0: int) -> Oscillator:
    """The node's oscillator, built as the node process builds it (runtime.NodeContext)."""
    n = spec.node(name)
    return Oscillator(
        offset_ns=round(n.offset_ms * 1_000_000),
        drift_ppb=round(n.drift_ppm * 1_000),
        t0_ns=t0,
        wander_ppb=n.wander_ppb,
        seed=spec.seed * 1000 + spec.nodes.index(n),
        faults=clock_faults(spec, name, t0),
    )


class _Server:
    """One modelled NTP server path of a node: delays and losses per direction, faults."""

    def __init__(self, spec: ExperimentSpec, node: str, k: int, rng: np.random.Generator):
        sname = ntp_server_name(k)
        self.name = sname
        fwd = _direction(spec, node, sname, back=False)
        bck = _direction(spec, node, sname, back=True)
        self.d_out = delay_stream(fwd.delay, rng)
        self.d_back = delay_stream(bck.delay, rng)
        self.l_out = LossProcess(fwd.loss, rng)
        self.l_back = LossProcess(bck.loss, rng)
        t0 = T0_NS
        self.outages = _windows(spec, t0, ("ntp_outage",), server=k)
        self.false = _windows(spec, t0, ("ntp_falseticker",), server=k)
        self.link_loss = _windows(spec, t0, ("link_loss",), path=path_name(node, sname))
        self.timeout_ns = round(spec.ntp.timeout_s * NS_PER_S)


def _in(windows: list[tuple], t: int) -> tuple | None:
    return next((w for w in windows if w[0] <= t < w[1]), None)


class NodeSim:
    """One node in virtual time: oscillator, NTP polling into its SyncState, its sources."""

    def __init__(self, spec: ExperimentSpec, name: str, start_ns: int, ntp_writer: PartWriter):
        self.spec = spec
        self.name = name
        idx = spec.nodes.index(spec.node(name))
        self.osc = node_oscillator(spec, name, T0_NS)
        self.host = VirtualClock(start_ns)
        self.clock = NodeClock(self.osc, self.host)
        self.state = SyncState(clock=self.clock)
        self.sources = make_sources(spec.sources, self.state, spec.source_params)
        self.track = SourceTrack(self.sources)
        self.servers = [_Server(spec, name, k, _seed(spec, idx, 10 + k))
                        for k in range(spec.ntp.servers)]  # fmt: skip
        self.poll_ns = round(spec.ntp.poll_s * NS_PER_S)
        self.next_poll = start_ns
        self.writer = ntp_writer
        self.samples = 0
        self.exchanges = 0
        self.lost = 0

    def _exchange(self, srv: _Server, t1: int) -> tuple[NtpSample | NtpError, int]:
        """One exchange starting at true t1: (sample or error, true time the client is free)."""
        self.exchanges += 1
        d1, d2 = srv.d_out.next(), srv.d_back.next()
        lost1, lost2 = srv.l_out.lost(), srv.l_back.lost()
        out = _in(srv.outages, t1 + d1)
        if out is not None and out[2].how == "stop":  # closed socket: ICMP unreachable at once
            self.lost += 1
            return NtpError("unreachable"), t1 + 2 * d1
        if lost1 or lost2 or out is not None or _in(srv.link_loss, t1) is not None:
            self.lost += 1
            return NtpError("timeout"), t1 + srv.timeout_ns
        t2 = t1 + d1
        t3 = t2 + SERVER_HOLD_NS
        t4 = t3 + d2
        ft = _in(srv.false, t2)
        shift = round(ft[2].offset_ms * NS_PER_MS) if ft is not None else 0
        osc = self.osc
        try:
            s = compute_sample(
                srv.name, osc.local_at(t1), t2 + shift, t3 + shift, osc.local_at(t4),
                root_dispersion_ns=SERVER_ROOT_DISPERSION_NS, precision=SERVER_PRECISION,
                truth_t1_ns=t1, truth_t4_ns=t4,
            )  # fmt: skip
        except NtpError as e:
            self.lost += 1
            return e, t4 + CLIENT_TURN_NS
        return s, t4 + CLIENT_TURN_NS

    def _burst(self, srv: _Server, t: int) -> tuple[NtpSample | NtpError, int]:
        best: NtpSample | None = None
        err: NtpError | None = None
        for _ in range(self.spec.ntp.burst):
            r, t = self._exchange(srv, t)
            if isinstance(r, NtpError):
                err = r
            elif best is None or r.delay_ns < best.delay_ns:
                best = r
        return (best if best is not None else err or NtpError("timeout")), t

    def poll(self, before: Callable[[int], None] | None = None) -> None:
        """The poll due at ``next_poll``: burst(s), selection, sample into the state (visible
        from the end of the burst, as the node's poller adds it after ``best_of``);
        ``before(t)`` runs just before the state changes at true time t."""
        t = self.next_poll
        if len(self.servers) == 1:
            out, t = self._burst(self.servers[0], t)
            s = None if isinstance(out, NtpError) else out
        else:
            outs = []
            for srv in self.servers:
                o, t = self._burst(srv, t)
                outs.append((srv.name, o))
            s = select(outs).best
        self.host.set(max(self.host.now_ns(), t))
        self.next_poll = t + self.poll_ns
        if before is not None:
            before(t)
        if s is None:
            self.state.note_failure()
            return
        gap, sgap = self.osc.gaps_at(t)
        self.state.add(s, gap_ns=gap, step_gap_ns=sgap)
        self.track.record(t)
        self.samples += 1
        self.writer.append(ntp_row(s))

    def run_until(self, end_ns: int, at: Callable[[int], None] | None = None) -> None:
        """Poll until ``end_ns``; ``at(t)`` is called before each new sample becomes visible at
        t (so the caller can do what falls due before it)."""
        while self.next_poll <= end_ns:
            self.poll(at)

    def read(self, truth: np.ndarray) -> tuple[np.ndarray, list[Readings]]:
        """(local readings, every source's readings) at true instants."""
        local = self.osc.local_at_array(truth)
        gap = sgap = None
        if not self.osc.gapless:
            gap, sgap = self.osc.gaps_at_array(truth)
        return local, self.track.read(truth, local, gap, sgap)

    def counts(self) -> dict[str, Any]:
        return {"ntp_samples": self.samples, "ntp_failed_polls": self.state.failures,
                "ntp_exchanges": self.exchanges, "ntp_exchanges_lost": self.lost}  # fmt: skip


# -- writing ---------------------------------------------------------------------------------


def _arr(values: np.ndarray, typ: pa.DataType, valid: np.ndarray | None = None) -> pa.Array:
    if valid is None or valid.all():
        return pa.array(values, type=typ)
    return pa.array(values, type=typ, mask=~valid)


def _reading_arrays(r: Readings, order: str) -> list[pa.Array]:
    """One source's columns: ``est`` order (estimate, earliest, latest, status) of the node's own
    readings, or ``wire`` order (status, estimate, earliest, latest) of the send columns."""
    e, lo, hi = (_arr(x, pa.int64(), r.valid) for x in (r.estimate, r.earliest, r.latest))
    st = pa.array(r.status, type=pa.int8())
    return [e, lo, hi, st] if order == "est" else [st, e, lo, hi]


def write_parts(directory: Path, prefix: str, table: pa.Table, rows: int) -> int:
    """Write a table as numbered part files of ``rows`` rows (whole file, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, start in enumerate(range(0, table.num_rows, rows)):
        path = directory / f"{prefix}-{i:06d}.parquet"
        tmp = path.with_name("." + path.name + ".tmp")
        pq.write_table(table.slice(start, rows), tmp, compression=COMPRESSION)
        os.replace(tmp, path)
        n += 1
    return n


# -- the run -----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What every node needs to know about the run (picklable: sent to worker processes)."""

    spec_json: str
    root: str
    workers_start: int
    coord_start: int
    send_truth: np.ndarray
    send_local: np.ndarray
    wire: list[list[np.ndarray]] = field(default_factory=list)  # per source: st, est, lo, hi
    wire_valid: list[np.ndarray] = field(default_factory=list)
    cw_ms: list[int] = field(default_factory=list)
    cw_every: int = 1


_PLAN: _Plan | None = None


def _init(plan: _Plan) -> None:
    global _PLAN
    _PLAN = plan


def _event_delays(spec: ExperimentSpec, w: str, widx: int, send: np.ndarray) -> tuple:
    """Per event: arrival true time (or −1 if lost), duplicates, on path coordinator → w."""
    coord = spec.coordinator.name
    d = _direction(spec, coord, w, back=False)
    rng = _seed(spec, widx, 1)
    n = len(send)
    delay = sample_n(d.delay, rng, n)
    if d.loss.loss_rate() == 0:
        lost = np.zeros(n, dtype=bool)
    elif d.loss.model == "bernoulli":
        lost = rng.random(n) < d.loss.rate
    else:
        lp = LossProcess(d.loss, rng)
        lost = np.fromiter((lp.lost() for _ in range(n)), dtype=bool, count=n)
    for a, b, _f in _windows(spec, T0_NS, ("link_loss",), path=path_name(coord, w)):
        lost |= (send >= a) & (send < b)
    if d.reorder > 0:
        delay = delay + np.where(rng.random(n) < d.reorder, round(d.reorder_extra_ms * 1e6), 0)
    dups = int(((rng.random(n) < d.duplicate) & ~lost).sum()) if d.duplicate > 0 else 0
    j = [x.name for x in spec.workers].index(w)
    return send + j * SEND_STEP_NS + delay, lost, dups


def _worker_job(name: str) -> dict[str, Any]:
    """Simulate one worker: its NTP, its receipts, their readings and T+Δ re-evaluations."""
    plan = _PLAN
    assert plan is not None
    spec = ExperimentSpec.model_validate_json(plan.spec_json)
    res = ResultsDir(Path(plan.root))
    ndir = res.node_dir(name)
    widx = spec.nodes.index(spec.node(name))
    arrive, lost, dups = _event_delays(spec, name, widx, plan.send_truth)
    ids = np.flatnonzero(~lost)
    order = ids[np.argsort(arrive[ids], kind="stable")]  # arrival order
    truth = arrive[order]
    ntp_w = PartWriter(ndir, "ntp", NTP_SCHEMA, spec.run.batch_rows)
    node = NodeSim(spec, name, plan.workers_start, ntp_w)
    # commit-wait: each (every cw_every-th) receipt re-evaluated once its local clock passed
    # receipt + Δ, with the samples the node has by then (reading_at, as the runtime does)
    cw_sources = [s for s in node.sources
                  if getattr(s, "bounded", False) or hasattr(s, "reading_at")]  # fmt: skip
    cw_ms = plan.cw_ms if cw_sources else []
    local_all = node.osc.local_at_array(truth)
    pending: list[tuple[int, int, int, int, int]] = []  # (due truth, Δ index, id, local, due loc)
    pick = np.flatnonzero(order % plan.cw_every == 0) if cw_ms else np.zeros(0, np.int64)
    for di, d in enumerate(cw_ms):
        due = truth[pick] + d * NS_PER_MS
        for _ in range(16):  # first true instant at which local ≥ receipt local + Δ
            short = local_all[pick] + d * NS_PER_MS - node.osc.local_at_array(due)
            if not (short > 0).any():
                break
            due = due + np.maximum(short, 0) + (short > 0)
        pending += zip(due.tolist(), [di] * len(pick), order[pick].tolist(),
                       local_all[pick].tolist(), node.osc.local_at_array(due).tolist(),
                       strict=True)  # fmt: skip
    pending.sort()
    refine = [getattr(s, "reading_at", None) for s in cw_sources]
    cw_w = [PartWriter(ndir, commit_wait_prefix(d), commit_wait_schema([s.name for s in
            cw_sources], d), spec.run.batch_rows) for d in cw_ms]  # fmt: skip
    cw_done = [0] * len(cw_ms)
    pos = 0

    def evaluate_until(t: int) -> None:
        """Re-evaluate every receipt due before t on the samples visible now (one batch:
        ``readings_at`` where the source has it, else ``reading_at`` one by one)."""
        nonlocal pos
        stop = pos
        while stop < len(pending) and pending[stop][0] < t:
            stop += 1
        if stop == pos:
            return
        batch = pending[pos:stop]
        locs = [b[3] for b in batch]
        per_src = []
        for src, fn in zip(cw_sources, refine, strict=True):
            if fn is None:
                per_src.append(None)
            elif hasattr(src, "readings_at"):
                per_src.append(src.readings_at(locs))
            else:
                per_src.append([fn(x) for x in locs])
        for i, (_due, di, eid, loc, now_loc) in enumerate(batch):
            row: list[int | None] = [eid, now_loc - loc]
            for rs in per_src:
                if rs is None:
                    row += (None, None, CW_NO_REFINEMENT)
                else:
                    r = rs[i]
                    row += (r.earliest_ns, r.latest_ns, int(r.status))
            cw_w[di].append(tuple(row))
            cw_done[di] += 1
        pos = stop

    end = max(int(truth[-1]) if len(truth) else plan.coord_start,
              max((p[0] for p in pending), default=0)) + spec.run.drain_s * NS_PER_S  # fmt: skip
    node.run_until(int(end), evaluate_until)
    evaluate_until(1 << 62)
    for w in cw_w:
        w.flush()
    ntp_w.flush()
    local, reads = node.read(truth)
    cols: list[pa.Array] = [
        pa.array(order, pa.uint64()), pa.array(order, pa.uint64()), pa.array(truth, pa.int64()),
        pa.array(local, pa.int64()), pa.array(plan.send_local[order], pa.int64()),
    ]  # fmt: skip
    for r in reads:
        cols += _reading_arrays(r, "est")
    for k in range(len(spec.sources)):
        st, e, lo, hi = plan.wire[k]
        v = plan.wire_valid[k][order]
        cols += [pa.array(st[order], pa.int8())]
        cols += [_arr(x[order], pa.int64(), v) for x in (e, lo, hi)]
    table = pa.Table.from_arrays(cols, schema=receipt_schema(spec.sources))
    parts = write_parts(ndir, "events", table, spec.run.batch_rows)
    reordered = int((np.diff(order) < 0).sum()) if len(order) > 1 else 0
    counts = {
        "received": len(order), "duplicates": dups, "reordered": reordered, "rejected": 0,
        "end_markers": 0, "coordinator_sent": len(plan.send_truth),
        "lost": int(len(plan.send_truth) - len(order)), "exit_reason": "simulated",
        "rows": len(order), "parts": parts, **node.counts(),
        "commit_wait_ms": cw_ms, "commit_wait_sources": [s.name for s in cw_sources],
        "commit_wait_evaluated": dict(zip(map(str, cw_ms), cw_done, strict=True)),
        "commit_wait_every": plan.cw_every, "commit_wait_not_done_at_stop": {},
    }  # fmt: skip
    write_json_atomic(res.node_counts_path(name), counts)
    return counts


def _coordinator(spec: ExperimentSpec, res: ResultsDir, plan: _Plan) -> dict[str, Any]:
    """The coordinator: schedule, its NTP and its readings at every send (own rows + wire)."""
    name = spec.coordinator.name
    ndir = res.node_dir(name)
    ntp_w = PartWriter(ndir, "ntp", NTP_SCHEMA, spec.run.batch_rows)
    node = NodeSim(spec, name, plan.coord_start, ntp_w)
    delays = np.fromiter(delays_ns(spec.workload, spec.seed), dtype=np.int64,
                         count=spec.workload.events)  # fmt: skip
    start = plan.coord_start + round(spec.run.warmup_s * NS_PER_S)
    node.run_until(start)  # warm up; the broadcast waits for a first sample, as a node does
    while node.samples == 0 and node.next_poll < start + round(spec.run.ready_timeout_s * 1e9):
        node.poll()
    if node.samples == 0:
        raise SimError(f"coordinator {name}: no NTP answer within the warmup and ready timeout")
    start = max(start, node.track.visible[0])
    send = start + np.concatenate(([0], np.cumsum(delays[:-1])))
    node.run_until(int(send[-1]))
    ntp_w.flush()
    local, reads = node.read(send)
    plan.send_truth, plan.send_local = send, local
    n = len(send)
    nw = len(spec.workers)
    cols: list[pa.Array] = [
        pa.array(np.arange(n), pa.uint64()), pa.array(np.arange(n), pa.uint64()),
        pa.array(send, pa.int64()), pa.array(local, pa.int64()), pa.array(delays, pa.int64()),
        pa.array(np.zeros(n, np.int64), pa.int64()), pa.array(np.full(n, nw), pa.uint16()),
        pa.array(np.zeros(n, np.int64), pa.uint16()),
    ]  # fmt: skip
    for r in reads:
        cols += _reading_arrays(r, "est")
        plan.wire.append([r.status, r.estimate, r.earliest, r.latest])
        plan.wire_valid.append(r.valid)
    table = pa.Table.from_arrays(cols, schema=send_schema(spec.sources))
    parts = write_parts(ndir, "events", table, spec.run.batch_rows)
    counts = {
        "sent": n, "sent_to": {w.name: n for w in spec.workers},
        "send_failures": {w.name: 0 for w in spec.workers}, "send_errors": {},
        "elapsed_s": round(int(send[-1] - send[0]) / 1e9, 6), "rows": n, "parts": parts,
        **node.counts(),
    }  # fmt: skip
    write_json_atomic(res.node_counts_path(name), counts)
    return counts


def check_simulable(spec: ExperimentSpec) -> None:
    """Raise SimError for what virtual time cannot model (sources backed by host services)."""
    from skewlab.sim.vector import SIMULATED_SOURCES

    bad = [s for s in spec.sources if s not in SIMULATED_SOURCES]
    if bad:
        raise SimError(
            f"source(s) {', '.join(bad)} read a host service and cannot be simulated; "
            f"simulated sources: {', '.join(SIMULATED_SOURCES)}"
        )


def simulate(
    spec: ExperimentSpec,
    out_dir: Path,
    options: SimOptions | None = None,
    results_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ResultsDir:
    """Run ``spec`` in virtual time; return the results folder (traces, spec, metadata)."""
    from skewlab.node.patterns import effective_commit_wait_ms

    opt = options or SimOptions()
    say = progress or (lambda _s: None)
    check_simulable(spec)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        res = ResultsDir(results_dir)
    else:
        res = ResultsDir.create(out_dir, new_experiment_id(spec.name))
    res.spec_path.write_text(spec.to_json())
    wall0 = time.monotonic()
    meta: dict[str, Any] = {
        "experiment_id": res.root.name, "skewlab_version": __version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "host": platform.node(), "launcher": "simulate", "truth_available": True,
        "t0_ns": T0_NS, "started_unix_ns": time.time_ns(), "status": "running",
    }  # fmt: skip
    write_json_atomic(res.metadata_path, meta)
    workers_start = T0_NS + STARTUP_NS
    coord_start = workers_start + round(spec.run.warmup_s * NS_PER_S) + STARTUP_NS
    plan = _Plan(spec.to_json(), str(res.root), workers_start, coord_start,
                 np.zeros(0, np.int64), np.zeros(0, np.int64),
                 cw_ms=effective_commit_wait_ms(spec), cw_every=max(1, opt.cw_every))  # fmt: skip
    nodes: dict[str, dict[str, Any]] = {}
    coord = spec.coordinator.name
    nodes[coord] = {"role": "coordinator", "counts": _coordinator(spec, res, plan)}
    say(f"coordinator {coord}: {len(plan.send_truth)} sends simulated")
    names = [w.name for w in spec.workers]
    jobs = max(1, min(opt.jobs, len(names)))
    if jobs == 1:
        _init(plan)
        results = []
        for i, n in enumerate(names):
            results.append(_worker_job(n))
            say(f"worker {n} done ({i + 1}/{len(names)})")
    else:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(plan,)) as ex:
            results = list(ex.map(_worker_job, names))
    for n, c in zip(names, results, strict=True):
        nodes[n] = {"role": "worker", "counts": c}
    wall = time.monotonic() - wall0
    receipts = sum(c["received"] for c in results)
    meta.update(
        status="completed", duration_s=round(wall, 3),
        accounting={n: {"sent": len(plan.send_truth), "received": c["received"],
                        "duplicated": c["duplicates"], "rejected": 0, "lost": c["lost"]}
                    for n, c in zip(names, results, strict=True)},
        failed_nodes={}, nodes=nodes,
        simulation={
            "virtual_duration_s": round((int(plan.send_truth[-1]) - T0_NS) / 1e9, 3),
            "wall_s": round(wall, 3), "receipts": receipts,
            "receipts_per_s": round(receipts / wall, 1) if wall > 0 else None,
            "jobs": jobs, "commit_wait_every": plan.cw_every,
            "loopback_delay": json.loads(LOOPBACK.model_dump_json()),
            "loopback_ntp_delay": json.loads(LOOPBACK_NTP.model_dump_json()),
            "send_step_ns": SEND_STEP_NS,
            "server_hold_ns": SERVER_HOLD_NS, "client_turn_ns": CLIENT_TURN_NS,
        },
    )  # fmt: skip
    write_json_atomic(res.metadata_path, meta)
    return res


__all__ = ["LOOPBACK", "LOOPBACK_NTP", "SimError", "SimOptions", "check_simulable", "simulate"]
