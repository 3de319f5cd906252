"""Delay distributions and loss models: samples match their parameters (fixed seeds)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from skewlab.net.distributions import (
    NS_PER_MS,
    BernoulliLoss,
    ConstantDelay,
    GilbertElliottLoss,
    LognormalDelay,
    NormalDelay,
    ParetoDelay,
)
from skewlab.net.sampling import LossProcess, delay_stream


@pytest.fixture(scope="module")
def stats() -> Any:
    """scipy.stats, imported by the process that runs these tests only (~1 CPU-s to import,
    which every xdist process paid at collection when it was imported at module level)."""
    return pytest.importorskip("scipy.stats")


N = 20_000
P_MIN = 1e-3  # a correct sampler fails a KS test at this level once in a thousand seeds


def _draw(spec, seed: int = 7, n: int = N) -> np.ndarray:
    s = delay_stream(spec, np.random.default_rng(seed))
    return np.array([s.next() for _ in range(n)], dtype=np.int64)


def test_constant_is_exact() -> None:
    x = _draw(ConstantDelay(delay_ms=2.5), n=1000)
    assert set(x.tolist()) == {2_500_000}
    assert x.dtype == np.int64


def test_normal_matches_ks_and_moments(stats: Any) -> None:
    spec = NormalDelay(mean_ms=10.0, std_ms=2.0)  # clipping at 0 is 5 σ away: negligible
    x = _draw(spec)
    ref = stats.norm(loc=10.0 * NS_PER_MS, scale=2.0 * NS_PER_MS)
    assert stats.kstest(x, ref.cdf).pvalue > P_MIN
    se = x.std() / math.sqrt(len(x))
    assert abs(x.mean() - spec.mean_ns()) < 5 * se
    assert spec.quantile_ns(0.99) == pytest.approx(ref.ppf(0.99), rel=1e-9)


def test_normal_clipping_mean_is_the_clipped_mean(stats: Any) -> None:
    spec = NormalDelay(mean_ms=1.0, std_ms=1.0)  # 16 % of draws would be negative
    x = _draw(spec)
    assert x.min() == 0
    mu = sd = NS_PER_MS
    expected = mu * stats.norm.cdf(1.0) + sd * stats.norm.pdf(1.0)  # E[max(0, X)]
    assert spec.mean_ns() == pytest.approx(expected, rel=1e-9)
    assert abs(x.mean() - expected) < 5 * x.std() / math.sqrt(len(x))


def test_lognormal_matches_ks_and_requested_mean_std(stats: Any) -> None:
    spec = LognormalDelay(mean_ms=30.0, std_ms=3.0, min_ms=25.0)
    x = _draw(spec)
    assert x.min() >= 25 * NS_PER_MS
    mu, sigma = spec.log_params()
    ref = stats.lognorm(s=sigma, loc=25.0 * NS_PER_MS, scale=math.exp(mu))
    assert ref.mean() == pytest.approx(30.0 * NS_PER_MS, rel=1e-9)
    assert ref.std() == pytest.approx(3.0 * NS_PER_MS, rel=1e-9)
    assert stats.kstest(x, ref.cdf).pvalue > P_MIN
    assert spec.quantile_ns(0.99) == pytest.approx(ref.ppf(0.99), rel=1e-9)
    assert abs(x.mean() - spec.mean_ns()) < 5 * x.std() / math.sqrt(len(x))


def test_pareto_tail_matches_ks(stats: Any) -> None:
    spec = ParetoDelay(mean_ms=5.0, min_ms=2.0, shape=3.0)
    x = _draw(spec)
    ref = stats.lomax(c=3.0, loc=2.0 * NS_PER_MS, scale=spec.scale_ns())
    assert ref.mean() == pytest.approx(5.0 * NS_PER_MS, rel=1e-9)
    assert stats.kstest(x, ref.cdf).pvalue > P_MIN
    assert spec.quantile_ns(0.999) == pytest.approx(ref.ppf(0.999), rel=1e-9)
    # the tail: the fraction above the requested p99 is 1 % within binomial noise
    above = np.count_nonzero(x > spec.quantile_ns(0.99)) / len(x)
    assert abs(above - 0.01) < 5 * math.sqrt(0.01 * 0.99 / len(x))


def test_same_seed_same_samples_other_seed_differs() -> None:
    spec = LognormalDelay(mean_ms=1.0, std_ms=0.5)
    a, b, c = _draw(spec, 1, 500), _draw(spec, 1, 500), _draw(spec, 2, 500)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValidationError, match="min_ms must be below mean_ms"):
        LognormalDelay(mean_ms=1.0, std_ms=0.1, min_ms=2.0)
    with pytest.raises(ValidationError):
        ParetoDelay(mean_ms=1.0, shape=1.0)  # no finite mean
    with pytest.raises(ValidationError):
        BernoulliLoss(rate=1.5)


def _losses(spec, n: int, seed: int = 11) -> np.ndarray:
    p = LossProcess(spec, np.random.default_rng(seed))
    return np.array([p.lost() for _ in range(n)])


def test_bernoulli_loss_rate() -> None:
    spec = BernoulliLoss(rate=0.05)
    x = _losses(spec, N)
    assert abs(x.mean() - 0.05) < 5 * math.sqrt(0.05 * 0.95 / N)
    assert not _losses(BernoulliLoss(rate=0.0), 1000).any()


def test_gilbert_elliott_rate_and_bursts() -> None:
    spec = GilbertElliottLoss(p_gb=0.02, p_bg=0.25)
    n = 50_000
    x = _losses(spec, n)
    pi = spec.p_gb / (spec.p_gb + spec.p_bg)
    assert spec.loss_rate() == pytest.approx(pi)
    # The loss indicator is the Markov state; its mean has variance π(1−π)/n·(1+λ)/(1−λ),
    # λ = 1 − p_gb − p_bg the chain's autocorrelation per step.
    lam = 1 - spec.p_gb - spec.p_bg
    se = math.sqrt(pi * (1 - pi) / n * (1 + lam) / (1 - lam))
    assert abs(x.mean() - pi) < 5 * se
    # bursts: lengths of runs of consecutive losses are geometric with mean 1/p_bg
    edges = np.diff(np.concatenate(([0], x.astype(np.int8), [0])))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    mean_run = 1 / spec.p_bg
    sd_run = math.sqrt(1 - spec.p_bg) / spec.p_bg
    assert abs(runs.mean() - mean_run) < 5 * sd_run / math.sqrt(len(runs))
    # independent loss at the same rate has much shorter runs: bursts are real
    assert runs.mean() > 2 * (1 / (1 - pi))
