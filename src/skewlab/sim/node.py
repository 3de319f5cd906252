"""One node in virtual time: the node's own objects (clock, sync state, sources, NTP poller)
polling modelled NTP servers on a virtual host clock.

The objects are the ones a node process runs (``clocks.node.node_sync``, ``clocks.sources``,
``node.sync.NtpPoller``); only the servers and the paths to them are modelled: delays and
losses per direction from the spec's network (loopback NTP paths: :data:`LOOPBACK_NTP_OUT`,
:data:`LOOPBACK_NTP_BACK`), the spec's NTP faults (outage, falseticker, link loss), the
embedded server's timestamps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from skewlab.clocks.base import ClockSource, Reading, Readings
from skewlab.clocks.node import node_sync
from skewlab.clocks.oscillator import Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.track import SourceTrack
from skewlab.nemesis.schedule import ntp_server_name
from skewlab.nemesis.timed import in_force, windows
from skewlab.net.distributions import LognormalDelay
from skewlab.net.link import LinkColumns, link_metadata
from skewlab.net.profiles import NTP_SERVER_NODE, DirectionSpec, path_name
from skewlab.net.sampling import LossProcess, delay_stream
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import NtpError, compute_sample
from skewlab.ntp.packet import ns_to_short, short_to_ns
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.server import SERVER_PRECISION
from skewlab.spec import ExperimentSpec, from_dict
from skewlab.timebase import VirtualClock
from skewlab.trace import DELIVERED, LOST, PartWriter

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
T0_NS = 1_700_000_000 * NS_PER_S  # virtual time origin (fixed: a seed alone fixes the run)
# Loopback paths (no emulated link), one way, documented in docs/SIMULATION.md. Measured on
# this 2-core host under load: an NTP exchange (blocking client, small packet) takes ~60 µs
# round trip; an event reaches the worker's receive loop ~150 µs after the coordinator's clock
# read, with a long tail (scheduling), and the coordinator's sends go out one after another.
# NTP on loopback, per direction: measured with kernel receive stamps (T2 at the server, T4 at
# the client), 2,400 exchanges of the real client and server on this host: request (T1 → T2)
# median 6 µs, mean 16 µs with a long tail; reply (T3 → T4) median 17 µs, mean 20 µs; the
# server holds a request ~30 µs (T2 → T3). The asymmetry is what biases a real sample's θ.
# Under the load of a whole experiment (38 real runs of the default experiment,
# benchmarks/validate_calibration.py) the samples the workers keep have δ median 18–34 µs
# (median 26 µs) and θ − true offset median −3.2 to −6.6 µs: request ~9 µs, reply ~17 µs. The
# models below give δ median 24 µs, θ error median −4.3 µs, skewlab's mean absolute error
# 3.9 µs and mean half-width 34.8 µs (the latest 10 real runs: 26 µs, −4.2 µs, 4.2 µs,
# 35.4 µs); the first models (request mean 16 µs σ 25 µs, reply mean 20 µs σ 12 µs at least
# 6 µs) gave θ error −2.9 µs and half the real MAE.
LOOPBACK_NTP_OUT = DirectionSpec(delay=LognormalDelay(mean_ms=0.0115, std_ms=0.008, min_ms=0.0055))
LOOPBACK_NTP_BACK = DirectionSpec(delay=LognormalDelay(mean_ms=0.0225, std_ms=0.010, min_ms=0.0125))
LOOPBACK_NTP = (LOOPBACK_NTP_OUT, LOOPBACK_NTP_BACK)
NtpLoopback = tuple[DirectionSpec, DirectionSpec]  # (request, reply) of an unemulated NTP path


def scaled_ntp_loopback(k_out: float, k_back: float) -> NtpLoopback:
    """The loopback NTP models stretched by a factor per direction (mean, σ and floor alike:
    the same shape, every delay × k), for a host whose exchanges are slower or faster than
    this one's (``sim.validate.ntp_path_factors`` measures k in a real run)."""

    def scale(d: DirectionSpec, k: float) -> DirectionSpec:
        m = d.delay
        assert isinstance(m, LognormalDelay)
        return d.model_copy(update={"delay": LognormalDelay(
            mean_ms=m.mean_ms * k, std_ms=m.std_ms * k, min_ms=m.min_ms * k)})  # fmt: skip

    return scale(LOOPBACK_NTP_OUT, k_out), scale(LOOPBACK_NTP_BACK, k_back)


