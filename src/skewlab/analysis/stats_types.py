"""The shape of stats.json, as typed dictionaries: one structure for the analysis that writes it,
the report and figures that render it, and ``skewlab compare`` that reads it back.

TypedDicts are plain dicts at run time, so stats.json is exactly what ``json.dumps`` makes of
them (key order = construction order). Every value is defined in docs/METHODOLOGY.md and the
keys are listed in docs/TRACES.md ("stats.json"). Times are ns; ``None`` means unavailable (no
true time, or nothing to count), never 0. ``total=False`` marks dicts whose keys depend on the
data (e.g. no error figures when a source never answered).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, Required, TypedDict

# The figure set of an analysis (analysis/figures.py draws each as <name>.png and <name>.svg in
# the results folder's figures/), in report order: here, so code that only names them (an
# analysis without figures removing an earlier set) does not import matplotlib.
FIGURES = (
    "summary_dashboard",
    "causality_violations",
    "ordering_consensus",
    "window_assignment",
    "coordination_cost",
    "commit_wait",
    "bound_coverage",
    "error_vs_truth",
    "late_events",
    "window_content_error",
)

Kind = Literal["bounded", "point"]  # a source's kind: returns intervals, or point readings


class Rate(TypedDict):
    """k of n with its 95% interval; ``rate``/``ci95`` null when n = 0. ``method``: "block"
    (over the time blocks of ``settings.intervals``; ``blocks`` = blocks holding decisions) or
    "wilson" (independent trials; ``blocks`` null). ``n_eff``: the independent trials the
    interval treats the n decisions as (p(1−p)/variance; n for Wilson)."""

    k: int
    n: int
    rate: float | None
    ci95: list[float] | None
    method: Literal["block", "wilson"]
    n_eff: float | None
    blocks: int | None


class Dist(TypedDict):
    """Summary of a distribution (ns): nearest-rank percentiles; null values when n = 0."""

    n: int
    mean_ns: float | None
    min_ns: float | None
    p50_ns: float | None
    p99_ns: float | None
    max_ns: float | None


# -- per source, per node ----------------------------------------------------------------------


class Readings(TypedDict):
    rows: int
    answered: int
    unanswered: int
    by_status: dict[str, int]  # status name → rows


class ErrorVsTruth(TypedDict, total=False):
    """Estimate − truth. Unavailable: only ``available`` false and ``reason``; no answered
    reading: no figures beyond the counts."""

    available: Required[bool]
    reason: str
    n: int
    unanswered: int
    mean_ns: float
    mae_ns: float
    rmse_ns: float
    p50_abs_ns: int
    p99_abs_ns: int
    max_abs_ns: int


class BoundQuality(TypedDict, total=False):
    """Half-width ε always; coverage and misses only with true time."""

    n: Required[int]
    half_width_ns: Required[Dist]
    available: Required[bool]
    reason: str
    coverage: Rate | None
    below: int
    above: int
    miss_ns: Dist
    coverage_by_status: dict[str, Rate | None]


class CausalityBounded(TypedDict):
    decided: int
    undecidable: int
    provably_after: int
    ambiguous: int
    violating: int
    provably_after_rate: Rate | None
    ambiguous_rate: Rate | None
    violating_rate: Rate | None


class Causality(TypedDict):
    events: int
    decided: int
    undecidable: int
    violations: int
    ties: int
    violation_rate: Rate | None
    truth_violations: int | None
    bounded: CausalityBounded | None


class WindowBounded(TypedDict):
    decided: int
    confident: int
    ambiguous: int
    ambiguous_rate: Rate | None
    confident_correct: int | None
    confident_wrong: int | None
    confident_wrong_rate: Rate | None


class Window(TypedDict):
    decided: int
    correct: int | None
    wrong: int | None
    accuracy: Rate | None
    wrong_rate: Rate | None
    bounded: WindowBounded | None


class WindowBoundedCounts(TypedDict):
    """``WindowBounded`` without its rates: what adds up across workers."""

    decided: int
    confident: int
    ambiguous: int
    confident_correct: int | None
    confident_wrong: int | None


class WindowCounts(TypedDict):
    """``Window`` without its rates: what adds up across workers."""

    decided: int
    correct: int | None
    wrong: int | None
    bounded: WindowBoundedCounts | None


class ReevaluatedWindow(TypedDict):
    ambiguous_t0: Rate | None
    ambiguous: Rate | None
    resolved: int
    confident_wrong: int | None


class Reevaluated(TypedDict):
    """A receipt's interval re-evaluated at T+Δ vs its interval at T+0."""

    delta_ms: int
    n: int
    no_refinement: int | None
    wait_ns: Dist
    narrower: Rate | None
    coverage: Rate | None
    windows: dict[str, ReevaluatedWindow]  # window size (ms) →


