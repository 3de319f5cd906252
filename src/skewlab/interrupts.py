"""Interruptions shared by every long-running command (``run``, ``simulate``, ``sweep``,
``validate``, ``deploy``, ``ntp-server``, ``clockd``): SIGINT and SIGTERM end the work the same
way.

Inside ``interruptible()`` the first SIGINT or SIGTERM raises ``Interrupted`` (a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` cleanup path — the launcher's
stop-every-node, the simulator's metadata — runs unchanged) in the main thread; further signals
are ignored while that cleanup unwinds, so a second Ctrl-C cannot cut it short. The exit code is
128 + the signal number (130 for SIGINT, 143 for SIGTERM). Process pools started through
``pool()`` leave interrupts to their parent, which stops them by PID.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The work was stopped by a signal (``signum``); ``exit_code`` is 128 + signum."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_of(exc: BaseException) -> Interrupted:
    """``exc`` as an ``Interrupted`` (a plain KeyboardInterrupt is a SIGINT)."""
    return exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)


@contextmanager
def interruptible(on_signal: Callable[[int], None] | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM raise ``Interrupted`` in the main thread (once; later ones are ignored
    until the block is left). With ``on_signal`` the handler calls it instead of raising, for a
    loop that stops itself (a server's main thread waiting on an event). Previous handlers are
    restored on the way out."""
    fired: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(signum)
        if on_signal is not None:
            on_signal(signum)
            return
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in HANDLED}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _child_init(init: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    """A pool process ignores SIGINT (a terminal's Ctrl-C reaches the whole process group) and
    dies on SIGTERM: its parent decides, and stops it by PID. It starts with both signals
    blocked (see ``pool``): one sent before this point is delivered now, to these
    dispositions."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
    if init is not None:
        init(*args)


@contextmanager
def pool(jobs: int, initializer: Callable[..., None] | None = None,
         initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:  # fmt: skip
    """A process pool that, when the block is left by an exception (an interrupt above all),
    drops pending work and terminates its running processes instead of waiting for them."""
    ex = ProcessPoolExecutor(jobs, initializer=_child_init, initargs=(initializer, initargs))
    try:
        # Start the processes now, with SIGINT and SIGTERM blocked: a forked child holds this
        # process's handlers until _child_init replaces them, and stop_pool's SIGTERM reaching
        # it then raised Interrupted inside its start-up (a pool process that survived and a
        # command that hung on exit). Blocked, the signal waits for the child's own dispositions;
        # here, one that arrives meanwhile is delivered when the mask is restored.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            ex.submit(int).result()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        yield ex
    except BaseException:
        stop_pool(ex)
        raise
    else:
        ex.shutdown(wait=True)


def stop_pool(ex: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the pool's processes (SIGTERM, by PID)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    manager = getattr(ex, "_executor_manager_thread", None)  # shutdown forgets it
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    # Let the pool's manager thread see its processes gone and close its wake-up pipe now: at
    # interpreter exit concurrent.futures wakes every manager thread still listed, and one
    # closing its pipe at that moment made the exit print "OSError: Bad file descriptor".
    if manager is not None:
        manager.join(5)
