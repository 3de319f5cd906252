"""``skewlab sources``: every clock source, whether it works on this host, and a live reading."""

from __future__ import annotations

import json

import click

from skewlab.cli import options as opt
from skewlab.cli.common import fail, source_param_errors


@click.command("sources")
@opt.params(
    "SOURCE.KEY=VALUE",
    "Source parameter, e.g. chrony.host=/run/chrony/chronyd.sock (repeatable).",
)
@opt.ntp("Take one NTP burst first so NTP-based sources have a sample to stand on.")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds to wait for polled services (chrony, MCP) to answer once.",
)
@opt.as_json()
def sources(params: tuple[str, ...], ntp: str | None, wait_s: float, as_json: bool) -> None:
    """List every clock source, whether it is available on this host, and a live reading.

    The reading is taken at the host's system clock; offset = estimate − system clock and
    ± = half-width (latest − earliest)/2, both in ms. Sources without an answer show —.
    """
    from skewlab.clocks.external.params import parse_params
    from skewlab.clocks.sources import SOURCES
    from skewlab.clocks.survey import format_survey, survey
    from skewlab.clocks.sync import SyncState

    try:
        per_source = parse_params(params, qualified=True)
    except ValueError as e:
        fail(str(e), 2)
    unknown = sorted(set(per_source) - set(SOURCES))
    if unknown:
        fail(f"unknown source(s) {', '.join(unknown)}", 2)
    if bad := source_param_errors(per_source, "-p"):
        fail("; ".join(bad), 2)
    state = SyncState()
    if ntp:
        import socket

        from skewlab.ntp.client import NtpClient, NtpError
        from skewlab.ntp.query import parse_hostport

        try:
            host, port = parse_hostport(ntp)
        except ValueError as e:
            fail(f"--ntp {ntp}: {e}", 2)
        try:
            with NtpClient(host, port) as c:
                state.add(c.best_of(4))
        except socket.gaierror as e:
            fail(f"--ntp {ntp}: cannot resolve {host!r} ({e.strerror})", 2)
        except (OSError, NtpError) as e:
            fail(f"NTP {ntp}: {e}")
    rows = survey(per_source, state, wait_s)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(format_survey(rows))
