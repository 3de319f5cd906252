"""Userspace link emulator: a UDP relay per path that delays, drops, reorders and duplicates.

A ``LinkHub`` hosts any number of links in two threads: a receive thread (epoll over every
socket; it timestamps and decides each datagram and never sleeps) and a send thread (a heap of
due times; it sleeps until the head is due, then sends). Each link listens on its own port; a
datagram from a client there goes *forward* to the link's target through an upstream socket
kept per client, and the target's replies on that socket come *back* through the reverse
direction and leave from the listening port, so the client sees replies from the address it
sent to. Every datagram gets a row in the link's trace: true time in and out (host clock), the
sampled and scheduled delay, and its fate (format: ``trace.LINK_SCHEMA``); the file's metadata
holds the link's settings and the figures requested of it (``requested_figures``), which the
analysis (``analysis.links.summarize_link``) puts beside the achieved ones (docs/METHODOLOGY.md,
"Network").
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import json
import os
import selectors
import socket
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skewlab.net.distributions import NS_PER_MS
from skewlab.net.profiles import DirectionSpec, ResolvedLink
from skewlab.net.sampling import BlockStream, LossProcess, delay_stream
from skewlab.timebase import host_ns, monotonic_ns, monotonic_s, sleep
from skewlab.trace import (
    BACK,
    DELIVERED,
    FORWARD,
    LINK_SCHEMA,
    LINK_TRACE_VERSION,
    LOST,
    SEND_ERROR,
    UNSENT,
)

RT_PRIORITY = 10  # SCHED_FIFO priority of the relay threads, when permitted


def _set_realtime(priority: int) -> bool:
    """Put the calling thread in SCHED_FIFO at ``priority`` (needs root/CAP_SYS_NICE).

    The relay threads sleep almost all the time; real-time class lets them run the moment a
    datagram is due instead of waiting behind busy processes. The kernel's RT throttling
    still keeps 5 % of each core for everything else.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (OSError, AttributeError):
        return False


def _set_timer_slack_ns(ns: int) -> bool:
    """Shrink this thread's timer slack (Linux default 50 µs) so timed waits wake on time."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(29, ctypes.c_ulong(ns), 0, 0, 0) == 0  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        return False


class DirectionModel:
    """One direction's per-packet decisions, from independent seeded streams per concern."""

    def __init__(self, spec: DirectionSpec, seed: np.random.SeedSequence) -> None:
        self.spec = spec
        s_delay, s_loss, s_reorder, s_dup = seed.spawn(4)
        self._delay = delay_stream(spec.delay, np.random.default_rng(s_delay))
        self._loss = LossProcess(spec.loss, np.random.default_rng(s_loss))
        self._reorder = BlockStream(np.random.default_rng(s_reorder), lambda r, n: r.random(n))
        self._dup = BlockStream(np.random.default_rng(s_dup), lambda r, n: r.random(n))
        self._hold_ns = round(spec.reorder_extra_ms * NS_PER_MS)
        self._ns_per_byte = None if spec.rate_mbps is None else 8_000 / spec.rate_mbps
        self._busy_until = 0  # monotonic ns at which the emulated wire is free again

    def decide(self, size: int, mono_in: int) -> list[tuple[int, int, int, bool]]:
        """[(sampled, scheduled, copy, held)] per copy to send; [] if the packet is lost."""
        s = self.spec
        if self._loss.lost():
            return []
        queue_ns = 0
        if self._ns_per_byte is not None:
            start = max(mono_in, self._busy_until)
            self._busy_until = start + round(size * self._ns_per_byte)
            queue_ns = self._busy_until - mono_in
        copies = 2 if s.duplicate > 0 and self._dup.next() < s.duplicate else 1
        out = []
        for c in range(copies):
            d = self._delay.next()
            held = s.reorder > 0 and self._reorder.next() < s.reorder
            out.append((d, d + queue_ns + (self._hold_ns if held else 0), c, held))
        return out


