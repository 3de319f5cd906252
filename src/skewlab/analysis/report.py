"""report.md and a self-contained report.html (figures embedded as data URIs), from stats.json.

Both are rendered from one list of blocks, so they always say the same thing.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skewlab.analysis.stats_types import RATE_DEFINITIONS, SUMMARY_RATES, CostTotal, Rate, Stats
from skewlab.store import ResultsDir


@dataclass
class H:
    text: str
    level: int = 2


@dataclass
class P:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Fig:
    path: str  # relative to the results folder (PNG)
    caption: str


Block = H | P | Table | Fig

NA = "n/a"


def pct(r: Rate | None) -> str:
    """A rate as 'x.xx% [lo, hi] (k/n, n_eff m)'; n/a when unavailable or n = 0. n_eff: the
    independent trials the interval treats the n decisions as."""
    if not r or r.get("rate") is None:
        return NA if not r else f"— (0/{r['n']})"
    lo, hi = r["ci95"]
    eff = r.get("n_eff")
    tail = f", n_eff {eff:.0f}" if eff is not None and r.get("method") == "block" else ""
    return f"{100 * r['rate']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] ({r['k']}/{r['n']}{tail})"


def _block_s(stats: Stats) -> str:
    iv = stats["settings"].get("intervals")
    return f"{iv['block_ns'] / 1e9:.3g} s" if iv else NA


def ms(v: float | None) -> str:
    return NA if v is None else f"{v / 1e6:.3f}"


def cnt(v: int | None) -> str:
    return NA if v is None else str(v)


# For imported traces: each metric, the frame its readings come from, and what is available.
IMPORT_FRAMES = (
    (
        "causality (estimates and bounds)",
        "the coordinator's send reading (its clock) vs the worker's receipt reading (its clock), "
        "same source",
        "yes",
    ),
    (
        "ordering between workers",
        "worker a's vs worker b's receipt reading, same source",
        "claimed / ambiguous counts only",
    ),
    (
        "window assignment and agreement",
        "each worker's own receipt reading; agreement compares the workers' windows",
        "ambiguity and agreement only",
    ),
    ("coordination cost", "as ordering and windows", "coordinate only (no repairs)"),
    (
        "commit-wait",
        "the receipt interval's width (2ε) in the worker's frame",
        "yes (bounded sources)",
    ),
    ("error vs truth, bound coverage, correct / wrong", "true time", "no (n/a)"),
)


def _frames(stats: Stats) -> list[Block]:
    b: list[Block] = [H("Frames and availability")]
    b.append(
        P(
            "Causality compares the worker's receipt reading with the coordinator's send reading "
            "of the same source, each node in its own frame. Ordering compares two workers' "
            "readings of the same event. Window assignment uses the worker's own reading of its "
            "receipt. Truth is the host clock shared by every emulated node."
        )
    )
    if not stats["truth_available"]:
        b.append(
            P(
                "**True time is unavailable in these traces** (imported or recorded on real "
                "clocks). "
                "Every truth-based metric — error vs truth, bound coverage, causality truth check, "
                "correct/wrong ordering and window decisions, repairs — is reported as unavailable "
                "(n/a), never as 0. Frame-internal metrics (violations in the nodes' frames, "
                "ambiguity, agreement between workers, commit-wait) are reported."
            )
        )
        if stats.get("truth_unavailable_reason"):
            b.append(P(f"Reason: {stats['truth_unavailable_reason']}."))
    imp = stats.get("import")
    if imp:
        b.append(
            P(
                f"**Imported traces** ({imp.get('format', 'unknown format')}) from "
                f"`{imp.get('source_dir', '?')}`; no true time. Each source below is the legacy "
                "column named here; every reading is in its own node's frame (the legacy "
                "framework did not re-stamp anything)."
            )
        )
        b.append(
            Table(["source / column", "made from"], [[k, v] for k, v in imp["mapping"].items()])
        )
        b.append(Table(["metric", "frame", "available"], [list(r) for r in IMPORT_FRAMES]))
        b += _original_definitions(stats, imp)
    return b


def _original_definitions(stats: Stats, imp: dict) -> list[Block]:
    """Imported traces: the original analysis's own causality counts next to skewlab's
    frame-consistent ones, so a user reproduces what was published and sees the frames."""
    orig = imp.get("original_definitions")
    if not orig:
        return []
    rows = []
    for w, per in orig["workers"].items():
        for s, o in per.items():
            c = stats["workers"].get(w, {}).get("sources", {}).get(s, {}).get("causality") or {}
            rows.append([w, s, f"{o['violations']}/{o['compared']}", str(o["vs_send_time"]),
                         f"{c.get('violations', NA)}/{c.get('decided', NA)}"])  # fmt: skip
    return [
        H("The original framework's definitions"),
        P(
            f"Counted as the original analysis counted them — {orig['rule']}. skewlab compares "
            "only readings of the same source (each node in its own frame) and leaves a receipt "
            "undecided when the coordinator recorded no reading of that source; the column "
            "'vs send_time_ns' counts the receipts where the two definitions differ in what they "
            "compare."
        ),
        Table(
            [
                "worker",
                "source",
                "original: violations/compared",
                "vs send_time_ns",
                "skewlab: violations/decided",
            ],
            rows,
        ),
    ]


def _title(stats: Stats) -> list[Block]:
    p = stats["parameters"]
    kinds = ", ".join(f"{s} ({k})" for s, k in stats["source_kinds"].items())
    return [
        H(f"skewlab report — {stats['experiment_id']}", 1),
        P(
            f"Sources: {kinds}. Coordinator {stats['coordinator']['name']} sent "
            f"{stats['coordinator']['sent']} events to {len(stats['workers'])} workers. "
            f"Configuration key `{stats['config_key']}`, seed {p.get('seed', NA)}. Stats schema "
            f"version {stats['stats_version']}; rates carry 95% intervals as [low, high] "
            "(k/n, n_eff): over time blocks of "
            f"{_block_s(stats)} (receipts between two NTP samples share one clock error), "
            "n_eff = the independent trials the decisions are worth. Definitions: the "
            "Definitions section below; formulas: docs/METHODOLOGY.md in skewlab's sources "
            "(not in this results folder)."
        ),
        *_incomplete(stats),
    ]


def _incomplete(stats: Stats) -> list[Block]:
    """A run cut short says so first: fewer sends than the experiment planned."""
    planned = stats["parameters"].get("workload.events")
    sent = stats["coordinator"]["sent"]
    if not isinstance(planned, int) or sent >= planned:
        return []
    return [
        P(
            f"**Incomplete run: the coordinator sent {sent} of the {planned} planned events** "
            "(the run was interrupted or failed; metadata.json has its status). Every number "
            "below covers only those events."
        )
    ]


def _dashboard(stats: Stats) -> list[Block]:
    if "figures/summary_dashboard.png" not in stats.get("figures", []):
        return []
    return [Fig("figures/summary_dashboard.png", "Headline rates per source.")]


def _accounting(stats: Stats) -> list[Block]:
    keys = ("sent", "received", "lost", "unknown_events", "duplicate_rows")
    rows = [[w, *(str(ws["accounting"][k]) for k in keys)] for w, ws in stats["workers"].items()]
    header = ["worker", "sent", "received", "lost", "unknown", "duplicates"]
    return [H("Accounting"), Table(header, rows)]


def _readings(stats: Stats) -> list[Block]:
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            e, bq = ss["error_vs_truth"], ss["bound_quality"]
            cov = pct(bq["coverage"]) if bq and bq.get("available") else NA
            hw = ms(bq["half_width_ns"]["p50_ns"]) if bq else NA
            errs = [ms(e.get(k)) for k in ("mean_ns", "mae_ns", "rmse_ns", "p99_abs_ns")]
            unanswered = str(ss["readings"]["unanswered"])
            rows.append([w, s, ss["kind"], unanswered, *errs, ms(e.get("max_abs_ns")), hw, cov])
    header = ["worker", "source", "kind", "unanswered", "mean err ms", "MAE ms", "RMSE ms",
              "p99 |err| ms", "max |err| ms", "p50 ε ms", "coverage"]  # fmt: skip
    return [
        H("Readings vs truth"),
        Table(header, rows),
        Fig("figures/bound_coverage.png", "Coverage of bounded sources."),
        Fig("figures/error_vs_truth.png", "Error of receipt estimates over the run."),
    ]


def _causality(stats: Stats) -> list[Block]:
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            c = ss["causality"]
            bd = c["bounded"]
            counts = [str(c["decided"]), str(c["undecidable"]), pct(c["violation_rate"])]
            counts += [str(c["ties"]), cnt(c["truth_violations"])]
            keys = ("provably_after_rate", "ambiguous_rate", "violating_rate")
            rows.append([w, s, *counts, *(pct(bd[k]) if bd else NA for k in keys)])
    header = ["worker", "source", "decided", "undecidable", "violations (est.)", "ties",
              "truth violations", "provably after", "ambiguous", "violating"]  # fmt: skip
    return [
        H("Causality"),
        Table(header, rows),
        Fig("figures/causality_violations.png", "Receipts stamped before their send."),
    ]


def _ordering(stats: Stats) -> list[Block]:
    rows = []
    for pair, pr in stats["ordering"]["pairs"].items():
        for s, o in pr["sources"].items():
            pt, bd, bounds = o["point"], o["bounded"], [NA] * 3
            point = [str(pt["decided"]), cnt(pt["correct"]), cnt(pt["wrong"])]
            point.append(str(pt["claimed_ties"]))
            if bd:
                bounds = [cnt(bd["provable_correct"]), cnt(bd["provable_wrong"])]
                bounds.append(str(bd["ambiguous"]))
            rows.append([pair, s, str(o["compared"]), *point, *bounds])
    header = ["pair", "source", "compared", "decided (est.)", "correct (est.)", "wrong (est.)",
              "est. ties", "provable correct (int.)", "provable wrong (int.)",
              "ambiguous (int.)"]  # fmt: skip
    return [
        H("Ordering between workers"),
        Table(header, rows),
        Fig("figures/ordering_consensus.png", "How receipt order is decided."),
    ]


def _windows(stats: Stats) -> list[Block]:
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            for z, wz in ss["windows"].items():
                bd, bounds = wz["bounded"], [NA] * 3
                if bd:
                    bounds = [cnt(bd["confident_correct"]), cnt(bd["confident_wrong"])]
                    bounds.append(pct(bd["ambiguous_rate"]))
                rows.append([w, s, z, pct(wz["accuracy"]), *bounds])
    st = stats["settings"]
    header = ["worker", "source", "size ms", "accuracy (est.)", "confident correct (int.)",
              "confident wrong (int.)", "ambiguous (int.)"]  # fmt: skip
    return [
        H("Tumbling windows"),
        P(
            f"Window sizes {st['window_sizes_ms']} ms, offset {st['window_offset_ms']} ms; "
            "start = t − ((t − offset) mod size), windows [start, start + size). "
            + (
                "Each event's grid is shifted by its own phase (seeded by the event id and "
                f"seed {st.get('window_phase_seed')}), so a workload on a fixed time grid does "
                "not lock onto the boundaries: the rates are the clock's, not the start "
                "instant's."
                if st.get("window_phase") == "per_event"
                else "One grid for every event: with events on a fixed time grid the rates also "
                "depend on where the run started against the boundaries."
            )
        ),
        Table(header, rows),
    ]


def _window_agreement(stats: Stats) -> list[Block]:
    rows = []
    for s, per in stats["window_agreement"].items():
        for z, a in per.items():
            bd = a["bounded"]
            bounds = [pct(bd["ambiguous_rate"]), str(bd["confident_disagree"])] if bd else [NA] * 2
            cells = [s, z, str(a["events"]), pct(a["agree_rate"]), pct(a["truth_agree"])]
            rows.append(cells + bounds)
    header = ["source", "size ms", "events", "agree (est.)", "true windows agree",
              "ambiguous (bounds)", "confident disagree"]  # fmt: skip
    return [
        P(
            "Agreement: events received by every worker; do all workers put the event in "
            "the same window?"
        ),
        Table(header, rows),
        Fig("figures/window_assignment.png", "Wrong and ambiguous window assignments."),
    ]


def _short(r: Rate | None) -> str:
    """A rate as 'x.xx% (k/n)' (its interval is in stats.json)."""
    if not r or r.get("rate") is None:
        return NA
    return f"{100 * r['rate']:.2f}% ({r['k']}/{r['n']})"


def _event_time(stats: Stats) -> list[Block]:
    """Watermarks and late events per source (stats.json event_time; docs/METHODOLOGY.md)."""
    et: Any = stats.get("event_time")
    if not et:
        return []
    b: list[Block] = [H("Event time: watermarks and late events")]
    if not et.get("available"):
        return [*b, P(f"Not computed: {et.get('reason')}.")]
    st = et["settings"]
    head, delays = st["headline_window"], [str(d) for d in st["delays_ms"]]
    b.append(
        P(
            "Each stream runs through Flink's bounded out-of-orderness watermark (max timestamp "
            "seen − delay − 1 ms, after every event; timestamps floored to the ms) and event-time "
            f"windows with allowed lateness {st['allowed_lateness_ms']} ms. Stream 'all' is every "
            "worker's receipts merged in true arrival order (a global window); each worker's is "
            "its own. Late = arrived after the watermark passed its window's end (the window had "
            "fired); dropped = beyond the allowed lateness (Flink's late side output). Bounded "
            "sources are also run with their `latest` bound as the event timestamp. Lossless "
            f"delay: the smallest delay that drops nothing ({head}); max out-of-orderness: the "
            "smallest with no event ever behind the watermark."
        )
    )
    rows = []
    for s, variants in et["summary"].items():
        for variant, x in variants.items():
            label = s if variant == "estimate" else f"{s} (latest)"
            rows.append(
                [label]
                + [_short(x["delays"][d]["late"]) for d in delays]
                + [ms(x["lossless_delay_ns"]), ms(x["max_out_of_orderness_ns"])]
                + [_share(x["delays"][delays[0]]["windows_differ_share"])]
            )
    header = ["source"] + [f"late, delay {d} ms" for d in delays]
    header += ["lossless delay ms", "max out-of-order ms", f"windows differing ({delays[0]} ms)"]
    b += [P(f"Stream 'all', window {head}:"), Table(header, rows)]
    rows = []
    for s, v in et["sources"].items():
        for variant, x in v.items():
            per = x["streams"].get("all")
            if not per:
                continue
            label = s if variant == "estimate" else f"{s} (latest)"
            cells = []
            for d in delays:
                fd = per["delays"][d]["windows"][head]["firing_delay"]
                cells.append(f"{ms(fd['p50_ns'])} / {ms(fd['p99_ns'])}" if fd["n"] else NA)
            rows.append([label, *cells])
    b += [
        P(
            "Window firing delay, true time of the first firing − window end, p50 / p99 ms "
            f"(stream 'all', {head}; windows fired only by the end of input excluded):"
        ),
        Table(["source"] + [f"delay {d} ms" for d in delays], rows),
    ]
    if "figures/late_events.png" in stats.get("figures", []):
        b.append(Fig("figures/late_events.png", "Late events against the watermark delay."))
        b.append(Fig("figures/window_content_error.png", "Windows whose contents differ."))
    rows = []
    for s, variants in et["sources"].items():
        for variant, v in variants.items():
            label = s if variant == "estimate" else f"{s} (latest)"
            for name, r in v["streams"].items():
                if name == "all":
                    continue
                late = [_short(r["delays"][d]["windows"][head]["late"]) for d in delays]
                rows.append([label, name, *late, ms(r["lossless_delay_ns"][head])])
    if rows:
        header = ["source", "worker"] + [f"late, delay {d} ms" for d in delays]
        b += [P(f"Each worker's own stream, window {head}:"), Table([*header, "lossless ms"], rows)]
    return b


def _share(v: float | None) -> str:
    return NA if v is None else f"{100 * v:.2f}%"


def _headline(stats: Stats) -> list[Block]:
    """Every source's pooled rates, each with its numerator / denominator and its judge: the
    estimate used as a point (every source) and, for bounded sources, the interval."""
    rows = []
    sizes = stats["settings"]["window_sizes_ms"]
    mid = str(sizes[len(sizes) // 2 - 1] if len(sizes) > 1 else sizes[0]) if sizes else None
    for name in SUMMARY_RATES:
        for s, sm in stats["summary"].items():
            v: Any = sm.get(name)
            if isinstance(v, dict) and "k" not in v:  # per window size
                v = v.get(mid) if mid else None
            if v is None:
                continue
            d = RATE_DEFINITIONS[SUMMARY_RATES[name]]
            label = name + (f" ({mid} ms)" if name.startswith("window_") else "")
            rows.append([label, s, d["judged_by"], d["numerator"], d["denominator"], pct(v)])
    return [
        H("Headline rates (pooled over workers)"),
        P(
            "One definition per name (stats.json `rate_definitions`): rates judged by the "
            "*estimate* treat every source's estimate as a point; rates judged by the *interval* "
            "use a bounded source's [earliest, latest]. Bounded sources are shown both ways."
        ),
        Table(["rate", "source", "judged by", "numerator", "denominator", "value"], rows),
    ]


def _definitions(stats: Stats) -> list[Block]:
    defs = stats.get("rate_definitions") or RATE_DEFINITIONS
    rows = [[k, d["judged_by"], d["numerator"], d["denominator"]] for k, d in defs.items()]
    return [
        H("Rate definitions"),
        P("Every rate in stats.json, by its place in the document (per worker, pair or pooled)."),
        Table(["rate", "judged by", "numerator", "denominator"], rows),
    ]


def _cost_row(name: str, mode: str, tot: CostTotal) -> list[str]:
    counts = [str(tot["decisions"]), str(tot["coordinate"])]
    return [name, mode, *counts, *(cnt(tot[k]) for k in ("repair", "actions", "difference"))]


def _coordination(stats: Stats) -> list[Block]:
    rows = []
    for s, c in stats["coordination_cost"].items():
        rows.append(_cost_row(s, c["mode"], c["total"]))
        if "estimate_as_point" in c:
            e = c["estimate_as_point"]["total"]
            rows.append(_cost_row(f"{s} (estimate as point)", "point", e))
    header = ["source", "mode", "decisions", "coordinate", "repair", "total",
              "coordinate − repair"]  # fmt: skip
    return [
        H("Coordination cost"),
        Table(header, rows),
        Fig("figures/coordination_cost.png", "Coordination rounds vs repairs."),
    ]


def _commit_wait(stats: Stats) -> list[Block]:
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            cw = ss["commit_wait"]
            if cw is None:
                continue
            wt = cw["wait_ns"]
            re = "; ".join(
                f"T+{d} ms: p50 2ε {ms(r['wait_ns']['p50_ns'])} ms, narrower {pct(r['narrower'])}"
                for d, r in cw["reevaluated"].items()
                if r["wait_ns"]["p50_ns"] is not None  # a source without refined readings
            )
            waits = [ms(wt[k]) for k in ("mean_ns", "p50_ns", "p99_ns", "max_ns")]
            rows.append([w, s, str(wt["n"]), *waits, re or "no re-evaluated readings"])
    header = ["worker", "source", "n", "mean ms", "p50 ms", "p99 ms", "max ms", "re-evaluation"]
    body: Block = (
        Table(header, rows)
        if rows
        else P("No bounded source in this run: commit-wait does not apply.")
    )
    return [H("Commit-wait"), body, Fig("figures/commit_wait.png", "Commit-wait distribution.")]


def _us(v: float | None) -> str:
    return NA if v is None else f"{v / 1e3:.1f}"


def _judged_row(what: str, j: Any, exact: bool) -> list[str]:
    """One judged metric: claims, certainly right, certainly wrong k₁, possibly wrong k₁ + k₂,
    undecided, and the exact count beside them when exact truth exists."""
    row = [what, str(j["claims"]), str(j["certainly_right"]), pct(j["certainly_wrong_rate"]),
           pct(j["possibly_wrong_rate"]), pct(j["undecided_rate"])]  # fmt: skip
    if exact:
        row.append(pct(j["exact_wrong_rate"]))
    return row


def _measured_truth(stats: Stats) -> list[Block]:
    """Measured truth (runs with truth probes): the reference, each node's achieved truth
    half-width and what decides it, and every truth-based metric as bounded counts."""
    mt = stats.get("measured_truth")
    if not mt:
        return []
    ref = mt.get("reference") or {}
    prober = ref.get("prober") or {}
    exact = mt["exact_truth"]
    tail = (" Exact truth exists here (emulated clocks on one host): the exact counts are beside "
            "the bounded ones and must lie between them." if exact else
            " No exact truth here: these bounded counts are the truth-based metrics.")  # fmt: skip
    out: list[Block] = [
        H("Measured truth"),
        P(
            f"Reference: {ref.get('reference', NA)} ({ref.get('reference_kind', NA)}). Every "
            f"coordinator and worker probed it {prober.get('rate_hz', NA)} times per second "
            "(its own thread and socket; T4 the kernel's receive stamp where available). Each "
            "exchange bounds reference − node clock within ±δ/2 whatever the path's asymmetry; "
            f"between exchanges the bound widens by {mt['max_drift_ppm']:g} ppm (truth."
            "max_drift_ppm) × the distance to the exchange. A receipt's or send's truth "
            "interval intersects the bounds of the exchanges around it (METHODOLOGY.md, "
            "Measured truth)." + tail
        ),
    ]
    rows = []
    for node, n in mt["nodes"].items():
        hw, dl, near = n["half_width_ns"], n["delay_ns"], n["nearest_exchange_ns"]
        cov = pct(n["exact_coverage"]) if exact else NA
        rows.append([node, str(n["exchanges"]), _us(dl["p50_ns"]), _us(hw["p50_ns"]),
                     _us(hw["p99_ns"]), ms(near["p50_ns"]), str(n["no_interval"]),
                     str(n["inconsistent_exchange_pairs"]), str(n.get("steps", 0)), cov,
                     n["decided_by"]])  # fmt: skip
    out.append(Table(["node", "exchanges", "δ p50 µs", "half-width p50 µs", "p99 µs",
                      "nearest exchange p50 ms", "no interval", "inconsistent pairs",
                      "clock steps", "exact truth inside", "what decides the half-width"],
                     rows))  # fmt: skip
    head = ["metric", "claims", "certainly right", "certainly wrong k₁", "possibly wrong k₁+k₂",
            "undecided"]  # fmt: skip
    if exact:
        head.append("exact wrong")
    rows = [_judged_row("every receipt after its send (wrong: not after)",
                        mt["causality_truth"], exact)]  # fmt: skip
    for size, j in (mt.get("truth_agreement") or {}).items():
        rows.append(_judged_row(f"workers' true receipt times share a {size} ms window "
                                "(wrong: they do not)", j, exact))  # fmt: skip
    for s, src in mt["sources"].items():
        if src["coverage"] is not None:
            rows.append(_judged_row(f"{s}: coverage (wrong: missed)", src["coverage"], exact))
        rows.append(_judged_row(f"{s}: causality violations claimed (est.)",
                                src["causality"], exact))  # fmt: skip
        if src["causality_bounded"] is not None:
            rows.append(_judged_row(f"{s}: causality violating intervals",
                                    src["causality_bounded"], exact))  # fmt: skip
        o = src["ordering"]
        rows.append(_judged_row(f"{s}: ordering (est.)", o["point"], exact))
        if o["bounded"] is not None:
            rows.append(_judged_row(f"{s}: ordering, provable", o["bounded"], exact))
        for size, w in src["windows"].items():
            rows.append(_judged_row(f"{s}: window {size} ms (est.)", w["point"], exact))
            if w["bounded"] is not None:
                rows.append(_judged_row(f"{s}: window {size} ms, confident", w["bounded"],
                                        exact))  # fmt: skip
        for d, c in (src.get("commit_wait") or {}).items():
            rows.append(_judged_row(f"{s}: at T+{d} ms, coverage (wrong: missed)",
                                    c["coverage"], exact))  # fmt: skip
            for size, w in c["windows"].items():
                rows.append(_judged_row(f"{s}: at T+{d} ms, window {size} ms, confident", w,
                                        exact))  # fmt: skip
    out.append(Table(head, rows))
    mae_rows = []
    for s, src in mt["sources"].items():
        m = src["mae"]
        mae_rows.append([s, str(m["n"]), ms(m["lo_ns"]), ms(m["hi_ns"]),
                         ms(m["exact_ns"]) if exact else NA])  # fmt: skip
    out.append(Table(["source", "readings", "MAE at least ms", "MAE at most ms", "exact MAE ms"],
                     mae_rows))  # fmt: skip
    return out


# The report, one section per function, in order.
SECTIONS: tuple[Callable[[Stats], list[Block]], ...] = (
    _title,
    _frames,
    _dashboard,
    _headline,
    _accounting,
    _readings,
    _causality,
    _ordering,
    _windows,
    _window_agreement,
    _event_time,
    _coordination,
    _commit_wait,
    _measured_truth,
    _definitions,
)


def blocks(stats: Stats) -> list[Block]:
    """The report's content: every section's blocks, in order; a figure only where
    ``stats["figures"]`` lists it (none when the analysis drew none: ``--no-figures``)."""
    drawn = set(stats.get("figures", []))
    bl = [b for section in SECTIONS for b in section(stats)
          if not isinstance(b, Fig) or b.path in drawn]  # fmt: skip
    if not drawn:  # under the title
        bl.insert(1, P("No figures: this analysis drew none (`--no-figures`); "
                       "`skewlab analyze` of this folder draws them."))  # fmt: skip
    return bl


def to_markdown(bl: list[Block]) -> str:
    lines: list[str] = []
    for b in bl:
        if isinstance(b, H):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, P):
            lines += [b.text, ""]
        elif isinstance(b, Table):
            esc = [c.replace("|", "\\|") for c in b.header]
            lines.append("| " + " | ".join(esc) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b.rows]
            lines.append("")
        elif isinstance(b, Fig):
            lines += [f"![{b.caption}]({b.path})", ""]
    return "\n".join(lines)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;
padding:3px 6px;text-align:right}th{background:#eee}td:first-child,td:nth-child(2){text-align:left}
img{max-width:100%;height:auto;border:1px solid #ddd}figure{margin:1em 0}"""


