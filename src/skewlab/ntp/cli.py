"""``skewlab ntp-server`` and ``skewlab ntp-query``: the NTP tools on the command line."""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import click

from skewlab.cli_util import fail
from skewlab.ntp.packet import KOD_CODES

_MS = 1_000_000  # ns per ms


def parse_hostport(text: str, default_port: int = 123) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address → (host, port)."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(text, rest[1:])
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(text, p)
    if not host:
        raise ValueError(f"{text!r}: empty host")
    return host, port


def _port(text: str, p: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise ValueError(f"{text!r}: port must be 1..65535")
    return int(p)


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
@click.option("--seed", type=int, help="Seed of the drop decisions.")
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
        hint = " (ports below 1024 need root; try --port 12300)" if port < 1024 else ""
        fail(f"cannot bind {host}:{port}: {e.strerror}{hint}")
    except ValueError as e:
        fail(str(e), 2)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    click.echo(f"skewlab ntp-server: listening on {server.address[0]}:{server.port}")
    sys.stdout.flush()
    try:
        done.wait(duration)
    except KeyboardInterrupt:
        pass
    server.stop()
    click.echo("counters: " + json.dumps(dict(sorted(server.counters.items()))))


def _fmt_ms(ns: int | None, signed: bool = False) -> str:
    if ns is None:
        return "—"
    return f"{ns / 1e6:+.3f}" if signed else f"{ns / 1e6:.3f}"


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def ntp_query(servers: tuple[str, ...], burst: int, timeout: float, as_json: bool) -> None:
    """Query NTP servers and show offset, delay, root distance, stratum, leap and the
    selection verdict of each (offsets: server − this host, ms; positive: this host is
    behind). Exits non-zero if no server gave a sample."""
    from skewlab.ntp.client import NtpClient, NtpError, NtpSample
    from skewlab.ntp.select import select

    targets: list[tuple[str, int]] = []
    for text in servers:
        try:
            targets.append(parse_hostport(text))
        except ValueError as e:
            fail(str(e), 2)
    outcomes: list[tuple[str, NtpSample | NtpError]] = []
    for host, port in targets:
        try:
            client = NtpClient(host, port, timeout_s=timeout)
        except OSError as e:
            outcomes.append((f"{host}:{port}", NtpError("unresolved", str(e))))
            continue
        with client:
            try:
                outcomes.append((client.name, client.best_of(burst)))
            except NtpError as e:
                outcomes.append((client.name, e))
    sel = select(outcomes)
    rows: list[dict[str, Any]] = []
    for v in sel.verdicts:
        s = v.sample
        rows.append(
            {
                "server": v.server,
                "offset_ns": s.offset_ns if s else None,
                "delay_ns": s.delay_ns if s else None,
                "root_distance_ns": s.root_distance_ns if s else None,
                "stratum": s.stratum if s else None,
                "leap": s.leap if s else None,
                "verdict": v.status,
                "reason": v.reason,
            }
        )
    if as_json:
        out = {
            "servers": rows,
            "combined_offset_ns": sel.offset_ns,
            "low_ns": sel.low_ns,
            "high_ns": sel.high_ns,
            "falsetickers_allowed": sel.falsetickers_allowed,
        }
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(_table(rows))
        if sel.offset_ns is not None:
            click.echo(
                f"\ncombined offset {_fmt_ms(sel.offset_ns, True)} ms; true offset within "
                f"[{_fmt_ms(sel.low_ns, True)}, {_fmt_ms(sel.high_ns, True)}] ms "
                f"if at most {sel.falsetickers_allowed} server(s) are wrong"
            )
    if not any(r["offset_ns"] is not None for r in rows):
        fail("no server gave a valid sample")


def _table(rows: list[dict[str, Any]]) -> str:
    hdr = (
        f"{'server':<24} {'offset ms':>10} {'delay ms':>9} {'root dist ms':>12} "
        f"{'stratum':>7} {'leap':>4}  verdict"
    )
    lines = [hdr, "-" * len(hdr)]
    for r in rows:
        lines.append(
            f"{r['server']:<24} {_fmt_ms(r['offset_ns'], True):>10} {_fmt_ms(r['delay_ns']):>9} "
            f"{_fmt_ms(r['root_distance_ns']):>12} "
            f"{'—' if r['stratum'] is None else r['stratum']:>7} "
            f"{'—' if r['leap'] is None else r['leap']:>4}  {r['verdict']} ({r['reason']})"
        )
    return "\n".join(lines)
