"""Namespace mode (root only): each node in its own network namespace, joined by a bridge.

Layout: a hub namespace holds the bridge ``br0`` (address .1, where the userspace relay lives);
node k gets namespace ``skl-<pid>-<k>`` with ``eth0`` (address .k+2) whose veth peer is a port
of the bridge. Loss can be added per node by nftables (``numgen random``) on its input; delay
still comes from the relay. Nothing is created in the host's own namespace, and everything is
removed on every exit path: the context manager's exit, ``atexit``, SIGTERM, and, for a
process that was SIGKILLed, ``cleanup_stale`` on the next setup.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PREFIX = "skl-"
CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """Setting up namespace mode failed; the message says which command and why."""


def _ip() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


def _run(*cmd: str, ns: str | None = None) -> None:
    full = [_ip(), "netns", "exec", ns, *cmd] if ns else list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise NetnsError(f"{' '.join(full)}: {r.stderr.strip() or f'exit {r.returncode}'}")


def list_namespaces() -> list[str]:
    r = subprocess.run([_ip(), "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def available() -> tuple[bool, str]:
    """(True, "") if this process may create network namespaces, else (False, why)."""
    if os.geteuid() != 0:
        return False, "namespace mode needs root"
    if not shutil.which("ip") and not Path("/usr/sbin/ip").exists():
        return False, "iproute2 (ip) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _run(_ip(), "netns", "add", probe)
    except NetnsError as e:
        return False, f"ip netns add is not permitted here: {e}"
    _run(_ip(), "netns", "del", probe)
    return True, ""


def cleanup_stale() -> list[str]:
    """Delete namespaces left by skewlab processes that no longer exist; returns their names."""
    removed = []
    for name in list_namespaces():
        parts = name.split("-")
        if not name.startswith(PREFIX) or len(parts) < 3 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        try:
            os.kill(pid, 0)
            continue  # its owner is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        subprocess.run([_ip(), "netns", "del", name], capture_output=True)
        removed.append(name)
    return removed


class Topology:
    """Namespaces for ``nodes`` plus a hub with a bridge; use as a context manager."""

    def __init__(
        self, nodes: list[str], subnet: str = "10.213.0", loss: dict[str, float] | None = None
    ):
        self.nodes = list(nodes)
        self.subnet = subnet  # first three octets of the private /24 inside the namespaces
        self.loss = dict(loss or {})  # node → fraction of incoming UDP datagrams dropped
        tag = f"{PREFIX}{os.getpid()}"
        self.hub_ns = f"{tag}-hub"
        self.ns = {n: f"{tag}-{k}" for k, n in enumerate(self.nodes)}
        self.created: list[str] = []
        self._lock = threading.Lock()
        self._prev_sigterm: Any = None

    # -- addresses and entering namespaces -----------------------------------------------------
    @property
    def hub_address(self) -> str:
        return f"{self.subnet}.1"

    def address(self, node: str) -> str:
        return f"{self.subnet}.{self.nodes.index(node) + 2}"

    def run_in(self, node: str | None, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a thread that entered ``node``'s namespace (None = the hub).

        Sockets it creates stay in that namespace for their whole life.
        """
        ns = self.hub_ns if node is None else self.ns[node]
        out: dict[str, Any] = {}

        def body() -> None:
            try:
                enter(ns)
                out["v"] = fn(*args)
            except BaseException as e:  # handed to the caller
                out["e"] = e

        t = threading.Thread(target=body, name=f"netns-{ns}")
        t.start()
        t.join()
        if "e" in out:
            raise out["e"]
        return out["v"]

    def enter_hub(self) -> None:
        """Move the calling thread into the hub namespace (for the relay's own threads)."""
        enter(self.hub_ns)

    @contextlib.contextmanager
    def in_hub(self) -> Iterator[None]:
        """Run the ``with`` body with the calling thread in the hub namespace, then return it to
        the namespace it was in (even on an exception or Ctrl-C).

        A launcher runs its whole run loop here, so every socket it makes (control server, link
        relays, their upstream sockets) and every thread it starts belong to the hub, where all
        nodes reach them over the bridge.
        """
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            enter(self.hub_ns)
            try:
                yield
            finally:
                _setns(home, "the launcher's own namespace")
        finally:
            os.close(home)

    # -- setup and teardown ---------------------------------------------------------------------
    def _add_ns(self, name: str) -> None:
        _run(_ip(), "netns", "add", name)
        self.created.append(name)
        _run(_ip(), "link", "set", "lo", "up", ns=name)

    def setup(self) -> Topology:
        cleanup_stale()
        atexit.register(self.teardown)
        if threading.current_thread() is threading.main_thread():
            self._prev_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._add_ns(self.hub_ns)
            hub = self.hub_ns
            _run(_ip(), "link", "add", "br0", "type", "bridge", ns=hub)
            _run(_ip(), "addr", "add", f"{self.hub_address}/24", "dev", "br0", ns=hub)
            _run(_ip(), "link", "set", "br0", "up", ns=hub)
            for k, node in enumerate(self.nodes):
                ns = self.ns[node]
                self._add_ns(ns)
                port = f"p{k}"
                _run(_ip(), "link", "add", "eth0", "netns", ns, "type", "veth",
                     "peer", "name", port, "netns", hub)  # fmt: skip
                _run(_ip(), "link", "set", port, "master", "br0", "up", ns=hub)
                _run(_ip(), "addr", "add", f"{self.address(node)}/24", "dev", "eth0", ns=ns)
                _run(_ip(), "link", "set", "eth0", "up", ns=ns)
                if self.loss.get(node):
                    self._add_loss(ns, self.loss[node])
        except BaseException:
            self.teardown()
            raise
        return self

    def _add_loss(self, ns: str, fraction: float) -> None:
        nft = shutil.which("nft") or "/usr/sbin/nft"
        if not Path(nft).exists():
            raise NetnsError("nftables (nft) is not installed: loss in namespace mode needs it")
        scale = 1_000_000
        _run(nft, "add", "table", "inet", "skewlab", ns=ns)
        _run(nft, "add chain inet skewlab input { type filter hook input priority 0; }", ns=ns)
        _run(nft, f"add rule inet skewlab input meta l4proto udp numgen random mod {scale} "
                  f"< {round(fraction * scale)} counter drop", ns=ns)  # fmt: skip

    def teardown(self) -> None:
        """Delete every namespace created here (idempotent; never raises)."""
        with self._lock:
            while self.created:
                name = self.created.pop()
                subprocess.run([_ip(), "netns", "del", name], capture_output=True)
        if self._prev_sigterm is not None:
            try:
                signal.signal(signal.SIGTERM, self._prev_sigterm)
            except ValueError:  # not in the main thread
                pass
            self._prev_sigterm = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        prev = self._prev_sigterm
        self.teardown()
        if callable(prev):
            prev(signum, frame)
        else:
            raise SystemExit(128 + signum)

    def __enter__(self) -> Topology:
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()


def enter(ns: str) -> None:
    """Move the calling thread into the named network namespace (setns(2))."""
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        _setns(fd, ns)
    finally:
        os.close(fd)


def _setns(fd: int, what: str) -> None:
    """setns(2) of the calling thread to the network namespace open at ``fd``."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns({what}): {os.strerror(err)}")


def exec_prefix(ns: str) -> list[str]:
    """The command prefix that runs a program inside ``ns`` (``ip netns exec`` execs the program
    in place, so the PID we started is the program's own and we can stop it by that PID)."""
    return [_ip(), "netns", "exec", ns]
