"""Link settings of an experiment (the ``network`` key) and the named network profiles.

A path is named ``<from>~<to>`` (``~`` cannot occur in a node name): ``coordinator~B`` carries
events, ``B~ntp-server`` carries B's NTP requests; *forward* is from→to, *back* is the reply
direction. Profiles and their parameters are documented in docs/NETWORK.md.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from skewlab.net.distributions import (
    BernoulliLoss,
    ConstantDelay,
    DelaySpec,
    GilbertElliottLoss,
    LognormalDelay,
    LossSpec,
    NormalDelay,
)

PATH_SEP = "~"
NTP_SERVER_NODE = "ntp-server"  # the embedded NTP server's process name in the launcher


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectionSpec(_Model):
    """What one direction of a link does to each datagram."""

    delay: DelaySpec = Field(default_factory=ConstantDelay)
    loss: LossSpec = Field(default_factory=BernoulliLoss)
    reorder: float = Field(0.0, ge=0, le=1)  # P(a packet is held back by reorder_extra_ms)
    reorder_extra_ms: float = Field(1.0, ge=0, le=60_000)  # hold-back; later packets overtake
    duplicate: float = Field(0.0, ge=0, le=1)  # P(a second copy is sent, own delay)
    rate_mbps: float | None = Field(None, gt=0)  # serialization rate; None = unlimited


class LinkSpec(_Model):
    """One path: a profile, and/or explicit settings per direction (which override it)."""

    profile: str | None = None
    forward: DirectionSpec | None = None
    back: DirectionSpec | None = None

    @model_validator(mode="after")
    def _ok(self) -> LinkSpec:
        if self.profile is not None and self.profile not in PROFILES:
            raise ValueError(f"unknown network profile {self.profile!r}; known: {profile_names()}")
        if self.profile is None and self.forward is None and self.back is None:
            raise ValueError("a link needs a profile or forward/back settings")
        return self


class ResolvedLink(_Model):
    """Concrete settings of one relayed path."""

    forward: DirectionSpec
    back: DirectionSpec


def _ms_normal(mean: float, std: float) -> DirectionSpec:
    return DirectionSpec(delay=NormalDelay(mean_ms=mean, std_ms=std))


# name -> (forward, back); None = no relay at all (direct loopback).
PROFILES: dict[str, ResolvedLink | None] = {
    "loopback": None,
    "lan": ResolvedLink(forward=_ms_normal(0.1, 0.02), back=_ms_normal(0.1, 0.02)),
    "datacenter": ResolvedLink(
        forward=DirectionSpec(delay=LognormalDelay(mean_ms=0.5, std_ms=0.2, min_ms=0.2)),
        back=DirectionSpec(delay=LognormalDelay(mean_ms=0.4, std_ms=0.15, min_ms=0.2)),
    ),
    "wan": ResolvedLink(
        forward=DirectionSpec(
            delay=LognormalDelay(mean_ms=30.0, std_ms=3.0, min_ms=25.0),
            loss=BernoulliLoss(rate=0.001),
        ),
        back=DirectionSpec(
            delay=LognormalDelay(mean_ms=20.0, std_ms=2.0, min_ms=17.0),
            loss=BernoulliLoss(rate=0.001),
        ),
    ),
    "lossy": ResolvedLink(
        forward=DirectionSpec(
            delay=NormalDelay(mean_ms=5.0, std_ms=2.0),
            loss=GilbertElliottLoss(p_gb=0.01, p_bg=0.3),
            reorder=0.01,
            reorder_extra_ms=5.0,
            duplicate=0.005,
        ),
        back=DirectionSpec(
            delay=NormalDelay(mean_ms=5.0, std_ms=2.0),
            loss=GilbertElliottLoss(p_gb=0.01, p_bg=0.3),
            reorder=0.01,
            reorder_extra_ms=5.0,
            duplicate=0.005,
        ),
    ),
}


def profile_names() -> list[str]:
    return list(PROFILES)


def path_name(src: str, dst: str) -> str:
    """The name of the path from node ``src`` to node ``dst``."""
    return f"{src}{PATH_SEP}{dst}"


def experiment_paths(
    coordinator: str, workers: list[str], nodes: list[str], ntp_servers: tuple[str, ...] = ()
) -> list[str]:
    """Every path of an experiment: coordinator → each worker, each node ↔ each NTP server."""
    servers = ntp_servers or (NTP_SERVER_NODE,)
    return [path_name(coordinator, w) for w in workers] + [
        path_name(n, s) for n in nodes for s in servers
    ]


def ntp_server_names(count: int) -> tuple[str, ...]:
    """Node names of the embedded NTP servers: ``ntp-server``, ``ntp-server-1``, ..."""
    return tuple(NTP_SERVER_NODE if i == 0 else f"{NTP_SERVER_NODE}-{i}" for i in range(count))


def spec_paths(spec: Any) -> list[str]:
    """Every path of an ExperimentSpec (all of its embedded NTP servers included)."""
    return experiment_paths(
        spec.coordinator.name,
        [w.name for w in spec.workers],
        [n.name for n in spec.nodes],
        ntp_server_names(getattr(spec.ntp, "servers", 1)),
    )


class NetworkSpec(_Model):
    """``network``: a default profile for every path plus per-path overrides.

    ``links`` keys are path names or shell patterns (``*~ntp-server``); an exact name wins over
    a pattern, and among patterns the first listed wins.
    """

    profile: str = "loopback"
    links: dict[str, LinkSpec] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"profile": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _ok(self) -> NetworkSpec:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown network profile {self.profile!r}; known: {profile_names()}")
        return self

    def check_paths(self, paths: list[str]) -> None:
        """Raise ValueError naming any ``links`` key that matches no path of the experiment."""
        for key in self.links:
            if not any(fnmatch.fnmatchcase(p, key) for p in paths):
                raise ValueError(
                    f"network.links key {key!r} matches no path; paths: {', '.join(paths)}"
                )

    def _link_for(self, path: str) -> LinkSpec | None:
        if path in self.links:
            return self.links[path]
        return next((v for k, v in self.links.items() if fnmatch.fnmatchcase(path, k)), None)

    def resolve(self, path: str) -> ResolvedLink | None:
        """Concrete settings for ``path``, or None when it is not relayed (loopback)."""
        link = self._link_for(path)
        base_name = (link.profile if link and link.profile else None) or self.profile
        base = PROFILES[base_name]
        if link is None or (link.forward is None and link.back is None):
            return base
        zero = DirectionSpec()
        return ResolvedLink(
            forward=link.forward or (base.forward if base else zero),
            back=link.back or (base.back if base else zero),
        )

    def relayed(self, paths: list[str]) -> dict[str, ResolvedLink]:
        """The paths that go through a relay, with their settings."""
        out = {}
        for p in paths:
            r = self.resolve(p)
            if r is not None:
                out[p] = r
        return out
