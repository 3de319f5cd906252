"""Delay distributions and loss models of the link emulator: seeded, integer nanoseconds.

Every delay model states its requested mean and quantiles in closed form (``mean_ns``,
``quantile_ns``), so a run can report the achieved delays against the requested ones. Samples
are drawn in blocks from a numpy ``Generator`` (one independent stream per concern), so a link
is reproducible from its seed and cheap per packet. Formulas: docs/METHODOLOGY.md, "Network".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

NS_PER_MS = 1_000_000
_STD_NORMAL = NormalDist()
BLOCK = 4096  # samples drawn per numpy call


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConstantDelay(_Model):
    """Every packet is delayed by exactly ``delay_ms``."""

    dist: Literal["constant"] = "constant"
    delay_ms: float = Field(0.0, ge=0, le=60_000)

    def mean_ns(self) -> float:
        return self.delay_ms * NS_PER_MS

    def quantile_ns(self, q: float) -> float:
        return self.delay_ms * NS_PER_MS

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, round(self.delay_ms * NS_PER_MS), dtype=np.int64)


class NormalDelay(_Model):
    """Normal(mean, std), negative draws clipped to 0 (a packet cannot leave before it came)."""

    dist: Literal["normal"] = "normal"
    mean_ms: float = Field(ge=0, le=60_000)
    std_ms: float = Field(ge=0, le=60_000)

    def mean_ns(self) -> float:
        # E[max(0, X)] = μΦ(μ/σ) + σφ(μ/σ) for X ~ N(μ, σ²): exact, including the clipping.
        mu, sd = self.mean_ms * NS_PER_MS, self.std_ms * NS_PER_MS
        if sd == 0:
            return mu
        z = mu / sd
        return mu * _STD_NORMAL.cdf(z) + sd * _STD_NORMAL.pdf(z)

    def quantile_ns(self, q: float) -> float:
        mu, sd = self.mean_ms * NS_PER_MS, self.std_ms * NS_PER_MS
        return max(0.0, mu + sd * _STD_NORMAL.inv_cdf(q)) if sd else mu

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.normal(self.mean_ms * NS_PER_MS, self.std_ms * NS_PER_MS, n)
        return np.maximum(np.rint(x), 0).astype(np.int64)


class LognormalDelay(_Model):
    """``min_ms`` plus a lognormal part, parametrized by the total mean and std (ms)."""

    dist: Literal["lognormal"] = "lognormal"
    mean_ms: float = Field(gt=0, le=60_000)
    std_ms: float = Field(gt=0, le=60_000)
    min_ms: float = Field(0.0, ge=0)  # floor: no packet is faster than this

    @model_validator(mode="after")
    def _ok(self) -> LognormalDelay:
        if self.min_ms >= self.mean_ms:
            raise ValueError("lognormal: min_ms must be below mean_ms")
        return self

    def log_params(self) -> tuple[float, float]:
        """(μ, σ) of ln(delay − min) in ns: σ² = ln(1 + s²/m²), μ = ln m − σ²/2."""
        m = (self.mean_ms - self.min_ms) * NS_PER_MS
        s = self.std_ms * NS_PER_MS
        sigma2 = math.log1p((s / m) ** 2)
        return math.log(m) - sigma2 / 2, math.sqrt(sigma2)

    def mean_ns(self) -> float:
        return self.mean_ms * NS_PER_MS

    def quantile_ns(self, q: float) -> float:
        mu, sigma = self.log_params()
        return self.min_ms * NS_PER_MS + math.exp(mu + sigma * _STD_NORMAL.inv_cdf(q))

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        mu, sigma = self.log_params()
        x = self.min_ms * NS_PER_MS + rng.lognormal(mu, sigma, n)
        return np.rint(x).astype(np.int64)


class ParetoDelay(_Model):
    """``min_ms`` plus a Pareto II (Lomax) tail of shape α, scaled so the mean is ``mean_ms``.

    Tail: P(delay − min > x) = (1 + x/scale)^−α, scale = (mean − min)(α − 1). The variance is
    infinite for α ≤ 2: such links have rare, very long delays, as congested paths do.
    """

    dist: Literal["pareto"] = "pareto"
    mean_ms: float = Field(gt=0, le=60_000)
    min_ms: float = Field(0.0, ge=0)
    shape: float = Field(2.5, gt=1, le=100)  # α; > 1 so that the mean exists

    @model_validator(mode="after")
    def _ok(self) -> ParetoDelay:
        if self.min_ms >= self.mean_ms:
            raise ValueError("pareto: min_ms must be below mean_ms")
        return self

    def scale_ns(self) -> float:
        return (self.mean_ms - self.min_ms) * NS_PER_MS * (self.shape - 1)

    def mean_ns(self) -> float:
        return self.mean_ms * NS_PER_MS

    def quantile_ns(self, q: float) -> float:
        return self.min_ms * NS_PER_MS + self.scale_ns() * ((1 - q) ** (-1 / self.shape) - 1)

    def sample_n(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = 1.0 - rng.random(n)  # in (0, 1]
        x = self.min_ms * NS_PER_MS + self.scale_ns() * (u ** (-1 / self.shape) - 1)
        return np.rint(np.minimum(x, 3.6e12)).astype(np.int64)  # cap at one hour


DelaySpec = Annotated[
    ConstantDelay | NormalDelay | LognormalDelay | ParetoDelay, Field(discriminator="dist")
]


class BernoulliLoss(_Model):
    """Each packet is lost independently with probability ``rate``."""

    model: Literal["bernoulli"] = "bernoulli"
    rate: float = Field(0.0, ge=0, le=1)

    def loss_rate(self) -> float:
        return self.rate


class GilbertElliottLoss(_Model):
    """Two-state Markov loss: bursts. Per packet: lose with the state's probability, then move.

    Stationary loss rate = (1 − π_B)·loss_good + π_B·loss_bad with π_B = p_gb / (p_gb + p_bg);
    with loss_bad = 1 and loss_good = 0 the mean burst length is 1 / p_bg packets.
    """

    model: Literal["gilbert"] = "gilbert"
    p_gb: float = Field(gt=0, le=1)  # P(good → bad) per packet
    p_bg: float = Field(gt=0, le=1)  # P(bad → good) per packet
    loss_good: float = Field(0.0, ge=0, le=1)  # loss probability in the good state
    loss_bad: float = Field(1.0, ge=0, le=1)  # loss probability in the bad state

    def bad_fraction(self) -> float:
        return self.p_gb / (self.p_gb + self.p_bg)

    def loss_rate(self) -> float:
        pb = self.bad_fraction()
        return (1 - pb) * self.loss_good + pb * self.loss_bad


LossSpec = Annotated[BernoulliLoss | GilbertElliottLoss, Field(discriminator="model")]


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


def delay_stream(spec: ConstantDelay | NormalDelay | LognormalDelay | ParetoDelay,
                 rng: np.random.Generator) -> BlockStream:  # fmt: skip
    """Per-packet delays (int ns) from ``spec``."""
    return BlockStream(rng, spec.sample_n)
