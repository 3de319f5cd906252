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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from skewlab import __version__
from skewlab.clocks.oscillator import Oscillator
from skewlab.clocks.sources import source_facts
from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import CLOCK_KINDS, NTP_KINDS
from skewlab.nemesis.timed import transitions
from skewlab.net.link import LinkColumns, link_metadata, write_link_trace
from skewlab.net.profiles import NTP_SERVER_NODE, path_name
from skewlab.net.sampling import LossProcess, sample_n
from skewlab.net.wire import MAC_LEN
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.context import wire_codec
from skewlab.node.patterns import delays_ns, drain_ns
from skewlab.node.receipts import masked, reading_columns, receipt_columns
from skewlab.sim.keys import refuse
from skewlab.sim.node import (
    CLIENT_TURN_NS,
    LOOPBACK,
    LOOPBACK_NTP,
    LOOPBACK_NTP_BACK,
    LOOPBACK_NTP_OUT,
    RECEIVE_SCHEDULING,
    SERVER_HOLD_NS,
    T0_NS,
    NodeSim,
    NtpLoopback,
    ReceiveScheduling,
    _direction,
    _seed,
    _windows,
)
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, new_experiment_id, write_json_atomic
from skewlab.timebase import VirtualClock, host_ns, monotonic_s
from skewlab.trace import (
    DELIVERED,
    LOST,
    NTP_SCHEMA,
    PartWriter,
    receipt_schema,
    send_schema,
    write_parquet,
)

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
STARTUP_NS = 300 * NS_PER_MS  # a node process's start-up before its first NTP poll
SEND_STEP_NS = 30_000  # the coordinator's j-th worker datagram leaves j·30 µs after its read


class SimError(ValueError):
    """The spec cannot be simulated; the message is one actionable line."""


@dataclass
class SimOptions:
    """Knobs of the simulator itself (not of the experiment)."""

    jobs: int = 1  # worker processes for the per-node work (1: in this process)
    cw_every: int = 1  # re-evaluate every n-th receipt at T+Δ (1: all; reported in metadata)
    # the workers' receive-side scheduling (sim/node.py; ReceiveScheduling.off() for none)
    receive: ReceiveScheduling = RECEIVE_SCHEDULING
    # the NTP paths without an emulated link, (request, reply) (``sim.node.LOOPBACK_NTP``;
    # ``sim.node.scaled_ntp_loopback`` for a slower or faster host)
    ntp_loopback: NtpLoopback = LOOPBACK_NTP


# -- writing ---------------------------------------------------------------------------------


def write_parts(directory: Path, prefix: str, table: pa.Table, rows: int) -> int:
    """Write a table as numbered part files of ``rows`` rows (whole file, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, start in enumerate(range(0, table.num_rows, rows)):
        path = directory / f"{prefix}-{i:06d}.parquet"
        tmp = path.with_name("." + path.name + ".tmp")
        write_parquet(table.slice(start, rows), tmp)
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
    workers_ready: dict[str, int]  # when each worker sent ready (warmup and a first sample)
    send_truth: np.ndarray
    send_local: np.ndarray
    wire: list[list[np.ndarray]] = field(default_factory=list)  # per source: st, est, lo, hi
    wire_valid: list[np.ndarray] = field(default_factory=list)
    cw_ms: list[int] = field(default_factory=list)
    cw_every: int = 1
    receive: ReceiveScheduling = RECEIVE_SCHEDULING
    ntp_loopback: NtpLoopback = LOOPBACK_NTP


_PLAN: _Plan | None = None


def _init(plan: _Plan) -> None:
    global _PLAN
    _PLAN = plan


def _event_delays(
    spec: ExperimentSpec, w: str, widx: int, send: np.ndarray,
    receive: ReceiveScheduling = RECEIVE_SCHEDULING,
) -> tuple:  # fmt: skip
    """Per event on path coordinator → w: arrival true time at the worker's receive loop (the
    path's delay, then the receive-side scheduling), lost, the number of duplicates, and the
    path's link trace when the path is emulated (else None)."""
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
    sampled = delay
    held = rng.random(n) < d.reorder if d.reorder > 0 else np.zeros(n, dtype=bool)
    if d.reorder > 0:
        delay = delay + np.where(held, round(d.reorder_extra_ms * 1e6), 0)
    dup = (rng.random(n) < d.duplicate) & ~lost if d.duplicate > 0 else np.zeros(n, dtype=bool)
    j = [x.name for x in spec.workers].index(w)
    t_in = send + j * SEND_STEP_NS
    path = path_name(coord, w)
    resolved = spec.network.resolve(path)
    link = None
    if resolved is not None:
        link = _event_link_trace(spec, path, resolved, t_in, sampled, delay, held, lost, dup)
    sched = receive.delays_ns(spec, j, len(spec.workers), n)  # after the link: at the worker
    return t_in + delay + sched, lost, int(dup.sum()), link


