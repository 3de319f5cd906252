"""What a launcher needs from the nemesis: extra NTP server arguments and the link nemesis.

Kept here so a launcher's change stays a couple of lines (deploy/ knows nothing of faults).
"""

from __future__ import annotations

from typing import Any

from skewlab.nemesis.link import LinkNemesis
from skewlab.nemesis.record import FaultRecorder
from skewlab.nemesis.schedule import ntp_server_name


def more_ntp_servers(host: str, ready_body: dict[str, Any]) -> list[str]:
    """``host:port`` of the NTP servers after the first (the ``ports`` of the server's ready)."""
    ports = ready_body.get("ports") or []
    fmt = "[{}]:{}" if ":" in host else "{}:{}"
    return [fmt.format(host, p) for p in ports[1:]]


def extra_ntp_args(net: Any, node: str, more: list[str]) -> list[str]:
    """``--ntp`` arguments for servers 1.. (through a relay when that path is emulated)."""
    out: list[str] = []
    for k, hp in enumerate(more, start=1):
        out += ["--ntp", net.via(node, ntp_server_name(k), hp)]
    return out


def start_link_nemesis(spec: Any, net: Any, results: Any, t0_ns: int) -> LinkNemesis | None:
    """Start the link nemesis of a run if the spec has ``link_loss`` faults."""
    if not any(f.kind == "link_loss" for f in spec.faults):
        return None
    rec = FaultRecorder(results.nemesis_dir, "launcher")
    return LinkNemesis(spec.faults, net, t0_ns, rec).start()
