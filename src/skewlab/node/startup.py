"""Start-up shared by the worker and the coordinator: NTP polling into the node's SyncState,
the warmup (reported per source), and the garbage-collector setting before a hot loop.
"""

from __future__ import annotations

import gc

from skewlab.clocks.oscillator import NodeClock
from skewlab.clocks.sync import SyncState
from skewlab.nemesis.schedule import ntp_server_name
from skewlab.node.context import PROGRESS_EVERY_S, NodeContext, NodeFailure
from skewlab.node.sync import NtpPoller
from skewlab.ntp.client import NtpClient
from skewlab.timebase import HOST_CLOCK, Scheduler
from skewlab.trace import NTP_SCHEMA, PartWriter

WARMUP_CHECK_NS = 50_000_000  # the warmup looks at its conditions this often


def _start_sync(ctx: NodeContext, clock: NodeClock, state: SyncState) -> NtpPoller:
    """Start polling the experiment's NTP server(s) into the node's sync state."""
    assert ctx.ntp_addr is not None
    addrs = ctx.ntp_addrs or [ctx.ntp_addr]
    # server k of the experiment is named as in the spec (ntp-server, ntp-server-1, ...), in the
    # NTP trace and the verdicts alike, as the simulator names it; its address is in the counts
    clients = [NtpClient(h, p, clock=clock, timeout_s=ctx.spec.ntp.timeout_s,
                         name=ntp_server_name(k)) for k, (h, p) in enumerate(addrs)]  # fmt: skip
    ntp_writer = PartWriter(ctx.results.node_dir(ctx.name), "ntp", NTP_SCHEMA, batch_rows=64)
    poller = NtpPoller(
        clients if len(clients) > 1 else clients[0], state, ctx.spec.ntp.poll_s,
        ctx.spec.ntp.burst, ntp_writer,
    ).start()  # fmt: skip
    return poller


def _warmup(ctx: NodeContext, clock: NodeClock, state: SyncState, sources: list,
            scheduler: Scheduler = HOST_CLOCK) -> None:  # fmt: skip
    """Wait for the warmup time and a first NTP sample, reporting per-source progress. Time
    passes and is waited for on ``scheduler`` (true time)."""
    stop = ctx.link.stop_event
    run = ctx.spec.run
    warmup_ns = round(run.warmup_s * 1e9)
    start = scheduler.now_ns()
    deadline = start + warmup_ns + round(run.ready_timeout_s * 1e9)
    next_report = start
    while not stop.is_set():
        now = scheduler.now_ns()
        done_time = now - start >= warmup_ns
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
            ctx.link.send("warmup", elapsed_s=round((now - start) / 1e9, 2), sources=prog)
            next_report = now + round(PROGRESS_EVERY_S * 1e9)
        scheduler.wait_until(scheduler.now_ns() + WARMUP_CHECK_NS, stop)


def _quiet_gc() -> None:
    """Before a hot loop: move what exists to the permanent generation and collect young
    objects every 100,000 allocations instead of every 700. The data path allocates tuples of
    integers (no reference cycles), and each default young collection walked the pending
    batch's rows: about 8 % of the receive loop's time."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 20, 20)
