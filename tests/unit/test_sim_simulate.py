"""Virtual-time simulation of a whole experiment: determinism, the run's trace schema, truth
relations of every row, and the analysis running unchanged on the folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skewlab.analysis import analyze
from skewlab.clocks.node import node_oscillator
from skewlab.node.patterns import effective_commit_wait_ms
from skewlab.sim.simulate import SimError, simulate
from skewlab.spec import ExperimentSpec, from_dict
from skewlab.trace import load_receipts, read_parts, receipt_schema, send_schema


def _spec(seed: int = 3) -> ExperimentSpec:
    return from_dict({
        "seed": seed,
        "workload": {"events": 150, "interval_ms": 20},
        "ntp": {"poll_s": 1.0},
        "run": {"warmup_s": 1.0},
        "nodes": [
            {"name": "coordinator", "role": "coordinator", "offset_ms": 1, "drift_ppm": 10,
             "discipline": "free"},
            {"name": "B", "offset_ms": 3, "drift_ppm": 40, "wander_ppb": 5, "discipline": "free"},
            {"name": "C", "offset_ms": -2, "drift_ppm": -25, "discipline": "free"},
        ],
        "network": {"links": {"coordinator~C": {"profile": "lossy"}}},
        "faults": [{"kind": "clock_step", "node": "B", "at_s": 4.0, "delta_ms": 2.0}],
    })  # fmt: skip


def _tables(root: Path) -> dict[str, pa.Table]:
    out = {}
    for d in sorted((root / "traces").iterdir()):
        if d.name == "_links":  # one whole file per link
            for f in sorted(d.glob("*.parquet")):
                out[f"{d.name}/{f.stem}"] = pq.read_table(f)
            continue
        for prefix in sorted({p.name.rsplit("-", 1)[0] for p in d.glob("*.parquet")}):
            out[f"{d.name}/{prefix}"] = read_parts(d, prefix)
    return out


def test_same_seed_same_traces_other_seed_differs(tmp_path: Path) -> None:
    a = simulate(_spec(), tmp_path / "a")
    b = simulate(_spec(), tmp_path / "b")
    c = simulate(_spec(seed=4), tmp_path / "c")
    ta, tb, tc = _tables(a.root), _tables(b.root), _tables(c.root)
    assert set(ta) == set(tb) and any(k.endswith("/events") for k in ta)
    assert "_links/coordinator~C" in ta  # the lossy event path's link trace, deterministic too
    for k in ta:
        assert ta[k].equals(tb[k]), k
    assert not ta["B/events"].equals(tc["B/events"])


def test_traces_follow_the_schema_and_truth(tmp_path: Path) -> None:
    spec = _spec()
    res = simulate(spec, tmp_path)
    meta = res.read_json(res.metadata_path)
    assert meta["launcher"] == "simulate" and meta["truth_available"] is True
    # what the analysis knows about sources comes from here, as for a launcher's run
    assert meta["sources"] == {n: {"bounded": n in ("truetime", "clockbound", "skewlab")}
                               for n in spec.sources}  # fmt: skip
    sends = read_parts(res.node_dir("coordinator"), "events", send_schema(spec.sources))
    assert sends.schema.equals(send_schema(spec.sources), check_metadata=False)
    assert sends.num_rows == spec.workload.events
    st = sends.column("truth_ns").to_numpy()
    assert (np.diff(st) == 20_000_000).all()  # the interval schedule, exactly
    t0 = meta["t0_ns"]
    for w in ("B", "C"):
        rec = read_parts(res.node_dir(w), "events", receipt_schema(spec.sources))
        assert rec.schema.equals(receipt_schema(spec.sources), check_metadata=False)
        ids = rec.column("event_id").to_numpy().astype(np.int64)
        truth = rec.column("truth_ns").to_numpy()
        assert (np.diff(truth) >= 0).all()  # arrival order
        assert (truth > st[ids]).all()  # nothing arrives before it is sent
        osc = node_oscillator(spec, w, t0)
        local = rec.column("local_ns").to_numpy()
        for i in range(0, rec.num_rows, 13):
            assert local[i] == osc.local_at(int(truth[i]))
        sent_local = sends.column("local_ns").to_numpy()[ids]
        assert (rec.column("send_local_ns").to_numpy() == sent_local).all()
        counts = res.read_json(res.node_counts_path(w))
        assert counts["received"] == rec.num_rows == spec.workload.events - counts["lost"]
        for s in ("truetime", "clockbound", "skewlab"):
            lo = rec.column(f"{s}_earliest_ns").to_numpy()
            hi = rec.column(f"{s}_latest_ns").to_numpy()
            assert (lo <= hi).all()
        # the lossy link to C drops some events; loopback to B none
        assert (counts["lost"] > 0) == (w == "C")
    joined = load_receipts(res.node_dir("B"), spec.sources)
    for d in effective_commit_wait_ms(spec):  # every receipt re-evaluated at every Δ
        assert joined.column(f"skewlab_cw{d}_earliest_ns").null_count == 0
        assert (joined.column(f"cw{d}_age_ns").to_numpy() >= d * 1_000_000).all()
    stats = analyze(res, make_figures=False)
    sk = stats["summary"]["skewlab"]
    assert stats["truth_available"] and sk["coverage"]["n"] > 0
    assert stats["workers"]["B"]["accounting"]["received"] == spec.workload.events


def test_host_service_sources_are_refused(tmp_path: Path) -> None:
    spec = ExperimentSpec(sources=["system", "chrony"])
    with pytest.raises(SimError, match="chrony"):
        simulate(spec, tmp_path)
    assert not any(tmp_path.iterdir()) if tmp_path.exists() else True


def test_a_worker_without_ntp_in_time_fails_the_run(tmp_path: Path) -> None:
    """As a node process fails its warmup: worker B's path to the server is cut for 5 s, longer
    than its warmup and ready timeout; the coordinator's is not."""
    spec = from_dict({
        "workload": {"events": 50, "interval_ms": 20},
        "run": {"warmup_s": 0.5, "ready_timeout_s": 1.0},
        "ntp": {"poll_s": 0.5},
        "network": {"links": {"B~ntp-server": {"profile": "lan"}}},
        "faults": [{"kind": "link_loss", "path": "B~ntp-server", "at_s": 0, "duration_s": 5}],
    })  # fmt: skip
    with pytest.raises(SimError, match=r"worker B: no NTP answer within .* \(1\.5 s\)"):
        simulate(spec, tmp_path / "cut")
    assert not (tmp_path / "cut").exists()  # refused before anything is written
    longer = spec.model_copy(update={"run": spec.run.model_copy(update={"ready_timeout_s": 10})})
    simulate(longer, tmp_path / "waits")  # a longer ready timeout outlasts the cut


