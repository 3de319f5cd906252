"""Measured truth against exact truth (issue 18 acceptance): a real `skewlab run` with emulated
clocks on this host and truth probes on, each node's NTP and probe path on another network
profile — loopback, lan, datacenter and the asymmetric wan — so one run covers all four. Every
receipt and send gets a measured truth interval that contains its exact true time (coverage
1.0), and every bounded count brackets the exact count of the same claims."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import polars as pl
import pytest

from skewlab.analysis.truth import node_intervals, ppb_of, segments
from skewlab.store import ResultsDir
from skewlab.trace import TRUTH_PREFIX, part_files
from tests.conftest import run_skewlab

CONFIG = """
name = "measured"
[[nodes]]
name = "coordinator"
role = "coordinator"
offset_ms = 1.0
drift_ppm = 10.0
[[nodes]]
name = "B"           # an undisciplined clock: +3 ms, +40 ppm and wander
offset_ms = 3.0
drift_ppm = 40.0
wander_ppb = 20.0
discipline = "free"
[[nodes]]
name = "C"
offset_ms = -2.0
drift_ppm = -25.0
[[nodes]]
name = "D"
offset_ms = 0.5
drift_ppm = 5.0
discipline = "free"
[workload]
events = 300          # 3 s of broadcast: D's steps fall inside it or while it probes
interval_ms = 10
[run]
warmup_s = 0.5
[truth]
measured = true
rate_hz = 20
[network]
profile = "loopback"           # the events' paths, and D's NTP and probes
[network.links."B~ntp-server"]
profile = "lan"
[network.links."C~ntp-server"]
profile = "datacenter"
[network.links."coordinator~ntp-server"]
profile = "wan"                # asymmetric: 30 ms out, 20 ms back
# D's clock steps while it probes: a small step (of the order of a truth interval's width)
# and a large one back; the step gap in the truth trace shows both
[[faults]]
kind = "clock_step"
node = "D"
at_s = 5.0
delta_ms = 0.09
[[faults]]
kind = "clock_step"
node = "D"
at_s = 6.0
delta_ms = -3.0
"""
PATH_PROFILE = {"B": "lan", "C": "datacenter", "D": "loopback", "coordinator": "wan"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ResultsDir:
    tmp = tmp_path_factory.mktemp("measured-truth")
    cfg = tmp / "exp.toml"
    cfg.write_text(CONFIG)
    out = tmp / "results"
    r = run_skewlab("run", "-c", str(cfg), "-o", str(out), "--no-figures", "-q", timeout=240)
    assert r.returncode == 0, r.stderr + r.stdout
    [d] = list(out.iterdir())
    return ResultsDir(d)


def _judged(tree: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every Judged structure in a stats subtree, with where it is."""
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(tree, dict):
        if "certainly_wrong" in tree:
            return [(path, tree)]
        for k, v in tree.items():
            out += _judged(v, f"{path}/{k}")
    return out


def test_measured_truth_contains_exact_truth_on_every_path(run: ResultsDir) -> None:
    stats = json.loads(run.stats_path.read_text())
    mt = stats["measured_truth"]
    assert mt["available"] and mt["exact_truth"] and stats["truth_available"]
    meta = json.loads(run.metadata_path.read_text())
    ref = meta["measured_truth"]
    assert ref["enabled"] and ref["reference"] and ref["prober"]["rate_hz"] == 20
    assert mt["reference"] == ref
    assert ppb_of(mt["max_drift_ppm"]) == 500_000  # the default, 500 ppm
    for node, profile in PATH_PROFILE.items():
        n = mt["nodes"][node]
        assert n["exchanges"] > 0, node
        assert n["inconsistent_exchange_pairs"] == 0, (node, n)
        cov = n["exact_coverage"]
        # every interval holds the exact truth; only D's clock steps (instants around a step
        # get no interval)
        assert cov["k"] == n["intervals"] > 0, (node, profile, cov)
        assert cov["n"] == n["intervals"] + n["no_interval"]
        if node != "D":
            assert n["no_interval"] == 0 and n["steps"] == 0, (node, n)
        assert part_files(run.node_dir(node), TRUTH_PREFIX)
        counts = json.loads(run.node_counts_path(node).read_text())
        assert counts["truth_exchanges"] == n["exchanges"]
    assert mt["nodes"]["D"]["steps"] >= 1  # at least one step fell while D was probing
    # the wan path's half-width is its round trip's (~25 ms), loopback's far below a ms
    assert mt["nodes"]["coordinator"]["half_width_ns"]["p50_ns"] > 10e6
    assert mt["nodes"]["D"]["half_width_ns"]["p50_ns"] < 2e6
    assert "decided_by" in mt["nodes"]["D"]


