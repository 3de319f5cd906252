"""Every key of the experiment spec is honoured by ``skewlab simulate``, refused with a one-line
reason, or does not apply to virtual time (``sim/keys.py: SPEC_KEYS``).

- The keys are enumerated from the pydantic models, so a new key fails
  ``test_every_spec_key_is_in_the_table`` until it is entered in the table.
- Each honoured key has a perturbation check in virtual time: a tiny spec is simulated as is
  and with that key set to a meaningful non-default value, and the traces (or the metadata the
  analysis reads) must change the way the key says (``CASES``: ``ntp.poll_s`` → the spacing
  of the NTP samples, ``nodes[].drift_ppm`` → the slope of local − truth, ...). Against real
  runs: tests/integration/test_run_vs_simulate_keys.py.
- Each refused key, set, makes ``check_simulable`` raise naming it.

The companion tests at the end show the checks can fail: a key added to a fake model, or
dropped from the table, is reported; a simulator that ignores ``ntp.poll_s`` (or
``nodes[].discipline``, the bug issue 15 started from) fails that key's perturbation check.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from skewlab.sim import keys as sim_keys
from skewlab.sim.keys import SPEC_KEYS, missing_keys, refusals, spec_keys
from skewlab.sim.node import NodeSim, ReceiveScheduling
from skewlab.sim.simulate import SimError, SimOptions, check_simulable, simulate
from skewlab.spec import ExperimentSpec, from_dict
from skewlab.store import ResultsDir
from skewlab.trace import part_files, read_parts

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

# A tiny experiment: the default nodes (coordinator +1 ms/+10 ppm, B +3 ms/+40 ppm, C −2 ms/
# −25 ppm) and sources; broadcast from ~1.0 s to ~1.8 s after t0 (40 events, 20 ms apart).
_DEFAULT = ExperimentSpec()
BASE: dict[str, Any] = {
    # the default nodes, free-running: each clock key's effect is then its own (a servo would
    # slew most of it away); the discipline case turns B's servo on
    "nodes": [{**json.loads(n.model_dump_json()), "discipline": "free"} for n in _DEFAULT.nodes],
    "workload": {"events": 40, "interval_ms": 20},
    "ntp": {"poll_s": 0.2},
    "run": {"warmup_s": 0.2, "drain_s": 0.1},
    "commit_wait": {"delays_s": [0.05, 0.1]},
}


# -- running and observing ---------------------------------------------------------------------


@dataclass
class Run:
    """One simulated run (or the one-line error that stopped it)."""

    spec: ExperimentSpec
    res: ResultsDir | None
    error: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        assert self.res is not None, self.error
        return json.loads(self.res.metadata_path.read_text())

    @property
    def t0(self) -> int:
        return int(self.meta["t0_ns"])

    def table(self, node: str, prefix: str) -> pa.Table:
        assert self.res is not None, self.error
        return read_parts(self.res.node_dir(node), prefix)

    def col(self, node: str, prefix: str, column: str) -> np.ndarray:
        return self.table(node, prefix).column(column).to_numpy(zero_copy_only=False)

    def receipts(self, node: str = "B") -> pa.Table:
        return self.table(node, "events").sort_by("truth_ns")

    def error_ns(self, node: str = "B") -> tuple[np.ndarray, np.ndarray]:
        """(truth − t0, local − truth) of a worker's receipts, in true-time order."""
        r = self.receipts(node)
        truth = r.column("truth_ns").to_numpy()
        return truth - self.t0, r.column("local_ns").to_numpy() - truth

    def delays_ns(self, node: str = "B") -> np.ndarray:
        """Receipt true time − send true time, per received event."""
        r = self.receipts(node)
        send = self.col(self.spec.coordinator.name, "events", "truth_ns")
        ids = r.column("event_id").to_numpy().astype(np.int64)
        return r.column("truth_ns").to_numpy() - send[ids]

    def send_gaps_ns(self) -> np.ndarray:
        return np.diff(np.sort(self.col(self.spec.coordinator.name, "events", "truth_ns")))

    def counts(self, node: str = "B") -> dict[str, Any]:
        assert self.res is not None, self.error
        return json.loads(self.res.node_counts_path(node).read_text())

    @property
    def root(self) -> Path:
        assert self.res is not None, self.error
        return self.res.root

    def prefixes(self, node: str = "B") -> set[str]:
        assert self.res is not None, self.error
        return {p.name.rsplit("-", 1)[0] for p in self.res.node_dir(node).glob("*.parquet")}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _nodes(**changes: dict[str, Any]) -> dict[str, Any]:
    """The default nodes with per-node changes (``B={"drift_ppm": 140}``)."""
    nodes = copy.deepcopy(BASE["nodes"])
    for n in nodes:
        n.update(changes.get(n["name"], {}))
    return {"nodes": nodes}