def test_emulated_paths_leave_link_traces_as_a_run_does(tmp_path: Path) -> None:
    """An emulated path gets the link trace its relay would write (traces/_links/), so the
    analysis reports requested vs achieved for simulated runs too: every event datagram on
    coordinator~C (lossy) and every NTP exchange on B~ntp-server (lan), with their fates."""
    spec = from_dict({
        "workload": {"events": 400, "interval_ms": 10},
        "network": {"links": {"coordinator~C": {"profile": "lossy"},
                              "B~ntp-server": {"profile": "lan"}}},
    })  # fmt: skip
    res = simulate(spec, tmp_path)
    stats = analyze(res, make_figures=False)
    net = stats["network"]
    assert set(net) == {"coordinator~C", "B~ntp-server"}  # loopback paths have no relay
    ev = net["coordinator~C"]["forward"]["achieved"]
    counts = res.read_json(res.node_counts_path("C"))
    assert ev["packets_in"] == 400 and ev["lost"] == counts["lost"] > 0
    assert ev["duplicates"] == counts["duplicates"]
    ntp = net["B~ntp-server"]
    b = res.read_json(res.node_counts_path("B"))
    assert ntp["forward"]["achieved"]["packets_in"] == b["ntp_exchanges"]
    assert ntp["back"]["achieved"]["packets_in"] == b["ntp_exchanges"] - b["ntp_exchanges_lost"]
    req = ntp["forward"]["requested"]
    assert req["dist"] == spec.network.resolve("B~ntp-server").forward.delay.dist
