"""What every ``skewlab`` command shares: the one-line error, the progress line, the summary
table and loading an experiment with command-line overrides.

Kept apart from ``skewlab.cli`` (the package ``__init__``, which imports every command module
to register it) so the command modules can import these without an import cycle.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from skewlab.spec import ExperimentSpec


def fail(msg: str, code: int = 1) -> NoReturn:
    """Print ``skewlab: error: msg`` on stderr (one line) and exit with ``code``."""
    click.echo(f"skewlab: error: {msg}", err=True)
    sys.exit(code)


# Exit codes (README "Exit codes"): 0 ok, 1 the run or check failed, 2 bad input,
# 128 + signal (130 SIGINT, 143 SIGTERM) interrupted.
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


@contextmanager
def interrupts(after: Callable[[BaseException], str]) -> Iterator[None]:
    """The shared end of a long-running command on SIGINT or SIGTERM: the block is stopped by
    ``skewlab.interrupts.Interrupted`` (its cleanup runs: nodes stopped, traces flushed, status
    ``interrupted`` recorded), then one line ``skewlab: error: interrupted by SIG...; <after(e)>``
    (``e``: the exception, whose ``results`` names a partial folder when one was written) and
    exit 128 + signal."""
    from skewlab.interrupts import interruptible, signal_of

    try:
        with interruptible():
            yield
    except KeyboardInterrupt as e:
        sig = signal_of(e)
        fail(f"interrupted by {sig.name}; {after(e)}", sig.exit_code)


def interrupted_run(launcher: Any, progress: Progress | None = None) -> str:
    """What an interrupted launcher left: where, and in which state."""
    if progress is not None:
        progress.end()
    res = getattr(launcher, "results", None)
    if res is None:
        return "nothing was started"
    status = (getattr(launcher, "meta", None) or {}).get("status")
    if status == "completed":
        return f"the run completed, its analysis did not: skewlab analyze {res.root}"
    return f"every node process stopped; partial results in {res.root} (status interrupted)"


def interrupted_sim(e: BaseException, progress: Progress | None = None,
                    done: Path | None = None) -> str:  # fmt: skip
    """What an interrupted simulation left (``done``: its folder, if it had finished)."""
    if progress is not None:
        progress.end()
    if done is not None:
        return f"the simulation completed, its analysis did not: skewlab analyze {done}"
    where = getattr(e, "results", None)
    if where is None:
        return "nothing was written"
    return f"partial results in {where} (status interrupted)"


def analyse_results(
    res: Any, make_figures: bool = True, progress: Progress | None = None
) -> dict[str, Any]:
    """Analyse a results folder; a folder the reader refuses (skewlab.results.ResultsError:
    a damaged part, counts against rows, bad JSON) ends the command in one line, exit 2.
    ``progress`` shows each figure as it is drawn, then ends its line."""
    from skewlab.analysis import analyze
    from skewlab.results import ResultsError

    try:
        try:
            return dict(analyze(res, make_figures=make_figures, progress=progress))
        finally:  # before an error's one line too
            if progress is not None:
                progress.end()
    except ResultsError as e:
        fail(str(e), EXIT_BAD_INPUT)


def run_state_note(res: Any) -> str | None:
    """A line saying that the analysed run did not complete (still running, or its launcher
    was killed; failed; interrupted), from its metadata.json; None when it completed."""
    import json

    try:
        meta = json.loads(res.metadata_path.read_text())
    except (OSError, ValueError):
        return None
    status = meta.get("status") if isinstance(meta, dict) else None
    if status in (None, "completed"):
        return None
    why = {
        "running": "it is still running, or its launcher was killed",
        "interrupted": "it was interrupted",
        "failed": f"it failed ({meta.get('error') or 'see metadata.json'})",
    }.get(str(status), f"its status is {status!r}")
    return f"skewlab: note: {res.root}: {why}; the analysis covers only what was written"


def source_param_errors(per_source: Any, origin: str) -> list[str]:
    """Parameters no source takes (``source_params.<source>.<key>`` in a file, ``-p`` on a
    command line): each source accepts its constructor's named parameters and ``optional``;
    the constructors swallow any other keyword, so without this check a typo is ignored."""
    import inspect

    from skewlab.clocks.sources import SOURCES

    out = []
    for name, params in (per_source or {}).items():
        factory = SOURCES.get(name)
        if factory is None:
            out.append(f"{origin}: {name}: unknown clock source; known: {', '.join(SOURCES)}")
            continue
        sig = inspect.signature(factory).parameters.values()
        named = {p.name for p in sig if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is
                 p.KEYWORD_ONLY} - {"state"} | {"optional"}  # fmt: skip
        for key in params:
            if key not in named:
                out.append(f"{origin}: {name}.{key}: {name} has no parameter {key!r}; "
                           f"its parameters: {', '.join(sorted(named))}")  # fmt: skip
    return out


def load_spec(config: Path | None, events: int | None = None,
              seed: int | None = None) -> ExperimentSpec:  # fmt: skip
    """The experiment of ``config`` (default: the built-in one) with the command line's
    overrides applied through the same validation as a file's values (``spec.from_dict``); a
    bad file or value ends the command (exit 2) with one line naming the option and key."""
    import json

    from skewlab import spec as spec_mod

    given = {"--events": ("workload", "events", events), "--seed": (None, "seed", seed)}
    try:
        spec = spec_mod.load(config) if config else spec_mod.ExperimentSpec()
        flags = {f: v for f, v in given.items() if v[2] is not None}
        if flags:
            data = json.loads(spec.to_json())
            for table, key, value in flags.values():
                (data[table] if table else data)[key] = value
            origin = " ".join(f"{f} {v[2]}" for f, v in flags.items())
            spec = spec_mod.from_dict(data, origin)
    except spec_mod.SpecError as e:
        fail(str(e).replace("\n", "; "), EXIT_BAD_INPUT)
    if bad := source_param_errors(spec.source_params, f"{config or 'spec'}: source_params"):
        fail("; ".join(bad), EXIT_BAD_INPUT)
    return spec


class Progress:
    """One status line, rewritten in place on a terminal and printed sparingly otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def __call__(self, line: str) -> None:
        if not self.enabled:
            return
        from skewlab.timebase import monotonic_s

        if self.tty:
            pad = max(0, self._width - len(line))
            sys.stderr.write("\r" + line + " " * pad)
            sys.stderr.flush()
            self._width = len(line)
        else:
            now = monotonic_s()
            if now - self._last >= 2.0 or not line.startswith(("sent", "warmup", "figures")):
                click.echo(line, err=True)
                self._last = now

    def end(self) -> None:
        if self.enabled and self.tty and self._width:
            sys.stderr.write("\n")
            self._width = 0


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v / 1e6:8.3f}"


