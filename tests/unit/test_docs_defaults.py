"""Every default docs/CONFIG.md states equals the model's default (issue 20, item 10).

The key table (``| key | default | meaning |``) is parsed: each backticked key (``a.b``; later
keys of a comma list share the first one's table: ``ntp.poll_s``, ``ntp.burst``; ``[[nodes]]``
``x`` is a node's field) is paired with its comma-separated default (JSON, ``none``, or a bare
word as a string) and compared with ``ExperimentSpec()`` (``NodeSpec`` for node fields). Rows
whose default is a description rather than a value are listed in DESCRIBED, each checked by
hand below, so a new row cannot slip past.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from skewlab.spec import ExperimentSpec, NodeSpec

CONFIG = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"
TICKS = re.compile(r"`([^`]*)`")
MISSING = object()

# key cell → why its default is prose (checked in test_described_defaults)
DESCRIBED = {
    "`[[nodes]]` `name`, `role`, `offset_ms`, `drift_ppm`, `port`": "the default nodes",
    "`workload.mode`": "cycle, or interval when interval_ms is set",
    "`[[faults]]`": "none: an empty schedule",
    "`network`": "a profile name or a table",
    "`source_params.<source>`": "per source",
    "`source_params.<source>.optional`": "per source",
}


def rows() -> list[tuple[str, str]]:
    """(key cell, default cell) of every row of CONFIG.md's key table."""
    out, inside = [], False
    for line in CONFIG.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:3] == ["key", "default", "meaning"]:
            inside = True
            continue
        if inside and not line.startswith("|"):
            inside = False
        if inside and len(cells) >= 3 and not set(cells[0]) <= {"-", " "}:
            out.append((cells[0], cells[1]))
    return out


def keys(cell: str) -> list[str]:
    """Dotted spec paths of a key cell (``[[nodes]].x`` for a node's field)."""
    names = TICKS.findall(cell)
    if names and names[0] == "[[nodes]]":
        return [f"[[nodes]].{n}" for n in names[1:]]
    out, table = [], ""
    for n in names:
        if "." in n:
            table = n.rsplit(".", 1)[0]
            out.append(n)
        else:
            out.append(f"{table}.{n}" if table else n)
    return out


def value(text: str) -> Any:
    t = text.strip().strip("`").strip()
    if t == "none":
        return None
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        return t


def defaults(cell: str) -> list[Any]:
    """A default cell's values: comma-separated (commas inside backticks, quotes or brackets
    are part of a value)."""
    parts, depth, cur, tick, quote = [], 0, "", False, False
    for ch in cell:
        tick ^= ch == "`"
        quote ^= ch == '"'
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0 and not tick and not quote:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [value(p) for p in [*parts, cur]]


def model_default(key: str) -> Any:
    if key.startswith("[[nodes]]."):
        field = key.split(".", 1)[1]
        dumped = NodeSpec(name="x").model_dump(mode="json")
        return dumped.get(field, MISSING)
    cur: Any = ExperimentSpec().model_dump(mode="json")
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def test_every_stated_default_is_the_models() -> None:
    wrong, checked = [], 0
    for kcell, dcell in rows():
        if kcell in DESCRIBED:
            continue
        ks, vs = keys(kcell), defaults(dcell)
        assert ks and len(ks) == len(vs), f"CONFIG.md row {kcell!r}: {len(ks)} keys, {vs}"
        for k, v in zip(ks, vs, strict=True):
            m = model_default(k)
            assert m is not MISSING, f"CONFIG.md names {k}, which the spec does not have"
            checked += 1
            if m != v:
                wrong.append(f"{k}: CONFIG.md says {v!r}, the model's default is {m!r}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 30


def test_described_defaults() -> None:
    table = dict(rows())
    assert set(DESCRIBED) <= set(table), set(DESCRIBED) - set(table)
    spec = ExperimentSpec()
    nodes = {n.name: (n.role, n.offset_ms, n.drift_ppm, n.port) for n in spec.nodes}
    assert nodes == {"coordinator": ("coordinator", 1.0, 10.0, 0), "B": ("worker", 3.0, 40.0, 0),
                     "C": ("worker", -2.0, -25.0, 0)}  # fmt: skip
    assert "+1 ms/+10 ppm, B +3 ms/+40 ppm, C −2 ms/−25 ppm" in table[next(iter(DESCRIBED))]
    assert spec.faults == [] and table["`[[faults]]`"] == "none"
    assert spec.network.profile == "loopback" and value(table["`network`"]) == "loopback"
    assert spec.source_params == {} and value(table["`source_params.<source>`"]) == {}
    assert value(table["`source_params.<source>.optional`"]) is False
    assert spec.workload.mode is None and spec.workload.interval_ms is None  # → cycle
    assert table["`workload.mode`"].startswith("`cycle`")
