"""Resource limits: under overload a worker sheds load visibly (every datagram is either
received or counted as dropped), and its queues and buffers stay bounded."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.clocks.sources import make_sources
from skewlab.clocks.sync import SyncState
from skewlab.net import wire
from skewlab.node.commit_wait import CommitWaitEvaluator
from skewlab.node.udp import udp_drops
from skewlab.node.worker import Receiver
from skewlab.trace import PartWriter, read_parts, receipt_schema, wire_sentinel_columns

SOURCES = ["system", "truetime"]


class _MaxPending(PartWriter):
    """A PartWriter that remembers the most rows it ever held in memory."""

    most = 0

    def append(self, row) -> None:  # type: ignore[no-untyped-def]
        super().append(row)
        self.most = max(self.most, self.pending)


def test_overload_is_shed_visibly_and_memory_stays_bounded(tmp_path: Path) -> None:
    total, batch, backlog = 20_000, 64, 40
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # small: the kernel sheds
    sock.bind(("127.0.0.1", 0))
    codec = wire.WireCodec(SOURCES)
    clock = NodeClock(Oscillator(t0_ns=time.time_ns()))
    sources = make_sources(SOURCES, SyncState(clock=clock))
    writer = _MaxPending(tmp_path, "events", receipt_schema(SOURCES), batch,
                         wire_sentinel_columns(SOURCES))  # fmt: skip
    # Δ = 1 h: nothing is ever due, so the backlog only grows — up to its bound
    cw = CommitWaitEvaluator(sources, [3_600_000], clock.local_ns, tmp_path, batch,
                             max_backlog=backlog)  # fmt: skip
    stop = threading.Event()
    rx = Receiver(sock, codec, clock, sources, writer, total, stop, on_receipts=cw.push_many)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flat = (2, 1, 1, 1) * codec.n
    for i in range(total):  # all at once, before the receiver even reads: a burst it can't take
        tx.sendto(codec.encode_flat(wire.KIND_EVENT, i, i, i, flat, 0), sock.getsockname())
    t = threading.Thread(target=rx.run)
    t.start()
    time.sleep(0.5)
    stop.set()
    t.join(timeout=10)
    drops = udp_drops(sock)
    writer.flush()
    c = rx.counts()
    cwc = cw.stop()
    sock.close()
    tx.close()
    assert drops is not None and drops > 0  # the kernel shed part of the burst...
    assert c["received"] + drops == total  # ...and every datagram is accounted for
    assert read_parts(tmp_path, "events").num_rows == c["received"]
    assert writer.most < batch  # the trace buffer never held a full batch in memory
    assert c["received"] > backlog
    assert cwc["commit_wait_not_done_at_stop"] == {"3600000": backlog}  # backlog at its bound
    assert cwc["commit_wait_shed"] == c["received"] - backlog  # the rest shed, counted
