"""Fault schedules: the ``[[faults]]`` section of an experiment and what it means in time.

Every fault starts ``at_s`` seconds after the run's time origin ``t0`` (the launcher's true
time when it created the results folder, ``metadata.json: t0_ns``), so its true start instant
is known before the run and every node computes the same one. Kinds:

- ``clock_step``      node's realtime clock jumps by ``delta_ms`` (monotonic unaffected)
- ``clock_strobe``    node's realtime clock alternates between normal and normal + ``delta_ms``
                      every half ``period_ms``, for ``duration_s``
- ``clock_rate``      node's oscillator frequency changes by ``delta_ppm`` from then on;
                      with ``ramp_s`` the change is linear over that many seconds (a ramp)
- ``ntp_outage``      NTP server ``server`` stops answering for ``duration_s`` (``how``: ``stop``
                      closes its socket — clients see "unreachable" —, ``drop`` drops every request)
- ``ntp_falseticker`` NTP server ``server`` serves true time + ``offset_ms`` for ``duration_s``
- ``link_loss``       the emulated link ``path`` (``"<from>~<to>"``) drops every datagram, both
                      directions, for ``duration_s`` (the path must be emulated: ``network``)

The nemesis only applies and records faults (``skewlab.nemesis.record``); it never judges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skewlab.clocks.faults import ClockFault

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

FaultKind = Literal[
    "clock_step", "clock_strobe", "clock_rate", "ntp_outage", "ntp_falseticker", "link_loss"
]
CLOCK_KINDS = ("clock_step", "clock_strobe", "clock_rate")
NTP_KINDS = ("ntp_outage", "ntp_falseticker")

# Per kind: the keys it needs, and the keys it may take besides those (kind and at_s always).
_NEEDS: dict[str, tuple[str, ...]] = {
    "clock_step": ("node", "delta_ms"),
    "clock_strobe": ("node", "delta_ms", "period_ms", "duration_s"),
    "clock_rate": ("node", "delta_ppm"),
    "ntp_outage": (),
    "ntp_falseticker": ("offset_ms",),
    "link_loss": ("path", "duration_s"),
}
_MAY: dict[str, tuple[str, ...]] = {
    "clock_rate": ("ramp_s",),
    "ntp_outage": ("server", "how", "duration_s"),
    "ntp_falseticker": ("server", "duration_s"),
}


def ntp_server_name(index: int) -> str:
    """The node name of NTP server ``index`` (0: the launcher's ``ntp-server``)."""
    return "ntp-server" if index == 0 else f"ntp-server-{index}"


class FaultSpec(BaseModel):
    """One scheduled fault (see the module docstring for the kinds and their keys)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: FaultKind
    at_s: float = Field(ge=0, le=30 * 86400)  # start, seconds after the run's t0
    node: str | None = None  # clock_*: the node whose clock misbehaves
    delta_ms: float | None = Field(None, ge=-3_600_000, le=3_600_000)  # step / strobe size
    delta_ppm: float | None = Field(None, ge=-1000, le=1000)  # clock_rate: frequency change
    period_ms: float | None = Field(None, gt=0, le=3_600_000)  # clock_strobe: full period
    duration_s: float | None = Field(None, gt=0, le=30 * 86400)  # how long (None: to the end)
    server: int = Field(0, ge=0, le=6)  # ntp_*: index of the NTP server (0..ntp.servers-1)
    how: Literal["stop", "drop"] = "stop"  # ntp_outage: close the socket, or drop requests
    offset_ms: float | None = Field(None, ge=-3_600_000, le=3_600_000)  # falseticker: served −
    # true time
    path: str | None = None  # link_loss: "<from>~<to>"
    ramp_s: float | None = Field(None, gt=0, le=30 * 86400)  # clock_rate: linear over this long

    @model_validator(mode="after")
    def _keys_fit_kind(self) -> FaultSpec:
        need = _NEEDS[self.kind]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {', '.join(missing)}")
        allowed = {"kind", "at_s", *need, *_MAY.get(self.kind, ())}
        fields = type(self).model_fields
        # set to something other than its default (a dumped spec repeats every default)
        extra = sorted(
            k
            for k in self.model_fields_set
            if k not in allowed and getattr(self, k) != fields[k].default
        )
        if extra:
            raise ValueError(f"kind {self.kind!r} does not take {', '.join(extra)}")
        if self.kind == "clock_strobe" and self.period_ms is not None and self.period_ms < 2:
            raise ValueError("clock_strobe period_ms must be >= 2 (two half periods of >= 1 ms)")
        return self

    def start_ns(self, t0_ns: int) -> int:
        """True instant the fault starts."""
        return t0_ns + round(self.at_s * NS_PER_S)

    def end_ns(self, t0_ns: int) -> int | None:
        """True instant it ends (None: lasts to the end of the run; a step or rate change is
        instantaneous and permanent, so also None)."""
        if self.duration_s is None or self.kind in ("clock_step", "clock_rate"):
            return None
        return self.start_ns(t0_ns) + round(self.duration_s * NS_PER_S)

    def target(self) -> str:
        """What the fault acts on: a node, an NTP server's node name, or a path."""
        if self.kind in CLOCK_KINDS:
            return str(self.node)
        if self.kind in NTP_KINDS:
            return ntp_server_name(self.server)
        return str(self.path)

    def detail(self) -> dict[str, Any]:
        """The fault's parameters as set in the spec (for the record)."""
        return self.model_dump(exclude_defaults=True, exclude={"kind", "at_s"})


class HasFaults(Protocol):
    """What :func:`clock_faults` reads of a spec (an ``ExperimentSpec``; named structurally so
    this module stays a leaf of the spec and never imports it back)."""

    @property
    def faults(self) -> Sequence[FaultSpec]: ...


def clock_faults(spec: HasFaults, node: str, t0_ns: int) -> tuple[ClockFault, ...]:
    """The oscillator faults of one node: exact, deterministic functions of true time."""
    out: list[ClockFault] = []
    for f in spec.faults:
        if f.kind not in CLOCK_KINDS or f.node != node:
            continue
        at = f.start_ns(t0_ns)
        if f.kind == "clock_step":
            out.append(ClockFault("step", at, delta_ns=round(f.delta_ms * NS_PER_MS)))  # type: ignore[operator]
        elif f.kind == "clock_rate":
            ramp = 0 if f.ramp_s is None else round(f.ramp_s * NS_PER_S)
            out.append(ClockFault("freq", at, delta_ppb=round(f.delta_ppm * 1000), ramp_ns=ramp))  # type: ignore[operator]
        else:
            out.append(
                ClockFault(
                    "strobe",
                    at,
                    delta_ns=round(f.delta_ms * NS_PER_MS),  # type: ignore[operator]
                    period_ns=round(f.period_ms * NS_PER_MS),  # type: ignore[operator]
                    duration_ns=round(f.duration_s * NS_PER_S),  # type: ignore[operator]
                )
            )
    return tuple(out)
