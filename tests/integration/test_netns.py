"""Namespace mode: a 2-worker experiment across network namespaces, then nothing is left.

Coordinator, workers B and C and the NTP server each live in their own namespace; the relay
lives in the hub namespace beside the bridge. C drops 20 % of incoming UDP by nftables.
All traffic stays inside the namespaces this test creates.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time

import numpy as np
import pytest

from skewlab.analysis.links import summarize_link
from skewlab.net import netns
from skewlab.net.distributions import NS_PER_MS, ConstantDelay
from skewlab.net.link import LinkHub
from skewlab.net.profiles import DirectionSpec, ResolvedLink
from skewlab.ntp.client import NtpClient
from skewlab.ntp.server import NtpServer
from tests.conftest import IN_CI, require_command

pytestmark = pytest.mark.needs_root
EVENTS = 500
LOSS_C = 0.2
DELAY_MS = 2.0


def _need_netns() -> None:
    require_command("ip", "namespace mode needs iproute2")
    require_command("nft", "namespace mode drops packets with nftables")
    ok, why = netns.available()
    if not ok:
        if IN_CI:
            pytest.fail(f"{why} (CI=true runs as root: namespace mode must work)")
        pytest.skip(why)


def _ours() -> list[str]:
    return [n for n in netns.list_namespaces() if n.startswith(f"{netns.PREFIX}{os.getpid()}-")]


def _receiver(sock: socket.socket, got: list[int], stop: threading.Event) -> None:
    sock.settimeout(0.05)
    while not stop.is_set():
        try:
            data, _ = sock.recvfrom(2048)
        except TimeoutError:
            continue
        got.append(int.from_bytes(data[:8], "big"))


def _bind(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, 0))
    return s


def test_two_worker_experiment_in_namespaces_then_cleanup() -> None:
    _need_netns()
    nodes = ["coordinator", "B", "C", "ntp-server"]
    link = ResolvedLink(
        forward=DirectionSpec(delay=ConstantDelay(delay_ms=DELAY_MS)),
        back=DirectionSpec(delay=ConstantDelay(delay_ms=DELAY_MS)),
    )
    got: dict[str, list[int]] = {"B": [], "C": []}
    stop = threading.Event()
    with netns.Topology(nodes, loss={"C": LOSS_C}) as topo:
        assert len(_ours()) == len(nodes) + 1
        server = topo.run_in("ntp-server", NtpServer, topo.address("ntp-server"), 0).start()
        hub = LinkHub(topo.hub_address, seed=3, thread_init=topo.enter_hub).start()
        threads = []
        try:
            relay = {}
            for w in ("B", "C"):
                sock = topo.run_in(w, _bind, topo.address(w))
                t = threading.Thread(target=_receiver, args=(sock, got[w], stop), daemon=True)
                t.start()
                threads.append((t, sock))
                relay[w] = topo.run_in(None, hub.add_link, f"coordinator~{w}", link,
                                       sock.getsockname())  # fmt: skip
            ntp_relay = topo.run_in(None, hub.add_link, "B~ntp-server", link,
                                    (topo.address("ntp-server"), server.port))  # fmt: skip
            # B's NTP client lives in B's namespace and reaches the server through the relay
            client = topo.run_in("B", NtpClient, ntp_relay[0], ntp_relay[1])
            sample = client.best_of(3)
            client.close()
            coord = topo.run_in("coordinator", _bind, topo.address("coordinator"))
            for i in range(EVENTS):
                data = i.to_bytes(8, "big") + bytes(24)
                coord.sendto(data, relay["B"])
                coord.sendto(data, relay["C"])
                if i % 50 == 49:
                    time.sleep(0.002)
            coord.close()
            hub.drain(5)
            time.sleep(0.1)
        finally:
            stop.set()
            for t, s in threads:
                t.join()
                s.close()
            hub.stop()
            server.stop()
    assert _ours() == []  # everything removed

    # B: the relay delivered every event and B got every one
    assert sorted(got["B"]) == list(range(EVENTS))
    sb = summarize_link(hub.links["coordinator~B"].table())["forward"]["achieved"]
    assert sb["delivered"] == EVENTS and sb["min_ms"] >= DELAY_MS
    # C: the relay delivered every event; nftables in C's namespace dropped ~20 %
    sc = summarize_link(hub.links["coordinator~C"].table())["forward"]["achieved"]
    assert sc["delivered"] == EVENTS
    assert len(set(got["C"])) == len(got["C"])
    lost = 1 - len(got["C"]) / EVENTS
    assert abs(lost - LOSS_C) < 5 * math.sqrt(LOSS_C * (1 - LOSS_C) / EVENTS)
    # NTP across namespaces: the round trip holds both emulated delays; true offset 0 is in θ ± λ
    assert sample.delay_ns >= 2 * DELAY_MS * NS_PER_MS
    assert abs(sample.offset_ns) <= sample.root_distance_ns
    assert np.isfinite(sb["mean_ms"])


def test_cleanup_on_error_and_of_stale_namespaces() -> None:
    _need_netns()
    with pytest.raises(RuntimeError, match="boom"), netns.Topology(["a", "b"]):
        assert len(_ours()) == 3
        raise RuntimeError("boom")
    assert _ours() == []
    # a namespace whose owner PID is gone (as after SIGKILL) is removed by the next setup
    dead = 2**22 + 12345  # above the default pid_max: no such process
    name = f"{netns.PREFIX}{dead}-0"
    netns._run(netns._ip(), "netns", "add", name)
    try:
        assert name in netns.cleanup_stale()
        assert name not in netns.list_namespaces()
    finally:
        if name in netns.list_namespaces():
            netns._run(netns._ip(), "netns", "del", name)