class LinkColumns:
    """The trace of one link, column-wise (``trace.LINK_SCHEMA``): rows are appended by the
    relay's receive thread, or by the simulator's modelled paths."""

    def __init__(self) -> None:
        self.cols: dict[str, list] = {f.name: [] for f in LINK_SCHEMA}

    def add(self, direction: int, seq: int, copy: int, size: int, t_in: int,
            sampled: int | None, scheduled: int | None, held: bool, fate: int,
            t_out: int | None = None) -> int:  # fmt: skip
        c = self.cols
        c["direction"].append(direction)
        c["seq"].append(seq)
        c["copy"].append(copy)
        c["size"].append(size)
        c["truth_in_ns"].append(t_in)
        c["truth_out_ns"].append(t_out)  # a relay fills it in when the copy goes out
        c["sampled_delay_ns"].append(sampled)
        c["scheduled_delay_ns"].append(scheduled)
        c["held"].append(held)
        c["fate"].append(fate)
        return len(c["fate"]) - 1

    def table(self, metadata: dict[bytes, bytes]) -> pa.Table:
        return pa.table(
            {n: pa.array(v, type=LINK_SCHEMA.field(n).type) for n, v in self.cols.items()},
            schema=LINK_SCHEMA.with_metadata(metadata),
        )


