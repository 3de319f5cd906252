"""A background poller: calls a slow fetch function periodically and keeps the latest result.

Sources whose service answers slowly (a subprocess, an RPC) poll here so that ``read`` only
looks at the cached value and never blocks a worker's receive loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Poller(Generic[T]):
    """Runs ``fetch()`` every ``poll_s`` in a daemon thread; ``latest`` is the last success."""

    def __init__(self, fetch: Callable[[], T], poll_s: float, name: str) -> None:
        self.fetch = fetch
        self.poll_s = float(poll_s)
        self.latest: T | None = None  # swapped atomically; readers never lock
        self.successes = 0
        self.failures = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Poller[T]:
        self._thread.start()
        return self

    def poll_once(self) -> T | None:
        try:
            v = self.fetch()
        except Exception as e:  # the service failed: keep the old value, it ages honestly
            self.failures += 1
            self.last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return None
        self.latest = v
        self.successes += 1
        return v

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._first.set()
            self._stop.wait(self.poll_s)

    def wait_first(self, timeout_s: float) -> bool:
        """Wait until the first poll finished; True when a value is cached."""
        self._first.wait(timeout_s)
        return self.latest is not None

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
