"""The launcher tells a node that ended cleanly from one that died during the run: a node sends
"done" and exits at once, so its process can be seen ended before the control thread has
queued that message. Such a node must not fail the run ("worker W0 … exited with code 0
during the run" was reported for a worker whose log showed a normal stop); a node that ends
with code 0 and never sends "done" still fails it, after LOST_GRACE_S."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skewlab.deploy import orchestrator as orch
from skewlab.node.control import Message


class _Ended:
    """A carrier process that has already exited with code 0."""

    pid = 4242
    returncode = 0

    def poll(self) -> int:
        return 0


def _launcher(tmp_path: Path) -> Any:
    o = orch.Orchestrator.__new__(orch.Orchestrator)
    o.procs = {"W0": orch.NodeProc("W0", "worker", _Ended(), tmp_path / "W0.log")}  # type: ignore[arg-type]
    o.control = SimpleNamespace(messages=queue.Queue())
    o.failed = {}
    return o


def test_done_queued_after_the_exit_is_seen_is_not_a_failure(tmp_path: Path) -> None:
    o = _launcher(tmp_path)
    late = threading.Timer(0.3, o.control.messages.put, [Message("W0", "done", {"counts": {}})])
    late.start()  # the control thread queues "done" after the process is already gone
    got = o._wait_for(lambda m: m.type == "done", {"W0"}, 10, "workers to finish")
    assert set(got) == {"W0"} and o.procs["W0"].done == {"counts": {}}
    assert not o.failed


def test_clean_exit_without_done_still_fails_the_run(tmp_path: Path) -> None:
    o = _launcher(tmp_path)
    t = time.monotonic()
    with pytest.raises(orch.LaunchError, match="exited with code 0 during the run"):
        o._wait_for(lambda m: m.type == "done", {"W0"}, 10, "workers to finish")
    assert time.monotonic() - t >= orch.LOST_GRACE_S
    assert "W0" in o.failed