class CommitWait(TypedDict):
    wait_ns: Dist  # latest − earliest = 2ε at the receipt
    reevaluated: dict[str, Reevaluated]  # Δ (ms) →


class WorkerSource(TypedDict):
    kind: Kind
    readings: Readings
    error_vs_truth: ErrorVsTruth
    bound_quality: BoundQuality | None  # None: point source
    causality: Causality
    windows: dict[str, Window]  # window size (ms) →
    commit_wait: CommitWait | None  # None: point source


class Accounting(TypedDict):
    sent: int
    received: int
    lost: int
    unknown_events: int
    duplicate_rows: int


class WorkerStats(TypedDict):
    accounting: Accounting
    sources: dict[str, WorkerSource]


class CoordinatorSource(TypedDict):
    readings: Readings
    error_vs_truth: ErrorVsTruth
    bound_quality: BoundQuality | None


class CoordinatorStats(TypedDict):
    name: str
    sent: int
    sources: dict[str, CoordinatorSource]


# -- between workers ---------------------------------------------------------------------------


class OrderingPoint(TypedDict):
    undecidable: int
    claimed_ties: int
    decided: int
    truth_ties: int | None
    correct: int | None
    wrong: int | None
    accuracy: Rate | None
    wrong_rate: Rate | None


class OrderingBounded(TypedDict):
    undecidable: int
    with_bounds: int
    provable: int
    ambiguous: int
    ambiguous_rate: Rate | None
    truth_ties: int | None
    provable_correct: int | None
    provable_wrong: int | None
    provable_wrong_rate: Rate | None


class Ordering(TypedDict):
    compared: int
    point: OrderingPoint
    bounded: OrderingBounded | None


class OrderingPair(TypedDict):
    workers: list[str]
    events_missing: int | None
    sources: dict[str, Ordering]


class OrderingStats(TypedDict):
    pairs: dict[str, OrderingPair]  # "a|b" →
    total: dict[str, Ordering]  # source → all pairs pooled


class AgreementBounded(TypedDict):
    decided: int
    confident_agree: int
    confident_disagree: int
    ambiguous: int
    ambiguous_rate: Rate | None


class Agreement(TypedDict):
    events: int
    decided: int
    agree: int
    disagree: int
    agree_rate: Rate | None
    truth_agree: Rate | None
    bounded: AgreementBounded | None


class KindCost(TypedDict):
    decisions: int
    coordinate: int
    repair: int | None


class CostTotal(TypedDict):
    decisions: int
    coordinate: int
    repair: int | None
    actions: int | None
    difference: int | None
    coordinate_rate: Rate | None
    repair_rate: Rate | None


class CostBlock(TypedDict):
    by_kind: dict[str, KindCost]  # "ordering", "window_<size>ms" →
    total: CostTotal


class CoordinationCost(CostBlock, total=False):
    mode: Required[Kind]
    estimate_as_point: CostBlock  # bounded sources: their estimate used as a point


