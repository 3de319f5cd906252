"""Known answers for the event-time analysis (skewlab.analysis.eventtime), worked by hand.

Times are written in ms and scaled to ns; the tick is Flink's millisecond. The first trace is the
one Apache Flink 1.20 was run on by hand while writing this module (per-event watermarks,
Java WindowOperator): its firings and late side output are the answers below.
"""

from __future__ import annotations

import numpy as np

from skewlab.analysis import eventtime as et

MS = et.NS_PER_MS


def _ms(*xs: int) -> np.ndarray:
    return np.array(xs, dtype=np.int64) * MS


def _windows(o: et.Outcome) -> dict[int, tuple[list[int], int, int]]:
    """start (ms) → (sorted element indexes, firings, fire index)."""
    out = {}
    for k, s in enumerate(o.window_start):
        members = sorted(int(e) for e in o.pair_elem[o.pair_start == s])
        out[int(s) // MS] = (members, int(o.window_firings[k]), int(o.window_fire_index[k]))
    return out


# arrival order: (element index) 0..7 with timestamps 5, 12, 9, 11, 8, 20, 10, 13 ms
TRACE = _ms(5, 12, 9, 11, 8, 20, 10, 13)
TUMBLING_10 = et.WindowSpec(10 * MS, 10 * MS)


def test_out_of_order_arrival_against_flink() -> None:
    """D = 0, allowed lateness 2 ms, tumbling 10 ms. Watermark after 12 is 11: [0, 10) (max
    timestamp 9) fires with {5}; 9 and 8 meet cleanup 9 + 2 = 11 ≤ 11 and are dropped (side
    output). 20 moves it to 19: [10, 20) fires with {12, 11}; 10 and 13 are within lateness
    (cleanup 21 > 19), each re-fires it. [20, 30) fires only at the end of input."""
    o = et.process(TRACE, 0, 2 * MS, TUMBLING_10)
    assert o.dropped.tolist() == [False, False, True, False, True, False, False, False]
    assert o.late.tolist() == [False, False, True, False, True, False, True, True]
    assert not o.partially_dropped.any()
    assert _windows(o) == {0: ([0], 1, 1), 10: ([1, 3, 6, 7], 3, 5), 20: ([5], 1, -1)}


def test_watermark_definition_and_delay() -> None:
    """Watermark before each arrival = max so far − D − 1 ms. With D = 5 ms, 10 arrives behind
    the watermark (14) yet is not late: its window [10, 20) has not fired (max timestamp 19).
    Max out-of-orderness is 20 − 10 = 10 ms: the delay that keeps every arrival ahead."""
    w = et.watermark_before(TRACE, 5 * MS)
    assert w[0] == et.NO_WATERMARK
    assert (w[1:] // MS).tolist() == [-1, 6, 6, 6, 6, 14, 14]
    assert et.max_out_of_orderness(TRACE) == 10 * MS
    o = et.process(TRACE, 5 * MS, 0, TUMBLING_10)
    assert not o.late.any() and not o.dropped.any()
    assert _windows(o) == {0: ([0, 2, 4], 1, 5), 10: ([1, 3, 6, 7], 1, -1), 20: ([5], 1, -1)}


def test_ties_at_boundaries() -> None:
    """A timestamp equal to a window's end belongs to the next window; an element whose window's
    max timestamp equals the watermark is late (the window fired) but kept; max timestamp +
    lateness equal to the watermark drops it."""
    assert (et.window_start(_ms(9, 10, 19, 20), 10 * MS) // MS).tolist() == [0, 10, 10, 20]
    assert (et.window_start(_ms(3, 13), 10 * MS, offset_ns=3 * MS) // MS).tolist() == [3, 13]
    # 20 → watermark 19 = max timestamp of [10, 20): 19 is late, fires it again (L = 1 ms)
    o = et.process(_ms(10, 20, 19), 0, 1 * MS, TUMBLING_10)
    assert o.late.tolist() == [False, False, True] and not o.dropped.any()
    assert _windows(o)[10] == ([0, 2], 2, 1)
    # 21 → watermark 20 = 19 + 1: cleanup time reached, 19 dropped
    o = et.process(_ms(10, 21, 19), 0, 1 * MS, TUMBLING_10)
    assert o.dropped.tolist() == [False, False, True]
    assert _windows(o)[10] == ([0], 1, 1)
    # ns readings are floored to the ms first: 9.999999 ms is 9 ms
    assert et.event_timestamps(np.array([9_999_999, 10_000_000])).tolist() == [9 * MS, 10 * MS]


def test_idle_stream_and_firing_instants() -> None:
    """A worker idle after 3 ms: [0, 10) waits for the next arrival (at 50 ms) to fire; the
    last window fires only with the end of input's final watermark (index −1)."""
    o = et.process(_ms(1, 3, 50), 0, 0, TUMBLING_10)
    assert _windows(o) == {0: ([0, 1], 1, 2), 50: ([2], 1, -1)}


def test_sliding_windows_and_partial_drops() -> None:
    """Sliding 10 ms by 5 ms: 7 belongs to [0, 10) and [5, 15). After 13 (watermark 12) its
    window [0, 10) is past lateness 0 (9 ≤ 12) but [5, 15) is still open (14 > 12): 7 is
    partially dropped, not in the side output. After 16 (watermark 15) both are past (14 ≤ 15):
    dropped."""
    win = et.WindowSpec(10 * MS, 5 * MS)
    assert win.per_element == 2 and win.name == "sliding_10_5"
    o = et.process(_ms(1, 13, 7), 0, 0, win)
    # 7 meets watermark 12: [0, 10) max 9 ≤ 12 dropped; [5, 15) max 14 > 12 on time
    assert o.partially_dropped.tolist() == [False, False, True]
    assert o.late.tolist() == [False, False, True] and not o.dropped.any()
    o = et.process(_ms(1, 16, 7), 0, 0, win)
    assert o.dropped.tolist() == [False, False, True]  # both its windows past lateness
    assert sorted(_windows(o)) == [-5, 0, 10, 15]


def test_lossless_delay_is_the_smallest() -> None:
    """The smallest delay with no drop: at it nothing is dropped, one tick less drops."""
    rng = np.random.default_rng(7)
    ts = et.event_timestamps(
        np.cumsum(rng.integers(0, 4 * MS, 500)) + rng.integers(-9, 9, 500) * MS
    )
    for win in (TUMBLING_10, et.WindowSpec(20 * MS, 5 * MS)):
        for lateness in (0, 3 * MS):
            d = et.lossless_delay(ts, win, lateness)
            assert d > 0
            assert not et.process(ts, d, lateness, win).dropped.any()
            less = et.process(ts, d - MS, lateness, win)
            assert less.dropped.any() or less.partially_dropped.any()
    d = et.max_out_of_orderness(ts)
    assert not et.process(ts, d, 0, TUMBLING_10).late.any()
    assert (ts <= et.watermark_before(ts, d - MS)).any()  # one tick less: someone is behind


def test_content_difference() -> None:
    """Against true time: the source stamps element 1 at 11 ms instead of 9 ms; [0, 10) and
    [10, 20) both differ, [20, 30) does not; one element assigned differently."""
    truth = et.process(_ms(2, 9, 25), 0, 0, TUMBLING_10)
    src = et.process(_ms(2, 11, 25), 0, 0, TUMBLING_10)
    assert et.content_difference(src, truth) == (2, 3, 1)
    assert et.content_difference(truth, truth) == (0, 2, 0)


def _reference(ts: list[int], delay: int, lateness: int, size: int, slide: int) -> tuple:
    """Flink's WindowOperator written out as a loop, event by event (ms units, tick 1)."""
    wm, mx = None, None
    contents: dict[int, list[int]] = {}
    firings: dict[int, int] = {}
    fired: set[int] = set()
    dropped = []
    for i, t in enumerate(ts):
        last = t - ((t + slide) % slide)
        starts = [s for s in range(last, t - size, -slide)]
        skipped = True
        for s in starts:
            mts = s + size - 1
            if wm is not None and mts + lateness <= wm:
                continue
            skipped = False
            contents.setdefault(s, []).append(i)
            if wm is not None and mts <= wm:  # already fired: fire again
                firings[s] = firings.get(s, 0) + 1
                fired.add(s)
        if skipped:
            dropped.append(i)
        mx = t if mx is None else max(mx, t)
        wm = mx - delay - 1
        for s in contents:  # timers: fire windows the watermark reached
            if s not in fired and s + size - 1 <= wm:
                fired.add(s)
                firings[s] = firings.get(s, 0) + 1
    for s in contents:  # end of input: the final watermark fires the rest
        if s not in fired:
            firings[s] = firings.get(s, 0) + 1
    return dropped, {s: sorted(c) for s, c in contents.items()}, firings


def test_against_a_literal_loop() -> None:
    """Random out-of-order traces: the vectorized operator equals the event-by-event loop."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(1, 60))
        ts_ms = (np.cumsum(rng.integers(0, 5, n)) + rng.integers(-12, 12, n) + 100).tolist()
        delay, lateness = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        size = int(rng.choice([5, 10, 12]))
        slide = int(rng.choice([s for s in (size, size // 2, 1) if s > 0]))
        dropped, contents, firings = _reference(ts_ms, delay, lateness, size, slide)
        o = et.process(_ms(*ts_ms), delay * MS, lateness * MS, et.WindowSpec(size * MS, slide * MS))
        assert np.flatnonzero(o.dropped).tolist() == dropped, trial
        got = _windows(o)
        assert {s: c for s, (c, _, _) in got.items()} == contents, trial
        assert {s: f for s, (_, f, _) in got.items()} == firings, trial


def test_export_flink_known_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """skewlab export --flink on the hand-built run of test_analysis_metrics: receipts merged in
    true arrival order (A1 B1 C1 A2 B2 C2 C3 A3 B4 A4; ties by worker order), every reading
    floored to the ms, an empty field where a source gave none; truthless folders refused."""
    import pytest

    from skewlab.export import export_flink
    from tests.unit.test_analysis_metrics import RECEIPTS, SENDS, write_run

    res = write_run(tmp_path / "run", SENDS, RECEIPTS)
    files = export_flink(res, tmp_path / "flink")
    assert [f.name for f in files] == ["receipts.csv", "flink.sql"]
    lines = files[0].read_text().splitlines()
    assert lines[0] == (
        "#arrival,worker,event_id,truth_ns,true_ms,system_ms,truetime_ms,truetime_latest_ms"
    )
    rows = [x.split(",") for x in lines[1:]]
    assert " ".join(f"{r[1]}{r[2]}" for r in rows) == "A1 B1 C1 A2 B2 C2 C3 A3 B4 A4"
    assert [r[0] for r in rows] == [str(i) for i in range(10)]
    assert rows[0][3:] == [str(1005 * MS), "1005", "1000", "1005", "1007"]
    assert rows[8][5:] == ["", "4003", "4004"]  # B4: no system reading
    ddl = files[1].read_text()
    assert "WATERMARK FOR rt AS rt - INTERVAL '6' MILLISECOND" in ddl
    assert "TO_TIMESTAMP_LTZ(`system_ms`, 3)" in ddl
    nt = write_run(tmp_path / "nt", SENDS, RECEIPTS, truth=False)
    with pytest.raises(ValueError, match="without true time"):
        export_flink(nt, tmp_path / "nt_flink")


def test_delays_and_lateness_from_the_spec(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """analysis.watermark_delays_ms and allowed_lateness_ms reach the analysis; with lateness 0
    the truetime latest stream's late A3 (2997 after the watermark 3004) is dropped at delay 3
    too (3004 − 3 = 3001 ≥ 2999), and the spec refuses a negative delay naming the key."""
    import json

    import pytest

    from skewlab.analysis import analyze
    from skewlab.spec import from_dict
    from tests.unit.test_analysis_metrics import RECEIPTS, SENDS, write_run

    res = write_run(tmp_path / "run", SENDS, RECEIPTS, window_sizes_ms=[10])
    spec = json.loads(res.spec_path.read_text())
    spec["analysis"] |= {"watermark_delays_ms": [3], "allowed_lateness_ms": 0}
    res.spec_path.write_text(json.dumps(spec))
    ev = analyze(res, make_figures=False)["event_time"]
    assert ev["settings"]["delays_ms"] == [3] and ev["settings"]["allowed_lateness_ms"] == 0
    x = ev["summary"]["truetime"]["latest"]["delays"]["3"]
    assert (x["late"]["k"], x["dropped"]["k"], x["late"]["n"]) == (1, 1, 10)
    with pytest.raises(Exception, match="watermark_delays_ms"):
        from_dict({"analysis": {"watermark_delays_ms": [-1]}})
