"""``skewlab clockd``: publish a bounded clock source as a ClockBound v2 segment.

The publishing loop is ``skewlab.clockd.ClockDaemon``; this module reads the options, builds
the source (and its NTP poller) and runs the loop until SIGTERM, Ctrl-C or --duration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from skewlab.cli import options as opt
from skewlab.cli.common import fail, source_param_errors

# ClockBound's own default, where its clients (and `skewlab sources`: clockbound_shm) look; the
# reader's constant is clocks.external.clockbound_shm.DEFAULT_PATH (a test holds them equal).
DEFAULT_PATH = "/var/run/clockbound/shm0"
# Built-in sources that stand on NTP samples: publishing them without --ntp publishes nothing.
NTP_BASED = ("ntp", "truetime", "clockbound", "skewlab")
MAX_DRIFT_PPB = 999_999_999  # the segment's max drift is below 1 s/s


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
@opt.params("KEY=VALUE", "Source parameter (repeatable; values are JSON when they parse).")
@opt.ntp("NTP server the source's estimator polls (needed by NTP-based sources).")
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
    type=click.IntRange(0, MAX_DRIFT_PPB),
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
    from skewlab.clockd import ClockDaemon
    from skewlab.clocks.external.clockbound_shm import ClockBoundWriter
    from skewlab.clocks.external.params import parse_params
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.sync import SyncState

    try:
        kw: dict[str, Any] = parse_params(params, qualified=False)
    except ValueError as e:
        fail(str(e), 2)
    factory = SOURCES.get(source_name)
    if factory is None:
        fail(f"unknown clock source {source_name!r}; known: {', '.join(sorted(SOURCES))}", 2)
    if bad := source_param_errors({source_name: kw}, "-p"):
        fail("; ".join(bad), 2)
    state = SyncState()
    source = factory(state, **kw)
    if not getattr(source, "bounded", False):
        fail(f"source {source_name!r} gives no bound (a point source); choose a bounded one", 2)
    if source_name in NTP_BASED and not ntp:
        fail(f"source {source_name!r} stands on NTP samples: give --ntp HOST:PORT", 2)
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
    created = [d for d in path.parents if not d.exists()]  # removed again on exit if empty
    try:
        writer = ClockBoundWriter(path)
    except OSError as e:
        fail(f"cannot create {path}: {e.strerror}")
    daemon = ClockDaemon(source, writer, interval_s, void_after_s, min_drift_ppb)

    from skewlab.interrupts import interruptible

    click.echo(f"clockd: publishing {source_name} to {path} every {interval_s:g} s", err=True)
    try:
        with interruptible(on_signal=lambda _sig: daemon.stop_event.set()):  # SIGINT, SIGTERM
            daemon.run(duration_s)
    finally:
        if poller is not None:
            poller.stop()
        close = getattr(source, "close", None)
        if close is not None:
            close()
        writer.close(unlink=not keep)
        for d in created:  # deepest first: the folders this run made, if left empty
            try:
                d.rmdir()
            except OSError:
                break
    click.echo(f"clockd: stopped after {daemon.updates} updates", err=True)
    if ntp and state.latest is None:
        fail(f"no NTP sample from {ntp}: every bound published was UNSYNCHRONIZED")
