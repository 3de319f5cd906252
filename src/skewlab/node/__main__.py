"""Internal entry point of a node process: ``python -m skewlab.node ROLE ...``.

Started by a launcher, never by hand; exits 0 on a clean stop and 2 on a failure that it has
already reported over the control channel (or, before the channel is up, on stderr). The node's
keys arrive as one line on its standard input (``node/secret.py``), never on its command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skewlab import spec as spec_mod
from skewlab.node.context import NodeContext, NodeFailure
from skewlab.node.control import ControlAuthError, ControlLink
from skewlab.node.coordinator import run_coordinator
from skewlab.node.ntp_server import run_ntp_server
from skewlab.node.secret import SecretError, read_keys
from skewlab.node.worker import run_worker
from skewlab.store import ResultsDir


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skewlab.node")
    ap.add_argument("role", choices=["ntp-server", "worker", "coordinator"])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--control", required=True, type=_hostport)
    ap.add_argument("--results", required=True)
    ap.add_argument("--t0", required=True, type=int)
    ap.add_argument(
        "--ntp",
        type=_hostport,
        action="append",
        default=[],
        help="HOST:PORT of an NTP server (repeat: several servers, with selection)",
    )
    ap.add_argument("--worker", action="append", default=[], help="NAME=HOST:PORT")
    ap.add_argument("--bind", help="address this node binds its sockets to (default: run.host)")
    ap.add_argument("--truth", type=_hostport, help="HOST:PORT of the truth reference (prober)")
    ap.add_argument("--truth-reference", choices=["also", "only"],
                    help="ntp-server: also (or only) serve the fault-free truth reference")
    a = ap.parse_args(argv)
    spec = spec_mod.load(a.spec)
    if a.bind:  # a deployed node binds its own host's address, not the launcher's
        spec.run.host = a.bind
    try:
        keys = read_keys(sys.stdin.buffer)
        link = ControlLink(a.control, a.node, keys.control)
    except (SecretError, ControlAuthError, OSError) as e:
        print(f"{a.node}: control channel: {e}", file=sys.stderr, flush=True)
        return 2
    ctx = NodeContext(
        spec,
        a.node,
        link,
        ResultsDir(Path(a.results)),
        a.t0,
        a.ntp[0] if a.ntp else None,
        list(a.ntp),
        event_key=keys.events,
        truth_addr=a.truth,
        truth_reference=a.truth_reference,
    )
    ctx.install_signals()
    try:
        if a.role == "ntp-server":
            return run_ntp_server(ctx)
        if a.role == "worker":
            return run_worker(ctx)
        workers = []
        for w in a.worker:
            name, _, hp = w.partition("=")
            h, p = _hostport(hp)
            workers.append((name, h, p))
        return run_coordinator(ctx, workers)
    except NodeFailure as e:
        link.send("error", message=str(e))
        return 2
    except Exception as e:  # report, then fail: the launcher prints it as one line
        link.send("error", message=f"{type(e).__name__}: {e}")
        raise
    finally:
        link.close()


if __name__ == "__main__":
    sys.exit(main())
