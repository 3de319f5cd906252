"""Delay distributions and loss models of the link emulator: seeded, integer nanoseconds.

Every delay model states its requested mean and quantiles in closed form (``mean_ns``,
``quantile_ns``), so a run can report the achieved delays against the requested ones. Samples
are drawn in blocks from a numpy ``Generator`` (one independent stream per concern), so a link
is reproducible from its seed and cheap per packet. Formulas: docs/METHODOLOGY.md, "Network".

The models here are plain data with closed-form figures (no numpy): they are part of the
experiment spec, which must stay a leaf. Drawing samples lives in ``net/sampling.py``.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NS_PER_MS = 1_000_000
_STD_NORMAL = NormalDist()


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
