"""The experiment specification: loaded from TOML/YAML or a preset, validated, never executed.

Every field has a default, so ``ExperimentSpec()`` is the default experiment of ``skewlab run``.
Validation errors name the offending key (``nodes[1].drift_ppm: ...``).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from skewlab.clocks.names import SOURCE_NAMES
from skewlab.clocks.series import SeriesError, Sign, Unit, read_series
from skewlab.nemesis.schedule import CLOCK_KINDS, NTP_KINDS, FaultSpec, ntp_server_name
from skewlab.net.profiles import NetworkSpec, experiment_paths, spec_paths

CYCLE_DELAYS_MS: dict[str, float] = {
    "fast": 10.0,
    "medium": 50.0,
    "slow": 100.0,
    "very_slow": 500.0,
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_KEYED_MSG_RE = re.compile(r"^[A-Za-z_][\w.]*(\[\d+\])?(\.\w+)*: ")  # "faults[0].node: ..."


class SpecError(ValueError):
    """A configuration problem, already phrased for the user."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ThermalSpec(_Model):
    """A periodic frequency term of a node's oscillator (diurnal or thermal cycle):
    f(t) = amplitude · sin(2π (t − t0) / period + phase) (clocks/oscillator.py ``Sinusoid``)."""

    amplitude_ppm: float = Field(ge=0, le=1000)
    period_s: float = Field(86400.0, ge=1, le=30 * 86400)
    phase_deg: float = Field(0.0, ge=-360, le=360)  # 0: frequency 0 and rising at t0


class ReplaySpec(_Model):
    """A recorded clock-error series (CSV) added to a node's oscillator (clocks/series.py)."""

    file: str = Field(min_length=1)  # CSV path; relative to the experiment file's folder
    time_column: str = "elapsed_s"
    offset_column: str = "offset_ms"
    time_unit: Unit = "s"
    offset_unit: Unit = "ms"
    # clock_minus_reference: the clock's error (local − true, positive = ahead);
    # reference_minus_clock: an NTP offset (reference − system clock), replayed negated.
    sign: Sign = "clock_minus_reference"
    start_s: float | None = None  # recording time (s) at the run's t0; None: the first row's


