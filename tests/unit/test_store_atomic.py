"""store.write_json_atomic: a file is replaced whole, also when several writers replace it at
once (two Slurm array tasks on one node's disk writing a sweep's skewlab-sweep.json: with one
shared temporary name, one writer's rename took the other's file away, FileNotFoundError); and
store.json_bytes, its encoding (orjson), reads back as what was written, in json.dumps's
layout."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from skewlab.store import json_bytes, write_json_atomic

_SCALARS = st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.text()
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_concurrent_writers_each_replace_the_file_whole(tmp_path: Path) -> None:
    p = tmp_path / "skewlab-sweep.json"
    docs = [{"writer": i, "pad": "x" * 5000} for i in range(64)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda d: write_json_atomic(p, d), docs))  # raises if a rename fails
    assert json.loads(p.read_text()) in docs  # one writer's document, whole
    assert sorted(x.name for x in tmp_path.iterdir()) == ["skewlab-sweep.json"]  # no leftovers


@settings(max_examples=100, deadline=None)
@given(_DOCS)
@example({"\x7f": None, "≤ Δ": ["😀", "\x1f", "\ud800"], "": {}})  # DEL, astral, surrogate
def test_json_bytes_is_json_dumps_layout_ascii(doc: object) -> None:
    """Without floats, byte for byte what ``json.dumps(indent=2)`` wrote (non-ASCII characters
    and control characters escaped alike, lone surrogates included, by the fallback)."""
    assert json_bytes(doc) == (json.dumps(doc, indent=2) + "\n").encode()


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False, allow_infinity=False)
                       | st.lists(st.floats(allow_nan=False, allow_infinity=False))))  # fmt: skip
def test_json_bytes_floats_read_back_exactly(doc: dict) -> None:
    assert json.loads(json_bytes(doc)) == doc


def test_json_bytes_odd_values(tmp_path: Path) -> None:
    """Int keys become strings, a Path or any other object its str(), an integer beyond 64 bits
    (orjson refuses it) is written by json.dumps; the file holds ASCII only."""
    doc = {1: tmp_path, "big": 1 << 70, "t": "≤ Δ 😀"}
    raw = json_bytes(doc)
    assert raw.isascii()
    assert json.loads(raw) == {"1": str(tmp_path), "big": 1 << 70, "t": "≤ Δ 😀"}
    write_json_atomic(tmp_path / "x.json", {"t": "≤"})
    assert (tmp_path / "x.json").read_bytes() == b'{\n  "t": "\\u2264"\n}\n'
