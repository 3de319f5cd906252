"""One-shot queries of NTP servers (``skewlab ntp-query``): a burst per server, selection over
the answers, and the table or JSON document that shows them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.select import Selection, select

if TYPE_CHECKING:
    from skewlab.ntp.sample import NtpSample


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


@dataclass
class QueryResult:
    """One row per server (offsets: server − this host, ns) and the selection over them."""

    rows: list[dict[str, Any]]
    selection: Selection

    @property
    def any_sample(self) -> bool:
        return any(r["offset_ns"] is not None for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        sel = self.selection
        return {
            "servers": self.rows,
            "combined_offset_ns": sel.offset_ns,
            "low_ns": sel.low_ns,
            "high_ns": sel.high_ns,
            "falsetickers_allowed": sel.falsetickers_allowed,
        }


def port_refused(host: str, port: int, timeout_s: float) -> bool:
    """Whether the host answers a request to ``port`` with ICMP port unreachable (nothing
    listens there), which only a connected UDP socket is told of; the client's socket is not
    connected (its receive path checks the source itself), so an unanswered burst looks like a
    timeout until this one-datagram probe tells the two apart."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return False
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(min(timeout_s, 0.5))
        try:
            s.connect(addr)
            s.send(b"\x23" + bytes(47))  # an NTPv4 client request, all times zero
            s.recv(2048)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def query(targets: list[tuple[str, int]], burst: int, timeout_s: float) -> QueryResult:
    """Take ``burst`` exchanges from each (host, port), keep each one's best, select."""
    outcomes: list[tuple[str, NtpSample | NtpError]] = []
    for host, port in targets:
        try:
            client = NtpClient(host, port, timeout_s=timeout_s)
        except OSError as e:
            outcomes.append((f"{host}:{port}", NtpError("unresolved", str(e))))
            continue
        with client:
            try:
                outcomes.append((client.name, client.best_of(burst)))
            except NtpError as e:
                if e.reason == "timeout" and port_refused(host, port, timeout_s):
                    e = NtpError("unreachable", "nothing listens on that port")
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
    return QueryResult(rows, sel)


def _fmt_ms(ns: int | None, signed: bool = False) -> str:
    if ns is None:
        return "—"
    return f"{ns / 1e6:+.3f}" if signed else f"{ns / 1e6:.3f}"


def format_query(result: QueryResult) -> str:
    """The table (ms) and, if a combined offset exists, the line stating it and its interval."""
    hdr = (
        f"{'server':<24} {'offset ms':>10} {'delay ms':>9} {'root dist ms':>12} "
        f"{'stratum':>7} {'leap':>4}  verdict"
    )
    lines = [hdr, "-" * len(hdr)]
    for r in result.rows:
        lines.append(
            f"{r['server']:<24} {_fmt_ms(r['offset_ns'], True):>10} {_fmt_ms(r['delay_ns']):>9} "
            f"{_fmt_ms(r['root_distance_ns']):>12} "
            f"{'—' if r['stratum'] is None else r['stratum']:>7} "
            f"{'—' if r['leap'] is None else r['leap']:>4}  {r['verdict']} ({r['reason']})"
        )
    sel = result.selection
    if sel.offset_ns is not None:
        lines.append(
            f"\ncombined offset {_fmt_ms(sel.offset_ns, True)} ms; true offset within "
            f"[{_fmt_ms(sel.low_ns, True)}, {_fmt_ms(sel.high_ns, True)}] ms "
            f"if at most {sel.falsetickers_allowed} server(s) are wrong"
        )
    return "\n".join(lines)