class NodeSpec(_Model):
    """One node and its emulated oscillator (offset: local − true; positive = ahead)."""

    name: str
    role: Literal["coordinator", "worker"] = "worker"
    offset_ms: float = 0.0
    drift_ppm: float = Field(0.0, ge=-1000, le=1000)
    wander_ppb: float = Field(0.0, ge=0, le=1000)  # random-walk frequency wander, σ ppb/√s
    thermal: list[ThermalSpec] = Field(default_factory=list, max_length=8)  # sinusoids
    replay: ReplaySpec | None = None  # a recorded error series added to the clock
    # Clock discipline profile (clocks/discipline.py): "disciplined" (default: a realistic host,
    # an NTP daemon's servo slews the system clock toward its NTP samples) or "free" (a bare,
    # undisciplined oscillator).
    discipline: Literal["free", "disciplined"] = "disciplined"
    port: int = Field(0, ge=0, le=65535)  # data port; 0 = any free port

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("node names are 1-32 of A-Z a-z 0-9 _ . - (starting alphanumeric)")
        return v

    @field_validator("thermal", mode="before")
    @classmethod
    def _one_thermal(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v  # one table for one sinusoid


class WorkloadSpec(_Model):
    """How the coordinator paces its broadcast."""

    events: int = Field(300, ge=1, le=100_000_000)
    pattern: str = "slow,fast,fast,fast,fast,medium"  # named cycle; see CYCLE_DELAYS_MS
    interval_ms: float | None = Field(None, gt=0)  # fixed interval; overrides pattern
    payload_bytes: int = Field(0, ge=0, le=1400)
    # Schedule kind; None = "interval" when interval_ms is set, else "cycle" (see node/patterns).
    mode: Literal["cycle", "interval", "duration", "poisson", "bursts"] | None = None
    duration_s: float | None = Field(None, gt=0, le=30 * 86400)  # "duration": spread events evenly
    rate_per_s: float | None = Field(None, gt=0, le=10_000_000)  # "poisson": mean event rate
    burst_size: int = Field(10, ge=1, le=1_000_000)  # "bursts": events per burst
    burst_spacing_ms: float = Field(0.0, ge=0)  # "bursts": delay between events of one burst
    burst_gap_ms: float | None = Field(None, gt=0)  # "bursts": delay after a burst's last event

    @field_validator("pattern")
    @classmethod
    def _pattern_ok(cls, v: str) -> str:
        parts = [p.strip() for p in v.split(",") if p.strip()]
        bad = [p for p in parts if p not in CYCLE_DELAYS_MS]
        if not parts or bad:
            raise ValueError(
                f"unknown cycle step(s) {bad or [v]}; use a comma list of "
                f"{', '.join(CYCLE_DELAYS_MS)}"
            )
        return ",".join(parts)

    @model_validator(mode="after")
    def _mode_fields_ok(self) -> WorkloadSpec:
        need = {"interval": "interval_ms", "duration": "duration_s", "poisson": "rate_per_s",
                "bursts": "burst_gap_ms"}  # fmt: skip
        if self.mode in need and getattr(self, need[self.mode]) is None:
            raise ValueError(f"mode {self.mode!r} needs workload.{need[self.mode]}")
        return self

    @property
    def effective_mode(self) -> str:
        """The schedule kind in force (``mode``, or the one implied by ``interval_ms``)."""
        if self.mode is not None:
            return self.mode
        return "interval" if self.interval_ms is not None else "cycle"


class CommitWaitSpec(_Model):
    """Commit-wait re-evaluation of receipts at T+Δ (node/runtime.py, docs/TRACES.md)."""

    delays_s: list[float] = Field(default_factory=lambda: [30.0, 60.0])  # Δ values, seconds
    # Short runs scale every Δ by one factor so the longest is at most this fraction of the
    # expected run duration (0 disables scaling).
    max_fraction: float = Field(0.25, ge=0, le=10)

    @field_validator("delays_s")
    @classmethod
    def _delays_ok(cls, v: list[float]) -> list[float]:
        if any(d <= 0 for d in v):
            raise ValueError("commit-wait delays must be > 0 s")
        if len(set(v)) != len(v) or len(v) > 8:
            raise ValueError("commit-wait delays must be distinct (at most 8)")
        return sorted(v)


class AnalysisSpec(_Model):
    """Settings of the analysis (docs/METHODOLOGY.md): tumbling windows with Flink semantics."""

    window_sizes_ms: list[int] = Field(default_factory=lambda: [50, 100, 500, 1000])
    window_offset_ms: int = 0  # window start = t − ((t − offset) mod size)
    # per_event: each event's grid is shifted by a phase seeded by the event id and `seed`, so
    # a workload on a fixed time grid does not lock onto the boundaries; fixed: one grid
    window_phase: Literal["per_event", "fixed"] = "per_event"
    # event time (analysis/eventtime.py): bounded out-of-orderness watermark delays and the
    # windows' allowed lateness, ms
    watermark_delays_ms: list[int] = Field(default_factory=lambda: [0, 1, 5, 20, 100])
    allowed_lateness_ms: int = Field(5, ge=0, le=3_600_000)

    @field_validator("watermark_delays_ms")
    @classmethod
    def _delays_ok(cls, v: list[int]) -> list[int]:
        if not v or any(x < 0 or x > 3_600_000 for x in v) or len(set(v)) != len(v):
            raise ValueError("watermark delays must be distinct integers in [0, 3600000] (ms)")
        return sorted(v)

    @field_validator("window_sizes_ms")
    @classmethod
    def _sizes_ok(cls, v: list[int]) -> list[int]:
        if not v or any(x <= 0 for x in v) or len(set(v)) != len(v):
            raise ValueError("window sizes must be distinct positive integers (ms)")
        return sorted(v)


class NtpSpec(_Model):
    """The embedded NTP server and the nodes' NTP clients."""

    port: int = Field(0, ge=0, le=65535)  # embedded server port; 0 = any free port
    poll_s: float = Field(1.0, gt=0, le=3600)
    burst: int = Field(4, ge=1, le=64)
    timeout_s: float = Field(0.5, gt=0, le=30)
    # Embedded servers; with more than one, each node polls all and selects (ntp/select.py).
    servers: int = Field(1, ge=1, le=7)


class TruthSpec(_Model):
    """Measured truth (docs/METHODOLOGY.md, "Measured truth"): every coordinator and worker runs
    a truth prober — frequent NTP exchanges with a reference clock, on its own socket and
    thread, recorded as ``traces/<node>/truth-*.parquet`` and never read by a clock source.
    The analysis bounds each receipt's and send's time in the reference's timescale from the
    exchanges around it."""

    # None: the launcher decides (on for `skewlab deploy` over ssh and slurm, off for local runs,
    # whose emulated nodes have exact truth); true/false: always/never.
    measured: bool | None = None
    # "embedded": a fault-free NTP server in the ntp-server node process (on the coordinator's
    # host unless placed elsewhere); or HOST:PORT of an NTP server to use as the reference.
    reference: str = "embedded"
    rate_hz: float = Field(10.0, ge=0.1, le=1000)  # exchanges per second per node
    timeout_s: float = Field(0.25, gt=0, le=10)  # one exchange's reply deadline
    # The largest rate at which reference − node clock may change between exchanges (ppm):
    # each exchange's bound widens by this × the distance to it. 500 ppm is the Linux kernel's
    # frequency limit for a disciplined clock (MAXFREQ), far beyond a crystal's ±100 ppm.
    max_drift_ppm: float = Field(500.0, gt=0, le=100_000)

    @field_validator("reference")
    @classmethod
    def _reference_ok(cls, v: str) -> str:
        if v == "embedded":
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("reference is 'embedded' or HOST:PORT of an NTP server")
        return v


class RunSpec(_Model):
    """Run-loop settings of the local launcher."""

    host: str = "127.0.0.1"
    warmup_s: float = Field(2.0, ge=0, le=3600)
    drain_s: float = Field(0.5, ge=0, le=60)
    ready_timeout_s: float = Field(20.0, gt=0, le=3600)
    batch_rows: int = Field(8192, ge=1, le=1_000_000)  # trace rows per Parquet part file
    # HMAC-SHA256 on event packets: true = a fresh random key per run (default), false = none
    # (throughput studies), a string = that fixed key (UTF-8). Never written: see to_json.
    hmac_key: bool | str = True
    idle_exit_s: float = Field(5.0, gt=0, le=3600)  # worker exits when control is lost and no
    # event arrived for this long
    netns: bool = False  # namespace mode (root only): each node in its own network namespace

    @field_validator("hmac_key", mode="before")
    @classmethod
    def _hmac_key_ok(cls, v: Any) -> Any:
        if v is None:  # spec.json of older runs: null meant unauthenticated
            return False
        if isinstance(v, str) and not v:
            raise ValueError("an empty key; use true (a per-run key) or false (none)")
        return v


def _default_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(name="coordinator", role="coordinator", offset_ms=1.0, drift_ppm=10.0),
        NodeSpec(name="B", role="worker", offset_ms=3.0, drift_ppm=40.0),
        NodeSpec(name="C", role="worker", offset_ms=-2.0, drift_ppm=-25.0),
    ]


