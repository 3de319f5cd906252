"""The cluster file of ``skewlab deploy``: which hosts exist, which nodes run where, and how to
reach them (SSH settings, Slurm settings). Loaded from TOML/YAML/JSON and validated; it never
names a command to run, only values that are passed as single, quoted arguments.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skewlab.spec import ExperimentSpec, SpecError, load_mapping

NTP_NODE = "ntp-server"  # the embedded NTP server's node name (see orchestrator.py)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostSpec(_Model):
    """One host and the nodes placed on it."""

    name: str  # SSH destination (host name or address), or Slurm node name, or "@N" (Slurm:
    # the N-th node of the allocation, from 0)
    address: str | None = None  # where other nodes reach this host's nodes (default: name)
    bind: str | None = None  # address its nodes bind to (default: address)
    nodes: list[str] = Field(default_factory=list)  # experiment node names; "ntp-server" too
    python: str | None = None  # Python with skewlab installed on this host (default: cluster's)
    workdir: str | None = None  # SSH copy mode: remote base folder (default: cluster's)
    user: str | None = None  # SSH login user (default: ssh.user)
    port: int | None = Field(None, ge=1, le=65535)  # SSH port (default: ssh.port)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v or v.startswith("-") or any(c.isspace() for c in v):
            raise ValueError("host names must be non-empty, without spaces, not start with '-'")
        return v


class SshSettings(_Model):
    """How the OpenSSH client logs in (key-based, never a password prompt)."""

    user: str | None = None
    port: int = Field(22, ge=1, le=65535)
    identity_file: str | None = None  # private key; relative to the cluster file
    known_hosts_file: str | None = None  # relative to the cluster file
    strict_host_key_checking: Literal["yes", "accept-new", "no"] = "yes"
    connect_timeout_s: int = Field(10, ge=1, le=600)
    options: list[str] = Field(default_factory=list)  # extra "-o" values, e.g. "Ciphers=aes128-ctr"

    @field_validator("options")
    @classmethod
    def _opts_ok(cls, v: list[str]) -> list[str]:
        bad = [o for o in v if "=" not in o or o.startswith("-")]
        if bad:
            raise ValueError(f"ssh options are KEY=VALUE (given to -o): {bad}")
        return v


class SlurmSettings(_Model):
    """The allocation asked for by ``sbatch`` (login-node path) and extra ``srun`` arguments."""

    partition: str | None = None
    account: str | None = None
    time_limit: str = "01:00:00"  # sbatch --time
    sbatch_args: list[str] = Field(default_factory=list)  # e.g. ["--qos=short"]
    srun_args: list[str] = Field(default_factory=list)  # added to every job step
    poll_s: float = Field(1.0, gt=0, le=60)  # job state poll interval while waiting for sbatch
    # `skewlab sweep --launcher slurm`: the cells as one job array (docs/DEPLOYMENT.md)
    array_limit: int = Field(4, ge=1)  # array tasks running at once (sbatch --array=...%N)
    task_time_limit: str | None = None  # sbatch --time per array task (default: time_limit)
    task_mem: str | None = None  # sbatch --mem per array task, e.g. "2G" (default: Slurm's)
    cpus_per_task: int = Field(1, ge=1)  # sbatch --cpus-per-task
    cells_per_task: int = Field(1, ge=1)  # cells one array task runs, one after another


class ClusterSpec(_Model):
    """A whole cluster file."""

    launcher: Literal["local", "ssh", "slurm"] | None = None  # default for --launcher
    control_address: str | None = None  # this machine's address the nodes connect back to
    control_port: int = Field(0, ge=0, le=65535)  # 0 = any free port
    clocks: Literal["real", "emulated"] = "real"  # real: no emulated oscillators, no truth
    ntp: str = "embedded"  # "embedded" (started on the host holding ntp-server) or HOST:PORT
    python: str = Field(default_factory=lambda: sys.executable)  # Python on the hosts
    workdir: str | None = None  # SSH: remote base folder, traces copied back; None = the
    # results folder is on a file system shared by every host (read in place)
    keep_remote: bool = False  # SSH copy mode: keep the remote copy after collecting it
    max_clock_offset_ms: float = Field(1000.0, gt=0)  # pre-flight: a host clock further off
    # than this from the launcher's (beyond the probe's round trip) fails the check
    ssh: SshSettings = Field(default_factory=SshSettings)
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    hosts: list[HostSpec] = Field(default_factory=list)

    @field_validator("ntp")
    @classmethod
    def _ntp_ok(cls, v: str) -> str:
        if v != "embedded":
            host, _, port = v.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("ntp is 'embedded' or HOST:PORT of an NTP server")
        return v

    def placement(self) -> dict[str, HostSpec]:
        """node name → its host."""
        return {n: h for h in self.hosts for n in h.nodes}

    def check_against(self, spec: ExperimentSpec, origin: str = "cluster") -> None:
        """Every experiment node placed exactly once, nothing unknown placed."""
        names = [n.name for n in spec.nodes]
        allowed = set(names) | ({NTP_NODE} if self.ntp == "embedded" else set())
        placed = [n for h in self.hosts for n in h.nodes]
        problems = []
        dup = sorted({n for n in placed if placed.count(n) > 1})
        if dup:
            problems.append(f"placed on more than one host: {dup}")
        unknown = sorted(set(placed) - allowed)
        if unknown:
            problems.append(f"not nodes of experiment {spec.name!r}: {unknown}")
        missing = [n for n in names if n not in placed]
        if missing:
            problems.append(f"nodes of the experiment placed on no host: {missing}")
        hnames = [h.name for h in self.hosts]
        if len(set(hnames)) != len(hnames):
            problems.append(f"host names must be unique: {hnames}")
        if problems:
            raise SpecError("; ".join(f"{origin}: {p}" for p in problems))

    def host_of(self, node: str, spec: ExperimentSpec) -> HostSpec:
        """The host of a node; the embedded NTP server defaults to the coordinator's host."""
        place = self.placement()
        if node in place:
            return place[node]
        if node == NTP_NODE:
            return place[spec.coordinator.name]
        raise KeyError(node)

    def all_loopback(self) -> bool:
        """True if every host's address is a loopback address (then control can be too)."""
        for h in self.hosts:
            try:
                if not ipaddress.ip_address(h.address or h.name).is_loopback:
                    return False
            except ValueError:
                if (h.address or h.name) != "localhost":
                    return False
        return True


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make the cluster file's local file paths absolute, relative to the file itself."""
    ssh = data.get("ssh")
    if isinstance(ssh, dict):
        for key in ("identity_file", "known_hosts_file"):
            if isinstance(ssh.get(key), str):
                ssh[key] = str((base / Path(ssh[key]).expanduser()).resolve())


def from_dict(data: dict[str, Any], origin: str = "cluster", base: Path | None = None):
    """Validate a cluster mapping (paths relative to ``base``)."""
    if base is not None:
        _resolve_paths(data, base)
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err["loc"])
            lines.append(f"{origin}: {loc.replace('.[', '[') or '(top level)'}: "
                         f"{err['msg'].removeprefix('Value error, ')}")  # fmt: skip
        raise SpecError("\n".join(lines)) from None


def load(path: str | Path) -> ClusterSpec:
    """Load a cluster file (.toml, .yaml/.yml or .json)."""
    p = Path(path)
    return from_dict(load_mapping(p, "cluster"), str(p), p.parent.resolve())
