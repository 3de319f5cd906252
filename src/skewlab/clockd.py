"""``skewlab clockd``: publish a skewlab clock source's bounds as a ClockBound v2 segment.

Any ClockBound client on the host (C, Rust, Go, Python) can then read skewlab's bounds from
the segment. The published bound is centred on the host's CLOCK_REALTIME, as the protocol
requires: bound = max(t − earliest, latest − t) at as_of, and the drift rate is never below
the growth the source itself predicts over the next second.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

import click

from skewlab.cli_util import fail
from skewlab.clocks.base import ClockSource, Reading, Status
from skewlab.clocks.external.clockbound_shm import (
    CB_FREE_RUNNING,
    CB_SYNCHRONIZED,
    CB_UNKNOWN,
    NS,
    ClockBoundWriter,
    monotonic_coarse_ns,
)
from skewlab.clocks.external.params import parse_params

DEFAULT_PATH = "/run/skewlab/clockbound/shm0"
STATUS_CODES = {
    Status.SYNCHRONIZED: CB_SYNCHRONIZED,
    Status.FREE_RUNNING: CB_FREE_RUNNING,
    Status.UNSYNCHRONIZED: CB_UNKNOWN,
}


def realtime_half_width(r: Reading, t_ns: int) -> int:
    """Half-width of the smallest interval centred on ``t_ns`` that contains [earliest, latest]."""
    assert r.earliest_ns is not None and r.latest_ns is not None
    return max(0, t_ns - r.earliest_ns, r.latest_ns - t_ns)


def segment_values(
    source: ClockSource, real_ns: int, min_drift_ppb: int
) -> tuple[int, int, int, Reading]:
    """(bound_ns, max_drift_ppb, clock_status, reading) to publish for a read at ``real_ns``.

    The drift is the growth of the realtime-centred half-width over the next second as the
    source predicts it, and at least ``min_drift_ppb``.
    """
    r = source.read(real_ns)
    if r.status is Status.UNSYNCHRONIZED or r.earliest_ns is None:
        return 0, min_drift_ppb, CB_UNKNOWN, r
    bound = realtime_half_width(r, real_ns)
    ahead = source.read(real_ns + NS)
    drift = min_drift_ppb
    if ahead.earliest_ns is not None:
        drift = max(drift, realtime_half_width(ahead, real_ns + NS) - bound)
    return bound, min(drift, NS - 1), STATUS_CODES[r.status], r


class ClockDaemon:
    """The publish loop: read the source, write one segment update, sleep ``interval_s``."""

    def __init__(self, source: ClockSource, writer: ClockBoundWriter, interval_s: float,
                 void_after_s: float, min_drift_ppb: int) -> None:  # fmt: skip
        self.source = source
        self.writer = writer
        self.interval_s = interval_s
        self.void_after_ns = round(void_after_s * 1e9)
        self.min_drift_ppb = min_drift_ppb
        self.stop_event = threading.Event()
        self.updates = 0
        self.last: tuple[int, int, int] | None = None

    def publish_once(self) -> tuple[int, int, int]:
        as_of = monotonic_coarse_ns()  # before the realtime read: errs towards more growth
        real = time.time_ns()
        bound, drift, status, _ = segment_values(self.source, real, self.min_drift_ppb)
        self.writer.publish(bound, as_of, as_of + self.void_after_ns, drift, status)
        self.updates += 1
        self.last = (bound, drift, status)
        return self.last

    def run(self, duration_s: float = 0.0) -> None:
        end = time.monotonic() + duration_s if duration_s > 0 else math.inf
        while not self.stop_event.is_set() and time.monotonic() < end:
            self.publish_once()
            self.stop_event.wait(min(self.interval_s, max(0.0, end - time.monotonic())))


@click.command("clockd")
@click.option(
    "--path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=DEFAULT_PATH,
    show_default=True,
    help="Where to write the ClockBound v2 segment.",
)
@click.option(
    "--source",
    "source_name",
    default="skewlab",
    show_default=True,
    help="Bounded clock source to publish (see `skewlab sources`).",
)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Source parameter (repeatable; values are JSON when they parse).",
)
@click.option(
    "--ntp",
    metavar="HOST:PORT",
    help="NTP server the source's estimator polls (needed by NTP-based sources).",
)
@click.option("--ntp-poll-s", type=click.FloatRange(min=0.01), default=1.0, show_default=True)
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between segment updates.",
)
@click.option(
    "--void-after",
    "void_after_s",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds after as_of beyond which clients must not use a bound.",
)
@click.option(
    "--min-drift-ppb",
    type=click.IntRange(0, NS - 1),
    default=1000,
    show_default=True,
    help="Floor of the published max drift (ppb).",
)
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Stop after this many seconds (0: run until SIGTERM/Ctrl-C).",
)
@click.option("--keep", is_flag=True, help="Leave the segment file in place on exit.")
def clockd(path: Path, source_name: str, params: tuple[str, ...], ntp: str | None,
           ntp_poll_s: float, interval_s: float, void_after_s: float, min_drift_ppb: int,
           duration_s: float, keep: bool) -> None:  # fmt: skip
    """Publish a clock source's bounds in the AWS ClockBound v2 shared-memory layout.

    Every --interval seconds the source is read at the host's CLOCK_REALTIME and one seqlocked
    update is written to --path, so ClockBound clients can use skewlab's bounds. Runs on a real
    host clock (no emulated oscillator). Stop it with SIGTERM or Ctrl-C.
    """
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.sync import SyncState

    try:
        kw: dict[str, Any] = parse_params(params, qualified=False)
    except ValueError as e:
        fail(str(e), 2)
    factory = SOURCES.get(source_name)
    if factory is None:
        fail(f"unknown clock source {source_name!r}; known: {', '.join(sorted(SOURCES))}", 2)
    state = SyncState()
    source = factory(state, **kw)
    if not getattr(source, "bounded", False):
        fail(f"source {source_name!r} gives no bound (a point source); choose a bounded one", 2)
    poller = None
    if ntp:
        from skewlab.node.sync import NtpPoller
        from skewlab.ntp.client import NtpClient

        host, _, port = ntp.rpartition(":")
        try:
            client = NtpClient(host.strip("[]"), int(port))
        except (ValueError, OSError) as e:
            fail(f"bad --ntp {ntp!r}: {e}", 2)
        poller = NtpPoller(client, state, ntp_poll_s, 4).start()
    try:
        writer = ClockBoundWriter(path)
    except OSError as e:
        fail(f"cannot create {path}: {e.strerror}")
    daemon = ClockDaemon(source, writer, interval_s, void_after_s, min_drift_ppb)

    def _stop(_sig: int, _frame: object) -> None:
        daemon.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"clockd: publishing {source_name} to {path} every {interval_s:g} s", err=True)
    try:
        daemon.run(duration_s)
    finally:
        if poller is not None:
            poller.stop()
        close = getattr(source, "close", None)
        if close is not None:
            close()
        writer.close(unlink=not keep)
    click.echo(f"clockd: stopped after {daemon.updates} updates", err=True)