class SourceSummary(TypedDict):
    """Headline numbers of one source, pooled over workers (what ``skewlab compare`` reads).
    One meaning per name (``RATE_DEFINITIONS``): the plain names judge every source by its
    estimate used as a point; bounded sources add the judgement of their intervals."""

    kind: Kind
    causality_violation_rate: Rate | None  # estimates
    causality_ambiguous_rate: Rate | None  # intervals (bounded only)
    causality_violating_rate: Rate | None  # intervals (bounded only)
    ordering_wrong_rate: Rate | None  # estimates
    ordering_ambiguous_rate: Rate | None  # intervals (bounded only)
    ordering_provable_wrong: int | None
    ordering_provable_wrong_rate: Rate | None  # intervals (bounded only)
    window_wrong_rate: dict[str, Rate | None]  # estimates; window size (ms) →
    window_ambiguous_rate: dict[str, Rate | None]  # intervals (bounded only)
    window_confident_wrong_rate: dict[str, Rate | None]  # intervals (bounded only)
    coverage: Rate | None
    mae_ns: float | None
    max_abs_ns: int | None
    commit_wait_mean_ns: float | None
    coordinate: int
    repair: int | None


class RateDefinition(TypedDict):
    """What a rate counts: numerator / denominator, and what judges a bounded source."""

    numerator: str
    denominator: str
    judged_by: Literal["estimate", "interval", "truth", "both"]