def test_traces_recomputed_contain_truth(run: ResultsDir) -> None:
    """Independently of the analysis's frames: every receipt's and send's (local, truth) pair
    from the events traces against the node's truth trace."""
    from skewlab.analysis.truth import Exchanges

    for node in PATH_PROFILE:
        t = pl.read_parquet([str(f) for f in part_files(run.node_dir(node), TRUTH_PREFIX)])
        ex = Exchanges(*[t.get_column(c).to_numpy() for c in (
            "t1_ns", "t2_ns", "t3_ns", "t4_ns", "step_gap_t1_ns", "step_gap_t4_ns",
            "step_gap_unc_ns")])  # fmt: skip
        ev = pl.read_parquet([str(f) for f in part_files(run.node_dir(node), "events")])
        lo, hi, ok, _ = node_intervals(ev.get_column("local_ns").to_numpy(),
                                       segments(ex, ppb_of(500.0)), ppb_of(500.0))  # fmt: skip
        truth = ev.get_column("truth_ns").to_numpy()
        assert ok.all() or node == "D", node
        assert np.all(((lo <= truth) & (truth <= hi))[ok]), node


def test_bounded_counts_bracket_exact_counts(run: ResultsDir) -> None:
    stats = json.loads(run.stats_path.read_text())
    mt = stats["measured_truth"]
    items = [*_judged(mt["sources"]), ("causality_truth", mt["causality_truth"])]
    assert len(items) > 20
    for where, j in items:
        assert j["exact_wrong"] is not None, where
        assert j["certainly_wrong"] <= j["exact_wrong"] <= j["possibly_wrong"], (where, j)
        assert j["certainly_right"] + j["certainly_wrong"] + j["undecided"] == j["claims"]
        for r in ("certainly_wrong_rate", "possibly_wrong_rate", "undecided_rate"):
            if j["claims"]:
                assert j[r]["method"] == "block" and j[r]["ci95"] is not None, (where, r)
    # exact counts are the analysis's own: coverage misses and window errors, pooled
    for s, src in mt["sources"].items():
        per = [stats["workers"][w]["sources"][s] for w in ("B", "C", "D")]
        if src["coverage"] is not None:
            bq = [p["bound_quality"]["coverage"] for p in per]
            assert src["coverage"]["claims"] == sum(b["n"] for b in bq)
            assert src["coverage"]["exact_wrong"] == sum(b["n"] - b["k"] for b in bq)
        for size, w in src["windows"].items():
            assert w["point"]["exact_wrong"] == sum(p["windows"][size]["wrong"] for p in per)
        for d, c in (src["commit_wait"] or {}).items():  # re-evaluated at T+Δ
            re = [p["commit_wait"]["reevaluated"][d]["coverage"] for p in per]
            assert c["coverage"]["claims"] == sum(r["n"] for r in re), (s, d)
            assert c["coverage"]["exact_wrong"] == sum(r["n"] - r["k"] for r in re), (s, d)
        if src["kind"] == "bounded":
            assert src["commit_wait"], s  # the run re-evaluates every bounded source
        mae = src["mae"]
        assert mae["lo_ns"] <= mae["exact_ns"] <= mae["hi_ns"], (s, mae)
    # window agreement's truth_agree, bounded: exactly the analysis's own (system always answers)
    for size, j in mt["truth_agreement"].items():
        ag = stats["window_agreement"]["system"][size]
        assert ag["decided"] == ag["events"] == j["claims"], size
        assert ag["truth_agree"]["k"] == j["claims"] - j["exact_wrong"], size
    # no receipt before its send, and the truth check says so with certainty for most
    ct = mt["causality_truth"]
    assert ct["certainly_wrong"] == 0 and ct["exact_wrong"] == 0


def test_an_external_reference(tmp_path_factory: pytest.TempPathFactory) -> None:
    """truth.reference = HOST:PORT: the probes go to that server (here an NTP server in this
    test's process, serving this host's clock), metadata.json names it, and measured truth still
    contains the exact truth."""
    from skewlab.ntp.server import NtpServer

    tmp = tmp_path_factory.mktemp("measured-truth-ext")
    with NtpServer("127.0.0.1", 0) as ref:
        cfg = tmp / "exp.toml"
        cfg.write_text(f'name = "extref"\n[workload]\nevents = 40\ninterval_ms = 10\n'
                       f'[run]\nwarmup_s = 0\n[truth]\nmeasured = true\n'
                       f'reference = "127.0.0.1:{ref.port}"\n')  # fmt: skip
        out = tmp / "results"
        r = run_skewlab("run", "-c", str(cfg), "-o", str(out), "--no-figures", "-q",
                        timeout=180)  # fmt: skip
        answered = ref.counters["answered"]
    assert r.returncode == 0, r.stderr + r.stdout
    assert "measured truth: half-width p50/p99 µs coordinator " in r.stdout  # the summary
    [d] = list(out.iterdir())
    res = ResultsDir(d)
    meta = json.loads(res.metadata_path.read_text())
    assert meta["measured_truth"]["reference"] == f"127.0.0.1:{ref.port}"
    assert meta["measured_truth"]["reference_kind"].startswith("external")
    mt = json.loads(res.stats_path.read_text())["measured_truth"]
    total = sum(n["exchanges"] for n in mt["nodes"].values())
    assert 0 < total <= answered
    for node, n in mt["nodes"].items():
        cov = n["exact_coverage"]
        assert cov["k"] == cov["n"] == n["intervals"] > 0, (node, cov)
        counts = json.loads(res.node_counts_path(node).read_text())
        assert counts["truth_reference"] == f"127.0.0.1:{ref.port}"
