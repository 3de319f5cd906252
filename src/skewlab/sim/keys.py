"""How ``skewlab simulate`` treats every key of the experiment spec, and what it refuses.

:data:`SPEC_KEYS` maps each dotted key of :class:`~skewlab.spec.ExperimentSpec` (enumerated
from the pydantic models by :func:`spec_keys`: ``nodes[].offset_ms`` for a list of models,
``network.links{}.forward.delay`` for a mapping of models; a union of models such as a delay
distribution, a plain list or a plain mapping such as ``source_params`` is one key) to one of:

- ``"honoured"``: simulate gives the key the effect ``skewlab run`` gives it (checked by a
  perturbation test in virtual time, tests/unit/test_spec_keys.py, and for the keys most
  likely to diverge against real runs, tests/integration/test_run_vs_simulate_keys.py);
- ``"refused: <reason>"``: simulate does not model it; :func:`refusals` names every such key
  set to something other than its default, and ``check_simulable`` refuses the spec;
- ``"n/a: <reason>"``: the key only concerns real processes (sockets, authentication, process
  lifetime) or the analysis, and changes nothing in the traces of either mode.

A new spec key fails the test until it is entered here.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from skewlab.spec import ExperimentSpec

HONOURED = "honoured"
_SOCKETS = "virtual time has no sockets, and no trace of either mode records it"

SPEC_KEYS: dict[str, str] = {
    "name": HONOURED,  # names the results folder (experiment id) in both modes
    "seed": HONOURED,  # wander paths, schedules (poisson), link delays and losses
    "nodes[].name": HONOURED,
    "nodes[].role": HONOURED,
    "nodes[].offset_ms": HONOURED,
    "nodes[].drift_ppm": HONOURED,
    "nodes[].wander_ppb": HONOURED,
    # the oscillator's thermal sinusoids and replayed series (clocks/node.py builds them)
    "nodes[].thermal[].amplitude_ppm": HONOURED,
    "nodes[].thermal[].period_s": HONOURED,
    "nodes[].thermal[].phase_deg": HONOURED,
    "nodes[].replay.file": HONOURED,
    "nodes[].replay.time_column": HONOURED,
    "nodes[].replay.offset_column": HONOURED,
    "nodes[].replay.time_unit": HONOURED,
    "nodes[].replay.offset_unit": HONOURED,
    "nodes[].replay.sign": HONOURED,
    "nodes[].replay.start_s": HONOURED,
    "nodes[].discipline": HONOURED,  # the same servo (clocks/discipline.py) fed every sample
    "nodes[].port": f"n/a: the UDP port a real worker binds; {_SOCKETS}",
    "sources": HONOURED,  # host-service sources are refused by check_simulable itself
    "source_params": HONOURED,  # passed to the same source objects (make_sources)
    "workload.events": HONOURED,
    "workload.pattern": HONOURED,
    "workload.interval_ms": HONOURED,
    "workload.payload_bytes": (
        "n/a: pads each event datagram with bytes nobody reads; no trace records a size, and "
        "without a serialization rate (refused) a datagram's size does not change its delay"
    ),
    "workload.mode": HONOURED,
    "workload.duration_s": HONOURED,
    "workload.rate_per_s": HONOURED,
    "workload.burst_size": HONOURED,
    "workload.burst_spacing_ms": HONOURED,
    "workload.burst_gap_ms": HONOURED,
    "ntp.port": f"n/a: the embedded NTP server's UDP port; {_SOCKETS}",
    "ntp.poll_s": HONOURED,
    "ntp.burst": HONOURED,
    "ntp.timeout_s": HONOURED,  # a lost or dropped exchange costs it, as a real client waits
    "ntp.servers": HONOURED,
    "run.host": f"n/a: the address real processes bind and talk on; {_SOCKETS}",
    "run.warmup_s": HONOURED,
    "run.drain_s": HONOURED,
    "run.ready_timeout_s": HONOURED,  # no first NTP answer in time: the run fails
    "run.batch_rows": HONOURED,  # rows per part file of the traces
    "run.hmac_key": (
        "n/a: authenticates real event datagrams (HMAC-SHA256); every modelled datagram is "
        "authentic, and a real run writes the same traces with or without a key"
    ),
    "run.idle_exit_s": (
        "n/a: a real worker's exit when its control connection is lost and no event came for "
        "this long; virtual time has no control channel and a completed run never reaches it"
    ),
    "run.netns": (
        "n/a: puts the real processes in network namespaces joined by a bridge; delays and "
        "losses still come from `network`, which simulate models (the veth hop's own few tens "
        "of µs are not told apart from loopback's)"
    ),
    "commit_wait.delays_s": HONOURED,
    "commit_wait.max_fraction": HONOURED,
    "analysis.window_sizes_ms": (
        "n/a: read by the analysis only (from the folder's spec.json), the same code for both "
        "modes; no effect on traces"
    ),
    "analysis.window_offset_ms": (
        "n/a: read by the analysis only (from the folder's spec.json), the same code for both "
        "modes; no effect on traces"
    ),
    "analysis.window_phase": (
        "n/a: read by the analysis only (from the folder's spec.json), the same code for both "
        "modes; no effect on traces"
    ),
    "analysis.watermark_delays_ms": (
        "n/a: read by the analysis only (from the folder's spec.json), the same code for both "
        "modes; no effect on traces"
    ),
    "analysis.allowed_lateness_ms": (
        "n/a: read by the analysis only (from the folder's spec.json), the same code for both "
        "modes; no effect on traces"
    ),
    "network.profile": HONOURED,
    "network.links{}.profile": HONOURED,
    "network.links{}.forward.delay": HONOURED,  # the same sampler (net/sampling.py)
    "network.links{}.forward.loss": HONOURED,
    "network.links{}.forward.reorder": HONOURED,  # event and NTP paths alike
    "network.links{}.forward.reorder_extra_ms": HONOURED,
    "network.links{}.forward.duplicate": HONOURED,
    "network.links{}.forward.rate_mbps": (
        "refused: simulate does not model a link's serialization rate (queueing behind "
        "earlier datagrams)"
    ),
    "network.links{}.back.delay": HONOURED,  # replies: NTP paths (event paths carry none back)
    "network.links{}.back.loss": HONOURED,
    "network.links{}.back.reorder": HONOURED,
    "network.links{}.back.reorder_extra_ms": HONOURED,
    "network.links{}.back.duplicate": HONOURED,
    "network.links{}.back.rate_mbps": (
        "refused: simulate does not model a link's serialization rate (queueing behind "
        "earlier datagrams)"
    ),
    "faults[].kind": HONOURED,
    "faults[].at_s": HONOURED,
    "faults[].node": HONOURED,
    "faults[].delta_ms": HONOURED,
    "faults[].delta_ppm": HONOURED,
    "faults[].period_ms": HONOURED,
    "faults[].duration_s": HONOURED,
    "faults[].server": HONOURED,
    "faults[].how": HONOURED,
    "faults[].offset_ms": HONOURED,
    "faults[].path": HONOURED,
    "faults[].ramp_s": HONOURED,  # the oscillator's ramp (clocks/oscillator.py)
    # measured truth: a real prober's NTP exchanges over sockets; the simulator has exact truth
    # at every reading and records no truth trace (docs/SIMULATION.md)
    **{
        f"truth.{k}": "n/a: measured truth is a real-socket probe of a reference clock "
        "(traces/<node>/truth-*); a simulated run has exact truth at every reading and "
        "writes no truth trace"
        for k in ("measured", "reference", "rate_hz", "timeout_s", "max_drift_ppm")
    },
}


def _unwrap_optional(tp: Any) -> Any:
    """``X | None`` → ``X``; anything else unchanged."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _model(tp: Any) -> type[BaseModel] | None:
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _shape(tp: Any) -> tuple[str, type[BaseModel]] | None:
    """How a field holds models: ("", M) one model, ("[]", M) a list, ("{}", M) a mapping of
    them; None for a leaf (a scalar, a union of several models, a list or mapping of plain
    values)."""
    tp = _unwrap_optional(tp)
    if (m := _model(tp)) is not None:
        return "", m
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and args and (m := _model(_unwrap_optional(args[0]))) is not None:
        return "[]", m
    if origin is dict and len(args) == 2 and (m := _model(_unwrap_optional(args[1]))):
        return "{}", m
    return None