# One definition per rate name, everywhere (stats.json ``rate_definitions``, the report's
# definitions table, compare's legend, the figures' labels). Keys are the rate's path in
# stats.json with ``<w>``, ``<s>``, ``<size>``, ``<Δ>``, ``<STATUS>`` placeholders dropped to
# the block that holds it. "estimate": the source's estimate used as a point (every source);
# "interval": a bounded source's [earliest, latest].
RATE_DEFINITIONS: dict[str, RateDefinition] = {
    "bound_quality.coverage": {"numerator": "readings with earliest ≤ truth ≤ latest",
        "denominator": "readings with both bounds", "judged_by": "interval"},
    "bound_quality.coverage_by_status": {"numerator": "covered readings with that status",
        "denominator": "readings with both bounds and that status", "judged_by": "interval"},
    "causality.violation_rate": {"numerator": "receipt estimate < send estimate",
        "denominator": "events with both estimates (ties included)", "judged_by": "estimate"},
    "causality.bounded.provably_after_rate": {"numerator": "send latest < receipt earliest",
        "denominator": "events with both intervals", "judged_by": "interval"},
    "causality.bounded.ambiguous_rate": {"numerator": "intervals overlap or touch",
        "denominator": "events with both intervals", "judged_by": "interval"},
    "causality.bounded.violating_rate": {"numerator": "receipt latest < send earliest",
        "denominator": "events with both intervals", "judged_by": "interval"},
    "windows.accuracy": {"numerator": "estimate's window = true window",
        "denominator": "receipts with an estimate", "judged_by": "estimate"},
    "windows.wrong_rate": {"numerator": "estimate's window ≠ true window",
        "denominator": "receipts with an estimate", "judged_by": "estimate"},
    "windows.bounded.ambiguous_rate": {"numerator": "interval straddles a window boundary",
        "denominator": "receipts with both bounds", "judged_by": "interval"},
    "windows.bounded.confident_wrong_rate": {"numerator": "confident and ≠ true window",
        "denominator": "confident receipts (interval inside one window)",
        "judged_by": "interval"},
    "commit_wait.reevaluated.narrower": {"numerator": "T+Δ interval narrower than at T+0",
        "denominator": "receipts with both intervals", "judged_by": "interval"},
    "commit_wait.reevaluated.coverage": {"numerator": "T+Δ interval contains truth",
        "denominator": "receipts with both intervals", "judged_by": "interval"},
    "commit_wait.reevaluated.windows.ambiguous_t0": {"numerator": "T+0 interval straddles",
        "denominator": "receipts with both intervals", "judged_by": "interval"},
    "commit_wait.reevaluated.windows.ambiguous": {"numerator": "T+Δ interval straddles",
        "denominator": "receipts with both intervals", "judged_by": "interval"},
    "ordering.point.accuracy": {"numerator": "claimed order = true order",
        "denominator": "claimed orders truth can judge (correct + wrong)",
        "judged_by": "estimate"},
    "ordering.point.wrong_rate": {"numerator": "claimed order = reverse of true order",
        "denominator": "claimed orders truth can judge (correct + wrong)",
        "judged_by": "estimate"},
    "ordering.bounded.ambiguous_rate": {"numerator": "intervals overlap or touch",
        "denominator": "event pairs with both intervals", "judged_by": "interval"},
    "ordering.bounded.provable_wrong_rate": {"numerator": "provable order = reverse of truth",
        "denominator": "provable orders truth can judge (provable correct + wrong)",
        "judged_by": "interval"},
    "window_agreement.agree_rate": {"numerator": "all workers' estimates in one window",
        "denominator": "events every worker stamped", "judged_by": "estimate"},
    "window_agreement.truth_agree": {"numerator": "all true receipt times in one window",
        "denominator": "events every worker stamped", "judged_by": "truth"},
    "window_agreement.bounded.ambiguous_rate": {"numerator": "some worker's interval straddles",
        "denominator": "events with every worker's interval", "judged_by": "interval"},
    "coordination_cost.total.coordinate_rate": {"numerator": "decisions needing coordination "
        "(bounded: ambiguous; point: claimed ordering ties)", "denominator": "decisions",
        "judged_by": "both"},
    "coordination_cost.total.repair_rate": {"numerator": "claimed decisions truth contradicts",
        "denominator": "decisions (all, claimed or not)", "judged_by": "both"},
    "event_time.late": {"numerator": "elements arriving after the watermark passed the end of "
        "one of their windows (that window had fired)",
        "denominator": "elements of the stream (receipts the source stamped)",
        "judged_by": "both"},
    "event_time.dropped": {"numerator": "elements every window of which was past its allowed "
        "lateness (Flink's late side output)",
        "denominator": "elements of the stream (receipts the source stamped)",
        "judged_by": "both"},
    # measured truth (analysis/truth.py): claims judged against measured truth intervals, in
    # measured_truth.causality_truth, .sources.<s>.{coverage, causality, causality_bounded,
    # windows.<size>.{point, bounded}, ordering.{point, bounded}}
    "measured_truth.certainly_wrong_rate": {"numerator": "claims wrong for every true time in "
        "the truth intervals (k₁)", "denominator": "claims", "judged_by": "both"},
    "measured_truth.possibly_wrong_rate": {"numerator": "claims wrong for some true time in the "
        "truth intervals (k₁ + k₂)", "denominator": "claims", "judged_by": "both"},
    "measured_truth.undecided_rate": {"numerator": "claims the truth intervals neither confirm "
        "nor contradict, or without a truth interval (k₂)", "denominator": "claims",
        "judged_by": "both"},
    "measured_truth.exact_wrong_rate": {"numerator": "claims wrong by the exact true time "
        "(emulated clocks)", "denominator": "claims", "judged_by": "both"},
    "measured_truth.exact_coverage": {"numerator": "receipts (sends) whose truth interval holds "
        "the exact true time", "denominator": "the node's receipts (sends)",
        "judged_by": "truth"},
}  # fmt: skip
# summary.<name>: the same rate pooled over workers (pairs for ordering).
SUMMARY_RATES: dict[str, str] = {
    "causality_violation_rate": "causality.violation_rate",
    "causality_ambiguous_rate": "causality.bounded.ambiguous_rate",
    "causality_violating_rate": "causality.bounded.violating_rate",
    "ordering_wrong_rate": "ordering.point.wrong_rate",
    "ordering_ambiguous_rate": "ordering.bounded.ambiguous_rate",
    "ordering_provable_wrong_rate": "ordering.bounded.provable_wrong_rate",
    "window_wrong_rate": "windows.wrong_rate",
    "window_ambiguous_rate": "windows.bounded.ambiguous_rate",
    "window_confident_wrong_rate": "windows.bounded.confident_wrong_rate",
    "coverage": "bound_quality.coverage",
}


