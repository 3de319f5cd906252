"""skewlab's offset/frequency estimator: the math behind the ``skewlab`` source.

Everything is on the node's monotonic timescale m (which never steps). Y(m) = true − m is
the offset to estimate. NTP sample i gives y_i = θ_i + gap_i at m_i (its T4) with the hard
guarantee |Y(m_i) − y_i| ≤ λ_i (root distance plus an in-exchange allowance).

Model: around any anchor p, Y(m) = Y(p) + f·(m − p) + r(m), |r(m)| ≤ w(|m − p|), with the
allowance w(Δ) = W·Δ^1.5 + J·Δ + R·Δ²/2 (Δ in s): W in ns/s^1.5 covers a random-walk frequency
(σ ≈ W/5 ppb/√s stays inside it); J in ppb covers frequency *steps* of at most J in all (the
phase then departs from a line by at most J·Δ); R in ppb/s covers frequency that *moves* —
ramps, a board heating up, thermal cycles — at most R per second (at most R·Δ²/2 from the
tangent line); and |f| ≤ F_max (ppb). The feasible set of (Y(p), f) is the
convex polygon cut by every sample's two half-planes |a + f·d_i − y_i| ≤ λ_i + w(|d_i|)
(d_i = m_i − p in s). The true (Y(p), f) lies inside, so the extremes of a + f·τ over the
polygon, widened by w(τ), bound Y(p + τ): a bound that grows with the frequency uncertainty
and the wander allowance, not with a worst-case drift.

A weighted least-squares line (weights 1/λ², minimum-delay samples dominate, as in chrony's
sourcestats) gives the point estimate and its standard errors; the estimate is clamped into
the hard interval. Floats are used inside; bounds are rounded outward to integer ns.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

NS_PER_S = 1_000_000_000
_bisect = bisect_right
Vertex = tuple[float, float]  # (a: offset at the anchor in ns relative to y_ref, f: ppb)


@dataclass(frozen=True, slots=True)
class Sample:
    """One register entry on the monotonic timescale."""

    m_ns: int  # monotonic T4
    y_ns: int  # reference − monotonic at m, ns
    lam_ns: int  # hard half-width of y, ns


def wander_ns(w_ns_per_s15: float, d_s: float, j_ppb: float = 0.0, r: float = 0.0) -> float:
    """The allowance w(Δ) = W·Δ^1.5 + J·Δ + R·Δ²/2 (ns) for a distance Δ (s) from the anchor
    (R in ppb/s)."""
    d = abs(d_s)
    return w_ns_per_s15 * d * math.sqrt(d) + j_ppb * d + r * d * d * 0.5


def feasible_polygon(
    samples: list[Sample],
    anchor_ns: int,
    y_ref: int,
    w: float,
    fmax_ppb: float,
    j: float = 0.0,
    r: float = 0.0,
    start: list[Vertex] | None = None,
) -> list[Vertex]:
    """The polygon of (Y(anchor) − y_ref, f) consistent with every sample; [] if none is.
    ``start``: a polygon known to contain the result (e.g. the same samples' polygon under
    wider allowances), clipped instead of the whole (a, f) box — fewer vertices to clip."""
    big = 1e12  # ns: far wider than any offset relative to y_ref, small enough for exactness
    poly: list[Vertex] = (
        [(-big, -fmax_ppb), (big, -fmax_ppb), (big, fmax_ppb), (-big, fmax_ppb)]
        if start is None
        else list(start)
    )
    # Tightest constraints first keeps intermediate polygons small.
    for s in sorted(samples, key=lambda s: s.lam_ns):
        d = (s.m_ns - anchor_ns) / NS_PER_S
        e = s.lam_ns + wander_ns(w, d, j, r)
        y = s.y_ns - y_ref
        hi, lo = y + e, -(y - e)
        # most samples cut nothing: every vertex inside both half-planes leaves the polygon as
        # it is (the same comparisons _clip makes, so the result is identical)
        for a, f in poly:  # (x − hi > 0 ⇔ x > hi for finite doubles: IEEE keeps the sign)
            x = a + f * d
            if x > hi or -x > lo:
                break
        else:
            continue
        poly = _clip(poly, d, hi, 1.0)  # a + f·d ≤ y + e
        if not poly:
            return []
        poly = _clip(poly, d, lo, -1.0)  # −(a + f·d) ≤ −(y − e)
        if not poly:
            return []
    return poly


def _clip(poly: list[Vertex], d: float, c: float, sign: float) -> list[Vertex]:
    """Keep the part of a convex polygon where sign·(a + f·d) ≤ c (Sutherland–Hodgman)."""
    out: list[Vertex] = []
    n = len(poly)
    for i in range(n):
        p = poly[i]
        q = poly[(i + 1) % n]
        vp = sign * (p[0] + p[1] * d) - c
        vq = sign * (q[0] + q[1] * d) - c
        if vp <= 0:
            out.append(p)
        if (vp < 0 < vq) or (vq < 0 < vp):
            t = vp / (vp - vq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def envelope(poly: list[Vertex], upper: bool) -> tuple[list[float], list[Vertex]]:
    """Upper (or lower) envelope of the lines a + f·τ over the polygon's vertices, τ ≥ 0 s.

    Returns breakpoints (s) and the line on each piece: piece k holds for τ ≥ taus[k]."""
    sgn = 1.0 if upper else -1.0
    pts = [(sgn * a, sgn * f) for a, f in poly]  # the lower case is the upper case of −lines
    cur = max(pts, key=lambda v: (v[0], v[1]))
    taus = [0.0]
    lines = [cur]
    tau = 0.0
    while True:
        best: tuple[float, Vertex] | None = None
        for v in pts:
            if v[1] > cur[1]:
                t = (cur[0] - v[0]) / (v[1] - cur[1])
                if t < tau:
                    t = tau
                if best is None or t < best[0] or (t == best[0] and v[1] > best[1][1]):
                    best = (t, v)
        if best is None:
            break
        tau, cur = best
        taus.append(tau)
        lines.append(cur)
    return taus, [(sgn * a, sgn * f) for a, f in lines]


def weighted_fit(
    samples: list[Sample], anchor_ns: int, y_ref: int
) -> tuple[float, float, float, float]:
    """Weighted least squares y = a + f·d (weights 1/λ²): (a ns, f ppb, σ_a ns, σ_f ppb).

    With fewer than 3 samples the standard errors are reported as nan (not estimable)."""
    sw = swd = swdd = swy = swdy = 0.0
    for s in samples:
        wgt = 1.0 / (float(s.lam_ns) ** 2 + 1.0)
        d = (s.m_ns - anchor_ns) / NS_PER_S
        y = float(s.y_ns - y_ref)
        sw += wgt
        swd += wgt * d
        swdd += wgt * d * d
        swy += wgt * y
        swdy += wgt * d * y
    det = sw * swdd - swd * swd
    if len(samples) < 2 or det <= 0.0:
        return swy / sw, 0.0, math.nan, math.nan
    f = (sw * swdy - swd * swy) / det
    a = (swy - f * swd) / sw
    if len(samples) < 3:
        return a, f, math.nan, math.nan
    ss = 0.0
    for s in samples:
        wgt = 1.0 / (float(s.lam_ns) ** 2 + 1.0)
        d = (s.m_ns - anchor_ns) / NS_PER_S
        r = float(s.y_ns - y_ref) - a - f * d
        ss += wgt * r * r
    s2 = ss / (len(samples) - 2)
    return a, f, math.sqrt(s2 * swdd / det), math.sqrt(s2 * sw / det)


@dataclass(frozen=True, slots=True)
class Model:
    """What a read needs, precomputed at sample time (anchor = the latest sample)."""

    anchor_ns: int  # monotonic instant of the latest sample
    y_ref: int  # reference − monotonic of the latest sample (origin of a), ns
    hi_taus: list[float]  # upper envelope breakpoints, s
    hi_lines: list[Vertex]
    lo_taus: list[float]  # lower envelope breakpoints, s
    lo_lines: list[Vertex]
    fit_a: float  # regression offset at the anchor, ns relative to y_ref
    fit_f: float  # regression frequency, ppb
    fit_sa: float  # standard error of fit_a, ns (nan if not estimable)
    fit_sf: float  # standard error of fit_f, ppb (nan if not estimable)
    w: float  # wander allowance W, ns/s^1.5
    j: float = 0.0  # frequency-step allowance J, ppb
    r: float = 0.0  # frequency-rate allowance R, ppb/s

    def lines_at(self, tau: float) -> tuple[float, float, float, float]:
        """(a, f) of the upper and lower envelope pieces in force at τ ≥ 0 (s)."""
        a_hi, f_hi = self.hi_lines[_bisect(self.hi_taus, tau) - 1]
        a_lo, f_lo = self.lo_lines[_bisect(self.lo_taus, tau) - 1]
        return a_hi, f_hi, a_lo, f_lo

    def lines_at_array(self, tau):  # type: ignore[no-untyped-def]
        """``lines_at`` for an array of τ: an (n, 4) float array (searchsorted ≡ bisect_right)."""
        import numpy as np

        j = np.searchsorted(np.asarray(self.hi_taus), tau, side="right") - 1
        k = np.searchsorted(np.asarray(self.lo_taus), tau, side="right") - 1
        hi = np.asarray(self.hi_lines, dtype=np.float64)[j]
        lo = np.asarray(self.lo_lines, dtype=np.float64)[k]
        return np.column_stack((hi, lo))

    def bounds_at(self, mono_ns: int) -> tuple[int, int, int]:
        """(earliest, estimate, latest) of true time at a monotonic reading ≥ the anchor.

        Bounds are rounded outward by at least 1 ns (int() truncation, then ∓2)."""
        tau = (mono_ns - self.anchor_ns) / NS_PER_S
        if tau < 0.0:
            tau = 0.0
        return forward_interval(mono_ns + self.y_ref, tau, *self.lines_at(tau), self.fit_a,
                                self.fit_f, self.w, self.j, self.r)  # fmt: skip


def forward_interval(base, tau, a_hi, f_hi, a_lo, f_lo, fit_a, fit_f, w, j=0.0, r=0.0, xp=None):  # type: ignore[no-untyped-def]
    """The forward model's integer (earliest, estimate, latest) at τ ≥ 0 s after the anchor:
    the envelope lines widened by the allowance W·τ^1.5 + J·τ + R·τ²/2, the regression estimate
    clamped into them (lo wins if they cross), each added to ``base`` (monotonic reading +
    the anchor's reference offset) after truncation toward zero, the bounds then moved out by
    2 ns (rounded outward by at least 1 ns). One reading on floats (``xp`` None: the clamp and
    truncation inline, no call on the worker's hot path) or many on numpy arrays (``xp`` the
    numpy module: the same clamp and truncation, element-wise)."""
    ww = w * tau**1.5 + j * tau + r * tau * tau * 0.5
    hi = a_hi + f_hi * tau + ww
    lo = a_lo + f_lo * tau - ww
    est = fit_a + fit_f * tau
    if xp is None:
        est = lo if est < lo else (hi if est > hi else est)
        return base + int(lo) - 2, base + int(est), base + int(hi) + 2
    est = xp.where(est < lo, lo, xp.where(est > hi, hi, est))
    return (base + lo.astype(xp.int64) - 2, base + est.astype(xp.int64),
            base + hi.astype(xp.int64) + 2)  # fmt: skip


def build_model(
    samples: list[Sample],
    w: float,
    fmax_ppb: float,
    j: float = 0.0,
    r: float = 0.0,
    poly: list[Vertex] | None = None,
) -> Model | None:
    """The forward model anchored at the latest sample; None if the samples are inconsistent.
    ``poly``: their feasible polygon at that anchor, if already computed."""
    last = samples[-1]
    if poly is None:
        poly = feasible_polygon(samples, last.m_ns, last.y_ns, w, fmax_ppb, j, r)
    if not poly:
        return None
    ht, hl = envelope(poly, True)
    lt, ll = envelope(poly, False)
    a, f, sa, sf = weighted_fit(samples, last.m_ns, last.y_ns)
    return Model(last.m_ns, last.y_ns, ht, hl, lt, ll, a, f, sa, sf, w, j, r)


def interval_at(
    samples: list[Sample], mono_ns: int, w: float, fmax_ppb: float, j: float = 0.0, r: float = 0.0
) -> tuple[int, int, int] | None:
    """(earliest, estimate, latest) of true time at any monotonic instant, using every given
    sample, before and after it (retrospective refinement). None if inconsistent."""
    y_ref = min(samples, key=lambda s: abs(s.m_ns - mono_ns)).y_ns
    poly = feasible_polygon(samples, mono_ns, y_ref, w, fmax_ppb, j, r)
    if not poly:
        return None
    lo = min(v[0] for v in poly)
    hi = max(v[0] for v in poly)
    a, _f, _sa, _sf = weighted_fit(samples, mono_ns, y_ref)
    est = min(max(a, lo), hi)
    base = mono_ns + y_ref
    return base + math.floor(lo) - 1, base + round(est), base + math.ceil(hi) + 1


def grid_anchor(mono_ns: int, grid_ns: int) -> int:
    """The anchor a retrospective query at ``mono_ns`` is evaluated at: the nearest multiple of
    ``grid_ns`` (halves round up); the instant itself when ``grid_ns`` ≤ 1."""
    if grid_ns <= 1:
        return mono_ns
    return (mono_ns + grid_ns // 2) // grid_ns * grid_ns


def interval_near(
    samples: list[Sample],
    mono_ns: int,
    w: float,
    fmax_ppb: float,
    grid_ns: int,
    j: float = 0.0,
    r: float = 0.0,
) -> tuple[int, int, int] | None:
    """``interval_at`` evaluated at the grid anchor g nearest to ``mono_ns`` and carried to
    ``mono_ns`` under the same model: Y(m) = Y(g) + f·(m − g) + r, |r| ≤ w(|m − g|), so the
    bounds are the extremes of a + f·τ over g's polygon widened by w(|τ|) (τ = m − g, s), and
    the estimate is the regression line at g, clamped. Sound wherever ``interval_at`` is;
    wider by at most (f_max − f_min)·|τ| + 2·w(|τ|). Identical to ``interval_at`` when
    ``mono_ns`` is on the grid. Queries near one anchor share its polygon (``intervals_near``).
    """
    g = grid_anchor(mono_ns, grid_ns)
    y_ref = min(samples, key=lambda s: abs(s.m_ns - g)).y_ns
    poly = feasible_polygon(samples, g, y_ref, w, fmax_ppb, j, r)
    if not poly:
        return None
    tau = (mono_ns - g) / NS_PER_S
    ww = wander_ns(w, tau, j, r)
    hi = max(a + f * tau for a, f in poly) + ww
    lo = min(a + f * tau for a, f in poly) - ww
    a, f, _sa, _sf = weighted_fit(samples, g, y_ref)
    est = min(max(a + f * tau, lo), hi)
    base = mono_ns + y_ref
    return base + math.floor(lo) - 1, base + round(est), base + math.ceil(hi) + 1


@dataclass(frozen=True, slots=True)
class Group:
    """The query-independent part of ``interval_near`` for one sample set, prepared once and
    reused by every query on that set (``prepare_group``)."""

    samples: tuple[Sample, ...]
    order: tuple[int, ...]  # indices sorted by λ (stable): the clipping order
    m: object  # numpy int64 array of m_ns, sample order
    y: object  # numpy int64 array of y_ns, sample order
    lam: object  # numpy float64 array of λ (ns), sample order (exact: λ < 2^53)
    wgt: tuple[float, ...]  # regression weights 1/(λ² + 1), sample order


def prepare_group(samples: list[Sample] | tuple[Sample, ...]) -> Group:
    """Precompute what every ``intervals_near`` query on this sample set shares."""
    import numpy as np

    ss = tuple(samples)
    order = tuple(sorted(range(len(ss)), key=lambda i: ss[i].lam_ns))
    return Group(
        ss,
        order,
        np.array([s.m_ns for s in ss], dtype=np.int64),
        np.array([s.y_ns for s in ss], dtype=np.int64),
        np.array([float(s.lam_ns) for s in ss], dtype=np.float64),
        tuple(1.0 / (float(s.lam_ns) ** 2 + 1.0) for s in ss),
    )


def intervals_near(
    group: Group,
    monos: list[int],
    w: float,
    fmax_ppb: float,
    grid_ns: int,
    j: float = 0.0,
    r: float = 0.0,
) -> list[tuple[int, int, int] | None]:
    """``interval_near`` for many instants on one sample set: one polygon per distinct grid
    anchor (vectorized over the anchors), carried to each instant; bit-identical (tested)."""
    import numpy as np

    if not monos:
        return []
    lo, est, hi, ok = intervals_arrays_near(
        group, np.array(monos, dtype=np.int64), w, fmax_ppb, grid_ns, j, r
    )
    lo_ns, est_ns, hi_ns = lo.tolist(), est.tolist(), hi.tolist()
    return [(lo_ns[k], est_ns[k], hi_ns[k]) if good else None for k, good in enumerate(ok.tolist())]


def intervals_arrays_near(  # type: ignore[no-untyped-def]
    group: Group, p, w: float, fmax_ppb: float, grid_ns: int, j: float = 0.0, r: float = 0.0
):
    """``intervals_near`` on an int64 array of instants, as arrays (earliest, estimate,
    latest, ok). The polygons are computed once per distinct anchor, then each instant takes
    the same IEEE operations ``interval_near`` does (a + f·τ per vertex, max/min, ± w(|τ|))."""
    import numpy as np

    g = p if grid_ns <= 1 else (p + grid_ns // 2) // grid_ns * grid_ns
    anchors, inv = np.unique(g, return_inverse=True)
    inv = inv.reshape(-1)
    A, F, cnt, y_ref, a_fit, f_fit = _polygons(group, anchors, w, fmax_ppb, j, r)
    tau = (p - g) / NS_PER_S
    ad = np.abs(tau)
    ww = w * ad * np.sqrt(ad) + j * ad + r * ad * ad * 0.5
    ok = cnt[inv] > 0
    with np.errstate(invalid="ignore", over="ignore"):  # rows of empty polygons are masked
        V = A[inv] + F[inv] * tau[:, None]
        hi = np.where(ok, np.fmax.reduce(V, axis=1) + ww, 0.0)
        lo = np.where(ok, np.fmin.reduce(V, axis=1) - ww, 0.0)
        e = np.where(ok, a_fit[inv] + f_fit[inv] * tau, 0.0)
        est = np.rint(np.minimum(np.maximum(e, lo), hi)).astype(np.int64)
        base = p + y_ref[inv]
        lo_ns = base + np.floor(lo).astype(np.int64) - 1
        hi_ns = base + np.ceil(hi).astype(np.int64) + 1
    return lo_ns, base + est, hi_ns, ok


def _polygons(group: Group, p, w: float, fmax_ppb: float, j: float = 0.0, r: float = 0.0):  # type: ignore[no-untyped-def]
    """Per instant p: the feasible polygon anchored at p (vertex rows of A, F, NaN-padded;
    cnt vertices, 0 if empty), y_ref, and the regression's a and f there — the floats
    ``feasible_polygon`` and ``weighted_fit`` compute.

    Per-sample quantities are (samples × instants) matrices; polygons are rows of A, F padded
    with NaN (a NaN vertex is never "outside", so padding needs no mask). The regression sums
    are added sample by sample in sample order, as ``weighted_fit`` adds them."""
    import numpy as np

    ss = group.samples
    n, q = len(ss), len(p)
    # y_ref: the y of the first sample nearest to each instant (min() keeps the first)
    near = np.argmin(np.abs(group.m[None, :] - p[:, None]), axis=1)
    y_ref = group.y[near]
    D = (group.m[:, None] - p[None, :]) / NS_PER_S  # d per sample and instant, s
    Y = (group.y[:, None] - y_ref[None, :]).astype(np.float64)  # y − y_ref, ns
    AD = np.abs(D)
    E = group.lam[:, None] + (w * AD * np.sqrt(AD) + j * AD + r * AD * AD * 0.5)  # λ + w(|d|)
    big = 1e12
    A = np.empty((q, 4))
    F = np.empty((q, 4))
    A[:] = (-big, big, big, -big)
    F[:] = (-fmax_ppb, -fmax_ppb, fmax_ppb, fmax_ppb)
    cnt = np.full(q, 4, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in group.order:
            d, y, e = D[k], Y[k], E[k]
            A, F, cnt = _clip_many(A, F, cnt, d, y + e, 1.0)  # a + f·d ≤ y + e
            A, F, cnt = _clip_many(A, F, cnt, d, -(y - e), -1.0)  # −(a + f·d) ≤ −(y − e)
        # weighted_fit's sums, accumulated in sample order from 0.0
        wgt = np.array(group.wgt)[:, None]
        WD = wgt * D
        terms = np.empty((n, 4, q))
        terms[:, 0] = WD
        terms[:, 1] = WD * D
        terms[:, 2] = wgt * Y
        terms[:, 3] = WD * Y
        acc = np.zeros((4, q))
        for k in range(n):  # 0.0 + t_0 + t_1 + …: the order weighted_fit adds in
            acc = acc + terms[k]
        swd, swdd, swy, swdy = acc
        sw = 0.0
        for x in group.wgt:
            sw += x
        det = sw * swdd - swd * swd
        f = (sw * swdy - swd * swy) / det
        a_fit = (swy - f * swd) / sw
        if n < 2:
            a, f = swy / sw, np.zeros(q)
        else:
            a, f = np.where(det <= 0.0, swy / sw, a_fit), np.where(det <= 0.0, 0.0, f)
    return A, F, cnt, y_ref, np.broadcast_to(a, (q,)), f


def _clip_many(A, F, cnt, d, c, sign):  # type: ignore[no-untyped-def]
    """``_clip`` on q polygons at once (row r holds cnt[r] vertices, NaN after them; d, c per
    row). Rows with no vertex outside are left as they are (``_clip`` returns them unchanged);
    the others are clipped and compacted. Returns (A, F, cnt), possibly widened; in place."""
    import numpy as np

    vp = A + F * d[:, None]
    vp = (vp if sign > 0 else -vp) - c[:, None]  # sign·(a + f·d) − c, exactly (sign = ±1)
    outside = vp > 0
    if not outside.any():
        return A, F, cnt
    ch = np.flatnonzero(outside.any(axis=1))
    if len(ch) == A.shape[0]:
        out = _clip_uniform(A, F, cnt, vp)
        if out is not None:
            return out
    idx = np.arange(A.shape[1])[None, :]
    a, f, v, n = A[ch], F[ch], vp[ch], cnt[ch]
    valid = idx < n[:, None]
    nxt = np.where(idx + 1 < n[:, None], idx + 1, 0)
    vq = np.take_along_axis(v, nxt, axis=1)
    keep = (v <= 0) & valid
    cross = (((v < 0) & (vq > 0)) | ((vq < 0) & (v > 0))) & valid
    nout = keep.astype(np.int64) + cross
    start = np.cumsum(nout, axis=1) - nout
    new_n = nout.sum(axis=1)
    nv = int(new_n.max())
    if nv > A.shape[1]:
        pad = np.full((A.shape[0], nv - A.shape[1]), np.nan)
        A, F = np.hstack((A, pad)), np.hstack((F, pad))
    a2 = np.full((len(ch), A.shape[1]), np.nan)
    f2 = np.full((len(ch), A.shape[1]), np.nan)
    r = np.broadcast_to(np.arange(len(ch))[:, None], v.shape)
    a2[r[keep], start[keep]] = a[keep]
    f2[r[keep], start[keep]] = f[keep]
    if cross.any():
        t = v / (v - vq)
        aq = np.take_along_axis(a, nxt, axis=1)
        fq = np.take_along_axis(f, nxt, axis=1)
        pos = (start + keep)[cross]
        a2[r[cross], pos] = (a + t * (aq - a))[cross]
        f2[r[cross], pos] = (f + t * (fq - f))[cross]
    A[ch] = a2
    F[ch] = f2
    cnt[ch] = new_n
    return A, F, cnt


def _clip_uniform(A, F, cnt, vp):  # type: ignore[no-untyped-def]
    """The common case of ``_clip_many``: every row has the same vertex count and the same
    inside/crossing pattern, so the output columns are the same for all rows (plain column
    selection instead of a per-row scatter; identical arithmetic). None if not uniform."""
    import numpy as np

    n = int(cnt[0])
    if n == 0 or (cnt != n).any():
        return None
    v = vp[:, :n]
    nxt = [*range(1, n), 0]
    vq = v[:, nxt]
    keep = v <= 0
    cross = ((v < 0) & (vq > 0)) | ((vq < 0) & (v > 0))
    k0, c0 = keep[0], cross[0]
    if (keep != k0).any() or (cross != c0).any():
        return None
    k0, c0 = k0.tolist(), c0.tolist()
    take: list[int] = []  # output column j: input column (kept) or −1 − i (crossing after i)
    for i in range(n):
        if k0[i]:
            take.append(i)
        if c0[i]:
            take.append(-1 - i)
    a2 = np.empty((A.shape[0], max(len(take), 1)))
    f2 = np.empty_like(a2)
    kc = [j for j, i in enumerate(take) if i >= 0]
    if kc:
        src = [take[j] for j in kc]
        a2[:, kc] = A[:, src]
        f2[:, kc] = F[:, src]
    xc = [j for j, i in enumerate(take) if i < 0]
    if xc:
        src = [-1 - take[j] for j in xc]
        dst = [nxt[i] for i in src]
        vs = v[:, src]
        t = vs / (vs - v[:, dst])
        ap, fp = A[:, src], F[:, src]
        a2[:, xc] = ap + t * (A[:, dst] - ap)
        f2[:, xc] = fp + t * (F[:, dst] - fp)
    return a2, f2, np.full(A.shape[0], len(take), dtype=np.int64)