def _event_link_trace(spec: ExperimentSpec, path: str, resolved: Any, t_in: np.ndarray,
                      sampled: np.ndarray, delay: np.ndarray, held: np.ndarray,
                      lost: np.ndarray, dup: np.ndarray) -> pa.Table:  # fmt: skip
    """The link trace of an emulated event path, as its relay would write it: one row per
    event datagram in send order (a copy the model duplicates arrives with its original)."""
    cols = LinkColumns()
    codec = wire_codec(spec)
    size = codec.head_len + spec.workload.payload_bytes + (MAC_LEN if spec.run.hmac_key else 0)
    rows = zip(t_in.tolist(), sampled.tolist(), delay.tolist(), held.tolist(), lost.tolist(),
               dup.tolist(), strict=True)  # fmt: skip
    for i, (t, s, d, h, gone, twice) in enumerate(rows):
        fate, t_out = (LOST, None) if gone else (DELIVERED, t + d)
        cols.add(0, i, 0, size, t, s, d, h, fate, t_out)
        if twice:
            cols.add(0, i, 1, size, t, s, d, h, fate, t_out)
    return cols.table(link_metadata(path, [path.split("~", 1)[1], 0], spec.seed, resolved))


def _first_tick_reaching(osc: Oscillator, local_ns: int, tick: int, period: int) -> int:
    """The first tick of the grid ``tick + k·period`` (k ≥ 0) at which the node's local clock
    reads at least ``local_ns``. A local clock runs at most 1 % fast here (|drift| ≤ 1000 ppm,
    slew ≤ 500 ppm), so each jump undershoots and a few jumps land on it."""
    while True:
        short = local_ns - osc.local_at(tick)
        if short <= 0:
            return tick
        jump = max(1, short * 100 // 101)
        tick += -(-jump // period) * period


def _worker_job(name: str) -> dict[str, Any]:
    """Simulate one worker: its NTP, its receipts, their readings and T+Δ re-evaluations.

    The worker's own objects run as in a node process: clock, sync state, sources, poller
    (``NodeSim``) and the commit-wait evaluator (``node.commit_wait``), whose periodic pass
    runs on its grid of virtual instants (every ``poll_s`` from the worker's readiness). Only
    passes with something due are run: a pass with nothing due changes nothing."""
    plan = _PLAN
    assert plan is not None
    spec = ExperimentSpec.model_validate_json(plan.spec_json)
    res = ResultsDir(Path(plan.root))
    ndir = res.node_dir(name)
    widx = spec.nodes.index(spec.node(name))
    arrive, lost, dups, link = _event_delays(spec, name, widx, plan.send_truth, plan.receive)
    if link is not None:
        write_link_trace(res.link_trace_path(path_name(spec.coordinator.name, name)), link)
    # the workers are stopped when the launcher would stop them: after the drain that follows
    # the coordinator's last send; a datagram arriving later is not received
    end = int(plan.send_truth[-1]) + drain_ns(spec.run.drain_s, plan.cw_ms)
    ids = np.flatnonzero(~lost & (arrive < end))
    order = ids[np.argsort(arrive[ids], kind="stable")]  # arrival order
    truth = arrive[order]
    ntp_w = PartWriter(ndir, "ntp", NTP_SCHEMA, spec.run.batch_rows)
    node = NodeSim(spec, name, plan.workers_start, ntp_w, plan.ntp_loopback)
    osc = node.osc
    cw = CommitWaitEvaluator(node.sources, plan.cw_ms, lambda: osc.local_at(now[0]), ndir,
                             spec.run.batch_rows)  # fmt: skip
    now = [plan.workers_start]  # the commit-wait pass's virtual instant
    period = max(1, round(cw.poll_s * NS_PER_S))
    tick = plan.workers_ready[name] + period  # its thread starts once the worker is ready
    pick = np.flatnonzero(order % plan.cw_every == 0) if cw.active else np.zeros(0, np.int64)
    pick_truth, pick_ids = truth[pick], order[pick]
    # a free clock's readings are known in advance; a disciplined one's only once its servo has
    # seen every sample before them, so those are read as the receipts are queued
    pick_local = osc.local_at_array(pick_truth) if osc.discipline is None else None
    pushed = 0  # receipts (of ``pick``) queued so far
    shortest = min(plan.cw_ms) * NS_PER_MS if cw.active else 0

    def push_before(t: int) -> None:
        """Queue the picked receipts that arrived before t (their local readings are final:
        the servo has seen every sample before t)."""
        nonlocal pushed
        j = int(np.searchsorted(pick_truth, t, side="left"))
        if j > pushed:
            loc = (pick_local[pushed:j] if pick_local is not None
                   else osc.local_at_array(pick_truth[pushed:j]))  # fmt: skip
            cw.push_many(pick_ids[pushed:j], loc)
            pushed = j

    def passes_before(t: int) -> None:
        """Run every commit-wait pass before t that has something due (the state the passes
        see is the node's now: no sample becomes visible before t)."""
        nonlocal tick
        while cw.active:
            due = cw.next_due_local()
            if pushed < len(pick):  # the next receipt to arrive falls due Δ after its arrival
                nxt = int(osc.local_at(int(pick_truth[pushed]))) + shortest
                due = nxt if due is None or nxt < due else due
            if due is None:
                return
            tick = _first_tick_reaching(osc, due, tick, period)
            if tick >= t:
                return
            push_before(tick)
            now[0] = tick
            cw.run_due()
            tick += period

    node.run_until(int(end), passes_before)
    passes_before(int(end))
    now[0] = max(now[0], int(end))
    cw_counts = cw.stop()
    ntp_w.flush()
    _write_ntp_links(node, res)
    local, reads = node.read(truth)
    sent: list[pa.Array] = []
    for k in range(len(spec.sources)):
        st, e, lo, hi = plan.wire[k]
        v = plan.wire_valid[k][order]
        sent += [pa.array(st[order], pa.int8())]
        sent += [masked(x[order], pa.int64(), v) for x in (e, lo, hi)]
    cols = receipt_columns(order, order, truth, local, plan.send_local[order], reads, sent)
    table = pa.Table.from_arrays(cols, schema=receipt_schema(spec.sources))
    parts = write_parts(ndir, "events", table, spec.run.batch_rows)
    reordered = int((np.diff(order) < 0).sum()) if len(order) > 1 else 0
    counts = {
        "received": len(order), "duplicates": dups, "reordered": reordered, "rejected": 0,
        "end_markers": 0, "coordinator_sent": len(plan.send_truth),
        "lost": int(len(plan.send_truth) - len(order)), "exit_reason": "simulated",
        "rows": len(order), "parts": parts, **node.counts(), **cw_counts,
        "commit_wait_every": plan.cw_every,
    }  # fmt: skip
    write_json_atomic(res.node_counts_path(name), counts)
    return counts


def _startup(spec: ExperimentSpec, ntp_loopback: NtpLoopback = LOOPBACK_NTP
             ) -> tuple[int, dict[str, int], int]:  # fmt: skip
    """The launcher's start-up sequence in virtual time: (workers' start, each worker's ready
    instant, the coordinator's start). Workers start together and are ready after their warmup
    and a first NTP sample; the coordinator starts once every worker is ready. A node without
    an NTP answer in time fails the run, as its process does (SimError). Each node's warmup is
    run on a throwaway copy: a node's run is fixed by the seed, so its real run repeats it."""
    workers_start = T0_NS + STARTUP_NS
    workers_ready = {}
    for w in spec.workers:
        ready = NodeSim(spec, w.name, workers_start, None, ntp_loopback).warm_up()
        if ready is None:
            raise SimError(_no_answer(spec, f"worker {w.name}"))
        workers_ready[w.name] = ready
    coord_start = max(workers_ready.values()) + STARTUP_NS
    if NodeSim(spec, spec.coordinator.name, coord_start, None, ntp_loopback).warm_up() is None:
        raise SimError(_no_answer(spec, f"coordinator {spec.coordinator.name}"))
    return workers_start, workers_ready, coord_start


def _record_faults(spec: ExperimentSpec, res: ResultsDir, end_ns: int) -> None:
    """The nemesis's history (``traces/_nemesis/``), as a real run writes it: each transition
    at the true instant it takes effect, by the actor that applies it in a real run — the node
    for its clock faults (all of them: a node records its oscillator's schedule as it starts),
    the NTP server process for NTP faults and the launcher for link faults (those applied
    before the run's end)."""
    clock = VirtualClock(T0_NS)
    recorders: dict[str, FaultRecorder] = {}
    kinds = (*CLOCK_KINDS, *NTP_KINDS, "link_loss")
    for due, _, i, phase, f in transitions(list(spec.faults), T0_NS, kinds):
        if due > end_ns and f.kind not in CLOCK_KINDS:
            continue
        actor = (f.node if f.kind in CLOCK_KINDS
                 else NTP_SERVER_NODE if f.kind in NTP_KINDS else "launcher")  # fmt: skip
        rec = recorders.get(actor)
        if rec is None:
            rec = recorders[actor] = FaultRecorder(res.nemesis_dir, actor, clock)
        clock.set(max(clock.now_ns(), due))
        rec.record(i, f.kind, f.target(), phase, due, f.detail())


def _write_ntp_links(node: NodeSim, res: ResultsDir) -> None:
    """The link traces of the node's emulated NTP paths (``traces/_links/``)."""
    for srv in node.servers:
        table = srv.link_table()
        if table is not None:
            write_link_trace(res.link_trace_path(srv.path), table)


def _no_answer(spec: ExperimentSpec, who: str) -> str:
    """The one-line failure of a node without an NTP answer in time (as a node process's)."""
    limit = spec.run.warmup_s + spec.run.ready_timeout_s
    return f"{who}: no NTP answer within the warmup and ready timeout ({limit:g} s)"


def _coordinator(spec: ExperimentSpec, res: ResultsDir, plan: _Plan) -> dict[str, Any]:
    """The coordinator: schedule, its NTP and its readings at every send (own rows + wire)."""
    name = spec.coordinator.name
    ndir = res.node_dir(name)
    ntp_w = PartWriter(ndir, "ntp", NTP_SCHEMA, spec.run.batch_rows)
    node = NodeSim(spec, name, plan.coord_start, ntp_w, plan.ntp_loopback)
    delays = np.fromiter(delays_ns(spec.workload, spec.seed), dtype=np.int64,
                         count=spec.workload.events)  # fmt: skip
    start = node.warm_up()  # the broadcast starts once the coordinator is ready
    if start is None:
        raise SimError(_no_answer(spec, f"coordinator {name}"))
    send = start + np.concatenate(([0], np.cumsum(delays[:-1])))
    node.run_until(int(send[-1]))
    ntp_w.flush()
    _write_ntp_links(node, res)
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
        cols += reading_columns(r, "est")
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
    """Raise SimError for what virtual time cannot model (sources backed by host services,
    the spec keys ``sim/keys.py`` refuses)."""
    from skewlab.clocks.track import SIMULATED_SOURCES

    bad = [s for s in spec.sources if s not in SIMULATED_SOURCES]
    if bad:
        raise SimError(
            f"source(s) {', '.join(bad)} read a host service and cannot be simulated; "
            f"simulated sources: {', '.join(SIMULATED_SOURCES)}"
        )
    refuse(spec, SimError)  # spec keys simulate does not model (sim/keys.py), one line


def simulate(
    spec: ExperimentSpec,
    out_dir: Path,
    options: SimOptions | None = None,
    results_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ResultsDir:
    """Run ``spec`` in virtual time; return the results folder (traces, spec, metadata)."""
    opt = options or SimOptions()
    say = progress or (lambda _s: None)
    check_simulable(spec)
    workers_start, workers_ready, coord_start = _startup(spec, opt.ntp_loopback)  # fails first
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        res = ResultsDir(results_dir)
    else:
        res = ResultsDir.create(out_dir, new_experiment_id(spec.name))
    res.spec_path.write_text(spec.to_json())
    wall0 = monotonic_s()
    meta: dict[str, Any] = {
        "experiment_id": res.root.name, "skewlab_version": __version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "host": platform.node(), "launcher": "simulate", "truth_available": True,
        "sources": source_facts(spec.sources), "t0_ns": T0_NS,
        "started_unix_ns": host_ns(), "status": "running",
    }  # fmt: skip
    write_json_atomic(res.metadata_path, meta)
    try:
        return _run(spec, res, meta, opt, say, wall0, workers_start, coord_start, workers_ready)
    except KeyboardInterrupt as e:  # SIGINT/SIGTERM (skewlab.interrupts): record, then stop
        meta.update(status="interrupted", duration_s=round(monotonic_s() - wall0, 3))
        write_json_atomic(res.metadata_path, meta)
        e.results = res.root  # type: ignore[attr-defined]  # where the partial run is
        raise


def _run(spec: ExperimentSpec, res: ResultsDir, meta: dict[str, Any], opt: SimOptions,
         say: Callable[[str], None], wall0: float, workers_start: Any, coord_start: Any,
         workers_ready: Any) -> ResultsDir:  # fmt: skip
    """The body of ``simulate`` once its folder and metadata exist."""
    from skewlab.interrupts import pool
    from skewlab.node.patterns import effective_commit_wait_ms

    plan = _Plan(spec.to_json(), str(res.root), workers_start, coord_start, workers_ready,
                 np.zeros(0, np.int64), np.zeros(0, np.int64),
                 cw_ms=effective_commit_wait_ms(spec), cw_every=max(1, opt.cw_every),
                 receive=opt.receive, ntp_loopback=opt.ntp_loopback)  # fmt: skip
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
        with pool(jobs, initializer=_init, initargs=(plan,)) as ex:
            results = list(ex.map(_worker_job, names))
    for n, c in zip(names, results, strict=True):
        nodes[n] = {"role": "worker", "counts": c}
    _record_faults(spec, res, int(plan.send_truth[-1]) + drain_ns(spec.run.drain_s, plan.cw_ms))
    wall = monotonic_s() - wall0
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
            "loopback_ntp_delay": {
                "out": json.loads(opt.ntp_loopback[0].model_dump_json()),
                "back": json.loads(opt.ntp_loopback[1].model_dump_json()),
            },
            "send_step_ns": SEND_STEP_NS,
            "receive_scheduling": opt.receive.as_dict(),
            "server_hold_ns": SERVER_HOLD_NS, "client_turn_ns": CLIENT_TURN_NS,
        },
    )  # fmt: skip
    write_json_atomic(res.metadata_path, meta)
    return res


__all__ = [
    "LOOPBACK",
    "LOOPBACK_NTP_BACK",
    "LOOPBACK_NTP_OUT",
    "SimError",
    "SimOptions",
    "check_simulable",
    "simulate",
]
