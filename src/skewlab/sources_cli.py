"""``skewlab sources``: every clock source, whether it works on this host, and a live reading."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from skewlab.cli_util import fail
from skewlab.clocks.base import Reading


def _live_reading(name: str, params: dict[str, Any], state: Any, wait_s: float
                  ) -> tuple[Reading | None, int, str | None]:  # fmt: skip
    """Build the source, give its background poller up to ``wait_s``, read it once.

    Returns the reading, the host time it was taken at (ns) and an error, if any.
    """
    from skewlab.clocks.sources import SOURCES

    kw = {k: v for k, v in params.items() if k != "optional"}
    try:
        src = SOURCES[name](state, **kw)
    except Exception as e:
        return None, time.time_ns(), f"{type(e).__name__}: {e}"
    try:
        for attr in ("wait_first", "poller"):
            w = getattr(src, attr, None)
            if attr == "poller" and w is not None:
                w = w.wait_first
            if callable(w):
                w(wait_s)
                break
        t = time.time_ns()
        return src.read(t), t, None
    finally:
        close = getattr(src, "close", None)
        if callable(close):
            close()


def _ms(v: int | None) -> str:
    return "—" if v is None else f"{v / 1e6:+.3f}"


@click.command("sources")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="SOURCE.KEY=VALUE",
    help="Source parameter, e.g. chrony.host=/run/chrony/chronyd.sock (repeatable).",
)
@click.option(
    "--ntp",
    metavar="HOST:PORT",
    help="Take one NTP burst first so NTP-based sources have a sample to stand on.",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds to wait for polled services (chrony, MCP) to answer once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def sources(params: tuple[str, ...], ntp: str | None, wait_s: float, as_json: bool) -> None:
    """List every clock source, whether it is available on this host, and a live reading.

    The reading is taken at the host's system clock; offset = estimate − system clock and
    ± = half-width (latest − earliest)/2, both in ms. Sources without an answer show —.
    """
    from skewlab.clocks.external import availability
    from skewlab.clocks.external.params import parse_params
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.sync import SyncState

    try:
        per_source = parse_params(params, qualified=True)
    except ValueError as e:
        fail(str(e), 2)
    unknown = sorted(set(per_source) - set(SOURCES))
    if unknown:
        fail(f"unknown source(s) {', '.join(unknown)}", 2)
    state = SyncState()
    if ntp:
        from skewlab.ntp.client import NtpClient, NtpError

        host, _, port = ntp.rpartition(":")
        try:
            with NtpClient(host.strip("[]"), int(port)) as c:
                state.add(c.best_of(4))
        except (ValueError, OSError, NtpError) as e:
            fail(f"NTP {ntp}: {e}")
    rows = []
    for name in sorted(SOURCES):
        p = per_source.get(name, {})
        ok, reason = availability(name, p)
        reading, t, err = (
            _live_reading(name, p, state, wait_s) if ok else (None, time.time_ns(), None)
        )
        row: dict[str, Any] = {
            "source": name,
            "bounded": bool(getattr(SOURCES[name], "bounded", False)),
            "available": ok,
            "reason": reason if err is None else f"{reason}; reading failed: {err}",
            "status": None if reading is None else reading.status.name,
            "estimate_ns": None if reading is None else reading.estimate_ns,
            "earliest_ns": None if reading is None else reading.earliest_ns,
            "latest_ns": None if reading is None else reading.latest_ns,
            "as_of_ns": None if reading is None else reading.as_of_ns,
        }
        if reading is not None and reading.estimate_ns is not None:
            row["offset_ns"] = reading.estimate_ns - t  # estimate − host clock at the read
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    hdr = f"{'source':<15} {'avail':<5} {'status':<14} {'offset ms':>10} {'± ms':>9}  reason"
    click.echo(hdr)
    click.echo("-" * len(hdr))
    for r in rows:
        hw = None
        if r["earliest_ns"] is not None:
            hw = (r["latest_ns"] - r["earliest_ns"]) // 2
        click.echo(
            f"{r['source']:<15} {'yes' if r['available'] else 'no':<5} "
            f"{r['status'] or '—':<14} {_ms(r.get('offset_ns')):>10} "
            f"{'—' if hw is None else f'{hw / 1e6:.3f}':>9}  {r['reason']}"
        )
