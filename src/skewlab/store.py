"""The results folder layout: the only module that knows file paths inside a results folder.

results/<experiment-id>/
  spec.json            the full, resolved experiment specification
  metadata.json        versions, host, timing, exit status of every node
  traces/<node>/events-NNNNNN.parquet   receipts (workers) or sends (coordinator), in batches
  traces/<node>/ntp-NNNNNN.parquet      the node's NTP samples
  traces/<node>/cw<Δms>-NNNNNN.parquet  a worker's commit-wait re-evaluations at T+Δ
  traces/<node>/counts.json             the node's final counts (written at its exit)
  logs/<node>.log                       the node process's output
  csv/<node>/<table>.csv                `skewlab export --csv` (default place)
  traces/_links/<from>~<to>.parquet     the link emulator's per-datagram trace of one path
  traces/_nemesis/<actor>-NNNNNN.parquet  faults applied (one row per start/end)
  stats.json           the analysis (rerun with `skewlab analyze`)
  figures/*.png        300 DPI figures
  report.md            the human-readable report
"""

from __future__ import annotations

import codecs
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from skewlab.timebase import host_ns

# A name a user gives that becomes a folder (import-legacy --name, a sweep's name): one path
# component, never "..", never hidden, no separator. Experiment names (spec.py) are a subset.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
NAME_RULE = "1-100 of A-Z a-z 0-9 _ . - starting with a letter or digit"


def check_name(name: str, what: str) -> str:
    """``name`` if it is safe as one folder name inside a base folder; else ValueError saying
    ``what`` it is and the rule (checked before the name becomes a path)."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"{what}: {name!r} is not a usable folder name ({NAME_RULE})")
    return name


def new_experiment_id(name: str, now: float | None = None) -> str:
    if now is None:
        now = host_ns() // 1_000_000_000
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"{name}-{stamp}"


@dataclass(frozen=True)
class ResultsDir:
    root: Path

    @classmethod
    def create(cls, base: Path, experiment_id: str, exact: bool = False) -> ResultsDir:
        """A new folder ``base/experiment_id`` (``-2``, ``-3``... appended if it exists; with
        ``exact``, FileExistsError instead: a name the user chose is never changed)."""
        base.mkdir(parents=True, exist_ok=True)
        path = base / experiment_id
        if exact:
            path.mkdir()
            return cls(path)
        n = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                n += 1
                path = base / f"{experiment_id}-{n}"
        return cls(path)

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.json"

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.json"

    @property
    def stats_path(self) -> Path:
        return self.root / "stats.json"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    def node_dir(self, node: str) -> Path:
        return self.root / "traces" / node

    def node_counts_path(self, node: str) -> Path:
        """A node's final counts, written by the node itself (survives a lost launcher)."""
        return self.node_dir(node) / "counts.json"

    @property
    def csv_dir(self) -> Path:
        return self.root / "csv"

    def nodes_with_traces(self) -> list[str]:
        d = self.root / "traces"
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("_"))

    @property
    def links_dir(self) -> Path:
        """Link emulator traces; ``_`` cannot start a node name, so it never clashes with one."""
        return self.root / "traces" / "_links"

    def link_trace_path(self, path: str) -> Path:
        """traces/_links/<path>.parquet: one emulated link (``<from>~<to>``), both directions."""
        return self.links_dir / f"{path}.parquet"

    def link_traces(self) -> dict[str, Path]:
        """Every stored link trace, by path name."""
        d = self.links_dir
        return {p.stem: p for p in sorted(d.glob("*.parquet"))} if d.is_dir() else {}

    @property
    def nemesis_dir(self) -> Path:
        """traces/_nemesis/: the faults applied during the run (skewlab.nemesis.record)."""
        return self.root / "traces" / "_nemesis"

    def write_json(self, path: Path, data: Any) -> None:
        write_json_atomic(path, data)

    def read_json(self, path: Path) -> Any:
        return json.loads(path.read_text())


_JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def json_bytes(data: Any) -> bytes:
    """``data`` as the JSON files of a results folder hold it: indented by two spaces, keys in
    their order, a final newline, strings in printable ASCII (other characters as ``\\u`` escapes,
    exactly as ``json.dumps`` writes them), a value JSON has no type for as ``str(value)``; what
    ``json.loads`` reads back is ``data``. Encoded by orjson: json.dumps falls back to its
    pure-Python encoder whenever it indents, ~55-65 ms for a 0.7 MB stats.json, where this takes
    ~3 ms (floats are written in orjson's notation, 0.00004 for 4e-05: the same value). What
    orjson refuses (an integer beyond 64 bits, a lone surrogate) is written by json.dumps."""
    try:
        raw = orjson.dumps(data, default=str, option=_JSON_OPTIONS)
    except orjson.JSONEncodeError:
        return (json.dumps(data, indent=2, default=str) + "\n").encode()
    # what json.dumps escapes and orjson does not: characters beyond ASCII (through the codec
    # error handler below, which only runs on them) and DEL (only ever inside a string)
    if not raw.isascii():
        raw = raw.decode().encode("ascii", _JSON_ESCAPES)
    if b"\x7f" in raw:
        raw = raw.replace(b"\x7f", b"\\u007f")
    return raw


def _json_escape(e: UnicodeError) -> tuple[str, int]:
    assert isinstance(e, UnicodeEncodeError)
    return json.dumps(e.object[e.start : e.end])[1:-1], e.end  # \uXXXX, pairs beyond the BMP


_JSON_ESCAPES = "skewlab-json-escape"
codecs.register_error(_JSON_ESCAPES, _json_escape)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all: into a hidden temporary of this writer's own
    (several processes may write one file at once: Slurm tasks sharing a node's disk), then
    renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json_bytes(data)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:  # the usual permissions (umask), unlike mkstemp's 0600
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
