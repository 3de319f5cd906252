"""Opening a results folder for reading: the one check every reader runs first (the analysis,
``export``, ``compare``), so a damaged or incomplete folder ends in one line naming the file at
fault instead of a traceback from deep inside a reader.

Checked: the folder and its spec.json (a JSON object naming exactly one coordinator), the JSON
files beside the traces (metadata.json, every node's counts.json, stats.json when asked for),
every Parquet part under ``traces/`` (read whole through ``trace.read_part``: truncated, emptied
or corrupted parts are found here), and each node's events parts against its counts.json
(``rows`` and ``parts``, which docs/TRACES.md says must agree: a deleted part is an error, not
a loss).

A reader that reads every part's data anyway (the analysis) opens the folder with
``data=False``: only the parts' footers are checked up front (framing, version, columns, rows),
and when its own read fails it calls ``check_traces`` to name the damaged part — the same
message, without reading the traces twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skewlab.store import ResultsDir
from skewlab.trace import TraceError, check_part, part_files, read_part


class ResultsError(Exception):
    """A results folder that cannot be read as it is; the message is one line naming the file."""


def read_json(path: Path, what: str = "JSON file") -> Any:
    """The JSON value stored at ``path``; a missing or unreadable file is a ResultsError."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: missing {what}") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read: {e.strerror or e}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: not valid JSON ({str(e)[:120]})") from None


def _object(path: Path, what: str) -> dict[str, Any]:
    value = read_json(path, what)
    if not isinstance(value, dict):
        raise ResultsError(f"{path}: a JSON object is expected, got {type(value).__name__}")
    return value


def open_results(
    path: Path, *, traces: bool = True, stats: bool = False, data: bool = True
) -> ResultsDir:
    """``path`` as a ``ResultsDir`` once everything a reader needs is checked (``traces``:
    every part and the counts, each part read whole, or only its footer if not ``data``;
    ``stats``: a readable stats.json). Raises ResultsError."""
    if not path.exists():
        raise ResultsError(f"{path}: no such results folder")
    if not path.is_dir():
        raise ResultsError(f"{path}: not a folder (a results folder is expected)")
    res = ResultsDir(path)
    if not res.spec_path.is_file():
        raise ResultsError(f"{path} is not a skewlab results folder (no spec.json)")
    spec = _object(res.spec_path, "experiment spec")
    nodes = spec.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise ResultsError(f"{res.spec_path}: nodes: a list of tables is expected")
    if sum(1 for n in nodes if n.get("role") == "coordinator") != 1:
        raise ResultsError(f"{res.spec_path}: exactly one coordinator node is expected")
    if res.metadata_path.exists():
        _object(res.metadata_path, "metadata")
    if traces:
        check_traces(res, data=data)
    if stats:
        if not res.stats_path.is_file():
            raise ResultsError(f"{path} has no stats.json: run skewlab analyze {path}")
        _object(res.stats_path, "analysis")
    return res


def check_traces(res: ResultsDir, *, data: bool = True) -> dict[str, int]:
    """Read every Parquet part under ``traces/`` (only its footer if not ``data``) and hold each
    node's events parts against its counts.json; return each node's events rows. Raises
    ResultsError naming the file."""
    traces = res.root / "traces"
    rows_in: dict[Path, int] = {}
    if traces.is_dir():
        for p in sorted(traces.rglob("*.parquet")):
            if p.name.startswith("."):
                continue  # a writer's temporary, renamed into place only when whole
            try:
                rows_in[p] = read_part(p).num_rows if data else check_part(p)
            except TraceError as e:
                raise ResultsError(f"{e} (a damaged trace part: restore or remove it)") from None
            except OSError as e:
                raise ResultsError(f"{p}: cannot read: {e.strerror or e}") from None
    rows: dict[str, int] = {}
    for node in res.nodes_with_traces():
        files = part_files(res.node_dir(node), "events")
        n = sum(rows_in[p] for p in files)  # every complete part was checked above
        rows[node] = n
        cp = res.node_counts_path(node)
        if not cp.exists():
            continue  # a node that never reached its exit (crash): its parts are all there is
        counts = _object(cp, "node counts")
        want_rows, want_parts = counts.get("rows"), counts.get("parts")
        if (
            isinstance(want_rows, int)
            and isinstance(want_parts, int)
            and (want_rows != n or want_parts != len(files))
        ):
            raise ResultsError(
                f"{cp}: {want_rows} event rows in {want_parts} part(s) were written, "
                f"{res.node_dir(node)} holds {n} in {len(files)}: a part is missing or altered"
            )
    return rows