class Simulator:
    """Simulates spec dicts into a temporary folder, each distinct spec once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, Run] = {}

    def __call__(self, data: dict[str, Any]) -> Run:
        key = json.dumps(data, sort_keys=True)
        if key not in self.cache:
            spec = from_dict(data)
            try:
                # no receive-side scheduling: each key's effect on delays is then its own
                opt = SimOptions(receive=ReceiveScheduling.off())
                res = simulate(spec, self.root / f"run{len(self.cache)}", opt)
                self.cache[key] = Run(spec, res)
            except SimError as e:
                self.cache[key] = Run(spec, None, str(e))
        return self.cache[key]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Simulator:
    return Simulator(tmp_path_factory.mktemp("spec-keys"))


# -- the perturbation cases --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Key ``key`` set by ``change`` (merged into BASE + ``context``, which holds what must be
    there for the key to matter); ``check(before, after)`` asserts the expected effect."""

    key: str
    change: dict[str, Any]
    check: Callable[[Run, Run], None]
    context: dict[str, Any] | None = None


def _approx(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x.astype(float), y.astype(float), 1)[0])


def _mean_eps(run: Run, source: str, node: str = "B") -> float:
    r = run.receipts(node)
    lo = r.column(f"{source}_earliest_ns").to_numpy(zero_copy_only=False)
    hi = r.column(f"{source}_latest_ns").to_numpy(zero_copy_only=False)
    ok = ~(np.isnan(lo.astype(float)) | np.isnan(hi.astype(float)))
    return float(((hi[ok] - lo[ok]) / 2).mean())


def _ntp_t1(run: Run, node: str = "B") -> np.ndarray:
    return np.sort(run.col(node, "ntp", "truth_t1_ns")) - run.t0


def _step_at(run: Run, node: str = "B") -> tuple[int, int]:
    """(true instant − t0, size) of the largest jump of local − truth between receipts."""
    t, e = run.error_ns(node)
    j = int(np.argmax(np.abs(np.diff(e))))
    return int(t[j + 1]), int(e[j + 1] - e[j])


def _sent_to(run: Run) -> set[str]:
    return {n for n in (x.name for x in run.spec.nodes) if "sent" in run.counts(n)}


def _selection(run: Run) -> dict[str, dict[str, int]]:
    return run.counts("B")["ntp_selection"]


def _rejected_server(run: Run) -> set[str]:
    return {s for s, v in _selection(run).items() if any(k != "selected" for k in v)}


def _ntp_offset_error_ms(run: Run, node: str = "B") -> np.ndarray:
    """θ − the true offset at T4 (ms) per NTP sample: ~0 for an honest server."""
    t = run.table(node, "ntp")
    theta = t.column("offset_ns").to_numpy()
    true = t.column("truth_t4_ns").to_numpy() - t.column("t4_ns").to_numpy()
    return (theta - true) / NS_PER_MS


def _t(ms: float) -> int:
    return round(ms * NS_PER_MS)


CASES: dict[str, Case] = {}
Check = Callable[[Run, Run], None]


def case(key: str, change: dict[str, Any], context: dict[str, Any] | None = None,
         label: str = "") -> Callable[[Check], Check]:  # fmt: skip
    """Register a perturbation check of ``key`` (``label``: one of several for that key)."""

    def register(check: Check) -> Check:
        CASES[f"{key}={label}" if label else key] = Case(key, change, check, context)
        return check

    return register


_B_LINK = {"network": {"links": {"coordinator~B": {"forward": {}}}}}
_B_NTP_LINK = {"network": {"links": {"B~ntp-server": {"forward": {}, "back": {}}}}}
_LAN_B = {"network": {"links": {"coordinator~B": {"profile": "lan"}}}}
_LAN_BC = {"network": {"links": {"coordinator~B": {"profile": "lan"},
                                 "coordinator~C": {"profile": "lan"}}}}  # fmt: skip
_BURSTS = {"workload": {"mode": "bursts", "burst_size": 5, "burst_spacing_ms": 1,
                        "burst_gap_ms": 50}}  # fmt: skip
_STEP = {"kind": "clock_step", "node": "B", "at_s": 1.4, "delta_ms": 5.0}
_STROBE = {"kind": "clock_strobe", "node": "B", "at_s": 1.2, "delta_ms": 2.0, "period_ms": 100,
           "duration_s": 0.4}  # fmt: skip
_RATE = {"kind": "clock_rate", "node": "B", "at_s": 1.2, "delta_ppm": 300.0}
_OUTAGE = {"kind": "ntp_outage", "at_s": 0.5, "duration_s": 1.0}
_FALSE = {"kind": "ntp_falseticker", "at_s": 0.0, "duration_s": 1.2, "offset_ms": 10.0}
_LOSS = {"kind": "link_loss", "path": "coordinator~B", "at_s": 1.2, "duration_s": 0.3}


def _fwd(**d: Any) -> dict[str, Any]:
    return {"network": {"links": {"coordinator~B": {"forward": d}}}}


def _ntp_back(**d: Any) -> dict[str, Any]:
    return {"network": {"links": {"B~ntp-server": {"back": d}}}}


def _faults(*fs: dict[str, Any]) -> dict[str, Any]:
    return {"faults": list(fs)}


def _strobe_flips(run: Run) -> int:
    e = run.error_ns()[1]
    return int((np.abs(np.diff(e)) > _t(1)).sum())