@dataclass(eq=False)
class Link:
    """One relayed path: a listening socket, per-client upstream sockets, two directions."""

    path: str
    target: tuple[str, int]
    spec: ResolvedLink
    listen: socket.socket
    models: dict[int, DirectionModel]
    seed: int
    trace: LinkColumns = field(default_factory=LinkColumns)
    upstream: dict[Any, socket.socket] = field(default_factory=dict)  # client addr → socket
    seq: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def address(self) -> tuple[str, int]:
        return self.listen.getsockname()[:2]

    def metadata(self) -> dict[bytes, bytes]:
        return link_metadata(self.path, list(self.target), self.seed, self.spec)

    def table(self) -> pa.Table:
        return self.trace.table(self.metadata())


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class LinkHub:
    """Runs links: ``add_link`` returns the relay address that stands in for a target."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        seed: int = 1,
        thread_init: Callable[[], None] | None = None,
        realtime: bool = True,
    ) -> None:
        self.host = host
        self._thread_init = thread_init  # run first in both threads (e.g. enter a namespace)
        self.realtime = realtime  # try SCHED_FIFO for both threads (root only)
        self.realtime_set: dict[str, bool] = {}
        self.seed = seed
        self.links: dict[str, Link] = {}
        self.counters: dict[str, int] = {"recv_errors": 0, "send_errors": 0}
        self.timer_slack_set = False
        self._sel = selectors.DefaultSelector()
        self._heap: list[tuple[int, int, Link, int, bytes, socket.socket, Any]] = []
        self._tie = itertools.count()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._rx = threading.Thread(target=self._receive_loop, name="link-rx", daemon=True)
        self._tx = threading.Thread(target=self._send_loop, name="link-tx", daemon=True)
        self._started = False
        self._stopped = False
        self._last_rx_mono = 0  # monotonic ns of the latest datagram received

    # -- setup ---------------------------------------------------------------------------------
    def add_link(self, path: str, spec: ResolvedLink, target: tuple[str, int]) -> tuple[str, int]:
        """Open a relay for ``path`` towards ``target``; returns the address to use instead."""
        if path in self.links:
            raise ValueError(f"link {path!r} already exists")
        sock = socket.socket(_family(self.host), socket.SOCK_DGRAM)
        sock.bind((self.host, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setblocking(False)
        root = np.random.SeedSequence([self.seed & 0xFFFFFFFF, zlib.crc32(path.encode())])
        fwd, back = root.spawn(2)
        link = Link(
            path, target, spec, sock,
            {FORWARD: DirectionModel(spec.forward, fwd), BACK: DirectionModel(spec.back, back)},
            self.seed,
        )  # fmt: skip
        self.links[path] = link
        self._sel.register(sock, selectors.EVENT_READ, (link, None))
        return link.address

    def start(self) -> LinkHub:
        if not self._started:
            self._started = True
            self._rx.start()
            self._tx.start()
        return self

    def __enter__(self) -> LinkHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- receive: timestamp, decide, schedule; never sleeps except in select --------------------
    def _upstream_for(self, link: Link, client: Any) -> socket.socket:
        up = link.upstream.get(client)
        if up is None:
            up = socket.socket(_family(link.target[0]), socket.SOCK_DGRAM)
            up.bind((self.host, 0))
            up.connect(link.target)
            up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            up.setblocking(False)
            link.upstream[client] = up
            self._sel.register(up, selectors.EVENT_READ, (link, client))
        return up

    def _receive_loop(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        if self.realtime:
            self.realtime_set["rx"] = _set_realtime(RT_PRIORITY)
        now_ns, mono_ns = host_ns, monotonic_ns  # true time, the link's own timeline
        while not self._stopping.is_set():
            for key, _ in self._sel.select(0.1):
                link, client = key.data
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                while True:
                    try:
                        data, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    except OSError:  # e.g. ICMP port unreachable surfaced on a connected socket
                        self.counters["recv_errors"] += 1
                        break
                    t_in, m_in = now_ns(), mono_ns()
                    if client is None:  # from a client on the listening port: forward
                        self._submit(link, FORWARD, data, t_in, m_in,
                                     self._upstream_for(link, addr), None)  # fmt: skip
                    else:  # from the target on a client's upstream socket: back to the client
                        self._submit(link, BACK, data, t_in, m_in, link.listen, client)

    def _submit(self, link: Link, d: int, data: bytes, t_in: int, m_in: int,
                out: socket.socket, dest: Any) -> None:  # fmt: skip
        self._last_rx_mono = m_in
        seq = link.seq[d]
        link.seq[d] = seq + 1
        decisions = link.models[d].decide(len(data), m_in)
        if not decisions:
            link.trace.add(d, seq, 0, len(data), t_in, None, None, False, LOST)
            return
        with self._cond:
            for sampled, scheduled, copy, held in decisions:
                row = link.trace.add(d, seq, copy, len(data), t_in, sampled, scheduled, held,
                                     UNSENT)  # fmt: skip
                item = (m_in + scheduled, next(self._tie), link, row, data, out, dest)
                heapq.heappush(self._heap, item)
                if self._heap[0] is item:
                    self._cond.notify()

    # -- send: sleep until the head of the heap is due ------------------------------------------
    def _send_loop(self) -> None:
        if self._thread_init is not None:
            self._thread_init()
        if self.realtime:
            self.realtime_set["tx"] = _set_realtime(RT_PRIORITY)
        self.timer_slack_set = _set_timer_slack_ns(1)
        now_ns, mono_ns = host_ns, monotonic_ns  # true time, the link's own timeline
        heap, cond = self._heap, self._cond
        while True:
            with cond:
                while True:
                    if self._stopping.is_set():
                        return
                    if heap:
                        wait = heap[0][0] - mono_ns()
                        if wait <= 0:
                            _, _, link, row, data, out, dest = heapq.heappop(heap)
                            break
                        cond.wait(wait / 1e9)
                    else:
                        cond.wait(0.2)
            cols = link.trace.cols
            t_out = now_ns()
            try:
                if dest is None:
                    out.send(data)
                else:
                    out.sendto(data, dest)
            except OSError:
                self.counters["send_errors"] += 1
                cols["fate"][row] = SEND_ERROR
                continue
            cols["truth_out_ns"][row] = t_out
            cols["fate"][row] = DELIVERED

    # -- stop ----------------------------------------------------------------------------------
    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def drain(self, timeout_s: float, quiet_s: float = 0.05) -> bool:
        """Wait until nothing is queued and nothing arrived for ``quiet_s``; True if drained."""
        deadline = monotonic_s() + timeout_s
        start = monotonic_ns()
        while monotonic_s() < deadline:
            idle = (monotonic_ns() - max(self._last_rx_mono, start)) / 1e9 >= quiet_s
            if idle and self.pending() == 0:
                return True
            sleep(0.005)
        return False

    def stop(self) -> None:
        """Stop both threads and close every socket; datagrams still queued stay ``unsent``."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._started:
            self._rx.join(timeout=5)
            self._tx.join(timeout=5)
        for link in self.links.values():
            for s in [link.listen, *link.upstream.values()]:
                try:
                    self._sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
        self._sel.close()

    def tables(self) -> dict[str, pa.Table]:
        return {p: link.table() for p, link in self.links.items()}

    def write_traces(self, path_for: Any) -> list[Path]:
        """Write each link's trace to ``path_for(path_name)`` (whole file, renamed into place)."""
        written = []
        for p, link in self.links.items():
            written.append(write_link_trace(Path(path_for(p)), link.table()))
        return written


