"""``skewlab ntp-server`` and ``skewlab ntp-query``: the NTP tools on the command line."""

from __future__ import annotations

import json
import sys
import threading

import click

from skewlab.cli import options as opt
from skewlab.cli.common import fail
from skewlab.ntp.packet import KOD_CODES

_MS = 1_000_000  # ns per ms


def _ms_to_ns(ms: float) -> int:
    return round(ms * _MS)


@click.command("ntp-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=123,
    show_default=True,
    help="UDP port (0: any free port; below 1024 needs root).",
)
@click.option("--stratum", type=click.IntRange(1, 15), default=1, show_default=True)
@click.option(
    "--root-dispersion-us",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Error bound claimed for the served clock, µs.",
)
@click.option(
    "--offset-ms", type=float, default=0.0, help="Fault: serve the clock shifted by this (ms)."
)
@click.option(
    "--request-delay-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Fault: extra client→server path delay (ms).",
)
@click.option(
    "--reply-delay-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Fault: extra server→client path delay (ms).",
)
@click.option(
    "--drop",
    "drop_fraction",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Fault: fraction of requests dropped.",
)
@click.option(
    "--kod",
    type=click.Choice(KOD_CODES, case_sensitive=False),
    help="Fault: answer every request with this kiss-o'-death code.",
)
@opt.seed(help="Seed of the drop decisions.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: run until interrupted).",
)
def ntp_server(
    host: str,
    port: int,
    stratum: int,
    root_dispersion_us: float,
    offset_ms: float,
    request_delay_ms: float,
    reply_delay_ms: float,
    drop_fraction: float,
    kod: str | None,
    seed: int | None,
    duration: float | None,
) -> None:
    """Serve this host's clock over NTP (RFC 5905, stratum 1), with optional faults.

    Prints the bound address, then runs until interrupted (or --duration), then prints the
    request counters.
    """
    from skewlab.ntp.server import NtpServer

    try:
        server = NtpServer(
            host,
            port,
            stratum=stratum,
            root_dispersion_ns=round(root_dispersion_us * 1000),
            offset_ns=_ms_to_ns(offset_ms),
            request_delay_ns=_ms_to_ns(request_delay_ms),
            reply_delay_ns=_ms_to_ns(reply_delay_ms),
            drop_fraction=drop_fraction,
            kod=kod.upper() if kod else None,
            seed=seed,
        )
    except OSError as e:
        fail(*_bind_failure(host, port, e))
    except ValueError as e:
        fail(str(e), 2)
    from skewlab.interrupts import interruptible

    done = threading.Event()
    # SIGINT and SIGTERM end the wait (a handler is installed even when the shell started us
    # with SIGINT ignored); the server then stops and prints its counters, exit 0.
    with interruptible(on_signal=lambda _sig: done.set()):
        server.start()
        click.echo(f"skewlab ntp-server: listening on {server.address[0]}:{server.port}")
        sys.stdout.flush()
        done.wait(duration)
        server.stop()
    click.echo("counters: " + json.dumps(dict(sorted(server.counters.items()))))


def _bind_failure(host: str, port: int, e: OSError) -> tuple[str, int]:
    """The one line (and exit code) for a server that cannot bind: a host that is no address
    here is bad input (2); a privileged or busy port is this host's state (1)."""
    import errno
    import socket

    why = e.strerror or str(e)
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return f"--host {host}: not an address of this host ({why})", 2
    if e.errno in (errno.EACCES, errno.EPERM) and port < 1024:
        return f"cannot bind {host}:{port}: {why} (ports below 1024 need root; try --port 0)", 1
    if e.errno == errno.EADDRINUSE:
        return f"cannot bind {host}:{port}: {why} (another server holds it; try --port 0)", 1
    return f"cannot bind {host}:{port}: {why}", 1


@click.command("ntp-query")
@click.argument("servers", nargs=-1, required=True, metavar="HOST[:PORT]...")
@click.option(
    "-n", "--burst", type=click.IntRange(1, 64), default=4, show_default=True,
    help="Exchanges per server; the minimum-delay one is kept.",
)  # fmt: skip
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
    help="Seconds to wait for each reply.",
)  # fmt: skip
@opt.as_json()
def ntp_query(servers: tuple[str, ...], burst: int, timeout: float, as_json: bool) -> None:
    """Query NTP servers and show offset, delay, root distance, stratum, leap and the
    selection verdict of each (offsets: server − this host, ms; positive: this host is
    behind). Exits non-zero if no server gave a sample."""
    from skewlab.ntp.query import format_query, parse_hostport, query

    targets: list[tuple[str, int]] = []
    for text in servers:
        try:
            targets.append(parse_hostport(text))
        except ValueError as e:
            fail(str(e), 2)
    result = query(targets, burst, timeout)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        click.echo(format_query(result))
    if not result.any_sample:
        fail("no server gave a valid sample")
