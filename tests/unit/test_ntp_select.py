"""Intersection (Marzullo-style) selection and the 1/λ-weighted combination."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from skewlab.ntp.client import NtpError
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.select import (
    FALSETICKER,
    MAX_DISTANCE_NS,
    REJECTED,
    SELECTED,
    combine,
    majority_segments,
    select,
)


def sample(server: str, offset: int, distance: int) -> NtpSample:
    """A sample claiming θ = offset with root distance λ = distance (other fields filler)."""
    return NtpSample(
        server=server, t1_ns=0, t2_ns=0, t3_ns=0, t4_ns=0, offset_ns=offset, delay_ns=0,
        root_distance_ns=distance, root_delay_ns=0, root_dispersion_ns=0, stratum=1, leap=0,
        precision=-20,
    )  # fmt: skip


def test_majority_segments_known_answer() -> None:
    # [0,10] [5,15] [12,20]: no point in all three; with f = 1, points in ≥ 2 intervals are
    # [5,10] and [12,15].
    f, segs = majority_segments([(0, 10), (5, 15), (12, 20)])
    assert f == 1
    assert segs == [(5, 10), (12, 15)]
    # Touching closed intervals share their endpoint.
    assert majority_segments([(0, 5), (5, 9)]) == (0, [(5, 5)])
    # Two disjoint intervals: f must be < 1, no majority.
    assert majority_segments([(0, 1), (2, 3)]) == (-1, [])


def test_falseticker_rejected_and_survivors_combined() -> None:
    ms = 1_000_000
    outcomes: list[tuple[str, NtpSample | NtpError]] = [
        ("a", sample("a", 100_000, 200_000)),
        ("b", sample("b", 200 * ms, 100_000)),
        ("c", sample("c", -50_000, 400_000)),
        ("d", NtpError("timeout")),
    ]
    sel = select(outcomes)
    assert [(v.server, v.status, v.reason) for v in sel.verdicts] == [
        ("a", SELECTED, "truechimer"),
        ("b", FALSETICKER, "outside_intersection"),
        ("c", SELECTED, "truechimer"),
        ("d", REJECTED, "timeout"),
    ]
    # Intersection of a [−100k, 300k] and c [−450k, 350k] is [−100k, 300k].
    assert (sel.low_ns, sel.high_ns, sel.falsetickers_allowed) == (-100_000, 300_000, 1)
    # Weights 1/200k and 1/400k: (100k·2 + (−50k)·1) / 3 = 50k.
    assert sel.offset_ns == 50_000


def test_no_majority_rejects_everyone() -> None:
    sel = select([("a", sample("a", 0, 10)), ("b", sample("b", 1000, 10))])
    assert [v.reason for v in sel.verdicts] == ["no_majority", "no_majority"]
    assert sel.offset_ns is None and sel.low_ns is None and sel.survivors == []


def test_distance_exceeded_is_not_a_candidate() -> None:
    sel = select([("a", sample("a", 0, MAX_DISTANCE_NS + 1)), ("b", sample("b", 7, 10))])
    assert sel.verdict("a").status == REJECTED and sel.verdict("a").reason == "distance_exceeded"
    assert sel.verdict("b").status == SELECTED and sel.offset_ns == 7


def test_combine_rounds_weighted_mean() -> None:
    assert combine([sample("a", 0, 1), sample("b", 3, 2)]) == 1  # (0·2 + 3·1)/3 = 1


@given(
    truth=st.integers(-(10**9), 10**9),
    good=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=6),
    bad=st.lists(st.tuples(st.integers(-(10**7), 10**7), st.integers(1, 10**6)), max_size=5),
)
def test_selection_guarantee(
    truth: int, good: list[tuple[int, int]], bad: list[tuple[int, int]]
) -> None:
    """While the liars are a strict minority, the algorithm tolerates at most as many as
    there are; and when it tolerates at least that many, every truechimer survives and
    [low, high] contains the truth (the Marzullo/RFC 5905 guarantee)."""
    bad = bad[: max(0, len(good) - 1)]
    outcomes: list[tuple[str, NtpSample | NtpError]] = []
    for i, (below, above) in enumerate(good):
        lo, hi = truth - below, truth + above
        centre = (lo + hi) // 2  # centre ± half-width covers [lo, hi]
        outcomes.append((f"g{i}", sample(f"g{i}", centre, max(hi - centre, centre - lo, 1))))
    liars = 0
    for j, (off, dist) in enumerate(bad):
        s = sample(f"b{j}", truth + off, dist)
        liars += not (s.earliest_offset_ns <= truth <= s.latest_offset_ns)
        outcomes.append((f"b{j}", s))
    sel = select(outcomes)
    assert sel.falsetickers_allowed is not None
    assert sel.falsetickers_allowed <= liars
    if sel.falsetickers_allowed == liars:
        for i in range(len(good)):
            assert sel.verdict(f"g{i}").status == SELECTED
        assert sel.low_ns is not None and sel.high_ns is not None
        assert sel.low_ns <= truth <= sel.high_ns
        assert len(sel.survivors) >= len(outcomes) - sel.falsetickers_allowed


def test_colluding_liars_can_win_when_they_outnumber_f() -> None:
    """The guarantee is conditional: two overlapping liars beat a narrow truechimer."""
    outcomes: list[tuple[str, NtpSample | NtpError]] = [
        ("A", sample("A", 50, 50)),  # [0, 100]
        ("B", sample("B", 50, 50)),  # [0, 100]
        ("C", sample("C", 1, 1)),  # [0, 2]; truth is 1, inside A, B and C
        ("D", sample("D", 55, 5)),  # [50, 60]: liar
        ("E", sample("E", 55, 5)),  # [50, 60]: liar
    ]
    sel = select(outcomes)
    # Points in ≥ 4 intervals: [50, 60] (A, B, D, E), so f = 1 < 2 liars.
    assert (sel.falsetickers_allowed, sel.low_ns, sel.high_ns) == (1, 50, 60)
    assert sel.verdict("C").status == FALSETICKER