def rate_label(name: str) -> str:
    """'numerator / denominator (judged by …)' of a RATE_DEFINITIONS or SUMMARY_RATES name."""
    d = RATE_DEFINITIONS[SUMMARY_RATES.get(name, name)]
    return f"{d['numerator']} / {d['denominator']} (judged by {d['judged_by']})"


# -- emulated links (analysis/links.py) --------------------------------------------------------


class LinkRequested(TypedDict):
    """What a link direction was asked for; the figures needing the distribution's math are
    null for link traces of version 1."""

    dist: str | None
    mean_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    loss_rate: float | None
    reorder: float | None
    duplicate: float | None
    rate_mbps: float | None


class LinkAchieved(TypedDict, total=False):
    """What the relay did; the delay figures only when something was delivered."""

    packets_in: Required[int]
    delivered: Required[int]
    lost: Required[int]
    loss_rate: Required[float | None]
    duplicates: Required[int]
    send_errors: Required[int]
    unsent: Required[int]
    mean_ms: float
    p50_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    mean_error_ms: float | None
    lateness_mean_ms: float
    lateness_p99_ms: float
    reordered: int
    reorder_rate: float | None


class LinkDirection(TypedDict):
    requested: LinkRequested
    achieved: LinkAchieved


class LinkSummary(TypedDict):
    target: list[Any]  # [host, port]
    forward: LinkDirection
    back: LinkDirection


# -- measured truth (analysis/truth.py; docs/METHODOLOGY.md, "Measured truth") -------------------


class Judged(TypedDict):
    """Claims judged against measured truth intervals: each is certainly right, certainly wrong
    or undecided (the truth interval allows both). Wrong lies within [certainly_wrong,
    possibly_wrong] = [k₁, k₁ + k₂]; rates are over ``claims``. With exact truth (emulated
    clocks) ``exact_wrong`` is the exact count over the same claims, side by side."""

    claims: int
    certainly_right: int
    certainly_wrong: int  # k₁
    undecided: int  # k₂ (a claim without a truth interval is undecided)
    possibly_wrong: int  # k₁ + k₂
    certainly_wrong_rate: Rate | None
    possibly_wrong_rate: Rate | None
    undecided_rate: Rate | None
    exact_wrong: int | None
    exact_wrong_rate: Rate | None


class MaeBounds(TypedDict):
    """Mean |estimate − truth| over readings with a truth interval: at least ``lo_ns``, at most
    ``hi_ns``; ``exact_ns`` with exact truth."""

    n: int
    lo_ns: float | None
    hi_ns: float | None
    exact_ns: float | None


class MeasuredWindow(TypedDict):
    point: Judged
    bounded: Judged | None


class MeasuredOrdering(TypedDict):
    point: Judged
    bounded: Judged | None


class MeasuredSource(TypedDict):
    kind: Kind
    mae: MaeBounds
    coverage: Judged | None  # bounded sources: "wrong" = missed, "right" = covered
    causality: Judged  # violation claims of the estimates: wrong = the receipt was not earlier
    causality_bounded: Judged | None  # violating intervals
    windows: dict[str, MeasuredWindow]  # window size (ms) →
    ordering: MeasuredOrdering  # over every pair of workers
    commit_wait: dict[str, MeasuredCommitWait] | None  # bounded: Δ (ms) → the re-evaluations


class MeasuredCommitWait(TypedDict):
    """A bounded source's receipt intervals re-evaluated at T+Δ, judged like the receipts'."""

    coverage: Judged  # wrong: the re-evaluated interval missed
    windows: dict[str, Judged]  # window size (ms) → confident claims at T+Δ