def _gained_ns(run: Run) -> int:
    """How much B's local − truth grew from its first receipt to its last."""
    e = run.error_ns()[1]
    return int(e[-1] - e[0])


# -- top level and nodes


@case("name", {"name": "other"})
def _name(a: Run, b: Run) -> None:
    assert a.root.name.startswith("default") and b.root.name.startswith("other"), "folder name"


@case("seed", {"seed": 2})
def _seed(a: Run, b: Run) -> None:
    assert not np.array_equal(a.delays_ns(), b.delays_ns()), "another seed draws other delays"


@case("nodes[].name", _nodes(B={"name": "X"}))
def _node_name(a: Run, b: Run) -> None:
    assert "events" in a.prefixes("B") and "events" in b.prefixes("X"), "B's traces renamed"
    assert not (b.root / "traces" / "B").exists()


@case("nodes[].role", _nodes(coordinator={"role": "worker"}, C={"role": "coordinator"}))
def _node_role(a: Run, b: Run) -> None:
    assert _sent_to(a) == {"coordinator"} and _sent_to(b) == {"C"}, "C broadcasts instead"


@case("nodes[].offset_ms", _nodes(B={"offset_ms": 13.0}))
def _node_offset(a: Run, b: Run) -> None:
    d = b.error_ns()[1][0] - a.error_ns()[1][0]
    assert _approx(d, _t(10), 1_000), "local − truth 10 ms larger"


@case("nodes[].drift_ppm", _nodes(B={"drift_ppm": 140.0}))
def _node_drift(a: Run, b: Run) -> None:
    d = _slope(*b.error_ns()) - _slope(*a.error_ns())
    assert _approx(d, 100e-6, 1e-7), "the slope of local − truth grows by 100 ppm"


@case("nodes[].wander_ppb", _nodes(B={"wander_ppb": 1000.0}))
def _node_wander(a: Run, b: Run) -> None:
    d = _slope(*b.error_ns()) - _slope(*a.error_ns())
    assert abs(d) > 20e-9, "the frequency wanders off 40 ppm (a random-walk step every second)"


@case("nodes[].discipline", _nodes(B={"discipline": "disciplined"}))
def _node_discipline(a: Run, b: Run) -> None:
    free, disc = a.error_ns()[1], b.error_ns()[1]
    assert abs(disc).max() < 100_000 and free[-1] > free[0] and free.min() > 2_900_000, (
        "a disciplined host starts converged and stays within 100 µs of true time; a free one "
        "keeps its 3 ms offset and grows with its drift"
    )


@case("sources", {"sources": ["system", "ntp"]})
def _sources(a: Run, b: Run) -> None:
    assert "truetime_earliest_ns" in a.receipts().column_names
    assert "truetime_earliest_ns" not in b.receipts().column_names, "only the listed columns"


@case("source_params", {"source_params": {"truetime": {"max_drift_us_per_s": 2000.0}}})
def _source_params(a: Run, b: Run) -> None:
    assert _mean_eps(b, "truetime") > _mean_eps(a, "truetime"), "more drift allowed: wider ε"


# the clock models (thermal sinusoids, replay): B's local − truth, less its offset and drift,
# against each model's closed form computed here with numpy (≤ 2 ns: the oscillator's rounding)

_REPLAY_CSV = str(Path(__file__).resolve().parents[1] / "data" / "replay_keys.csv")
_UNIT_NS = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}


def _free_b(**changes: Any) -> dict[str, Any]:
    """The default nodes with B free-running (whatever the default discipline) plus changes."""
    return _nodes(B={"discipline": "free", **changes})


def _terms_ns(run: Run, node: str = "B") -> tuple[np.ndarray, np.ndarray]:
    """(truth − t0, local − truth − offset − drift·(truth − t0)) of a node's receipts, ns."""
    n = run.spec.node(node)
    t, e = run.error_ns(node)
    return t, e - round(n.offset_ms * NS_PER_MS) - (t * round(n.drift_ppm * 1000)) // NS_PER_S


def _thermal_ns(run: Run, t: np.ndarray, node: str = "B") -> np.ndarray:
    """Σ A/ω·(cos φ − cos(ωt + φ)) over the node's thermal terms, ns."""
    out = np.zeros(t.shape)
    for c in run.spec.node(node).thermal:
        w = 2 * np.pi / c.period_s
        phi = np.radians(c.phase_deg)
        out += c.amplitude_ppm * 1000 / w * (np.cos(phi) - np.cos(w * t / NS_PER_S + phi))
    return out


def _replay_ns(run: Run, t: np.ndarray, node: str = "B") -> np.ndarray:
    """The node's replayed series at true instants t (np.interp holds at the ends), ns."""
    r = run.spec.node(node).replay
    if r is None:
        return np.zeros(t.shape)
    with open(r.file, newline="") as fh:
        rows = [row for row in csv.DictReader(line for line in fh if not line.startswith("#"))]
    times = np.array([float(x[r.time_column]) for x in rows]) * _UNIT_NS[r.time_unit]
    offs = np.array([float(x[r.offset_column]) for x in rows]) * _UNIT_NS[r.offset_unit]
    sign = -1 if r.sign == "reference_minus_clock" else 1
    start = times[0] if r.start_s is None else r.start_s * NS_PER_S
    return sign * np.interp(t + start, times, offs)