# Events on loopback, coordinator → worker, up to the first of the workers' receive loops to
# run (the receive-side scheduling below adds the rest): the earlier of the two workers'
# receipts in eight real runs of the default experiment (sends at true time → receipt, stalls
# above 1 ms left out): mean 234–296 µs (median 260), std 45–91 µs (median 67)
# (benchmarks/validate_calibration.py, docs/SIMULATION.md).
LOOPBACK = DirectionSpec(delay=LognormalDelay(mean_ms=0.26, std_ms=0.065, min_ms=0.15))
SERVER_HOLD_NS = 30_000  # embedded server: receive → transmit timestamp (measured median)
CLIENT_TURN_NS = 30_000  # client: one exchange's reply → the next request of a burst
SERVER_ROOT_DISPERSION_NS = short_to_ns(ns_to_short(1_000))  # embedded server's claim, on wire


@dataclass(frozen=True)
class ReceiveScheduling:
    """Receive-side scheduling of the workers (docs/SIMULATION.md, "Timeline and models"): a
    datagram reaching every worker at once finds ``free_cpus`` CPUs for their receive loops,
    which run in the order the coordinator sent to them with probability ``send_order_prob``,
    else in a random cyclic order (per event, the same for every worker: one shared, seeded
    draw); the k-th to run waits ⌊k / free_cpus⌋ slots, each slot lognormal (mean, std in µs) —
    except, with probability ``parallel_prob`` per event (shared draw), when every loop runs at
    once. Independently, a receipt is stalled with probability ``stall_prob`` by a
    lognormal delay (mean, std, at least ``stall_min_us``): descheduling, a trace batch
    written, another process. Measured on this 2-core host (``benchmarks/
    validate_calibration.py``, 18 real runs of the default experiment, free-running and
    disciplined; medians over the runs, ranges in docs/SIMULATION.md): the workers' C − B
    receipt gap is ~±200 µs (one worker runs first, the other a slot later; |gap| median
    ~196 µs, std ~80), B (sent first) first in 35–88 % of them (median 68 % in 28 runs, 50 %
    in the 10 latest), under 100 µs for 4–77 % of events (median ~20 %), and 2–20 % of
    receipts (median ~10 %) arrive over 1 ms late, those by ~3 ms on average (std ~1.6 ms)."""

    free_cpus: int = 1
    send_order_prob: float = 0.2
    parallel_prob: float = 0.2
    slot_mean_us: float = 200.0
    slot_std_us: float = 80.0
    stall_prob: float = 0.1
    stall_mean_us: float = 3100.0
    stall_std_us: float = 1600.0
    stall_min_us: float = 1000.0

    @classmethod
    def off(cls) -> ReceiveScheduling:
        """No scheduling spread: every receive loop runs at once, never stalled."""
        return cls(free_cpus=1_000_000, send_order_prob=1.0, parallel_prob=1.0, stall_prob=0.0)

    def delays_ns(
        self, spec: ExperimentSpec, worker_index: int, n_workers: int, n: int
    ) -> np.ndarray:
        """Scheduling delay (ns) of worker ``worker_index``'s receipt of each of ``n`` events:
        its turn in the event's cyclic order (shared draw: seed, purpose 7) and its own slot
        and stall draws (seed, node, purpose 8)."""
        shared = np.random.default_rng([spec.seed, 7])
        shift = shared.integers(0, max(1, n_workers), n)
        parallel = shared.random(n) < self.parallel_prob
        shift = np.where(shared.random(n) < self.send_order_prob, 0, shift)
        rank = (worker_index + shift) % max(1, n_workers)
        slots = np.where(parallel, 0, rank // max(1, self.free_cpus))
        rng = np.random.default_rng([spec.seed, worker_index, 8])
        out = np.zeros(n, dtype=np.int64)
        if self.slot_mean_us > 0 and slots.any():
            slot = _lognormal_ns(rng, self.slot_mean_us, self.slot_std_us, 0.0, n)
            out += slots * slot
        if self.stall_prob > 0:
            stalled = rng.random(n) < self.stall_prob
            stall = _lognormal_ns(rng, self.stall_mean_us, self.stall_std_us, self.stall_min_us, n)
            out += np.where(stalled, stall, 0)
        return out

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def _lognormal_ns(
    rng: np.random.Generator, mean_us: float, std_us: float, min_us: float, n: int
) -> np.ndarray:
    """min + a lognormal with mean ``mean − min`` and std ``std`` (µs), as integer ns."""
    m = max(1e-9, mean_us - min_us)
    s2 = math.log(1 + (std_us / m) ** 2)
    x = min_us + rng.lognormal(math.log(m) - s2 / 2, math.sqrt(s2), n)
    return np.round(x * 1000).astype(np.int64)


RECEIVE_SCHEDULING = ReceiveScheduling()


def _seed(spec: ExperimentSpec, node_index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, node_index, purpose])