def _inline(text: str) -> str:
    """Minimal inline markdown: **bold** and `code`, HTML-escaped."""
    out, bold, code = [], False, False
    i = 0
    t = text
    while i < len(t):
        if t.startswith("**", i) and not code:
            out.append("</b>" if bold else "<b>")
            bold = not bold
            i += 2
        elif t[i] == "`":
            out.append("</code>" if code else "<code>")
            code = not code
            i += 1
        else:
            out.append(html.escape(t[i]))
            i += 1
    return "".join(out)


def to_html(bl: list[Block], results: ResultsDir) -> str:
    """A single self-contained page: CSS inline, figures as base64 PNG data URIs."""
    title = next((b.text for b in bl if isinstance(b, H)), "skewlab report")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
    ]
    for b in bl:
        if isinstance(b, H):
            parts.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, P):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            parts.append(
                "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header) + "</tr>"
            )
            for r in b.rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        elif isinstance(b, Fig):
            data = base64.b64encode((results.root / b.path).read_bytes()).decode()
            parts.append(
                f'<figure><img alt="{html.escape(b.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>'
                f"{html.escape(b.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(results: ResultsDir, stats: Stats) -> None:
    """Write report.md and report.html into the results folder (with the figures
    ``stats["figures"]`` lists, which must exist)."""
    bl = blocks(stats)
    results.report_md.write_text(to_markdown(bl))
    (results.root / "report.html").write_text(to_html(bl, results))