class ExperimentSpec(_Model):
    """A whole experiment: nodes, clock sources, workload, NTP and run settings."""

    name: str = "default"
    seed: int = 1
    nodes: list[NodeSpec] = Field(default_factory=_default_nodes)
    sources: list[str] = Field(
        default_factory=lambda: ["system", "ntp", "truetime", "clockbound", "skewlab"]
    )
    source_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    ntp: NtpSpec = Field(default_factory=NtpSpec)
    run: RunSpec = Field(default_factory=RunSpec)
    commit_wait: CommitWaitSpec = Field(default_factory=CommitWaitSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    network: NetworkSpec = Field(default_factory=NetworkSpec)  # link emulation (net/)
    truth: TruthSpec = Field(default_factory=TruthSpec)  # measured truth (node/prober.py)
    faults: list[FaultSpec] = Field(default_factory=list)  # nemesis schedule (nemesis/)

    @field_validator("name")
    @classmethod
    def _exp_name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("experiment names are 1-32 of A-Z a-z 0-9 _ . -")
        return v

    @field_validator("sources")
    @classmethod
    def _sources_ok(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one clock source is needed")
        unknown = [s for s in v if s not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; known: {sorted(SOURCE_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError("sources are listed more than once")
        return v

    @field_validator("source_params")
    @classmethod
    def _optional_ok(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # source_params.<name>.optional = true: run even when that source's service is absent
        for name, p in v.items():
            if "optional" in p and not isinstance(p["optional"], bool):
                raise ValueError(f"{name}.optional must be true or false")
        return v

    @property
    def optional_sources(self) -> list[str]:
        """Configured sources marked ``optional``: the run goes on without their service."""
        return [s for s in self.sources if self.source_params.get(s, {}).get("optional") is True]

    @model_validator(mode="after")
    def _roles_ok(self) -> ExperimentSpec:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        coords = [n for n in self.nodes if n.role == "coordinator"]
        if len(coords) != 1:
            raise ValueError(f"exactly one node must have role 'coordinator' (found {len(coords)})")
        if len(self.workers) < 2:
            raise ValueError("at least two workers are needed (ordering compares workers)")
        return self

    @model_validator(mode="after")
    def _network_ok(self) -> ExperimentSpec:
        self.network.check_paths(spec_paths(self))
        return self

    @model_validator(mode="after")
    def _faults_ok(self) -> ExperimentSpec:
        """Each fault against the rest of the spec; errors name ``faults[i].key``."""
        names = {n.name for n in self.nodes}
        servers = tuple(ntp_server_name(i) for i in range(self.ntp.servers))
        paths = experiment_paths(
            self.coordinator.name, [w.name for w in self.workers], sorted(names), servers
        )
        relayed = self.network.relayed(paths)
        for i, f in enumerate(self.faults):
            if f.kind in CLOCK_KINDS and f.node not in names:
                raise ValueError(
                    f"faults[{i}].node: no node named {f.node!r} (nodes: {sorted(names)})"
                )
            if f.kind in NTP_KINDS and f.server >= self.ntp.servers:
                raise ValueError(
                    f"faults[{i}].server: {f.server} but ntp.servers = {self.ntp.servers} "
                    f"(servers are numbered from 0)"
                )
            if f.kind == "link_loss":
                if f.path not in paths:
                    raise ValueError(f"faults[{i}].path: unknown path {f.path!r}; paths: {paths}")
                if f.path not in relayed:
                    raise ValueError(
                        f"faults[{i}].path: {f.path!r} is not emulated (loopback); give it a "
                        f"network profile (network.links.{f.path!r}) so a relay can drop packets"
                    )
        return self

    @property
    def coordinator(self) -> NodeSpec:
        return next(n for n in self.nodes if n.role == "coordinator")

    @property
    def workers(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "worker"]

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_json(self) -> str:
        """The spec as it is recorded (spec.json): a fixed ``run.hmac_key`` is written as
        ``true``, because a key is a secret and never goes into a file."""
        if isinstance(self.run.hmac_key, str):
            run = self.run.model_copy(update={"hmac_key": True})
            return self.model_copy(update={"run": run}).model_dump_json(indent=2)
        return self.model_dump_json(indent=2)


def _format_validation(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = e["msg"].removeprefix("Value error, ")
        if not loc and _KEYED_MSG_RE.match(msg):  # a cross-check that names its own key
            lines.append(f"{origin}: {msg}")
            continue
        lines.append(f"{origin}: {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def _resolve_paths(data: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """``data`` with every node's replay file absolute (relative paths are relative to
    ``base``, default the working directory), so the recorded spec.json names the same file
    from any working directory."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return data
    out = []
    for n in nodes:
        r = n.get("replay") if isinstance(n, dict) else None
        if isinstance(r, dict) and isinstance(r.get("file"), str) and r["file"]:
            path = str(((base or Path()) / Path(r["file"]).expanduser()).resolve())
            n = {**n, "replay": {**r, "file": path}}
        out.append(n)
    return {**data, "nodes": out}


def check_files(spec: ExperimentSpec, origin: str = "config") -> None:
    """Read every file the spec names (replay series): a missing or malformed one is a
    SpecError of one line naming the key, the file, its line and column."""
    for i, n in enumerate(spec.nodes):
        r = n.replay
        if r is None:
            continue
        try:
            read_series(r.file, r.time_column, r.offset_column, r.time_unit, r.offset_unit,
                        r.sign)  # fmt: skip
        except SeriesError as e:
            raise SpecError(f"{origin}: nodes[{i}].replay: {e}") from None


def from_dict(
    data: dict[str, Any], origin: str = "config", base: Path | None = None
) -> ExperimentSpec:
    """Validate a spec mapping; files it names are resolved against ``base`` (default: the
    working directory) and read (``check_files``)."""
    data = _resolve_paths(data, base)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(_format_validation(e, origin)) from None
    if bad := _booleans_as_numbers(data, spec.model_dump(), ""):
        raise SpecError("\n".join(f"{origin}: {b}" for b in bad))
    check_files(spec, origin)
    return spec


def _booleans_as_numbers(raw: Any, valid: Any, loc: str) -> list[str]:
    """Keys given a boolean (``events: true``) where the spec holds a number: the validator
    would read true as 1; refused instead, naming the key."""
    if isinstance(raw, bool):
        ok = isinstance(valid, bool) or not isinstance(valid, (int, float))
        return [] if ok else [f"{loc}: {str(raw).lower()} is a boolean; a number is expected"]
    out: list[str] = []
    if isinstance(raw, dict) and isinstance(valid, dict):
        for k, v in raw.items():
            if k in valid:
                out += _booleans_as_numbers(v, valid[k], f"{loc}.{k}" if loc else str(k))
    elif isinstance(raw, list) and isinstance(valid, list) and len(raw) == len(valid):
        for i, (r, v) in enumerate(zip(raw, valid, strict=True)):
            out += _booleans_as_numbers(r, v, f"{loc}[{i}]")
    return out


def load_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a TOML (.toml), YAML (.yaml/.yml) or JSON file whose top level is a mapping.

    The one reader of every skewlab input file (experiments, cluster and sweep files); ``what``
    names the kind of file in the errors (``cannot read cluster file x.toml: ...``).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpecError(f"cannot read {what} file {p}: {e.strerror}") from None
    errors: tuple[type[Exception], ...] = (tomllib.TOMLDecodeError, json.JSONDecodeError)
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml  # only for YAML files: every node process reads a spec (JSON)

            errors = (yaml.YAMLError,)
            data = yaml.safe_load(text) or {}
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise SpecError(f"{p}: {what} files must end in .toml, .yaml, .yml or .json")
    except errors as e:
        raise SpecError(f"{p}: not valid {p.suffix[1:].upper()}: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p}: the top level must be a table/mapping")
    return data


def load(path: str | Path) -> ExperimentSpec:
    """Load a TOML (.toml) or YAML (.yaml/.yml) or JSON file into a validated spec."""
    return from_dict(load_mapping(path, "config"), str(path), Path(path).parent)
