"""Parameter sweeps (``skewlab sweep SWEEP_FILE``): a grid of experiment variants, run in
simulation (or real time), in parallel, resumable, with one combined table and figures.

A sweep file (TOML/YAML/JSON)::

    name = "rate-vs-poll"
    base = "experiment.toml"          # optional; relative to the sweep file; default spec if absent
    [set]                              # optional fixed overrides (dotted paths)
    "workload.events" = 200
    [grid]                             # every combination is one cell
    "workload.interval_ms" = [5, 20, 50]
    "ntp.poll_s" = [1, 4]
    "nodes[1].drift_ppm" = [0, 40]
    workers = [2, 4]                   # special: number of workers (nodes cloned from the last)

Paths are dotted keys into the spec with ``[i]`` for list items (``nodes[1].drift_ppm``);
``network`` takes a profile name; ``sources`` a list. Each cell is a results folder
``OUT/<name>/cell-NNN-<key>/`` with a ``cell.json`` (its parameters, mode and key) and, once
analysed, a ``completed`` marker. The key is a digest of the cell's whole resolved spec and its
mode (simulated or real), so a rerun reuses a completed cell only when both are unchanged: a new
fixed setting, base file or ``--real`` gives new cells (folders of other settings stay, unused).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skewlab.spec import ExperimentSpec, SpecError, from_dict, load_mapping
from skewlab.store import check_name, write_json_atomic

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
MARKER = "completed"
WORKERS_KEY = "workers"


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at a dotted path (``nodes[1].drift_ppm``) of a spec dict, in place."""
    steps: list[str | int] = [m.group(1) if m.group(1) is not None else int(m.group(2))
                              for m in _STEP.finditer(path)]  # fmt: skip
    if not steps:
        raise SpecError(f"empty parameter path {path!r}")
    cur: Any = data
    for a, b in itertools.pairwise(steps):
        if isinstance(a, int):
            if not isinstance(cur, list) or a >= len(cur):
                raise SpecError(f"{path}: no item [{a}]")
            cur = cur[a]
        else:
            if not isinstance(cur, dict):
                raise SpecError(f"{path}: {a!r} is not inside a table")
            cur = cur.setdefault(a, [] if isinstance(b, int) else {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or last >= len(cur):
            raise SpecError(f"{path}: no item [{last}]")
        cur[last] = value
    else:
        if not isinstance(cur, dict):
            raise SpecError(f"{path}: not inside a table")
        cur[last] = value


def with_workers(data: dict[str, Any], n: int) -> None:
    """Make the spec have ``n`` workers: keep the first n, or clone the last one (W2, W3...)."""
    nodes = data["nodes"]
    workers = [x for x in nodes if x.get("role", "worker") == "worker"]
    others = [x for x in nodes if x.get("role", "worker") != "worker"]
    if n < 2:
        raise SpecError("workers: at least two are needed")
    keep = workers[:n]
    names = {x["name"] for x in nodes}
    i = len(keep)
    while len(keep) < n:
        new = copy.deepcopy(workers[-1])
        while f"W{i}" in names:
            i += 1
        new["name"] = f"W{i}"
        names.add(new["name"])
        new["port"] = 0
        keep.append(new)
    data["nodes"] = others + keep


def load_sweep(path: Path) -> dict[str, Any]:
    """Read and check a sweep file; ``base`` is resolved against the file's folder."""
    data = load_mapping(path, "sweep")
    unknown = set(data) - {"name", "base", "set", "grid"}
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {sorted(unknown)}; use name, base, set, grid")
    grid = data.get("grid") or {}
    if not isinstance(grid, dict) or not grid:
        raise SpecError(f"{path}: grid: a table of parameter → list of values is needed")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise SpecError(f"{path}: grid.{k}: a non-empty list of values is needed")
    if data.get("base"):
        data["base"] = str((path.parent / data["base"]).resolve())
    if "name" in data:  # becomes OUT/<name>/: one plain folder name, checked before use
        try:
            check_name(str(data["name"]), f"{path}: name")
        except ValueError as e:
            raise SpecError(str(e)) from None
    data.setdefault("name", path.stem)
    return data


def _base_data(sweep: dict[str, Any]) -> dict[str, Any]:
    """The base spec as a plain dict: ``base_spec`` (a resolved spec carried to a Slurm task),
    else the ``base`` file, else the default spec."""
    from skewlab import spec as spec_mod

    if sweep.get("base_spec") is not None:
        return copy.deepcopy(sweep["base_spec"])
    base = spec_mod.load(sweep["base"]) if sweep.get("base") else ExperimentSpec()
    return json.loads(base.to_json())


def _cell(sweep: dict[str, Any], base_data: dict[str, Any],
          params: dict[str, Any]) -> ExperimentSpec:  # fmt: skip
    """One cell's validated spec: the base, the fixed settings, then its grid values."""
    data = copy.deepcopy(base_data)
    for k, v in (sweep.get("set") or {}).items():
        set_path(data, k, v)
    for k, v in params.items():
        if k == WORKERS_KEY:
            with_workers(data, int(v))
        elif k == "network" and isinstance(v, str):
            data["network"] = {"profile": v, "links": data["network"].get("links", {})}
        else:
            set_path(data, k, v)
    label = ", ".join(f"{k}={v}" for k, v in params.items())
    return from_dict(data, f"sweep cell ({label})")


def cells(sweep: dict[str, Any]) -> list[tuple[dict[str, Any], ExperimentSpec]]:
    """Every grid combination: (its parameters, its validated spec)."""
    base_data = _base_data(sweep)
    keys = list(sweep["grid"])
    out = []
    for combo in itertools.product(*(sweep["grid"][k] for k in keys)):
        params = dict(zip(keys, combo, strict=True))
        out.append((params, _cell(sweep, base_data, params)))
    return out


def cell_at(sweep: dict[str, Any], index: int) -> tuple[dict[str, Any], ExperimentSpec]:
    """The grid combination number ``index`` (the order of ``cells``), built alone: what a
    Slurm array task runs without building every other cell."""
    keys = list(sweep["grid"])
    sizes = [len(sweep["grid"][k]) for k in keys]
    total = 1
    for n in sizes:
        total *= n
    if not 0 <= index < total:
        raise SpecError(f"sweep {sweep.get('name')!r}: no cell {index} (it has {total})")
    params: dict[str, Any] = {}
    rest = index
    for k, n in zip(reversed(keys), reversed(sizes), strict=True):  # last key varies fastest
        rest, j = divmod(rest, n)
        params[k] = sweep["grid"][k][j]
    params = {k: params[k] for k in keys}
    return params, _cell(sweep, _base_data(sweep), params)


def mode_name(real: bool) -> str:
    """How a cell runs: ``real`` (local launcher) or ``simulate`` (virtual time)."""
    return "real" if real else "simulate"


def cell_key(spec: ExperimentSpec, real: bool, launch: dict[str, Any] | None = None) -> str:
    """A digest of everything a cell's result depends on: its whole resolved spec (every
    setting, defaults included, seed included), its mode and, for a real cell whose nodes a
    cluster file places (Slurm sweeps), that placement and clock setting (``launch``)."""
    doc: dict[str, Any] = {"mode": mode_name(real), "spec": json.loads(spec.to_json())}
    if launch is not None:
        doc["launch"] = launch
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cell_dir(out: Path, index: int, key: str) -> Path:
    """The cell's folder: its grid index and the first 12 hex digits of its ``cell_key``."""
    return out / f"cell-{index:03d}-{key[:12]}"


def is_completed(d: Path, key: str) -> bool:
    """Whether the cell folder ``d`` holds a finished cell of exactly this key (marker present,
    cell.json names the key, row written)."""
    if not (d / MARKER).exists() or not (d / "row.json").exists():
        return False
    try:
        return bool(json.loads((d / "cell.json").read_text()).get("key") == key)
    except (OSError, ValueError, AttributeError):
        return False


def _run_cell(args: tuple[str, str, dict[str, Any], bool, bool, str],
              cluster: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run and analyse one cell (in a pool process, or a Slurm array task); write its marker
    when done. ``cluster``: a real cell's nodes go where this cluster file places them."""
    spec_json, folder, params, real, figures, key = args
    spec = ExperimentSpec.model_validate_json(spec_json)
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    (d / MARKER).unlink(missing_ok=True)
    doc = {"parameters": params, "mode": mode_name(real), "key": key}
    if cluster is not None:
        doc["launcher"] = "slurm"
    write_json_atomic(d / "cell.json", doc)
    if cluster is None:
        stats = execute_cell(spec, d, real, figures)
    else:
        stats = execute_cell(spec, d, real, figures, cluster)
    row = table_row(params, stats)
    write_json_atomic(d / "row.json", row)
    (d / MARKER).write_text("ok\n")
    return row


def execute_cell(spec: ExperimentSpec, d: Path, real: bool, figures: bool,
                 cluster: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run one cell's experiment into ``d/run`` (a new folder each time) and analyse it: in
    virtual time, or real time with the local launcher, or — with ``cluster``, inside a Slurm
    allocation — with the Slurm deploy launcher placing nodes as the cluster file says."""
    import shutil

    from skewlab.analysis import analyze
    from skewlab.store import ResultsDir

    run_dir = d / "run"
    if run_dir.exists():  # a cell cut short before its marker: start it afresh
        shutil.rmtree(run_dir)
    if real and cluster is not None:
        from skewlab.deploy.slurm import SlurmLauncher

        run_dir.mkdir(parents=True)  # the pre-flight checks every host sees it
        SlurmLauncher(spec, d, cluster, results_dir=run_dir).run()
    elif real:
        from skewlab.deploy.local import LocalLauncher

        LocalLauncher(spec, d, results_dir=run_dir).run()
    else:
        from skewlab.sim.simulate import simulate

        simulate(spec, d, results_dir=run_dir)
    return dict(analyze(ResultsDir(run_dir), make_figures=figures))


def table_row(params: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """One flat row: the cell's parameters, then ``<source>.<metric>`` headline numbers."""
    from skewlab.sim.validate import headline

    row: dict[str, Any] = {f"param:{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                           for k, v in params.items()}  # fmt: skip
    for s, ms in headline(stats).items():
        for k, v in ms.items():
            row[f"{s}.{k}"] = v
    for s, sm in stats["summary"].items():
        for size, r in (sm.get("window_ambiguous_rate") or {}).items():
            row[f"{s}.window_ambiguous_rate_{size}ms"] = None if r is None else r["rate"]
    return row


@dataclass
class SweepPlan:
    """A sweep resolved against its folder: every cell's parameters, spec, key and folder, the
    rows of cells already completed (reused) and the grid indices still to run. Both launchers
    (local pool, Slurm array) start from it and end with ``finish_sweep``."""

    sweep: dict[str, Any]
    root: Path
    real: bool
    grid: list[tuple[dict[str, Any], ExperimentSpec]]
    keys: list[str]
    dirs: list[Path]
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    todo: list[int] = field(default_factory=list)
    launch: dict[str, Any] | None = None  # a real cell's placement by a cluster file (Slurm)

    @property
    def skipped(self) -> int:
        return len(self.grid) - len(self.todo)

    def cell_args(self, i: int, figures: bool) -> tuple[str, str, dict[str, Any], bool, bool, str]:
        """What ``_run_cell`` takes for cell ``i``."""
        params, spec = self.grid[i]
        return (spec.to_json(), str(self.dirs[i]), params, self.real, figures, self.keys[i])


def plan_sweep(sweep_file: Path, out: Path, real: bool = False,
               launch: dict[str, Any] | None = None) -> SweepPlan:  # fmt: skip
    """Load the sweep file, build every cell and sort them into completed and to run."""
    sweep = load_sweep(sweep_file)
    root = out / sweep["name"]
    root.mkdir(parents=True, exist_ok=True)
    grid = cells(sweep)
    keys = [cell_key(spec, real, launch) for _p, spec in grid]
    plan = SweepPlan(sweep, root, real, grid, keys,
                     [cell_dir(root, i, k) for i, k in enumerate(keys)], launch=launch)  # fmt: skip
    for i, (d, key) in enumerate(zip(plan.dirs, keys, strict=True)):
        if is_completed(d, key):
            plan.rows[i] = json.loads((d / "row.json").read_text())
        else:
            plan.todo.append(i)
    return plan


def finish_sweep(plan: SweepPlan, figures: bool = True) -> list[str]:
    """sweep.csv, sweep.parquet and the figures from every cell's row (all must be there).
    Without ``figures``, the figures an earlier pass drew are removed: they may not show this
    table."""
    ordered = [plan.rows[i] for i in range(len(plan.grid))]
    files = write_table(plan.root, ordered)
    if figures:
        files += sweep_figures(plan.root, ordered, list(plan.sweep["grid"]))
    else:
        for old in (plan.root / "figures").glob("vs_*.png"):
            old.unlink()
    return files


def run_sweep(
    sweep_file: Path,
    out: Path,
    jobs: int = 2,
    real: bool = False,
    figures: bool = False,
    progress: Any = None,
    sweep_figures: bool = True,
) -> dict[str, Any]:
    """Run every cell not yet completed, then write sweep.csv, sweep.parquet and figures
    (``figures``: each cell's own; ``sweep_figures``: the sweep's vs_<parameter> figures)."""
    say = progress or (lambda _s: None)
    plan = plan_sweep(sweep_file, out, real)
    root, rows, skipped = plan.root, plan.rows, plan.skipped
    todo = [(i, plan.cell_args(i, figures)) for i in plan.todo]
    say(f"sweep {plan.sweep['name']}: {len(plan.grid)} cells, {skipped} already done, "
        f"{len(todo)} to run")  # fmt: skip
    if real:
        jobs = 1  # real runs share the host clock and CPU: one at a time keeps them honest
    try:
        _run_cells(todo, rows, jobs, say)
    except KeyboardInterrupt as e:  # SIGINT/SIGTERM: running cells stopped, none started after
        for _i, a in todo:
            mark_interrupted(Path(a[1]))
        e.results = root  # type: ignore[attr-defined]
        e.cells_done = skipped + sum(1 for i, _a in todo if i in rows)  # type: ignore[attr-defined]
        raise
    files = finish_sweep(plan, sweep_figures)
    ordered = [rows[i] for i in range(len(plan.grid))]
    return {"root": str(root), "rows": ordered, "ran": len(todo), "skipped": skipped,
            "files": files}  # fmt: skip


def _run_cells(todo: list[tuple[int, Any]], rows: dict[int, Any], jobs: int, say: Any) -> None:
    """Run the cells of ``todo`` (one at a time or in a pool), filling ``rows`` as they end."""
    from skewlab.interrupts import pool

    if jobs <= 1:
        for i, a in todo:
            rows[i] = _run_cell(a)
            say(f"cell {i} done")
        return
    _import_cell_code(any(a[3] for _i, a in todo), any(a[4] for _i, a in todo))
    with pool(jobs) as ex:  # forked: every pool process starts with that code imported
        futures = {ex.submit(_run_cell, a): i for i, a in todo}
        for f in as_completed(futures):
            rows[futures[f]] = f.result()
            say(f"cell {futures[f]} done")


def _import_cell_code(real: bool, figures: bool) -> None:
    """Import what ``execute_cell`` runs, once, before the pool forks: each pool process
    imported it again (~1 CPU-s on a slow host, per process and sweep)."""
    import importlib

    mods = ["skewlab.analysis.run", "skewlab.sim.validate"]
    mods.append("skewlab.deploy.local" if real else "skewlab.sim.simulate")
    if figures:
        mods.append("skewlab.analysis.figures")
    for m in mods:
        importlib.import_module(m)


def mark_interrupted(d: Path) -> None:
    """A cell cut short (no marker): its run's metadata says ``interrupted``, not ``running``."""
    meta_path = d / "run" / "metadata.json"
    if (d / MARKER).exists() or not meta_path.exists():
        return
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(meta, dict) and meta.get("status") == "running":
        meta["status"] = "interrupted"
        write_json_atomic(meta_path, meta)


def write_table(root: Path, rows: list[dict[str, Any]]) -> list[str]:
    """sweep.csv and sweep.parquet: one row per cell."""
    import polars as pl

    df = pl.DataFrame(rows, infer_schema_length=None)
    df.write_csv(root / "sweep.csv")
    df.write_parquet(root / "sweep.parquet")
    return ["sweep.csv", "sweep.parquet"]


# The terminal table's metric columns: (row key suffix, header, scale, format); every source of
# every cell gets its own line, so no source is dropped for width. ns are shown in ms.
TABLE_METRICS = (
    ("received_fraction", "recv %", 100.0, "{:.2f}"),
    ("mae_ns", "MAE ms", 1e-6, "{:.3f}"),
    ("causality_violation_rate", "causal viol %", 100.0, "{:.2f}"),
    ("ordering_wrong_rate", "order wrong %", 100.0, "{:.2f}"),
    ("coverage", "cover %", 100.0, "{:.2f}"),
    ("half_width_mean_ns", "half-width ms", 1e-6, "{:.3f}"),
)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The parameters and headline metrics, one line per cell and source (— where a metric
    does not apply), for the terminal; the full table is sweep.csv."""
    if not rows:
        return "(no cells)"
    params = [k for k in rows[0] if k.startswith("param:")]
    sources = list(dict.fromkeys(k.split(".", 1)[0] for r in rows for k in r
                                 if "." in k and not k.startswith("param:")))  # fmt: skip
    heads = [k.removeprefix("param:") for k in params] + ["source"]
    heads += [h for _k, h, _s, _f in TABLE_METRICS]
    body = []
    for r in rows:
        for s in sources:
            line = [str(r.get(k)) for k in params] + [s]
            for key, _h, scale, fmt in TABLE_METRICS:
                v = r.get(f"{s}.{key}")
                line.append("—" if v is None else fmt.format(v * scale))
            body.append(line)
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(heads)]
    out = ["  ".join(h.rjust(n) for h, n in zip(heads, w, strict=True))]
    out += ["  ".join(c.rjust(n) for c, n in zip(b, w, strict=True)) for b in body]
    return "\n".join(out)


def sweep_figures(root: Path, rows: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """One figure per swept parameter: every source's headline metrics against it (mean over
    the other parameters' values, one line per source)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figdir = root / "figures"
    figdir.mkdir(exist_ok=True)
    metric_names = sorted({k.split(".", 1)[1] for k in rows[0] if "." in k
                           and not k.startswith("param:")})  # fmt: skip
    sources = sorted({k.split(".", 1)[0] for k in rows[0] if "." in k
                      and not k.startswith("param:")})  # fmt: skip
    out = []
    for key in keys:
        pk = f"param:{key}"
        xs = list(dict.fromkeys(r[pk] for r in rows))
        numeric = all(isinstance(x, (int, float)) for x in xs)
        shown = [m for m in metric_names
                 if any(r.get(f"{s}.{m}") is not None for r in rows for s in sources)]  # fmt: skip
        ncols = 2 if len(shown) > 1 else 1
        nrows = -(-len(shown) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 3.2 * nrows), squeeze=False)
        for ax in axes.flat[len(shown) :]:
            ax.set_visible(False)
        for ax, metric in zip(axes.flat, shown, strict=False):
            for s in sources:
                ys = []
                for x in xs:
                    v = [r[f"{s}.{metric}"] for r in rows
                         if r[pk] == x and r.get(f"{s}.{metric}") is not None]  # fmt: skip
                    scale = 1e-6 if metric.endswith("_ns") else 1.0  # ns shown in ms
                    ys.append(scale * sum(v) / len(v) if v else float("nan"))
                pos = xs if numeric else list(range(len(xs)))
                ax.plot(pos, ys, marker="o", label=s)
            if not numeric:
                ax.set_xticks(range(len(xs)), [str(x) for x in xs])
            title = f"{metric.removesuffix('_ns')} (ms)" if metric.endswith("_ns") else metric
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(key, fontsize=8)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=7, ncols=3)
        fig.tight_layout()
        fig.set_layout_engine(None)  # else savefig draws the whole figure twice (its placeholder)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        p = figdir / f"vs_{safe}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        out.append(str(p.relative_to(root)))
    return out