def _models_hold(a: Run, b: Run) -> None:
    """Both runs' clocks follow their own models, and the models differ."""
    for run in (a, b):
        t, got = _terms_ns(run)
        want = _thermal_ns(run, t) + _replay_ns(run, t)
        assert np.abs(got - want).max() <= 2, "the clock follows its thermal and replay terms"
    assert np.abs(_terms_ns(a)[1] - _terms_ns(b)[1]).max() > 1_000, "the change shows (> 1 µs)"


_WARM = {"amplitude_ppm": 300.0, "period_s": 2.0}  # A/ω ≈ 95 µs, the run spans ~1 s of it
_REPLAY = {"file": _REPLAY_CSV}
_REPLAY_MS = {**_REPLAY, "time_column": "t_ms", "time_unit": "ms"}

for _key, _change, _context in [
    ("nodes[].thermal[].amplitude_ppm", {**_WARM, "amplitude_ppm": 100.0}, _WARM),
    ("nodes[].thermal[].period_s", {**_WARM, "period_s": 4.0}, _WARM),
    ("nodes[].thermal[].phase_deg", {**_WARM, "phase_deg": 90.0}, _WARM),
]:
    case(_key, _free_b(thermal=[_change]), context=_free_b(thermal=[_context]))(_models_hold)
for _key, _change, _context in [
    ("nodes[].replay.file", _REPLAY, None),
    ("nodes[].replay.time_column", {**_REPLAY, "time_column": "elapsed2_s"}, _REPLAY),
    ("nodes[].replay.offset_column", {**_REPLAY, "offset_column": "offset2_ms"}, _REPLAY),
    ("nodes[].replay.time_unit", {**_REPLAY_MS, "time_unit": "us"}, _REPLAY_MS),
    ("nodes[].replay.offset_unit", {**_REPLAY, "offset_unit": "us"}, _REPLAY),
    ("nodes[].replay.sign", {**_REPLAY, "sign": "reference_minus_clock"}, _REPLAY),
    ("nodes[].replay.start_s", {**_REPLAY, "start_s": 0.7}, _REPLAY),
]:
    case(_key, _free_b(replay=_change), context=_free_b(replay=_context))(_models_hold)


# -- workload


@case("workload.events", {"workload": {"events": 25}})
def _events(a: Run, b: Run) -> None:
    assert len(a.send_gaps_ns()) == 39 and len(b.send_gaps_ns()) == 24, "25 sends"


@case("workload.pattern", {"workload": {"pattern": "medium"}},
      context={"workload": {"interval_ms": None, "pattern": "fast"}})  # fmt: skip
def _pattern(a: Run, b: Run) -> None:
    assert set(a.send_gaps_ns()) == {_t(10)} and set(b.send_gaps_ns()) == {_t(50)}, "cycle"


@case("workload.interval_ms", {"workload": {"interval_ms": 10}})
def _interval(a: Run, b: Run) -> None:
    assert set(a.send_gaps_ns()) == {_t(20)} and set(b.send_gaps_ns()) == {_t(10)}, "interval"


@case("workload.mode", {"workload": {"mode": "poisson", "rate_per_s": 50}})
def _mode(a: Run, b: Run) -> None:
    assert len(set(a.send_gaps_ns())) == 1 and len(set(b.send_gaps_ns())) > 10, "poisson gaps"


@case("workload.duration_s", {"workload": {"duration_s": 0.4}},
      context={"workload": {"mode": "duration", "duration_s": 0.8}})  # fmt: skip
def _duration(a: Run, b: Run) -> None:
    assert _approx(b.send_gaps_ns().sum() * 2, a.send_gaps_ns().sum(), _t(25)), "half the span"


@case("workload.rate_per_s", {"workload": {"rate_per_s": 400}},
      context={"workload": {"mode": "poisson", "rate_per_s": 50}})  # fmt: skip
def _rate(a: Run, b: Run) -> None:
    assert b.send_gaps_ns().mean() < a.send_gaps_ns().mean() / 3, "a shorter mean gap"


@case("workload.burst_size", {"workload": {"burst_size": 10}}, context=_BURSTS)
def _burst_size(a: Run, b: Run) -> None:
    gaps_a, gaps_b = (a.send_gaps_ns() == _t(50)).sum(), (b.send_gaps_ns() == _t(50)).sum()
    assert gaps_a == 7 and gaps_b == 3, "a gap after every burst of 5, then of 10"


@case("workload.burst_spacing_ms", {"workload": {"burst_spacing_ms": 3}}, context=_BURSTS)
def _burst_spacing(a: Run, b: Run) -> None:
    assert a.send_gaps_ns().min() == _t(1) and b.send_gaps_ns().min() == _t(3), "spacing"


