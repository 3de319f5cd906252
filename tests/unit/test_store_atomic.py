"""store.write_json_atomic: a file is replaced whole, also when several writers replace it at
once (two Slurm array tasks on one node's disk writing a sweep's skewlab-sweep.json: with one
shared temporary name, one writer's rename took the other's file away, FileNotFoundError)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skewlab.store import write_json_atomic


def test_concurrent_writers_each_replace_the_file_whole(tmp_path: Path) -> None:
    p = tmp_path / "skewlab-sweep.json"
    docs = [{"writer": i, "pad": "x" * 5000} for i in range(64)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda d: write_json_atomic(p, d), docs))  # raises if a rename fails
    assert json.loads(p.read_text()) in docs  # one writer's document, whole
    assert sorted(x.name for x in tmp_path.iterdir()) == ["skewlab-sweep.json"]  # no leftovers
