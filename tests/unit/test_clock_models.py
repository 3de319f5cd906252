"""Clock models of the experiment file (issue 16 item 1), by hand: frequency ramps, thermal
sinusoids and replayed series, alone and combined; their scalar and array forms agree bit for
bit; a malformed replay file is one line naming the file, line and column."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from skewlab.cli import cli
from skewlab.clocks.faults import ClockFault
from skewlab.clocks.node import node_oscillator
from skewlab.clocks.oscillator import Oscillator, Replay, Sinusoid
from skewlab.clocks.replay import ReplayOscillator
from skewlab.clocks.series import SeriesError, read_series
from skewlab.spec import SpecError, from_dict, load

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_000 * S
DAY = 86_400 * S
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# -- frequency ramp (clock_rate with ramp_s) ---------------------------------------------------


def test_ramp_known_answer() -> None:
    """+2 ppm reached linearly over 100 s from T0 + 10 s: frequency Δf·u/R during the ramp,
    phase Δf·u²/(2R); after it Δf and Δf·(u − R/2)."""
    f = ClockFault("freq", T0 + 10 * S, delta_ppb=2_000, ramp_ns=100 * S)
    osc = Oscillator(t0_ns=T0, drift_ppb=1_000, faults=(f,))
    assert osc.gapless and not osc.plain  # a frequency term moves both clocks alike
    at = T0 + 10 * S
    # before: the drift alone (1 ppm)
    assert osc.error_at(at) == 10_000 and osc.freq_ppb_at(at - 1) == 1_000.0
    # 50 s in: 1 ppm of the 2 (2000 ns/s · 50² s² / 200 s = 25 µs) on 60 s of drift
    assert osc.freq_ppb_at(at + 50 * S) == 1_000.0 + 1_000.0
    assert osc.error_at(at + 50 * S) == 60_000 + 25_000
    # end of the ramp: 2000 · 100 / 2 = 100 µs
    assert osc.error_at(at + 100 * S) == 110_000 + 100_000
    # 30 s later: 100 µs + 2 ppm · 30 s
    assert osc.error_at(at + 130 * S) == 140_000 + 160_000
    assert osc.freq_ppb_at(at + 130 * S) == 3_000.0
    assert osc.monotonic_at(at + 130 * S) == osc.local_at(at + 130 * S)
    # a ramp of 1 ns is a step (the same phase after it)
    step = Oscillator(t0_ns=T0, faults=(ClockFault("freq", at, delta_ppb=2_000),))
    short = Oscillator(t0_ns=T0, faults=(ClockFault("freq", at, delta_ppb=2_000, ramp_ns=1),))
    assert abs(step.error_at(at + 77 * S) - short.error_at(at + 77 * S)) <= 1


def test_ramp_from_the_spec() -> None:
    spec = from_dict({"faults": [{"kind": "clock_rate", "node": "B", "at_s": 10,
                                  "delta_ppm": -0.5, "ramp_s": 600}]})  # fmt: skip
    (f,) = node_oscillator(spec, "B", T0).faults
    assert (f.kind, f.at_ns, f.delta_ppb, f.ramp_ns) == ("freq", T0 + 10 * S, -500, 600 * S)
    with pytest.raises(SpecError, match="does not take ramp_s"):
        from_dict({"faults": [{"kind": "clock_step", "node": "B", "at_s": 1, "delta_ms": 1,
                               "ramp_s": 5}]})  # fmt: skip


# -- thermal sinusoid -----------------------------------------------------------------------------


def test_sinusoid_known_answer() -> None:
    """1 ppm over a day, phase 0: frequency A·sin(ωu), phase A/ω·(1 − cos ωu) with
    A/ω = 1000 ns/s · 86400 s / 2π = 13 750 987.08 ns."""
    s = Sinusoid(1_000.0, DAY, 0.0, T0)
    assert s.phase_ns(T0) == 0 and s.freq_ppb(T0) == 0.0
    assert s.phase_ns(T0 + DAY // 4) == 13_750_987  # quarter: A/ω
    assert s.freq_ppb(T0 + DAY // 4) == pytest.approx(1_000.0, abs=1e-9)
    assert s.phase_ns(T0 + DAY // 2) == 27_501_974  # half: 2A/ω, frequency back to 0
    assert s.freq_ppb(T0 + DAY // 2) == pytest.approx(0.0, abs=1e-9)
    assert s.freq_ppb(T0 + 3 * DAY // 4) == pytest.approx(-1_000.0, abs=1e-9)
    assert s.phase_ns(T0 + DAY) == 0 and s.phase_ns(T0 + 5 * DAY) == 0  # whole periods
    # 1 h in: A/ω·(1 − cos(π/12)) = 13 750 987.08 · 0.0340742… = 468 553.52
    assert s.phase_ns(T0 + 3_600 * S) == 468_554
    # phase 90°: the frequency starts at +A; a quarter later the phase is A/ω·(0 − (−1))
    c = Sinusoid(1_000.0, DAY, math.pi / 2, T0)
    assert c.freq_ppb(T0) == pytest.approx(1_000.0) and c.phase_ns(T0) == 0
    assert c.phase_ns(T0 + DAY // 4) == 13_750_987
    # before t0 the cycle runs backwards in time: the phase is odd about t0 for φ = 0
    assert s.phase_ns(T0 - 3_600 * S) == 468_554  # 1 − cos is even
    assert s.freq_ppb(T0 - 3_600 * S) == pytest.approx(-s.freq_ppb(T0 + 3_600 * S))


def test_sinusoid_matches_the_closed_form_everywhere() -> None:
    """The table + Taylor evaluation against math.cos at arbitrary instants (≤ 1 ns: the
    rounding), for a short and an odd period."""
    rng = np.random.default_rng(11)
    for amp, period, phi in ((1_000.0, DAY, 0.3), (250.0, 1_200 * S + 7, -2.0)):
        s = Sinusoid(amp, period, phi, T0)
        w = 2 * math.pi / period
        for u in rng.integers(-3 * DAY, 40 * DAY, 300):
            exact = amp / w / S * (math.cos(phi) - math.cos(w * int(u) + phi))
            assert abs(s.phase_ns(T0 + int(u)) - exact) <= 1.0, (amp, int(u))
            assert s.freq_ppb(T0 + int(u)) == pytest.approx(amp * math.sin(w * int(u) + phi),
                                                            abs=1e-6)  # fmt: skip


def test_thermal_from_the_spec() -> None:
    spec = from_dict({"nodes": [
        {"name": "c", "role": "coordinator"},
        {"name": "B", "drift_ppm": 5, "thermal": {"amplitude_ppm": 1.0}, "discipline": "free"},
        {"name": "C", "thermal": [{"amplitude_ppm": 0.5, "period_s": 1200, "phase_deg": 90},
                                  {"amplitude_ppm": 1.0}], "discipline": "free"},
    ]})  # fmt: skip
    assert [t.period_s for t in spec.node("B").thermal] == [86400.0]  # one table: one term
    b = node_oscillator(spec, "B", T0)
    assert b.gapless and not b.plain
    q = T0 + DAY // 4
    # 5 ppm of drift over 6 h plus the quarter-day phase of the 1 ppm cycle
    assert b.error_at(q) == 5_000 * 21_600 + 13_750_987
    assert b.freq_ppb_at(q) == pytest.approx(5_000.0 + 1_000.0)
    c = node_oscillator(spec, "C", T0)
    assert len(c.sinusoids) == 2
    # a quarter of the 1200 s cycle at phase 90°: 500 ns/s · 1200 s / 2π; the day cycle adds
    # A/ω·(1 − cos(2π·300/86400))
    quarter = 500.0 * 1200 / (2 * math.pi)
    day = 1000.0 * 86400 / (2 * math.pi) * (1 - math.cos(2 * math.pi * 300 / 86400))
    assert abs(c.error_at(T0 + 300 * S) - (quarter + day)) <= 1
    with pytest.raises(SpecError, match=r"nodes\[1\]\.thermal\[0\]\.period_s"):
        from_dict({"nodes": [{"name": "c", "role": "coordinator"},
                             {"name": "B", "thermal": {"amplitude_ppm": 1, "period_s": 0}},
                             {"name": "C"}]})  # fmt: skip


# -- replay --------------------------------------------------------------------------------------


def _csv(tmp_path: Path, text: str, name: str = "rec.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_replay_interpolation_sign_and_units(tmp_path: Path) -> None:
    """Points (0 s, 0), (10 s, +2 ms), (20 s, −1 ms): linear between, held outside; the slope
    is the frequency; an NTP offset column (reference − clock) replays negated; other units
    give the same series."""
    p = _csv(tmp_path, "# recorded somewhere\nt,err\n0,0\n\n10,2.0\n20,-1.0\n")
    osc = ReplayOscillator.from_csv(p, t0_ns=T0, time_column="t", offset_column="err")
    assert osc.error_at(T0 + 5 * S) == 1_000_000  # halfway to 2 ms
    assert osc.error_at(T0 + 12_500 * MS) == 1_250_000  # a quarter from 2 to −1 ms
    assert osc.freq_ppb_at(T0 + 5 * S) == 200_000.0  # 2 ms / 10 s = 200 ppm
    assert osc.freq_ppb_at(T0 + 15 * S) == -300_000.0
    assert osc.error_at(T0 - S) == 0 and osc.freq_ppb_at(T0 - S) == 0.0  # held before
    assert osc.error_at(T0 + 99 * S) == -1_000_000 and osc.freq_ppb_at(T0 + 99 * S) == 0.0
    assert osc.gapless and osc.monotonic_at(T0 + 7 * S) == osc.local_at(T0 + 7 * S)
    # the same series as an NTP offset (reference − clock), in ms of time and µs of offset
    q = _csv(tmp_path, "time_ms,theta_us\n0,0\n10000,-2000\n20000,1000\n", "ntp.csv")
    times, offs = read_series(q, "time_ms", "theta_us", "ms", "us", "reference_minus_clock")
    assert (times, offs) == ([0, 10 * S, 20 * S], [0, 2 * MS, -MS])
    # exact decimal parsing: no binary rounding of 0.1 s or 1e-3 ms
    r = _csv(tmp_path, "elapsed_s,offset_ms\n0.1,1e-3\n1700000000.000000001,-0.000001\n", "x.csv")
    assert read_series(r) == ([100_000_000, 1_700_000_000 * S + 1], [1_000, -1])


def test_replay_from_the_spec_adds_to_the_other_terms(tmp_path: Path) -> None:
    """A replay is one more term: drift + thermal + replay add; start_s picks the recording
    instant at t0; a relative file is relative to the experiment file."""
    _csv(tmp_path, "elapsed_s,offset_ms\n100,0\n110,-2.0\n120,1.0\n")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        "[[nodes]]\nname = 'c'\nrole = 'coordinator'\n"
        "[[nodes]]\nname = 'B'\ndrift_ppm = 10\ndiscipline = 'free'\n"
        "replay = { file = 'rec.csv', sign = 'reference_minus_clock' }\n"
        "thermal = { amplitude_ppm = 1.0 }\n"
        "[[nodes]]\nname = 'C'\ndiscipline = 'free'\nreplay = { file = 'rec.csv', start_s = 110 }\n"
    )
    spec = load(cfg)
    assert spec.node("B").replay.file == str((tmp_path / "rec.csv").resolve())  # type: ignore[union-attr]
    b = node_oscillator(spec, "B", T0)
    thermal = Sinusoid(1_000.0, DAY, 0.0, T0).phase_ns(T0 + 15 * S)
    # recording 100 s is t0 (its first row); 15 s in: θ halfway from −2 to +1 ms, so the
    # clock's error (−θ) is halfway from +2 to −1 ms
    assert b.error_at(T0 + 15 * S) == 150_000 + thermal + 500_000
    assert b.error_at(T0) == 0
    c = node_oscillator(spec, "C", T0)
    assert c.error_at(T0) == -2 * MS and c.error_at(T0 - 20 * S) == 0  # start_s = 110


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("elapsed_s,offset_ms\n0,1\n1,x\n", "line 3, column 2 (offset_ms): not a number: 'x'"),
        ("# c\nelapsed_s,offset_ms\n0,1\n\n1\n", "line 5, column 2 (offset_ms): missing"),
        ("offset_ms,elapsed_s\n1,0\n2,0\n", "line 3, column 2 (elapsed_s): time 0 is not after"),
        ("offset_ms,elapsed_s\n1,nan\n", "line 2, column 2 (elapsed_s): not a finite number"),
        ("secs,offset_ms\n0,1\n", "line 1: no column 'elapsed_s' (columns: secs, offset_ms)"),
        ("elapsed_s,offset_ms\n", "no data rows"),
    ],
)
def test_malformed_replay_is_one_line(tmp_path: Path, text: str, where: str) -> None:
    p = _csv(tmp_path, text, "bad.csv")
    with pytest.raises(SeriesError) as e:
        read_series(p)
    assert str(e.value) == f"{p}: {where}" or str(e.value).startswith(f"{p}: {where}")
    assert "\n" not in str(e.value)


def test_malformed_replay_in_an_experiment_is_a_clean_cli_error(tmp_path: Path) -> None:
    """``skewlab simulate`` (and run, sweep, deploy: the same loader) refuses it before
    anything runs: exit 2, one line naming the key, the file, the line and the column."""
    bad = _csv(tmp_path, "elapsed_s,offset_ms\n0,1\n1,2\n2,oops\n", "bad.csv")
    cfg = tmp_path / "exp.toml"
    cfg.write_text("[[nodes]]\nname = 'c'\nrole = 'coordinator'\n[[nodes]]\nname = 'B'\n"
                   "replay = { file = 'bad.csv' }\n[[nodes]]\nname = 'C'\n")  # fmt: skip
    r = CliRunner().invoke(cli, ["simulate", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit)
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line == (f"skewlab: error: {cfg}: nodes[1].replay: {bad.resolve()}: line 4, "
                    "column 2 (offset_ms): not a number: 'oops'")  # fmt: skip
    assert not (tmp_path / "out").exists()
    cfg.write_text(cfg.read_text().replace("bad.csv", "missing.csv"))
    r = CliRunner().invoke(cli, ["simulate", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "cannot read replay file" in r.stderr and "missing.csv" in r.stderr


def test_shipped_example_series_loads() -> None:
    """examples/thermal_host.csv (generated by examples/thermal_host.py, provenance in its
    header): an NTP offset series; replayed, the clock runs ~8 ppm fast, ~3.7 ppm slower in
    its busy period."""
    times, err = read_series(EXAMPLES / "thermal_host.csv", sign="reference_minus_clock")
    assert len(times) == 6 * 3600 // 16 + 1 and times[-1] == 6 * 3600 * S
    rate = np.diff(np.array(err)) / np.diff(np.array(times)) * 1e9  # ppb per segment
    assert 7_000 < np.median(rate[:200]) < 8_500  # idle: ~8 ppm fast
    assert 3_000 < np.median(rate[300:500]) < 4_500  # busy (1 h to 2.5 h): warmer, slower
    spec = load(EXAMPLES / "clock_models.toml")
    assert any(n.replay is not None for n in spec.nodes)


# -- scalar and array forms ---------------------------------------------------------------------


def test_every_model_combined_arrays_equal_scalar() -> None:
    """Drift, a step, ramps, two sinusoids and a replay together: ``*_array`` is the scalar
    form, element for element, over 40 days (and before t0). Wander joins them in the next
    test (its lazy 1 s path over 40 days would cost seconds)."""
    osc = Oscillator(
        offset_ns=5, drift_ppb=-12_345, t0_ns=T0,
        faults=(ClockFault("freq", T0 + 10 * S, delta_ppb=2_000, ramp_ns=600 * S),
                ClockFault("freq", T0 + 50 * S, delta_ppb=-700),
                ClockFault("freq", T0 + 9 * DAY, delta_ppb=1_000_000, ramp_ns=7 * DAY + 3),
                ClockFault("step", T0 + 70 * S, delta_ns=3 * MS)),
        sinusoids=(Sinusoid(1_000.0, DAY, 0.3, T0), Sinusoid(200.0, 1_200 * S + 7, -1.0, T0)),
        replay=Replay([0, 10 * S, 25 * S + 3, 900 * S], [0, MS, -30_000, 7], T0, 0),
    )  # fmt: skip
    rng = np.random.default_rng(1)
    t = np.sort(T0 - 100 * S + rng.integers(0, 40 * DAY, 8_000))
    t = np.concatenate([t, T0 + np.array([0, 10 * S, 610 * S, 9 * DAY, 16 * DAY + 3])])
    mono = osc.monotonic_at_array(t)
    loc = osc.local_at_array(t)
    for i in range(len(t)):
        ti = int(t[i])
        assert int(mono[i]) == osc.monotonic_at(ti), ti - T0
        assert int(loc[i]) == osc.local_at(ti), ti - T0
    # the one-point replay and the components on their own
    one = Replay([5 * S], [7], T0, 0)
    assert list(one.offset_ns_array(t[:5])) == [7] * 5


def test_spec_models_on_arrays_equal_scalar(tmp_path: Path) -> None:
    """The oscillator the node processes and the simulator build from a spec with every model
    (the simulator reads its ``*_array`` forms)."""
    rec = _csv(tmp_path, "elapsed_s,offset_ms\n0,0\n30,0.5\n60,-0.25\n")
    spec = from_dict({
        "nodes": [{"name": "c", "role": "coordinator"},
                  {"name": "B", "offset_ms": 2, "drift_ppm": 20, "wander_ppb": 1,
                   "thermal": [{"amplitude_ppm": 2, "period_s": 600, "phase_deg": 45}],
                   "replay": {"file": str(rec), "sign": "reference_minus_clock"}},
                  {"name": "C"}],
        "faults": [{"kind": "clock_rate", "node": "B", "at_s": 20, "delta_ppm": 1,
                    "ramp_s": 30}],
    })  # fmt: skip
    osc = node_oscillator(spec, "B", T0)
    t = np.arange(T0 - 5 * S, T0 + 200 * S, 77_777_777, dtype=np.int64)
    got = osc.local_at_array(t)
    assert [int(x) for x in got] == [osc.local_at(int(x)) for x in t]


def test_real_clocks_drop_every_clock_model(tmp_path: Path) -> None:
    """deploy with clocks = "real": a node reads its host's clock, so none of its emulated
    clock models (offset, drift, wander, thermal, replay) applies, and the launcher says so."""
    from skewlab.deploy import cluster as cluster_mod
    from skewlab.deploy.ssh import SshLauncher

    rec = _csv(tmp_path, "elapsed_s,offset_ms\n0,0\n1,1\n")
    spec = from_dict({"nodes": [
        {"name": "c", "role": "coordinator"},
        {"name": "B", "thermal": {"amplitude_ppm": 1}},
        {"name": "C", "replay": {"file": str(rec)}},
    ]})  # fmt: skip
    hosts = [{"name": "h", "nodes": ["c", "B", "C"]}]
    said: list[str] = []
    real = SshLauncher(spec, tmp_path, cluster_mod.from_dict({"clocks": "real", "hosts": hosts}),
                       progress=said.append)  # fmt: skip
    real._prepare_spec()
    for n in ("c", "B", "C"):
        osc = node_oscillator(real.spec, n, T0)
        assert osc.plain and osc.error_at(T0 + DAY // 4) == 0
    assert said == ["clocks = real: the emulated clock models (offset, drift, wander, thermal, "
                    "replay) of B, C are not used"]  # fmt: skip
    emulated = SshLauncher(spec, tmp_path,
                           cluster_mod.from_dict({"clocks": "emulated", "hosts": hosts}))
    emulated._prepare_spec()
    assert emulated.spec.node("B").thermal and emulated.spec.node("C").replay is not None


def test_simulator_readings_with_every_model_equal_scalar_reads(tmp_path: Path) -> None:
    """A disciplined node whose oscillator has a thermal cycle, a replayed series and a ramp:
    every source's array readings in the simulator (``NodeSim.read``) equal the scalar reads
    made during the run (tests/unit/test_sim_vector.py's check)."""
    from skewlab.sim.node import SOLO, solo_spec
    from tests.unit.test_sim_node import exp_delay, ntp_path
    from tests.unit.test_sim_vector import ALL, _check

    rec = _csv(tmp_path, "elapsed_s,offset_ms\n0,0\n200,0.3\n500,-0.2\n900,0.1\n")
    node = {"offset_ms": 2, "drift_ppm": -15, "discipline": "disciplined",
            "thermal": [{"amplitude_ppm": 0.8, "period_s": 1200, "phase_deg": 30}],
            "replay": {"file": str(rec), "sign": "reference_minus_clock"}}  # fmt: skip
    faults = [{"kind": "clock_rate", "node": SOLO, "at_s": 300, "delta_ppm": 1.5,
               "ramp_s": 240}]  # fmt: skip
    spec = solo_spec(node, sources=ALL, seed=9, faults=faults, ntp={"poll_s": 16, "burst": 4},
                     network=ntp_path(exp_delay(100, 50), exp_delay(100, 50), 0.0))  # fmt: skip
    assert _check(spec, 9, end_s=900, gap_ms=900, min_samples=25) > 500


def test_node_processes_read_the_recorded_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node process loads the run's spec.json (``spec.load`` in ``skewlab.node``), from
    another working directory: the replay file recorded there is absolute, so it builds the
    same oscillator as the experiment file gave (a real ``skewlab run`` of such a spec: 0 of
    200 receipts off the oscillator, checked by hand)."""
    exp = tmp_path / "exp"
    exp.mkdir()
    _csv(exp, "elapsed_s,theta_us\n0,0\n0.5,-300\n1,200\n")
    cfg = exp / "exp.toml"
    cfg.write_text("[[nodes]]\nname = 'c'\nrole = 'coordinator'\n[[nodes]]\nname = 'B'\n"
                   "thermal = { amplitude_ppm = 200, period_s = 2 }\n"
                   "replay = { file = 'rec.csv', offset_column = 'theta_us', offset_unit = 'us',"
                   " sign = 'reference_minus_clock' }\n[[nodes]]\nname = 'C'\n")  # fmt: skip
    spec = load(cfg)
    results = tmp_path / "results"
    results.mkdir()
    (results / "spec.json").write_text(spec.to_json())
    monkeypatch.chdir(results)
    again = load(results / "spec.json")
    a, b = node_oscillator(spec, "B", T0), node_oscillator(again, "B", T0)
    ts = [T0 + k * 37_000_000 for k in range(60)]
    assert [a.local_at(t) for t in ts] == [b.local_at(t) for t in ts]
    assert b.error_at(T0 + 750 * MS) != 0 and b.replay is not None


def test_phase_is_the_integral_of_the_frequency() -> None:
    """For every model at once (drift, wander, a step, a ramp, a sinusoid, a replay): the
    oscillator's phase over 100 s is the integral of ``freq_ppb_at`` (midpoint rule on 1 ms
    cells, no cell straddling a kink: every kink is on a whole ms), within the ns roundings."""
    osc = Oscillator(
        offset_ns=0, drift_ppb=-4_000, t0_ns=T0, wander_ppb=5.0, seed=2,
        faults=(ClockFault("freq", T0 + 20 * S, delta_ppb=1_500),
                ClockFault("freq", T0 + 30 * S, delta_ppb=-2_000, ramp_ns=40 * S)),
        sinusoids=(Sinusoid(3_000.0, 60 * S, 0.5, T0),),
        replay=Replay([0, 25 * S, 70 * S], [0, 40_000, -10_000], T0, 0),
    )  # fmt: skip
    assert osc.freq_ppb_at(T0 + 10 * S) == pytest.approx(
        -4_000 + osc._wander.freq_ppb(T0 + 10 * S) + 3_000 * math.sin(2 * math.pi / 6 + 0.5)  # type: ignore[union-attr]
        + 1_600.0)  # replay: 40 µs over 25 s = 1600 ppb  # fmt: skip
    cell = MS
    total = 0.0
    for k in range(100_000):
        total += osc.freq_ppb_at(T0 + k * cell + cell // 2) * cell / S
    assert abs((osc.error_at(T0 + 100 * S) - osc.error_at(T0)) - total) <= 4
