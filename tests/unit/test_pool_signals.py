"""Process pools of interruptible commands (skewlab.interrupts.pool): a pool process ignores
SIGINT and dies on SIGTERM from its first instruction on. Between fork and its initializer a
forked child still holds the parent's handlers; the parent's stop (SIGTERM by PID) reaching it
there used to raise ``Interrupted`` inside its start-up, so it survived and ran on after the
command had stopped (seen as orphaned ``simulate -j 2`` workers and a hung exit)."""

from __future__ import annotations

import subprocess
import sys

from skewlab.interrupts import pool

# A child that receives SIGTERM right after fork (an at-fork hook sends it to itself), inside
# an interruptible command: it must die (the pool breaks), not survive the signal.
RACE = """
import os, signal
from concurrent.futures.process import BrokenProcessPool
from skewlab.interrupts import interruptible, pool
os.register_at_fork(after_in_child=lambda: os.kill(os.getpid(), signal.SIGTERM))
with interruptible():
    try:
        with pool(1) as ex:
            ex.submit(int).result(timeout=20)
        print("survived")
    except BrokenProcessPool:
        print("died")
"""


def test_sigterm_before_the_initializer_kills_the_pool_process() -> None:
    r = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "died", (r.stdout, r.stderr)
    assert "Exception ignored" not in r.stderr, r.stderr


def _dispositions() -> tuple[bool, bool, bool]:
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return (
        signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        not blocked & {signal.SIGINT, signal.SIGTERM},
    )


def test_pool_processes_ignore_sigint_die_on_sigterm_and_block_neither() -> None:
    import signal

    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pool(2) as ex:
        assert all(all(ex.submit(_dispositions).result(timeout=30)) for _ in range(4))
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # the parent's mask is back


def test_a_stopped_pool_leaves_no_manager_thread() -> None:
    """stop_pool (the interrupt path) returns only once the pool's manager thread has ended and
    closed its wake-up pipe: at interpreter exit concurrent.futures wakes every manager thread
    still listed, and one closing its pipe at that moment printed "OSError: Bad file
    descriptor" after `sweep`'s "interrupted" line (CI, 17:31)."""
    import time

    try:
        with pool(2) as ex:
            manager = ex._executor_manager_thread
            for _ in range(4):
                ex.submit(time.sleep, 30)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert manager is not None and not manager.is_alive()