@case("workload.burst_gap_ms", {"workload": {"burst_gap_ms": 80}}, context=_BURSTS)
def _burst_gap(a: Run, b: Run) -> None:
    assert a.send_gaps_ns().max() == _t(50) and b.send_gaps_ns().max() == _t(80), "gap"


# -- NTP and run


@case("ntp.poll_s", {"ntp": {"poll_s": 0.05}})
def _poll(a: Run, b: Run) -> None:
    spacing_a = np.median(np.diff(_ntp_t1(a)))
    spacing_b = np.median(np.diff(_ntp_t1(b)))
    assert spacing_a > _t(200) and spacing_b < _t(60), "samples follow the poll interval"


@case("ntp.burst", {"ntp": {"burst": 1}})
def _burst(a: Run, b: Run) -> None:
    ca, cb = a.counts(), b.counts()
    assert ca["ntp_exchanges"] == 4 * ca["ntp_samples"], "4 exchanges per sample"
    assert cb["ntp_exchanges"] == cb["ntp_samples"], "1 exchange per sample"


@case("ntp.timeout_s", {"ntp": {"timeout_s": 0.02}}, context=_faults({**_OUTAGE, "how": "drop"}))
def _timeout(a: Run, b: Run) -> None:
    assert b.counts()["ntp_failed_polls"] > a.counts()["ntp_failed_polls"] + 3, (
        "a dropped exchange costs the timeout: shorter, more polls fail in the outage"
    )


@case("ntp.servers", {"ntp": {"servers": 3}})
def _servers(a: Run, b: Run) -> None:
    assert "ntp_selection" not in a.counts()
    assert set(_selection(b)) == {"ntp-server", "ntp-server-1", "ntp-server-2"}, "selection"


@case("run.warmup_s", {"run": {"warmup_s": 0.6}})
def _warmup(a: Run, b: Run) -> None:
    first_a = a.col("coordinator", "events", "truth_ns").min() - a.t0
    first_b = b.col("coordinator", "events", "truth_ns").min() - b.t0
    assert first_b >= first_a + _t(800), "the broadcast waits for both warmups, 0.4 s longer"


@case("run.drain_s", {"run": {"drain_s": 1.0}})
def _drain(a: Run, b: Run) -> None:
    # workers stop 1.0 s after the last send instead of Δmax + 0.25 s = 0.35 s (the launcher's
    # drain, node.patterns.drain_ns): 0.65 s more of NTP polls every 0.2 s
    assert _ntp_t1(b).max() >= _ntp_t1(a).max() + _t(450), "the run goes on 0.65 s longer"


@case("run.ready_timeout_s", {"run": {"ready_timeout_s": 0.5}},
      context=_faults({"kind": "ntp_outage", "at_s": 0.0, "duration_s": 3.0}))  # fmt: skip
def _ready_timeout(a: Run, b: Run) -> None:
    assert a.error is None and b.error is not None and "no NTP answer" in b.error, (
        "no NTP answer within the ready timeout fails the run"
    )


@case("run.batch_rows", {"run": {"batch_rows": 10}})
def _batch_rows(a: Run, b: Run) -> None:
    parts_a = part_files(a.root / "traces" / "B", "events")
    parts_b = part_files(b.root / "traces" / "B", "events")
    assert len(parts_a) == 1 and len(parts_b) == 4, "40 receipts in parts of 10"


@case("commit_wait.delays_s", {"commit_wait": {"delays_s": [0.07]}})
def _cw_delays(a: Run, b: Run) -> None:
    assert {"cw50", "cw100"} <= a.prefixes() and "cw70" in b.prefixes(), "a part series per Δ"
    assert "cw50" not in b.prefixes()


@case("commit_wait.max_fraction", {"commit_wait": {"max_fraction": 0}},
      context={"commit_wait": {"delays_s": [0.5]}})  # fmt: skip
def _cw_fraction(a: Run, b: Run) -> None:
    assert "cw200" in a.prefixes() and "cw500" in b.prefixes(), "Δ scaled to 0.25 · 0.8 s or not"


# -- network


@case("network.profile", {"network": {"profile": "datacenter"}})
def _profile(a: Run, b: Run) -> None:
    assert a.delays_ns().mean() < _t(0.35) and b.delays_ns().mean() > _t(0.4), "datacenter"


@case("network.links{}.profile", {"network": {"links": {"coordinator~B": {"profile": "wan"}}}})
def _link_profile(a: Run, b: Run) -> None:
    assert b.delays_ns().min() >= _t(25) and b.delays_ns("C").max() < _t(25), "only B's is WAN"


@case("network.links{}.forward.delay", _fwd(delay={"dist": "constant", "delay_ms": 5.0}),
      context=_B_LINK)  # fmt: skip
def _fwd_delay(a: Run, b: Run) -> None:
    assert set(a.delays_ns()) == {0} and set(b.delays_ns()) == {_t(5)}, "constant 5 ms"


@case("network.links{}.forward.loss", _fwd(loss={"model": "bernoulli", "rate": 0.5}),
      context=_B_LINK)  # fmt: skip