def _direction(spec: ExperimentSpec, src: str, dst: str, back: bool,
               ntp_loopback: NtpLoopback = LOOPBACK_NTP) -> DirectionSpec:  # fmt: skip
    r = spec.network.resolve(path_name(src, dst))
    if r is None:
        if dst.startswith(NTP_SERVER_NODE):
            return ntp_loopback[1] if back else ntp_loopback[0]
        return LOOPBACK
    return r.back if back else r.forward


def _windows(spec: ExperimentSpec, t0: int, kinds: tuple[str, ...], **match: Any) -> list[tuple]:
    """(start, end, fault) of the spec's faults of ``kinds`` matching ``match``: the windows
    of the transitions the real nemesis applies (``nemesis.timed``)."""
    return windows(list(spec.faults), t0, kinds, **match)


class _ModelledServer:
    """One NTP server as a node's poller sees it in virtual time (``node.sync.NtpTransport``):
    the path's delays and losses per direction, the server's faults (outage, falseticker, link
    loss) and its timestamps, on the node's virtual host clock, which each exchange moves on
    to the instant the client is free again. The exchange's arithmetic is ``compute_sample``,
    as for real packets."""

    def __init__(self, spec: ExperimentSpec, node: str, k: int, rng: np.random.Generator,
                 osc: Oscillator, host: VirtualClock,
                 ntp_loopback: NtpLoopback = LOOPBACK_NTP):  # fmt: skip
        sname = ntp_server_name(k)
        self.name = sname
        fwd = _direction(spec, node, sname, False, ntp_loopback)
        bck = _direction(spec, node, sname, True, ntp_loopback)
        self.d_out = delay_stream(fwd.delay, rng)
        self.d_back = delay_stream(bck.delay, rng)
        self.l_out = LossProcess(fwd.loss, rng)
        self.l_back = LossProcess(bck.loss, rng)
        # reorder hold-back, as the link emulator applies it: with probability ``reorder`` a
        # datagram is held ``reorder_extra_ms`` longer (drawn only where it is set, so a path
        # without it keeps the random streams it had)
        self.rng = rng
        self.hold = [(d.reorder, round(d.reorder_extra_ms * NS_PER_MS)) for d in (fwd, bck)]
        t0 = T0_NS
        self.outages = _windows(spec, t0, ("ntp_outage",), server=k)
        self.false = _windows(spec, t0, ("ntp_falseticker",), server=k)
        self.link_loss = _windows(spec, t0, ("link_loss",), path=path_name(node, sname))
        # an emulated path (a link in the spec's network) keeps a link trace, as its relay does
        self.path = path_name(node, sname)
        resolved = spec.network.resolve(self.path)
        self.link = None
        if resolved is not None:
            self.link = (LinkColumns(), link_metadata(self.path, [sname, 0], 0, resolved))
        self.seq = [0, 0]
        self.timeout_s = spec.ntp.timeout_s
        self.timeout_ns = round(spec.ntp.timeout_s * NS_PER_S)
        self.osc = osc
        self.host = host
        self.exchanges = 0
        self.lost = 0

    def exchange(self) -> NtpSample:
        """One exchange starting now (true t1); the host clock ends when the client is free."""
        t1 = self.host.now_ns()
        self.exchanges += 1
        s1, s2 = d1, d2 = self.d_out.next(), self.d_back.next()
        (p1, h1), (p2, h2) = self.hold
        held1 = p1 > 0 and self.rng.random() < p1
        held2 = p2 > 0 and self.rng.random() < p2
        d1 += h1 if held1 else 0
        d2 += h2 if held2 else 0
        lost1, lost2 = self.l_out.lost(), self.l_back.lost()
        lost1 = lost1 or in_force(self.link_loss, t1) is not None
        self._trace(0, t1, s1, d1, held1, lost1)
        out = in_force(self.outages, t1 + d1)
        if out is not None and out[2].how == "stop" and not lost1:  # closed socket: ICMP at once
            return self._fail("unreachable", t1 + 2 * d1)
        if lost1 or out is not None:  # no request, or a server that drops it: no reply
            return self._fail("timeout", t1 + self.timeout_ns)
        t2 = t1 + d1
        t3 = t2 + SERVER_HOLD_NS
        t4 = t3 + d2
        lost2 = lost2 or in_force(self.link_loss, t3) is not None
        self._trace(1, t3, s2, d2, held2, lost2)
        if lost2 or t4 - t1 > self.timeout_ns:  # no reply, or one after the client gave up
            return self._fail("timeout", t1 + self.timeout_ns)
        ft = in_force(self.false, t2)
        shift = round(ft[2].offset_ms * NS_PER_MS) if ft is not None else 0
        osc = self.osc
        self.host.set(t4 + CLIENT_TURN_NS)
        try:
            return compute_sample(
                self.name, osc.local_at(t1), t2 + shift, t3 + shift, osc.local_at(t4),
                root_dispersion_ns=SERVER_ROOT_DISPERSION_NS, precision=SERVER_PRECISION,
                truth_t1_ns=t1, truth_t4_ns=t4,
            )  # fmt: skip
        except NtpError:
            self.lost += 1
            raise

    def _trace(self, direction: int, t_in: int, sampled: int, scheduled: int, held: bool,
               lost: bool) -> None:  # fmt: skip
        """One datagram through an emulated path, in its link trace (48 bytes: NTP)."""
        if self.link is None:
            return
        seq = self.seq[direction]
        self.seq[direction] += 1
        fate, t_out = (LOST, None) if lost else (DELIVERED, t_in + scheduled)
        self.link[0].add(direction, seq, 0, 48, t_in, sampled, scheduled, held, fate, t_out)

    def link_table(self) -> pa.Table | None:
        """The path's link trace (None: a loopback path, which has none)."""
        return None if self.link is None else self.link[0].table(self.link[1])

    def _fail(self, reason: str, free_at: int) -> NtpSample:
        self.lost += 1
        self.host.set(free_at)
        raise NtpError(reason)

    def close(self) -> None:
        pass


