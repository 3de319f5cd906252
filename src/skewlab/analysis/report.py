"""report.md and a self-contained report.html (figures embedded as data URIs), from stats.json.

Both are rendered from one list of blocks, so they always say the same thing.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any

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


def pct(r: dict[str, Any] | None) -> str:
    """A rate as 'x.xx% [lo, hi] (k/n)'; n/a when unavailable or n = 0."""
    if not r or r.get("rate") is None:
        return NA if not r else f"— (0/{r['n']})"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] ({r['k']}/{r['n']})"


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


def _frames(stats: dict[str, Any]) -> list[Block]:
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
    return b


def blocks(stats: dict[str, Any]) -> list[Block]:
    """The report's content, in order."""
    out: list[Block] = [H(f"skewlab report — {stats['experiment_id']}", 1)]
    p = stats["parameters"]
    out.append(
        P(
            f"Sources: {', '.join(f'{s} ({k})' for s, k in stats['source_kinds'].items())}. "
            f"Coordinator {stats['coordinator']['name']} sent {stats['coordinator']['sent']} "
            "events "
            f"to {len(stats['workers'])} workers. Configuration key `{stats['config_key']}`, seed "
            f"{p.get('seed', NA)}. Stats schema version {stats['stats_version']}; rates carry 95% "
            "Wilson intervals as [low, high] (k/n). Definitions: docs/METHODOLOGY.md."
        )
    )
    out += _frames(stats)
    if "figures/summary_dashboard.png" in stats.get("figures", []):
        out.append(Fig("figures/summary_dashboard.png", "Headline rates per source."))

    out.append(H("Accounting"))
    out.append(
        Table(
            ["worker", "sent", "received", "lost", "unknown", "duplicates"],
            [
                [
                    w,
                    str(a["sent"]),
                    str(a["received"]),
                    str(a["lost"]),
                    str(a["unknown_events"]),
                    str(a["duplicate_rows"]),
                ]
                for w, ws in stats["workers"].items()
                for a in [ws["accounting"]]
            ],
        )
    )

    out.append(H("Readings vs truth"))
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            e, bq = ss["error_vs_truth"], ss["bound_quality"]
            cov = pct(bq["coverage"]) if bq and bq.get("available") else NA
            hw = ms(bq["half_width_ns"]["p50_ns"]) if bq else NA
            rows.append(
                [
                    w,
                    s,
                    ss["kind"],
                    str(ss["readings"]["unanswered"]),
                    ms(e.get("mean_ns")),
                    ms(e.get("mae_ns")),
                    ms(e.get("rmse_ns")),
                    ms(e.get("p99_abs_ns")),
                    ms(e.get("max_abs_ns")),
                    hw,
                    cov,
                ]
            )
    out.append(
        Table(
            [
                "worker",
                "source",
                "kind",
                "unanswered",
                "mean err ms",
                "MAE ms",
                "RMSE ms",
                "p99 |err| ms",
                "max |err| ms",
                "p50 ε ms",
                "coverage",
            ],
            rows,
        )
    )
    out.append(Fig("figures/bound_coverage.png", "Coverage of bounded sources."))
    out.append(Fig("figures/error_vs_truth.png", "Error of receipt estimates over the run."))

    out.append(H("Causality"))
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            c = ss["causality"]
            bd = c["bounded"]
            rows.append(
                [
                    w,
                    s,
                    str(c["decided"]),
                    str(c["undecidable"]),
                    pct(c["violation_rate"]),
                    str(c["ties"]),
                    cnt(c["truth_violations"]),
                    pct(bd["provably_after_rate"]) if bd else NA,
                    pct(bd["ambiguous_rate"]) if bd else NA,
                    pct(bd["violating_rate"]) if bd else NA,
                ]
            )
    out.append(
        Table(
            [
                "worker",
                "source",
                "decided",
                "undecidable",
                "violations (est.)",
                "ties",
                "truth violations",
                "provably after",
                "ambiguous",
                "violating",
            ],
            rows,
        )
    )
    out.append(Fig("figures/causality_violations.png", "Receipts stamped before their send."))

    out.append(H("Ordering between workers"))
    rows = []
    for pair, pr in stats["ordering"]["pairs"].items():
        for s, o in pr["sources"].items():
            pt, bd = o["point"], o["bounded"]
            rows.append(
                [
                    pair,
                    s,
                    str(o["compared"]),
                    str(pt["decided"]),
                    cnt(pt["correct"]),
                    cnt(pt["wrong"]),
                    str(pt["claimed_ties"]),
                    cnt(bd["provable_correct"]) if bd else NA,
                    cnt(bd["provable_wrong"]) if bd else NA,
                    str(bd["ambiguous"]) if bd else NA,
                ]
            )
    out.append(
        Table(
            [
                "pair",
                "source",
                "compared",
                "decided (est.)",
                "correct",
                "wrong",
                "est. ties",
                "provable correct",
                "provable wrong",
                "ambiguous",
            ],
            rows,
        )
    )
    out.append(Fig("figures/ordering_consensus.png", "How receipt order is decided."))

    out.append(H("Tumbling windows"))
    out.append(
        P(
            f"Window sizes {stats['settings']['window_sizes_ms']} ms, offset "
            f"{stats['settings']['window_offset_ms']} ms; start = t − ((t − offset) mod "
            "size), windows [start, start + size)."
        )
    )
    rows = []
    for w, ws in stats["workers"].items():
        for s, ss in ws["sources"].items():
            for z, wz in ss["windows"].items():
                bd = wz["bounded"]
                rows.append(
                    [
                        w,
                        s,
                        z,
                        pct(wz["accuracy"]),
                        cnt(bd["confident_correct"]) if bd else NA,
                        cnt(bd["confident_wrong"]) if bd else NA,
                        pct(bd["ambiguous_rate"]) if bd else NA,
                    ]
                )
    out.append(
        Table(
            [
                "worker",
                "source",
                "size ms",
                "accuracy (est.)",
                "confident correct",
                "confident wrong",
                "ambiguous",
            ],
            rows,
        )
    )
    rows = []
    for s, per in stats["window_agreement"].items():
        for z, a in per.items():
            bd = a["bounded"]
            rows.append(
                [
                    s,
                    z,
                    str(a["events"]),
                    pct(a["agree_rate"]),
                    pct(a["truth_agree"]),
                    pct(bd["ambiguous_rate"]) if bd else NA,
                    str(bd["confident_disagree"]) if bd else NA,
                ]
            )
    out.append(
        P(
            "Agreement: events received by every worker; do all workers put the event in "
            "the same window?"
        )
    )
    out.append(
        Table(
            [
                "source",
                "size ms",
                "events",
                "agree (est.)",
                "true windows agree",
                "ambiguous (bounds)",
                "confident disagree",
            ],
            rows,
        )
    )
    out.append(Fig("figures/window_assignment.png", "Wrong and ambiguous window assignments."))

    out.append(H("Coordination cost"))
    rows = []
    for s, c in stats["coordination_cost"].items():
        tot = c["total"]
        rows.append(
            [
                s,
                c["mode"],
                str(tot["decisions"]),
                str(tot["coordinate"]),
                cnt(tot["repair"]),
                cnt(tot["actions"]),
                cnt(tot["difference"]),
            ]
        )
        if "estimate_as_point" in c:
            e = c["estimate_as_point"]["total"]
            rows.append(
                [
                    f"{s} (estimate as point)",
                    "point",
                    str(e["decisions"]),
                    str(e["coordinate"]),
                    cnt(e["repair"]),
                    cnt(e["actions"]),
                    cnt(e["difference"]),
                ]
            )
    out.append(
        Table(
            ["source", "mode", "decisions", "coordinate", "repair", "total", "coordinate − repair"],
            rows,
        )
    )
    out.append(Fig("figures/coordination_cost.png", "Coordination rounds vs repairs."))

    out.append(H("Commit-wait"))
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
            )
            rows.append(
                [
                    w,
                    s,
                    str(wt["n"]),
                    ms(wt["mean_ns"]),
                    ms(wt["p50_ns"]),
                    ms(wt["p99_ns"]),
                    ms(wt["max_ns"]),
                    re or "no re-evaluated readings",
                ]
            )
    if rows:
        out.append(
            Table(
                ["worker", "source", "n", "mean ms", "p50 ms", "p99 ms", "max ms", "re-evaluation"],
                rows,
            )
        )
    else:
        out.append(P("No bounded source in this run: commit-wait does not apply."))
    out.append(Fig("figures/commit_wait.png", "Commit-wait distribution."))
    return out


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


def write_reports(results: ResultsDir, stats: dict[str, Any]) -> None:
    """Write report.md and report.html into the results folder (figures must exist)."""
    bl = blocks(stats)
    results.report_md.write_text(to_markdown(bl))
    (results.root / "report.html").write_text(to_html(bl, results))