# -- the launcher's view ------------------------------------------------------------------------
class Network:
    """The relays of one run: ``via(src, dst, "host:port")`` gives the address a node should use."""

    def __init__(self, spec: Any, results: Any) -> None:
        from skewlab.net.profiles import spec_paths

        self.results = results
        self.relayed = spec.network.relayed(spec_paths(spec))
        self.hub = LinkHub(spec.run.host, spec.seed).start() if self.relayed else None

    @classmethod
    def start(cls, spec: Any, results: Any) -> Network:
        return cls(spec, results)

    def via(self, src: str, dst: str, hostport: str) -> str:
        """The relay address for traffic src → dst (created on first use), or ``hostport``."""
        from skewlab.net.profiles import path_name

        p = path_name(src, dst)
        if self.hub is None or p not in self.relayed:
            return hostport
        if p in self.hub.links:
            h, port = self.hub.links[p].address
        else:
            host, _, port_s = hostport.rpartition(":")
            h, port = self.hub.add_link(p, self.relayed[p], (host.strip("[]"), int(port_s)))
        return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"

    def via_like(self, src: str, dst: str, like: str, hostport: str) -> str:
        """The relay address for traffic src → ``dst`` emulated as the path src → ``like`` is
        (its own relay and trace, the same settings), or ``hostport`` when that path is not
        emulated: measured truth's probes cross the network the node's NTP traffic crosses."""
        from skewlab.net.profiles import path_name

        settings = self.relayed.get(path_name(src, like))
        if self.hub is None or settings is None:
            return hostport
        p = path_name(src, dst)
        if p in self.hub.links:
            h, port = self.hub.links[p].address
        else:
            host, _, port_s = hostport.rpartition(":")
            h, port = self.hub.add_link(p, settings, (host.strip("[]"), int(port_s)))
        return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"

    def close(self, drain_s: float = 1.0) -> None:
        """Let queued datagrams go out, stop the relays and write traces/_links/<path>.parquet."""
        if self.hub is None:
            return
        hub, self.hub = self.hub, None
        hub.drain(drain_s)
        hub.stop()
        hub.write_traces(self.results.link_trace_path)


def link_metadata(
    path: str, target: list[Any], seed: int, spec: ResolvedLink
) -> dict[bytes, bytes]:
    """A link trace's metadata: the path, where it leads, its seed, both directions' settings
    and what the analysis reports as requested (it imports no network code)."""
    info = {
        "path": path,
        "target": target,
        "seed": seed,
        "forward": spec.forward.model_dump(mode="json"),
        "back": spec.back.model_dump(mode="json"),
        "requested": {
            "forward": requested_figures(spec.forward),
            "back": requested_figures(spec.back),
        },
    }
    return {
        b"skewlab.trace_version": str(LINK_TRACE_VERSION).encode(),
        b"skewlab.link": json.dumps(info).encode(),
    }


def write_link_trace(dst: Path, table: pa.Table) -> Path:
    """Write one link's trace as a whole file, renamed into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name("." + dst.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(dst)
    return dst


# -- requested figures, recorded in each link trace ---------------------------------------------
def requested_figures(d: DirectionSpec) -> dict[str, Any]:
    """What one direction of a link is asked for: delay mean and nearest-rank p50/p99 (ms) of
    its distribution, stationary loss rate, reorder and duplicate probabilities, rate limit.
    Written into the link trace (``skewlab.link`` → ``requested``); the analysis (analysis/
    links.py) puts the achieved figures beside them."""
    return {
        "dist": d.delay.dist,
        "mean_ms": d.delay.mean_ns() / NS_PER_MS,
        "p50_ms": d.delay.quantile_ns(0.5) / NS_PER_MS,
        "p99_ms": d.delay.quantile_ns(0.99) / NS_PER_MS,
        "loss_rate": d.loss.loss_rate(),
        "reorder": d.reorder,
        "duplicate": d.duplicate,
        "rate_mbps": d.rate_mbps,
    }