def spec_keys(model: type[BaseModel] = ExperimentSpec, prefix: str = "") -> list[str]:
    """Every dotted key of ``model``, recursively, in declaration order."""
    out: list[str] = []
    for name, f in model.model_fields.items():
        shape = _shape(f.annotation)
        if shape is None:
            out.append(prefix + name)
        else:
            out += spec_keys(shape[1], f"{prefix}{name}{shape[0]}.")
    return out


def missing_keys(table: dict[str, str], model: type[BaseModel] = ExperimentSpec) -> list[str]:
    """Keys of the model the table does not say anything about."""
    return [k for k in spec_keys(model) if k not in table]


def _split(key: str) -> list[tuple[str, str]]:
    """``network.links{}.forward.rate_mbps`` → [(network, ""), (links, "{}"), (forward, ""),
    (rate_mbps, "")]."""
    out = []
    for part in key.split("."):
        if part.endswith(("[]", "{}")):
            out.append((part[:-2], part[-2:]))
        else:
            out.append((part, ""))
    return out


def values(spec: BaseModel, key: str) -> Iterator[tuple[str, Any, Any]]:
    """(concrete key, value, default) for every place ``key`` occurs in ``spec``
    (``nodes[1].offset_ms``, ``network.links["B~ntp-server"].forward.rate_mbps``); an absent
    optional model on the way (a link without ``forward``) contributes nothing."""
    parts = _split(key)

    def walk(obj: Any, i: int, where: str) -> Iterator[tuple[str, Any, Any]]:
        name, kind = parts[i]
        field = type(obj).model_fields[name]
        here = f"{where}.{name}" if where else name
        val = getattr(obj, name)
        if i == len(parts) - 1:
            yield here, val, field.get_default(call_default_factory=True)
            return
        if val is None:
            return
        if kind == "[]":
            items: Iterator[tuple[str, Any]] = ((f"{here}[{j}]", v) for j, v in enumerate(val))
        elif kind == "{}":
            items = ((f'{here}["{k}"]', v) for k, v in val.items())
        else:
            items = iter([(here, val)])
        for w, v in items:
            if v is not None:
                yield from walk(v, i + 1, w)

    yield from walk(spec, 0, "")


def refusals(spec: ExperimentSpec) -> list[str]:
    """One line per refused key set to something other than its default, naming the key and
    the reason (empty: nothing refused)."""
    out: list[str] = []
    for key, status in SPEC_KEYS.items():
        if not status.startswith("refused: "):
            continue
        for where, val, default in values(spec, key):
            if val != default:
                out.append(f"{where} = {val!r}: {status.removeprefix('refused: ')}")
    return out


def refuse(spec: ExperimentSpec, error: type[Exception]) -> None:
    """Raise ``error`` with every refusal on one line (nothing if none)."""
    why = refusals(spec)
    if why:
        raise error("cannot simulate: " + "; ".join(why))


def summary() -> dict[str, int]:
    """How many keys are honoured, refused and not applicable."""
    out = {"honoured": 0, "refused": 0, "n/a": 0}
    for status in SPEC_KEYS.values():
        out[status.split(":", 1)[0]] += 1
    return out


__all__ = [
    "HONOURED",
    "SPEC_KEYS",
    "missing_keys",
    "refusals",
    "refuse",
    "spec_keys",
    "summary",
    "values",
]
