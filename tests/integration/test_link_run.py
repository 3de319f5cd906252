"""`skewlab run --network wan` end to end: relays on every path, achieved delays in stats.json."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from skewlab.net.distributions import NS_PER_MS
from skewlab.net.profiles import PROFILES
from skewlab.store import ResultsDir
from tests.conftest import run_skewlab

CONFIG = """
name = "netwan"
[workload]
events = 60
interval_ms = 5
[run]
warmup_s = 0  # ready at the first NTP sample
"""


def test_run_with_wan_profile_reports_achieved_delays(tmp_path: Path) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "results"
    r = run_skewlab("run", "-c", str(cfg), "--network", "wan", "-o", str(out), "--no-figures",
                    "-q", timeout=180)  # fmt: skip
    assert r.returncode == 0, r.stderr
    [run_dir] = list(out.iterdir())
    res = ResultsDir(run_dir)
    paths = set(res.link_traces())
    assert paths == {"coordinator~B", "coordinator~C", "coordinator~ntp-server",
                     "B~ntp-server", "C~ntp-server"}  # fmt: skip
    assert "coordinator~B" in r.stdout  # the printed link table

    stats = json.loads(res.stats_path.read_text())
    net = stats["network"]
    wan = PROFILES["wan"]
    assert wan is not None
    for path in paths:
        for d, want in (("forward", wan.forward), ("back", wan.back)):
            req, ach = net[path][d]["requested"], net[path][d]["achieved"]
            assert req["mean_ms"] == want.delay.mean_ns() / NS_PER_MS
            if not ach.get("delivered"):
                continue  # e.g. no back traffic on an event path
            # never faster than the distribution's floor
            assert ach["min_ms"] >= want.delay.min_ms
            # the achieved figures are computed from the stored trace
            t = pq.read_table(res.link_trace_path(path)).to_pydict()
            want_dir = 0 if d == "forward" else 1
            i = [k for k, f in enumerate(t["fate"]) if f == 0 and t["direction"][k] == want_dir]
            mean = sum(t["truth_out_ns"][k] - t["truth_in_ns"][k] for k in i) / len(i)
            assert abs(ach["mean_ms"] - mean / NS_PER_MS) < 1e-6

    # every event reached the workers through a relay: the receipts are at least the floor late
    acc = stats["workers"]["B"]
    assert acc  # the usual analysis is still there
    ev = net["coordinator~B"]["forward"]["achieved"]
    assert ev["packets_in"] >= 60