class MeasuredNode(TypedDict):
    """One node's truth prober and the intervals it gave its receipts (workers) or sends."""

    exchanges: int
    delay_ns: Dist  # δ of the exchanges
    intervals: int  # receipts or sends given a truth interval
    no_interval: int  # without one: no exchange, or exchanges that contradict the drift bound
    inconsistent_exchange_pairs: int  # consecutive exchanges the drift bound cannot join
    steps: int  # steps of the node's clock seen between exchanges (its step gap changed)
    stepped_exchanges: int  # exchanges dropped: the clock stepped inside them
    half_width_ns: Dist
    nearest_exchange_ns: Dist  # distance from a receipt/send to its nearest exchange (local)
    drift_term_ns: int | None  # max_drift × the median nearest distance
    decided_by: str
    exact_coverage: Rate | None  # exact truth inside the interval (emulated clocks)


class MeasuredTruth(TypedDict):
    available: bool
    reference: dict[str, Any] | None  # metadata.json "measured_truth"
    max_drift_ppm: float
    exact_truth: bool  # exact counts are reported beside the bounded ones
    nodes: dict[str, MeasuredNode]
    causality_truth: Judged  # every matched receipt: wrong = not after its send (must be 0)
    # window size (ms) → over events every worker received: wrong = the workers' true receipt
    # times do not share one window (window agreement's truth_agree, bounded)
    truth_agreement: dict[str, Judged]
    sources: dict[str, MeasuredSource]


# -- the document ------------------------------------------------------------------------------


class IntervalSettings(TypedDict):
    """The time blocks every "block" interval rests on (docs/METHODOLOGY.md, "Statistics")."""

    method: str
    block_ns: int  # base block length
    block_from: str  # how block_ns was chosen
    time: str  # which time places an event in a block
    blocks: int  # base blocks spanned by the sends
    min_blocks: int  # a longer block length is used while at least this many blocks hold data
    min_outcome_blocks: int  # fewer blocks holding the rarer outcome: one trial per block


class Settings(TypedDict):
    window_sizes_ms: list[int]
    window_offset_ms: float
    window_phase: str  # "per_event" (seeded shift per event) or "fixed"
    window_phase_seed: int
    intervals: IntervalSettings


# Functional form: "import" is a Python keyword.
Stats = TypedDict(
    "Stats",
    {
        "stats_version": int,
        "experiment_id": str,
        "truth_available": bool,
        "truth_unavailable_reason": str | None,
        "imported": bool,
        "import": dict[str, Any] | None,  # an imported folder's metadata.json "import" record
        "parameters": dict[str, Any],  # the spec, flattened (``workload.events``...)
        "config_key": str,
        "settings": Settings,
        "sources": list[str],
        "source_kinds": dict[str, Kind],
        "coordinator": CoordinatorStats,
        "workers": dict[str, WorkerStats],
        "ordering": OrderingStats,
        "window_agreement": dict[str, dict[str, Agreement]],  # source → size (ms) →
        "figures": list[str],  # paths relative to the results folder
        "coordination_cost": dict[str, CoordinationCost],
        "summary": dict[str, SourceSummary],
        "rate_definitions": dict[str, RateDefinition],
        "summary_rates": dict[str, str],  # summary name → its RATE_DEFINITIONS key
        "network": NotRequired[dict[str, LinkSummary]],  # only with emulated links
        "measured_truth": NotRequired[MeasuredTruth],  # only with truth traces
        # watermarks and late events (analysis/eventtime.py; METHODOLOGY.md, Event time):
        # available, reason, settings, sources.<s>.<estimate|latest>.streams.<worker|all>,
        # summary.<s>.<estimate|latest> (stream "all", the headline window)
        "event_time": NotRequired[dict[str, Any]],
        "reports": NotRequired[list[str]],  # written by analysis.run.analyze (always)
    },
)
