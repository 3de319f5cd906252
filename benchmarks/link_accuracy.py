"""How exactly does the userspace link emulator deliver the delays it is asked for?

Sends 5,000 datagrams/s for a few seconds through a ``lan`` and a ``wan`` link (loopback only)
and compares, per link, the requested mean one-way delay with the achieved one: end to end
(sender's true send time to receiver's true receipt, loopback hops included) and inside the
relay (its trace: what stats.json reports as the link's achieved delay). Prints p50/p99 and
the relay's lateness. The final line is the largest |achieved − requested| mean one-way delay
of the links as the relay achieved them (``mean_error_ms``: scheduling lateness plus the
sampling noise of the drawn delays); the end-to-end error, which adds the host's loopback hops
and the endpoints' own wake-ups, is printed beside it.

Usage: python benchmarks/link_accuracy.py [--rate 5000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection

import numpy as np

from skewlab.analysis.links import summarize_link
from skewlab.net.distributions import NS_PER_MS
from skewlab.net.link import RT_PRIORITY, LinkHub, _set_realtime
from skewlab.net.profiles import PROFILES


def _receiver(sock: socket.socket, out: list[tuple[int, int]], stop: threading.Event) -> None:
    _set_realtime(RT_PRIORITY)  # like the relay: the endpoint's own wake-ups are not the link's
    sock.settimeout(0.05)
    now = time.time_ns
    while not stop.is_set():
        try:
            data = sock.recv(256)
        except TimeoutError:
            continue
        out.append((int.from_bytes(data[:8], "big"), now()))


def _traffic(conn: Connection, rate: float, seconds: float) -> None:
    """Child process: receive on one socket, send paced datagrams to the relay, report delays."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rx.bind(("127.0.0.1", 0))
    conn.send(rx.getsockname())
    _set_realtime(RT_PRIORITY)
    relay = conn.recv()
    got: list[tuple[int, int]] = []
    stop = threading.Event()
    t = threading.Thread(target=_receiver, args=(rx, got, stop), daemon=True)
    t.start()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n = int(rate * seconds)
    gap = int(1e9 / rate)
    start = time.monotonic_ns()
    for i in range(n):
        wait = start + i * gap - time.monotonic_ns()
        if wait > 200_000:
            time.sleep((wait - 100_000) / 1e9)
        tx.sendto(time.time_ns().to_bytes(8, "big") + bytes(56), relay)
    achieved_rate = n / ((time.monotonic_ns() - start) / 1e9)
    conn.recv()  # the relay has drained
    time.sleep(0.1)
    stop.set()
    t.join()
    conn.send((n, achieved_rate, [r - sent for sent, r in got]))


def measure(profile: str, rate: float, seconds: float, seed: int) -> dict[str, float]:
    """One link in this process; sender and receiver in a child, so they share no GIL with it."""
    spec = PROFILES[profile]
    assert spec is not None
    parent, child = mp.Pipe()
    proc = mp.get_context("fork").Process(target=_traffic, args=(child, rate, seconds))
    proc.start()
    hub = LinkHub(seed=seed).start()
    try:
        relay = hub.add_link(f"bench~{profile}", spec, parent.recv())
        parent.send(relay)
        time.sleep(seconds)
        hub.drain(10 + seconds, quiet_s=0.3)
        parent.send("drained")
        n, achieved_rate, delays = parent.recv()
    finally:
        hub.stop()
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    e2e = np.sort(np.array(delays, dtype=np.int64))
    s = summarize_link(hub.links[f"bench~{profile}"].table())["forward"]
    req = s["requested"]["mean_ms"]
    e2e_mean = float(e2e.mean()) / NS_PER_MS
    p99 = float(e2e[max(0, int(np.ceil(0.99 * len(e2e))) - 1)]) / NS_PER_MS
    a = s["achieved"]
    print(
        f"{profile:<5} sent {n} at {achieved_rate:,.0f}/s  received {len(e2e)}  "
        f"lost {a['lost']}  reordered {a['reordered']}"
    )
    print(
        f"      requested mean {req:8.4f} ms  p99 {s['requested']['p99_ms']:8.4f} ms\n"
        f"      end-to-end mean {e2e_mean:8.4f} ms  p50 {float(np.median(e2e)) / NS_PER_MS:8.4f}"
        f" ms  p99 {p99:8.4f} ms  error {e2e_mean - req:+.4f} ms\n"
        f"      relay mean {a['mean_ms']:8.4f} ms  p99 {a['p99_ms']:8.4f} ms  "
        f"error {a['mean_error_ms']:+.4f} ms  lateness mean {a['lateness_mean_ms'] * 1000:.1f} µs"
        f"  p99 {a['lateness_p99_ms'] * 1000:.1f} µs"
    )
    return {"error_ms": e2e_mean - req, "relay_error_ms": a["mean_error_ms"], "p99_ms": p99}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5000.0, help="datagrams per second")
    ap.add_argument("--seconds", type=float, default=4.0, help="duration per link")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    # The relay's two threads share one interpreter lock: hand it over more often than every
    # 5 ms (the default), so a due send never waits behind the receive thread for long.
    sys.setswitchinterval(0.0002)
    results = {p: measure(p, a.rate, a.seconds, a.seed) for p in ("lan", "wan")}
    worst = max(abs(r["relay_error_ms"]) for r in results.values())
    worst_e2e = max(abs(r["error_ms"]) for r in results.values())
    ok = "within" if worst <= 0.2 else "NOT within"
    print(f"largest |end-to-end mean − requested| = {worst_e2e:.4f} ms (loopback hops included)")
    print(f"largest |link mean − requested| = {worst:.4f} ms ({ok} the 0.2 ms target)")
    print(f"RESULT link_mean_delay_error_ms {worst:.4f} ms")


if __name__ == "__main__":
    main()