def _fwd_loss(a: Run, b: Run) -> None:
    assert a.counts()["received"] == 40 and 5 < b.counts()["received"] < 35, "half lost"


@case("network.links{}.forward.reorder", _fwd(reorder=0.3, reorder_extra_ms=50.0),
      context=_B_LINK)  # fmt: skip
def _fwd_reorder(a: Run, b: Run) -> None:
    assert a.counts()["reordered"] == 0 and b.counts()["reordered"] > 0, "held ones overtaken"


@case("network.links{}.forward.reorder_extra_ms", _fwd(reorder_extra_ms=9.0),
      context=_merge(_B_LINK, _fwd(reorder=0.3)))  # fmt: skip
def _fwd_hold(a: Run, b: Run) -> None:
    assert a.delays_ns().max() == _t(1) and b.delays_ns().max() == _t(9), "the hold-back"


@case("network.links{}.forward.duplicate", _fwd(duplicate=0.5), context=_B_LINK)
def _fwd_dup(a: Run, b: Run) -> None:
    assert a.counts()["duplicates"] == 0 and b.counts()["duplicates"] > 5, "copies received"


@case("network.links{}.back.delay", _ntp_back(delay={"dist": "constant", "delay_ms": 4.0}),
      context=_B_NTP_LINK)  # fmt: skip
def _back_delay(a: Run, b: Run) -> None:
    err_a = float(np.median(_ntp_offset_error_ms(a)))
    err_b = float(np.median(_ntp_offset_error_ms(b)))
    assert _approx(err_a, 0.0, 0.1) and _approx(err_b, -2.0, 0.1), (
        "a 4 ms slower reply direction: θ off by half the asymmetry"
    )


@case("network.links{}.back.loss", _ntp_back(loss={"model": "bernoulli", "rate": 0.5}),
      context=_B_NTP_LINK)  # fmt: skip
def _back_loss(a: Run, b: Run) -> None:
    lost_a, lost_b = a.counts()["ntp_exchanges_lost"], b.counts()["ntp_exchanges_lost"]
    assert lost_a == 0 and lost_b > 3, "replies lost"


_EVENT_PATH_BACK = "events go forward only: the back direction of an event path changes nothing"


@case("network.links{}.back.reorder",
      {"network": {"links": {"coordinator~B": {"back": {"reorder": 0.3}}}}},
      context=_merge(_B_LINK, _fwd(reorder=0.3, reorder_extra_ms=50.0)))  # fmt: skip
def _back_reorder(a: Run, b: Run) -> None:
    assert np.array_equal(a.delays_ns(), b.delays_ns()), _EVENT_PATH_BACK


@case("network.links{}.back.reorder_extra_ms",
      {"network": {"links": {"coordinator~B": {"back": {"reorder_extra_ms": 9.0}}}}},
      context=_B_LINK)  # fmt: skip
def _back_hold(a: Run, b: Run) -> None:
    assert np.array_equal(a.delays_ns(), b.delays_ns()), _EVENT_PATH_BACK


@case("network.links{}.back.duplicate", _ntp_back(duplicate=0.5), context=_B_NTP_LINK)
def _back_dup(a: Run, b: Run) -> None:
    same = np.array_equal(a.col("B", "ntp", "offset_ns"), b.col("B", "ntp", "offset_ns"))
    assert same, "a duplicated reply is discarded as stale by the client: the same samples"


# -- faults: each kind's effect, then each field against a fault of a kind that takes it


@case("faults[].kind", _faults(_STEP), label="clock_step")
def _kind_step(a: Run, b: Run) -> None:
    assert abs(_step_at(a)[1]) < _t(1) and _approx(_step_at(b)[1], _t(5), 1_000), "5 ms step"


@case("faults[].kind", _faults(_STROBE), label="clock_strobe")
def _kind_strobe(a: Run, b: Run) -> None:
    assert _strobe_flips(a) == 0 and _strobe_flips(b) >= 5, "2 ms up and down every 50 ms"


@case("faults[].kind", _faults(_RATE), label="clock_rate")
def _kind_rate(a: Run, b: Run) -> None:
    assert _gained_ns(b) - _gained_ns(a) > _t(0.1), "300 ppm faster after 1.2 s"


@case("faults[].kind", _faults(_OUTAGE), label="ntp_outage")
def _kind_outage(a: Run, b: Run) -> None:
    gap_a, gap_b = np.diff(_ntp_t1(a)).max(), np.diff(_ntp_t1(b)).max()
    assert gap_a < _t(300) and gap_b > _t(900), "no sample during the outage"


@case("faults[].kind", _faults(_FALSE), label="ntp_falseticker")
def _kind_false(a: Run, b: Run) -> None:
    assert _approx(float(np.abs(_ntp_offset_error_ms(a)).max()), 0.0, 0.1)
    assert _approx(float(_ntp_offset_error_ms(b).max()), 10.0, 0.1), "θ 10 ms off"


@case("faults[].kind", _faults(_LOSS), context=_LAN_B, label="link_loss")
def _kind_loss(a: Run, b: Run) -> None:
    got_a, got_b = a.counts()["received"], b.counts()["received"]
    assert got_a == 40 and 20 <= got_b <= 30, "0.3 s of 20 ms events lost"


