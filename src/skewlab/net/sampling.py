"""Drawing from the link models of ``net/distributions.py``: seeded numpy streams, integer ns.

Samples are drawn in blocks from a numpy ``Generator`` (one independent stream per concern), so
a link is reproducible from its seed and cheap per packet. Kept apart from the models, which
are part of the experiment spec and must not import numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from skewlab.net.distributions import (
    NS_PER_MS,
    BernoulliLoss,
    ConstantDelay,
    GilbertElliottLoss,
    LognormalDelay,
    NormalDelay,
    ParetoDelay,
)

BLOCK = 4096  # samples drawn per numpy call

Delay = ConstantDelay | NormalDelay | LognormalDelay | ParetoDelay


def sample_n(spec: Delay, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` delays (int64 ns) drawn from ``spec``."""
    if isinstance(spec, ConstantDelay):
        return np.full(n, round(spec.delay_ms * NS_PER_MS), dtype=np.int64)
    if isinstance(spec, NormalDelay):
        x = rng.normal(spec.mean_ms * NS_PER_MS, spec.std_ms * NS_PER_MS, n)
        return np.maximum(np.rint(x), 0).astype(np.int64)
    if isinstance(spec, LognormalDelay):
        mu, sigma = spec.log_params()
        x = spec.min_ms * NS_PER_MS + rng.lognormal(mu, sigma, n)
        return np.rint(x).astype(np.int64)
    if isinstance(spec, ParetoDelay):
        u = 1.0 - rng.random(n)  # in (0, 1]
        x = spec.min_ms * NS_PER_MS + spec.scale_ns() * (u ** (-1 / spec.shape) - 1)
        return np.rint(np.minimum(x, 3.6e12)).astype(np.int64)  # cap at one hour
    raise TypeError(f"not a delay model: {type(spec).__name__}")


class BlockStream:
    """Hands out one value at a time from blocks drawn by ``draw(rng, n)``: cheap per packet."""

    def __init__(self, rng: np.random.Generator, draw: Callable[[np.random.Generator, int], Any]):
        self._rng = rng
        self._draw = draw
        self._buf: list = []
        self._i = 0

    def next(self) -> Any:
        if self._i >= len(self._buf):
            self._buf = self._draw(self._rng, BLOCK).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


class LossProcess:
    """Decides, packet by packet, whether a loss model drops it."""

    def __init__(self, spec: BernoulliLoss | GilbertElliottLoss, rng: np.random.Generator):
        self.spec = spec
        self._u = BlockStream(rng, lambda r, n: r.random(n))
        self.bad = False  # Gilbert–Elliott state; starts good

    def lost(self) -> bool:
        s = self.spec
        if isinstance(s, BernoulliLoss):
            return s.rate > 0 and self._u.next() < s.rate
        p = s.loss_bad if self.bad else s.loss_good
        drop = p > 0 and self._u.next() < p
        move = s.p_bg if self.bad else s.p_gb
        if self._u.next() < move:
            self.bad = not self.bad
        return drop


def delay_stream(spec: Delay, rng: np.random.Generator) -> BlockStream:
    """Per-packet delays (int ns) from ``spec``."""
    return BlockStream(rng, lambda r, n: sample_n(spec, r, n))