class NodeSim:
    """One node in virtual time: the node's own clock, sync state, sources and NTP poller
    (``clocks.node.node_sync``, ``node.sync.NtpPoller``: the objects a node process runs),
    polling modelled servers on a virtual host clock."""

    def __init__(self, spec: ExperimentSpec, name: str, start_ns: int,
                 ntp_writer: PartWriter | None = None,
                 ntp_loopback: NtpLoopback = LOOPBACK_NTP):  # fmt: skip
        self.spec = spec
        self.name = name
        self.start_ns = start_ns  # true time the node process starts polling
        idx = spec.nodes.index(spec.node(name))
        self.host = VirtualClock(start_ns)
        self.clock, self.state = node_sync(spec, name, T0_NS, self.host)
        self.osc: Oscillator = self.clock.oscillator  # type: ignore[assignment]
        self.sources = make_sources(spec.sources, self.state, spec.source_params)
        self.track = SourceTrack(self.sources)
        self.servers = [_ModelledServer(spec, name, k, _seed(spec, idx, 10 + k), self.osc,
                                        self.host, ntp_loopback)
                        for k in range(spec.ntp.servers)]  # fmt: skip
        self.poller = NtpPoller(self.servers, self.state, spec.ntp.poll_s, spec.ntp.burst,
                                ntp_writer)  # fmt: skip
        self.poll_ns = round(spec.ntp.poll_s * NS_PER_S)
        self.next_poll = start_ns

    @property
    def samples(self) -> int:
        return self.poller.samples

    def source(self, name: str) -> ClockSource:
        return next(s for s in self.sources if s.name == name)

    def poll(self, before: Callable[[int], None] | None = None) -> None:
        """The poll due at ``next_poll``: the poller's exchanges (moving the virtual clock to
        the end of its last burst, t), then ``before(t)`` — the caller does what falls due
        before the outcome is visible — then the outcome applied at t, as the node's poller
        applies it right after its bursts; the next poll ``poll_s`` later."""
        self.host.set(max(self.host.now_ns(), self.next_poll))
        s = self.poller.collect()
        t = self.host.now_ns()
        self.next_poll = t + self.poll_ns
        if before is not None:
            before(t)
        self.poller.apply(s)
        if s is not None:
            self.track.record(t)

    def warm_up(self) -> int | None:
        """The node's warmup, as a node process runs it (``node.startup._warmup``): ready once
        ``run.warmup_s`` has passed since it started and it has a first NTP sample; None when no
        sample came within the warmup and ``run.ready_timeout_s`` (the node fails)."""
        run = self.spec.run
        ready = self.start_ns + round(run.warmup_s * NS_PER_S)
        deadline = ready + round(run.ready_timeout_s * NS_PER_S)
        self.run_until(ready)
        while self.samples == 0 and self.next_poll < deadline:
            self.poll()
        if self.samples == 0 or self.track.visible[0] > deadline:
            return None
        return max(ready, self.track.visible[0])

    def run_until(self, end_ns: int, at: Callable[[int], None] | None = None) -> None:
        """Poll until ``end_ns``; ``at(t)`` is called before each poll's outcome becomes
        visible at t (so the caller can do what falls due before it)."""
        while self.next_poll <= end_ns:
            self.poll(at)

    def read(self, truth: np.ndarray) -> tuple[np.ndarray, list[Readings]]:
        """(local readings, every source's readings) at true instants (each instant must be
        before the next poll's outcome: a disciplined clock's servo must have seen every
        sample before it)."""
        local = self.osc.local_at_array(truth)
        gap = sgap = None
        if not self.osc.gapless:
            gap, sgap = self.osc.gaps_at_array(truth)
        return local, self.track.read(truth, local, gap, sgap)

    def read_one(self, t: int) -> tuple[int, list[Reading]]:
        """(local reading, every source's scalar ``read``) at true instant ``t`` on the state
        visible now (``t`` must be before the next poll's outcome); the host clock moves on to
        ``t`` if it is behind."""
        if t > self.host.now_ns():
            self.host.set(t)
        local = self.osc.local_at(t)
        return local, [s.read(local, t) for s in self.sources]

    def scalar_run(
        self, end_ns: int, mean_gap_ns: float, rng: random.Random
    ) -> Iterator[tuple[int, int, list[Reading]]]:
        """(truth, local, readings) of every source's scalar ``read`` at true instants from now
        to ``end_ns``, spaced uniformly at random in [0, 2·mean_gap_ns], with the polls that
        fall due in between: an instant during a poll's exchanges is read before the poll's
        outcome is visible, as in a node (and as :meth:`read` and ``SourceTrack`` see it)."""

        def gap() -> int:
            return max(1, round(rng.uniform(0.0, 2.0 * mean_gap_ns)))

        t = self.host.now_ns() + gap()
        pending: list[tuple[int, int, list[Reading]]] = []

        def before(t_out: int) -> None:
            nonlocal t
            while t < t_out and t < end_ns:
                pending.append((t, *self.read_one(t)))
                t += gap()

        while t < end_ns:
            if t >= self.next_poll:
                self.poll(before)
                yield from pending
                pending.clear()
            else:
                yield (t, *self.read_one(t))
                t += gap()

    def counts(self) -> dict[str, Any]:
        return {**self.poller.counts(),
                "ntp_exchanges": sum(s.exchanges for s in self.servers),
                "ntp_exchanges_lost": sum(s.lost for s in self.servers)}  # fmt: skip


SOLO = "B"  # the node of :func:`solo_spec`


def solo_spec(node: Mapping[str, Any] | None = None, **experiment: Any) -> ExperimentSpec:
    """An experiment around one node to drive alone with ``NodeSim(spec, SOLO, T0_NS)``
    (tests, benchmarks): worker ``B`` with the node keys ``node`` (offset_ms, drift_ppm,
    wander_ppb, discipline); ``experiment`` sets any other key (sources, source_params, ntp,
    network — B's NTP path is ``B~ntp-server`` —, faults, seed). The coordinator and second
    worker that a spec needs have ideal clocks and are not simulated."""
    nodes = [{"name": "coordinator", "role": "coordinator"}, {"name": SOLO, **(node or {})},
             {"name": "C"}]  # fmt: skip
    return from_dict({"nodes": nodes, **experiment}, "solo_spec")