@case("faults[].at_s", _faults({**_STEP, "at_s": 1.6}), context=_faults(_STEP))
def _at(a: Run, b: Run) -> None:
    assert _approx(_step_at(a)[0], _t(1400), _t(25))
    assert _approx(_step_at(b)[0], _t(1600), _t(25)), "the step moves to 1.6 s"


@case("faults[].node", _faults({**_STEP, "node": "C"}), context=_faults(_STEP))
def _node(a: Run, b: Run) -> None:
    assert abs(_step_at(a, "C")[1]) < _t(1), "C does not step"
    assert _approx(_step_at(b, "C")[1], _t(5), 1_000), "C steps instead of B"


@case("faults[].delta_ms", _faults({**_STEP, "delta_ms": -3.0}), context=_faults(_STEP))
def _delta_ms(a: Run, b: Run) -> None:
    assert _approx(_step_at(b)[1], _t(-3), 1_000), "a −3 ms step"


@case("faults[].delta_ppm", _faults({**_RATE, "delta_ppm": -300.0}), context=_faults(_RATE))
def _delta_ppm(a: Run, b: Run) -> None:
    assert _gained_ns(b) < 0 < _gained_ns(a), "slower instead of faster"


@case(
    "faults[].ramp_s", _faults({**_RATE, "ramp_s": 0.4}), context=_merge(_free_b(), _faults(_RATE))
)
def _ramp(a: Run, b: Run) -> None:
    for run, ramp_s in ((a, 0.0), (b, 0.4)):
        t, got = _terms_ns(run)
        u = np.maximum(t / NS_PER_S - 1.2, 0.0)  # s since the change
        # Δf·u (a step) or Δf·u²/(2R) during the ramp, Δf·(u − R/2) after it; Δf in ns/s
        during = u * u / (2 * ramp_s) if ramp_s else u
        want = 300_000 * np.where(u < ramp_s, during, u - ramp_s / 2)
        assert np.abs(got - want).max() <= 2, "the phase integrates the ramped frequency"
    assert (_terms_ns(b)[1] < _terms_ns(a)[1] - 1_000).any(), "slower to gain than a step"


@case("faults[].period_ms", _faults({**_STROBE, "period_ms": 200}), context=_faults(_STROBE))
def _period(a: Run, b: Run) -> None:
    assert _strobe_flips(b) < _strobe_flips(a), "fewer flips with a longer period"


@case("faults[].duration_s", _faults({**_OUTAGE, "duration_s": 0.5}), context=_faults(_OUTAGE))
def _fault_duration(a: Run, b: Run) -> None:
    gap_a, gap_b = np.diff(_ntp_t1(a)).max(), np.diff(_ntp_t1(b)).max()
    assert gap_b < gap_a - _t(300), "a shorter outage"


@case("faults[].server", _faults({**_FALSE, "offset_ms": 50.0, "server": 2}),
      context=_merge({"ntp": {"servers": 3}}, _faults({**_FALSE, "offset_ms": 50.0})))  # fmt: skip
def _server(a: Run, b: Run) -> None:
    assert _rejected_server(a) == {"ntp-server"} and _rejected_server(b) == {"ntp-server-2"}, (
        "selection rejects the lying server"
    )


@case("faults[].how", _faults({**_OUTAGE, "how": "drop"}), context=_faults(_OUTAGE))
def _how(a: Run, b: Run) -> None:
    assert a.counts()["ntp_failed_polls"] > b.counts()["ntp_failed_polls"], (
        "a dropped request waits out the timeout: fewer polls fail"
    )


@case("faults[].offset_ms", _faults({**_FALSE, "offset_ms": -4.0}), context=_faults(_FALSE))
def _offset(a: Run, b: Run) -> None:
    assert _approx(float(_ntp_offset_error_ms(b).min()), -4.0, 0.1), "θ −4 ms off"


@case("faults[].path", _faults({**_LOSS, "path": "coordinator~C"}),
      context=_merge(_LAN_BC, _faults(_LOSS)))  # fmt: skip
def _path(a: Run, b: Run) -> None:
    assert a.counts("C")["received"] == 40 and b.counts("B")["received"] == 40
    assert a.counts("B")["received"] < 35 and b.counts("C")["received"] < 35, "C's path instead"


HONOURED_KEYS = [k for k, v in SPEC_KEYS.items() if v == "honoured"]
REFUSED_KEYS = [k for k, v in SPEC_KEYS.items() if v.startswith("refused: ")]


def perturbation_check(case: Case, sim: Simulator) -> None:
    """Simulate BASE + context with and without the change; assert the case's effect."""
    base = _merge(BASE, case.context or {})
    before = sim(base)
    after = sim(_merge(base, case.change))
    assert before.error is None, f"{case.key}: the base spec failed: {before.error}"
    if "ready_timeout" not in case.key:
        assert after.error is None, f"{case.key}: the changed spec failed: {after.error}"
    case.check(before, after)


# -- the tests ---------------------------------------------------------------------------------


