"""Server selection: pick the truechimers among several servers' samples and combine them.

Every sample claims the true offset lies in [θ − λ, θ + λ]. A truechimer's claim is right;
a falseticker's is wrong. If at most f of the m candidates are falsetickers, the truth lies in
a point covered by at least m − f intervals. The intersection algorithm (Marzullo, as refined
in RFC 5905 §11.2.1) finds the smallest f < m/2 for which such points exist; the candidates
whose interval reaches those points survive, the others are falsetickers. Survivors are
combined weighting each θ by 1/λ (RFC 5905 §11.2.3), so tighter samples count more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from skewlab.ntp.client import NtpError
from skewlab.ntp.sample import NtpSample

MAX_DISTANCE_NS = 1_500_000_000  # RFC 5905 MAXDIST: a larger root distance is useless

SELECTED = "selected"  # a truechimer, used in the combination
FALSETICKER = "falseticker"  # its interval misses the majority's intersection
REJECTED = "rejected"  # no usable sample (timeout, kiss-o'-death, ...), not a candidate


@dataclass(frozen=True, slots=True)
class Verdict:
    """What selection decided about one server, and why."""

    server: str
    status: str  # SELECTED | FALSETICKER | REJECTED
    reason: str  # "truechimer", "outside_intersection", "no_majority", "distance_exceeded",
    # or the NtpError reason of a server that gave no sample
    sample: NtpSample | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of selecting among servers. Offsets are reference − local, ns."""

    verdicts: tuple[Verdict, ...]
    offset_ns: int | None  # combined θ of the survivors (1/λ-weighted); None if none survived
    low_ns: int | None  # lowest point covered by at least m − f intervals
    high_ns: int | None  # highest such point: the true offset lies in [low, high] if ≤ f lie
    falsetickers_allowed: int | None  # f at which a majority agreed; None if none did

    @property
    def survivors(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == SELECTED]

    @property
    def best(self) -> NtpSample | None:
        """The survivor with the smallest root distance λ (a real exchange, never a combined
        one); None when no server survived."""
        good = [v.sample for v in self.survivors if v.sample is not None]
        return min(good, key=lambda x: x.root_distance_ns) if good else None

    @property
    def rejected(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status != SELECTED]

    def verdict(self, server: str) -> Verdict:
        return next(v for v in self.verdicts if v.server == server)


def majority_segments(intervals: list[tuple[int, int]]) -> tuple[int, list[tuple[int, int]]]:
    """Smallest f < m/2 for which some point lies in at least m − f of the closed intervals,
    and the segments of all such points. Returns (-1, []) when no majority agrees."""
    m = len(intervals)
    # Endpoints sorted by value; at equal values starts (0) before ends (1): intervals are closed.
    events = sorted([(lo, 0) for lo, _ in intervals] + [(hi, 1) for _, hi in intervals])
    for f in range((m + 1) // 2):  # f < m/2
        need = m - f
        segments: list[tuple[int, int]] = []
        count = 0
        start: int | None = None
        for value, kind in events:
            if kind == 0:
                count += 1
                if count == need:
                    start = value
            else:
                if count == need and start is not None:
                    segments.append((start, value))
                    start = None
                count -= 1
        if segments:
            return f, segments
    return -1, []


def combine(samples: Iterable[NtpSample]) -> int:
    """θ of several samples weighted by 1/λ (λ floored at 1 ns), rounded to the nearest ns."""
    num = Fraction(0)
    den = Fraction(0)
    for s in samples:
        w = Fraction(1, max(s.root_distance_ns, 1))
        num += w * s.offset_ns
        den += w
    if den == 0:
        raise ValueError("combine() needs at least one sample")
    return round(num / den)


def select(
    outcomes: Iterable[tuple[str, NtpSample | NtpError]],
    *,
    max_distance_ns: int = MAX_DISTANCE_NS,
) -> Selection:
    """Select truechimers among (server, sample-or-error) outcomes and combine them."""
    verdicts: dict[str, Verdict] = {}
    order: list[str] = []
    candidates: list[NtpSample] = []
    for server, out in outcomes:
        order.append(server)
        if isinstance(out, NtpError):
            verdicts[server] = Verdict(server, REJECTED, out.reason)
        elif out.root_distance_ns > max_distance_ns:
            verdicts[server] = Verdict(server, REJECTED, "distance_exceeded", out)
        else:
            candidates.append(out)
    intervals = [(s.earliest_offset_ns, s.latest_offset_ns) for s in candidates]
    f, segments = majority_segments(intervals)
    survivors: list[NtpSample] = []
    for s, (lo, hi) in zip(candidates, intervals, strict=True):
        if f < 0:
            verdicts[s.server] = Verdict(s.server, FALSETICKER, "no_majority", s)
        elif any(lo <= seg_hi and seg_lo <= hi for seg_lo, seg_hi in segments):
            verdicts[s.server] = Verdict(s.server, SELECTED, "truechimer", s)
            survivors.append(s)
        else:
            verdicts[s.server] = Verdict(s.server, FALSETICKER, "outside_intersection", s)
    return Selection(
        verdicts=tuple(verdicts[name] for name in order),
        offset_ns=combine(survivors) if survivors else None,
        low_ns=segments[0][0] if segments else None,
        high_ns=segments[-1][1] if segments else None,
        falsetickers_allowed=f if f >= 0 else None,
    )
