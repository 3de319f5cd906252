"""Small helper run on each host by the SSH/Slurm launchers: ``python -m skewlab.deploy.agent``.

probe   pre-flight facts as one JSON line: version, host, kernel, boot id, clock reading,
        clock source availability, whether the ports and bind address are usable and the
        launcher's control address reachable
signal  send SIGTERM/SIGKILL to a node PID, but only if that PID is still that skewlab node
stage   write spec.json (from stdin) into a fresh remote results folder
remove  delete a staged folder after its traces were copied back
pack    write the traces of some nodes (or named paths inside the folder: a Slurm sweep's
        cells) as a tar stream to stdout (copy-back)

Every argument arrives as one shell-quoted word; nothing here runs a shell.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import sys
import tarfile
from pathlib import Path
from typing import Any


def _boot_id() -> str | None:
    """The kernel's boot id: equal on two hosts only if they are one running kernel (one clock)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _can_bind(host: str, port: int) -> tuple[bool, str]:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True, "free"
    except OSError as e:
        return False, e.strerror or str(e)
    finally:
        s.close()


def probe(a: argparse.Namespace) -> dict[str, Any]:
    from skewlab import __version__
    from skewlab.clocks.external import availability, is_optional
    from skewlab.timebase import host_ns

    sources = {}
    for name, params in json.loads(a.sources or "{}").items():
        ok, reason = availability(name, params)
        sources[name] = {"ok": ok, "reason": reason, "optional": is_optional(params)}
    binds = {}
    for host in a.bind:
        ok, why = _can_bind(host, 0)
        binds[host] = {"ok": ok, "reason": why}
    ports = {}
    for port in a.udp_port:
        ok, why = _can_bind(a.bind[0] if a.bind else "0.0.0.0", port)
        ports[str(port)] = {"ok": ok, "reason": why}
    connect = None
    if a.connect:
        host, _, port = a.connect.rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
            connect = {"address": a.connect, "ok": True, "reason": "connected"}
        except OSError as e:
            connect = {"address": a.connect, "ok": False, "reason": e.strerror or str(e)}
    results = None
    if a.results:
        results = Path(a.results).is_dir()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "boot_id": _boot_id(),
        "sources": sources,
        "bind": binds,
        "udp_ports": ports,
        "results_visible": results,
        "connect": connect,
        "time_ns": host_ns(),  # last: the launcher brackets it with its own readings
    }


def send_signal(pid: int, node: str, signame: str) -> dict[str, Any]:
    """Signal ``pid`` only if its command line is ``... skewlab.node ... --node NODE ...``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return {"sent": False, "reason": "no such process"}
    words = [w.decode(errors="replace") for w in args]
    is_node = "skewlab.node" in words and any(
        words[i] == "--node" and words[i + 1] == node for i in range(len(words) - 1)
    )
    if not is_node:
        return {"sent": False, "reason": "that PID is no longer this node"}
    try:
        os.kill(pid, getattr(signal, f"SIG{signame}"))
    except ProcessLookupError:
        return {"sent": False, "reason": "no such process"}
    return {"sent": True, "reason": f"SIG{signame}"}


def stage(directory: str) -> dict[str, Any]:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "traces").mkdir(exist_ok=True)
    data = sys.stdin.buffer.read()
    tmp = d / "spec.json.tmp"
    tmp.write_bytes(data)
    tmp.replace(d / "spec.json")
    return {"staged": str(d), "bytes": len(data)}


SWEEP_COPY = "skewlab-sweep.json"  # marks a Slurm sweep's folder on a node (copy mode)


def remove(directory: str) -> dict[str, Any]:
    """Delete a remote results copy, but only a folder that ``stage`` made (has spec.json) or a
    Slurm sweep's task folder (has ``SWEEP_COPY``)."""
    import shutil

    d = Path(directory)
    if not (d / "spec.json").is_file() and not (d / SWEEP_COPY).is_file():
        return {"removed": False, "reason": "not a staged skewlab folder"}
    shutil.rmtree(d)
    return {"removed": True, "reason": str(d)}


def pack(directory: str, nodes: list[str], paths: list[str] | None = None) -> None:
    """The traces of ``nodes`` and the relative ``paths`` (missing ones skipped; nothing
    outside the folder) as one tar stream on stdout."""
    root = Path(directory)
    names = [f"traces/{n}" for n in nodes]
    for rel in paths or []:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise SystemExit(f"pack: {rel!r} is not a path inside {directory}")
        names.append(rel)
    with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as tar:
        for name in names:
            p = root / name
            if p.exists():
                tar.add(p, arcname=name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m skewlab.deploy.agent")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("probe")
    p.add_argument("--sources", help="JSON: source name → params")
    p.add_argument("--bind", action="append", default=[])
    p.add_argument("--udp-port", action="append", default=[], type=int)
    p.add_argument("--results")
    p.add_argument("--connect", help="HOST:PORT to try a TCP connection to (the control address)")
    s = sub.add_parser("signal")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--node", required=True)
    s.add_argument("--signal", choices=["TERM", "KILL"], default="TERM")
    st = sub.add_parser("stage")
    st.add_argument("--dir", required=True)
    rm = sub.add_parser("remove")
    rm.add_argument("--dir", required=True)
    pk = sub.add_parser("pack")
    pk.add_argument("--dir", required=True)
    pk.add_argument("--node", action="append", default=[])
    pk.add_argument("--path", action="append", default=[], help="relative path to include")
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.dir, a.node, a.path)
        return 0
    if a.cmd == "probe":
        out = probe(a)
    elif a.cmd == "signal":
        out = send_signal(a.pid, a.node, a.signal)
    elif a.cmd == "remove":
        out = remove(a.dir)
    else:
        out = stage(a.dir)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