def test_every_spec_key_is_in_the_table() -> None:
    keys = spec_keys()
    assert missing_keys(SPEC_KEYS) == [], "spec keys missing from sim/keys.py: SPEC_KEYS"
    assert sorted(set(SPEC_KEYS) - set(keys)) == [], "SPEC_KEYS has keys the spec no longer has"
    for k, v in SPEC_KEYS.items():
        head, _, reason = v.partition(": ")
        assert v == "honoured" or (head in ("refused", "n/a") and reason and "\n" not in v), k


def test_every_honoured_key_has_a_perturbation_case() -> None:
    assert sorted(set(HONOURED_KEYS) - {c.key for c in CASES.values()}) == []
    assert all(c.key in HONOURED_KEYS for c in CASES.values())


@pytest.mark.parametrize("case_id", list(CASES))
def test_honoured_key_changes_the_traces(case_id: str, sim: Simulator) -> None:
    perturbation_check(CASES[case_id], sim)


_REFUSED_VALUE = {
    "network.links{}.forward.rate_mbps": _fwd(rate_mbps=10.0),
    "network.links{}.back.rate_mbps": _ntp_back(rate_mbps=10.0),
}


@pytest.mark.parametrize("key", REFUSED_KEYS)
def test_refused_key_is_refused_naming_it(key: str, tmp_path: Path) -> None:
    spec = from_dict(_merge(BASE, _REFUSED_VALUE[key]))
    with pytest.raises(SimError) as e:
        check_simulable(spec)
    msg = str(e.value)
    concrete = key.replace("{}", '["coordinator~B"]' if "forward" in key else '["B~ntp-server"]')
    assert concrete in msg and "\n" not in msg
    with pytest.raises(SimError):
        simulate(spec, tmp_path)
    assert check_simulable(from_dict(BASE)) is None  # the default is not refused


def test_reorder_on_ntp_paths_holds_exchanges_back(tmp_path: Path) -> None:
    """Reorder hold-back on the NTP path, as the link emulator applies it: about half the
    replies come 20 ms late (one exchange a poll, so each sample is one exchange), and a
    lossy profile everywhere simulates instead of being refused."""
    links = {"*~ntp-server": {"back": {"reorder": 0.5, "reorder_extra_ms": 20.0}}}
    spec = from_dict(_merge(BASE, {"network": {"links": links}, "ntp": {"burst": 1},
                                   "workload": {"events": 600}}))  # fmt: skip
    assert refusals(spec) == []
    res = simulate(spec, tmp_path / "held")
    delay = read_parts(res.node_dir("B"), "ntp").column("delay_ns").to_pylist()
    held = sum(d > 20_000_000 for d in delay)
    assert len(delay) > 40 and 0.3 < held / len(delay) < 0.7, (held, len(delay))
    assert all(d < 21_000_000 for d in delay)  # held once at most: 20 ms + the path
    lossy = from_dict(_merge(BASE, {"network": "lossy"}))
    assert refusals(lossy) == []
    check_simulable(lossy)


# -- companions: the checks can fail -----------------------------------------------------------


def test_a_new_spec_key_is_reported() -> None:
    """A key added to the model and not to the table, or dropped from the table, is named."""

    class Grown(ExperimentSpec):
        jitter_ms: float = 0.0

    assert missing_keys(SPEC_KEYS, Grown) == ["jitter_ms"]
    table = dict(SPEC_KEYS)
    del table["ntp.poll_s"]
    assert missing_keys(table) == ["ntp.poll_s"]


def test_a_simulator_ignoring_poll_s_fails_its_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Make the simulator's node drop ``ntp.poll_s`` (use the default): its check fails."""
    init = NodeSim.__init__

    def ignoring(self: NodeSim, spec: ExperimentSpec, *a: Any, **kw: Any) -> None:
        spec = spec.model_copy(update={"ntp": spec.ntp.model_copy(update={"poll_s": 1.0})})
        init(self, spec, *a, **kw)

    monkeypatch.setattr(NodeSim, "__init__", ignoring)
    with pytest.raises(AssertionError, match="samples follow the poll interval"):
        perturbation_check(CASES["ntp.poll_s"], Simulator(tmp_path))


def test_a_simulator_ignoring_discipline_fails_its_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 15's bug: nodes run free whatever ``discipline`` says. Its check fails."""
    import skewlab.clocks.node as clocks_node

    monkeypatch.setattr(clocks_node, "make_discipline", lambda _profile, **_kw: None)
    with pytest.raises(AssertionError, match="starts converged"):
        perturbation_check(CASES["nodes[].discipline"], Simulator(tmp_path))


def test_refusals_are_one_line_each() -> None:
    rate = {"rate_mbps": 5.0}
    net = {"profile": "lossy", "links": {"coordinator~B": {"forward": rate, "back": rate}}}
    spec = from_dict(_merge(BASE, {"network": net}))
    why = refusals(spec)
    assert len(why) == 2 and all("\n" not in w for w in why)  # the lossy profile simulates
    assert sim_keys.summary()["refused"] == len(REFUSED_KEYS)