def _pct(r: dict[str, Any] | None) -> str:
    """A stats.json rate as a percentage; — when not applicable, unavailable or n = 0."""
    return "—" if not r or r.get("rate") is None else f"{100 * r['rate']:.2f}"


def summary_table(stats: dict[str, Any]) -> str:
    """Per worker and source: accounting, causality, error vs truth; for bounded sources also
    bound coverage and the share of causality decisions left ambiguous (in %)."""
    lines = []
    params = stats.get("parameters") or {}
    hosts: dict[str, list[str]] = {}
    for k, v in params.items():
        if k.startswith("nodes.") and k.endswith(".discipline"):
            hosts.setdefault(str(v), []).append(k[len("nodes.") : -len(".discipline")])
    if hosts:
        what = {"disciplined": "disciplined (an NTP daemon's servo slews the system clock)",
                "free": "free-running (nothing corrects the system clock)"}  # fmt: skip
        lines.append("hosts: " + "; ".join(f"{', '.join(n)} {what.get(d, d)}"
                                          for d, n in sorted(hosts.items())))  # fmt: skip
    hdr = f"{'worker':<8} {'source':<11} {'recv':>6} {'lost':>5} {'causal viol':>12} " \
          f"{'mean err ms':>12} {'p99 |err| ms':>13} {'max |err| ms':>13} " \
          f"{'cover %':>8} {'ambig %':>8}"  # fmt: skip
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for w, ws in stats["workers"].items():
        acc = ws["accounting"]
        for src, ss in ws["sources"].items():
            c, e = ss["causality"], ss["error_vs_truth"]
            viol = f"{c['violations']}/{c['decided']}"
            bq = ss.get("bound_quality") or {}
            amb = (c.get("bounded") or {}).get("ambiguous_rate")
            lines.append(
                f"{w:<8} {src:<11} {acc['received']:>6} {acc['lost']:>5} {viol:>12} "
                f"{_ms(e.get('mean_ns')):>12} {_ms(e.get('p99_abs_ns')):>13} "
                f"{_ms(e.get('max_abs_ns')):>13} {_pct(bq.get('coverage')):>8} {_pct(amb):>8}"
            )
    if mt := stats.get("measured_truth"):  # truth probes: the achieved truth half-width
        hw = ", ".join(f"{n} {x['half_width_ns']['p50_ns'] / 1e3:.1f}/"
                       f"{x['half_width_ns']['p99_ns'] / 1e3:.1f}"
                       for n, x in mt["nodes"].items() if x["half_width_ns"]["n"])  # fmt: skip
        lines.append(f"measured truth: half-width p50/p99 µs {hw or '— (no interval)'}; "
                     "bounded counts in report.md, 'Measured truth'")  # fmt: skip
    if et := event_time_table(stats):
        lines.append(et)
    return "\n".join(lines)


def event_time_table(stats: dict[str, Any]) -> str:
    """Per source (and bounded sources' latest bound): the late-event rate at each watermark
    delay and the smallest lossless delay, all workers merged (stats.json event_time)."""
    ev = stats.get("event_time")
    if not ev or not ev.get("available"):
        return ""
    st = ev["settings"]
    delays = [str(d) for d in st["delays_ms"]]
    lines = [f"\nevent time (all workers merged, {st['headline_window']}, lateness "
             f"{st['allowed_lateness_ms']} ms): late events % at watermark delay (ms)"]  # fmt: skip
    hdr = f"{'source':<20}" + "".join(f"{d:>8}" for d in delays) + f"{'lossless ms':>13}"
    lines += [hdr, "-" * len(hdr)]
    for s, variants in ev["summary"].items():
        for variant, x in variants.items():
            label = s if variant == "estimate" else f"{s} (latest)"
            rates = "".join(f"{_pct(x['delays'][d]['late']):>8}" for d in delays)
            lines.append(f"{label:<20}{rates}{_ms(x['lossless_delay_ns']):>13}")
    return "\n".join(lines)
