"""The orchestration shared by every launcher (local processes, SSH, Slurm job steps).

Order: NTP server → workers (warmup, ready) → coordinator (warmup, ready) → start → done →
drain → stop workers → stop NTP server. Everything the launcher learns comes over the control
channel (hello with PID/host/step, warmup, ready, progress, done, error, disconnect); it never
reads logs. Any node failure, Ctrl-C or timeout ends the run with a one-line error naming the
node; every node started here is stopped on every exit path, and what the nodes wrote stays
(``metadata.json`` says which node failed). A subclass only says how a node process is started,
watched and stopped (:class:`NodeProc`), where nodes bind, and where their files live.
"""

from __future__ import annotations

import os
import platform
import queue
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from skewlab import __version__
from skewlab.nemesis.wiring import extra_ntp_args, more_ntp_servers, start_link_nemesis
from skewlab.node.control import ControlServer, Message
from skewlab.node.patterns import drain_ns, expected_duration_ns
from skewlab.node.secret import RunSecrets
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, new_experiment_id, write_json_atomic
from skewlab.timebase import host_ns, monotonic_s

NTP_NODE = "ntp-server"  # node name of the embedded NTP server
TRUTH_REFERENCE = "truth-reference"  # path name of the probes (traces/_links/<node>~…)
STOP_ASK_S = 3.0  # after "stop" over the control channel, wait this long before SIGTERM
STOP_TERM_S = 3.0  # after SIGTERM, wait this long before SIGKILL
LOST_GRACE_S = 2.0  # after a node's control connection drops, wait this long for its exit code


class LaunchError(RuntimeError):
    """The run failed; the message is one actionable line."""


ProgressFn = Callable[[str], None]


class Carrier(Protocol):
    """What a launcher holds for a started node: a ``subprocess.Popen`` (the node itself,
    ``ssh`` or ``srun``) or a node forked by the local node starter (deploy/zygote.py)."""

    pid: int
    stdin: IO[bytes] | None
    returncode: int | None

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class NodeProc:
    """One started node: a local carrier process (the node itself, ``ssh`` or ``srun``) plus what
    the node said about itself in its hello (remote PID, host, Slurm step)."""

    def __init__(self, name: str, role: str, popen: Carrier, log: Path) -> None:
        self.name = name
        self.role = role
        self.popen = popen  # the local carrier process
        self.log = log  # the carrier's stdout+stderr (for people; the launcher never reads it)
        self.done: dict[str, Any] | None = None  # the node's final "done" message
        self.hello: dict[str, Any] = {}  # pid, host, slurm_step, version (node/control.py)
        self.exit_seen: float | None = None  # when the launcher first saw it ended (monotonic s)

    @property
    def pid(self) -> int | None:
        """The node process's own PID (from its hello); the carrier's for a local node."""
        pid = self.hello.get("pid")
        return int(pid) if pid is not None else None

    def where(self) -> str:
        """Where the node runs, for messages (``pid 123`` / ``pid 123 on host h``)."""
        return f"pid {self.pid or self.popen.pid}"

    def poll(self) -> int | None:
        """The carrier's exit code, or None while it runs."""
        return self.popen.poll()

    def exit_text(self, rc: int) -> str:
        if getattr(self.popen, "status_unknown", False):
            return "ended; its exit status is unknown (the node starter ended before it)"
        return f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=max(0.05, timeout))
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        """Ask the node process to stop now (SIGTERM: it flushes its trace)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop the node process and its carrier for sure (SIGKILL)."""
        if self.popen.poll() is None:
            self.popen.kill()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class RunOutcome:
    results: ResultsDir
    node_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0


class Orchestrator:
    """Runs one experiment over some launcher; subclasses implement the hooks marked below."""

    launcher_name = "base"

    def __init__(
        self,
        spec: ExperimentSpec,
        out_dir: Path,
        progress: ProgressFn | None = None,
        results_dir: Path | None = None,
    ) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.results_dir = results_dir  # an existing folder to use as is (the sbatch path)
        self.progress = progress or (lambda _s: None)
        self.procs: dict[str, NodeProc] = {}
        self.control: ControlServer | None = None
        self.results: ResultsDir | None = None
        self.meta: dict[str, Any] = {}
        self.failed: dict[str, str] = {}  # node → why it failed (in metadata.json)
        self.net: Any = None  # skewlab.net.link.Network: the link relays of this run, if any
        self.t0_ns = 0
        # this run's fresh random secret: control keys per node, the event key (never written)
        self.secrets = RunSecrets(spec.run.hmac_key)

    # -- hooks ----------------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check everything needed before any folder or process exists; raise LaunchError."""
        from skewlab.clocks.external import SourceUnavailable, require_available

        try:
            require_available(self.spec)
        except SourceUnavailable as e:
            raise LaunchError(str(e)) from None

    def control_listen(self) -> tuple[str, int]:
        """Where the control server listens (nodes must be able to reach it)."""
        return self.spec.run.host, 0

    def control_connect(self) -> str:
        """The control address handed to the nodes (host:port)."""
        assert self.control is not None
        return hostport(*self.control.address)

    def node_address(self, name: str) -> str:
        """The address node ``name`` binds its sockets to and is reached at."""
        return self.spec.run.host

    def node_argv(self, role: str, name: str, extra: list[str]) -> list[str]:
        """Arguments of ``python -m skewlab.node`` for one node (paths as the node sees them)."""
        assert self.results is not None
        return [
            role,
            "--spec", str(self.results.spec_path),
            "--node", name,
            "--control", self.control_connect(),
            "--results", str(self.results.root),
            "--t0", str(self.t0_ns),
            *extra,
        ]  # fmt: skip

    def start_node(self, role: str, name: str, argv: list[str], log: Path) -> NodeProc:
        """Start one node process; ``argv`` follows ``python -m skewlab.node``. The carrier's
        stdin must be a pipe (``subprocess.PIPE``): the node's keys are written to it, and the
        carrier (the node itself, ssh or srun) hands them to the node's standard input."""
        raise NotImplementedError

    def acquire(self) -> None:
        """Take what starting the nodes needs while this process still runs one thread (after
        spec.json is written, before the control server's thread starts); ``release`` gives it
        back on every exit path."""

    def stage(self) -> None:
        """Put what the nodes need where they read it (after spec.json is written)."""

    def collect(self) -> None:
        """Bring the nodes' traces into the results folder (after every node stopped)."""

    def truth_available(self) -> bool:
        """True if every node's true time is one clock (emulated oscillators on one host)."""
        return True

    def describe(self) -> dict[str, Any]:
        """Launcher facts for metadata.json (hosts, kernels, clock sources, job id...)."""
        return {}

    def release(self) -> None:
        """Give back anything else acquired for the run (after the nodes stopped)."""

    def ntp_address(self) -> str | None:
        """An external NTP server (host:port) to use instead of the embedded one, or None."""
        return None

    # Whether nodes record measured truth when the spec leaves it to the launcher
    # (truth.measured unset): off here and for local runs (emulated nodes on one host have exact
    # truth), on for ssh and slurm (deploy/remote.py).
    measured_truth_default = False

    def measures_truth(self) -> bool:
        """Whether every coordinator and worker runs a truth prober (node/prober.py)."""
        m = self.spec.truth.measured
        return self.measured_truth_default if m is None else m

    def truth_facts(self, reference: str | None = None) -> dict[str, Any]:
        """What metadata.json says about measured truth: the reference and the prober."""
        t = self.spec.truth
        if not self.measures_truth():
            why = ("truth.measured = false" if t.measured is False else
                   f"off by default with the {self.launcher_name} launcher (truth.measured)")
            return {"enabled": False, "why": why}  # fmt: skip
        embedded = t.reference == "embedded"
        return {
            "enabled": True,
            "reference": reference,
            "reference_kind": (
                f"embedded: a fault-free NTP server in the {NTP_NODE} node process on host "
                f"{self.node_address(NTP_NODE)} (serving that host's clock)"
                if embedded else "external NTP server (truth.reference)"
            ),
            "prober": {
                "rate_hz": t.rate_hz,
                "timeout_s": t.timeout_s,
                "thread": "its own thread and UDP socket in every coordinator and worker process",
                "timestamps": "T1 read before sending; T4 the kernel's receive stamp "
                "(SO_TIMESTAMPNS) where available (per node: counts.truth_kernel_timestamps); "
                "hardware timestamps not implemented",
            },
            "max_drift_ppm": t.max_drift_ppm,
            "trace": "traces/<node>/truth-*.parquet",
        }

    # -- helpers --------------------------------------------------------------------------------
    def _log_path(self, name: str) -> Path:
        assert self.results is not None
        log = self.results.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        return log

    def _spawn(self, role: str, name: str, extra: list[str]) -> NodeProc:
        addr = self.node_address(name)
        if addr != self.spec.run.host:
            extra = [*extra, "--bind", addr]
        proc = self.start_node(role, name, self.node_argv(role, name, extra), self._log_path(name))
        self.procs[name] = proc
        self._send_keys(proc)
        self.meta.setdefault("pids", {})[name] = proc.popen.pid  # carrier PIDs, for people/tests
        self._save_meta()
        return proc

    def _send_keys(self, proc: NodeProc) -> None:
        """Write the node's keys into its carrier's stdin pipe and close it (a pipe's buffer
        holds the line, so this never blocks; a carrier already gone fails on its own)."""
        pipe = proc.popen.stdin
        if pipe is None:
            raise LaunchError(f"internal: {proc.name} was started without a stdin pipe")
        try:
            pipe.write(self.secrets.for_node(proc.name).to_line())
            pipe.close()
        except OSError:
            pass  # the carrier died: noticed by _check_alive with its exit code

    def _control_key(self, node: str) -> bytes | None:
        """The control key of a node of this run; None for any other name."""
        names = {n.name for n in self.spec.nodes} | {NTP_NODE, *self.procs}
        return self.secrets.control_key(node) if node in names else None

    def security_facts(self) -> dict[str, Any]:
        """What metadata.json says about authentication (never a key)."""
        hk = self.spec.run.hmac_key
        events = ("off (run.hmac_key = false)" if not hk else
                  "hmac-sha256, fixed key from the spec" if isinstance(hk, str) else
                  "hmac-sha256, fresh per-run key")  # fmt: skip
        c = self.control
        return {
            "control": "hmac-sha256 challenge-response and per-line hmac, fresh per-run secret",
            "events": events,
            "control_rejected": dict(c.rejected) if c is not None else {},
            "control_rejected_peers": list(c.rejected_peers) if c is not None else [],
        }

    def _save_meta(self) -> None:
        if self.results is not None:
            write_json_atomic(self.results.metadata_path, self.meta)

    def _fail(self, name: str, why: str) -> LaunchError:
        self.failed.setdefault(name, why)
        return LaunchError(why)

    def _exited(self, p: NodeProc, rc: int) -> LaunchError:
        return self._fail(
            p.name, f"{p.role} {p.name} ({p.where()}) {p.exit_text(rc)} during the run; see {p.log}"
        )

    def _check_alive(self) -> None:
        """A node whose process ended before its "done" message fails the run. A clean exit
        (code 0) is judged only LOST_GRACE_S after it was first seen: a node exits right after
        sending "done", and its end can be seen here before the control thread has queued that
        message (the run was failed as "exited with code 0 during the run")."""
        now = monotonic_s()
        for p in self.procs.values():
            rc = p.poll()
            if rc is None or p.done is not None:
                continue
            if rc != 0:
                raise self._exited(p, rc)
            if p.exit_seen is None:
                p.exit_seen = now
            elif now - p.exit_seen > LOST_GRACE_S:
                raise self._exited(p, rc)

    def _wait_for(
        self,
        want: Callable[[Message], bool],
        names: set[str],
        timeout_s: float,
        what: str,
    ) -> dict[str, Message]:
        """Wait until every node in ``names`` sent a message matching ``want``."""
        assert self.control is not None
        got: dict[str, Message] = {}
        deadline = monotonic_s() + timeout_s
        while set(got) != names:
            self._check_alive()
            if monotonic_s() > deadline:
                missing = sorted(names - set(got))
                for n in missing:
                    self.failed.setdefault(n, f"no {what} within {timeout_s:.0f} s")
                who = ", ".join(missing)
                raise LaunchError(f"timed out after {timeout_s:.0f} s waiting for {what}: {who}")
            try:
                m = self.control.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            self._handle(m)
            if m.node in names and want(m):
                got[m.node] = m
        return got

    def _handle(self, m: Message) -> None:
        p = self.procs.get(m.node)
        if m.type == "error":
            raise self._fail(m.node, f"{m.node}: {m.body.get('message', 'failed')}")
        if m.type == "hello" and p is not None:
            p.hello = {k: m.body.get(k) for k in ("pid", "host", "slurm_step", "version")}
            self.meta.setdefault("nodes", {})[m.node] = {"role": p.role, **p.hello}
            self._save_meta()
        elif m.type == "disconnected" and p is not None and p.done is None:
            rc = p.wait(LOST_GRACE_S)
            if rc is not None:
                raise self._exited(p, rc)
            raise self._fail(
                m.node,
                f"{p.role} {m.node} ({p.where()}) lost its control connection during the run; "
                f"see {p.log}",
            )
        elif m.type == "done" and p is not None:
            p.done = m.body
        elif m.type == "warmup":
            parts = []
            for src, r in (m.body.get("sources") or {}).items():
                off = r.get("offset_ns")
                parts.append(f"{src} {'—' if off is None else f'{off / 1e6:+.3f} ms'}")
            self.progress(f"warmup {m.node} {m.body.get('elapsed_s', 0):.1f}s: " + ", ".join(parts))
        elif m.type == "progress":
            sent, total = m.body.get("sent", 0), m.body.get("total", 0)
            el = m.body.get("elapsed_s", 0.0)
            if el > 0 and sent > 1:
                rate = sent / el
                eta = (total - sent) / rate
                behind = m.body.get("behind_ms")
                late = f"  behind {behind:.2f} ms" if behind is not None else ""
                self.progress(f"sent {sent}/{total} events  {rate:,.0f}/s  ETA {eta:.1f} s{late}")
            else:
                self.progress(f"sent {sent}/{total} events")

    def _pause(self, seconds: float) -> None:
        """Wait while still handling node messages and noticing dead nodes."""
        assert self.control is not None
        deadline = monotonic_s() + seconds
        while (left := deadline - monotonic_s()) > 0:
            self._check_alive()
            try:
                self._handle(self.control.messages.get(timeout=min(0.1, left)))
            except queue.Empty:
                pass

    def accounting(self) -> dict[str, dict[str, int | None]]:
        """Per worker, from the nodes' own final counts: sent (by the coordinator to that
        worker), received (distinct events), duplicated, rejected, lost = sent − received."""
        coord = self.procs.get(self.spec.coordinator.name)
        sent_to = ((coord.done or {}).get("counts") or {}).get("sent_to", {}) if coord else {}
        out: dict[str, dict[str, int | None]] = {}
        for w in self.spec.workers:
            p = self.procs.get(w.name)
            c = ((p.done or {}).get("counts") or {}) if p else {}
            sent, received = sent_to.get(w.name), c.get("received")
            out[w.name] = {
                "sent": sent,
                "received": received,
                "duplicated": c.get("duplicates"),
                "rejected": c.get("rejected"),
                "lost": sent - received if sent is not None and received is not None else None,
            }
        return out

    def _stop_all(self) -> None:
        """Stop every node started here: ask over the control channel, then SIGTERM, then
        SIGKILL; each step only for nodes still running."""
        live = [p for p in self.procs.values() if p.poll() is None]
        for p in live:
            if self.control is not None:
                self.control.send(p.name, "stop")
        deadline = monotonic_s() + STOP_ASK_S
        for p in live:
            if p.wait(deadline - monotonic_s()) is None:
                p.terminate()
        deadline = monotonic_s() + STOP_TERM_S
        for p in live:
            if p.wait(deadline - monotonic_s()) is None:
                p.kill()

    # -- the run --------------------------------------------------------------------------------
    def _prepare_spec(self) -> None:
        """Adjust the spec for this launcher before it is written (default: unchanged)."""

    def run(self) -> RunOutcome:
        self.preflight()  # fail fast, before any folder or process exists
        self._prepare_spec()
        spec = self.spec
        if self.results_dir is not None:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            self.results = ResultsDir(self.results_dir)
        else:
            self.results = ResultsDir.create(self.out_dir, new_experiment_id(spec.name))
        res = self.results
        res.spec_path.write_text(spec.to_json())
        from skewlab.clocks.sources import source_facts

        self.t0_ns = host_ns()
        started = monotonic_s()
        self.meta = meta = {
            "experiment_id": res.root.name,
            "skewlab_version": __version__,
            "skewlab_commit": source_commit(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": platform.node(),
            "launcher": self.launcher_name,
            "truth_available": self.truth_available(),
            "sources": source_facts(spec.sources),
            "t0_ns": self.t0_ns,
            "started_unix_ns": self.t0_ns,
            "status": "running",
        }
        meta.update(self.describe())
        self._save_meta()
        try:
            self.acquire()
            try:
                self.control = ControlServer(*self.control_listen(), key_for=self._control_key)
            except OSError as e:
                host, port = self.control_listen()
                why = f"cannot listen for control connections on {host}:{port}: {e.strerror}"
                raise LaunchError(why + " (set control_address/control_port)") from None
        except BaseException as e:
            self.release()
            meta["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            if isinstance(e, LaunchError):
                meta["error"] = str(e)
            self._save_meta()
            raise
        try:
            self.stage()
            outcome = self._run_nodes(res)
            meta["status"] = "completed"
            return outcome
        except KeyboardInterrupt:
            meta["status"] = "interrupted"
            raise
        except LaunchError as e:
            meta["status"] = "failed"
            meta["error"] = str(e)
            raise
        finally:
            self._finish(started)

    def _finish(self, started: float) -> None:
        """Every exit path: stop the nodes, collect what they wrote, record it all."""
        meta = self.meta
        try:
            self._stop_all()
        finally:
            if getattr(self, "link_nemesis", None) is not None:
                self.link_nemesis.stop()
            if self.net is not None:
                self.net.close()  # stops the relays, writes traces/_links/
            if self.control is not None:
                self.control.close()
            try:
                self.collect()
            except LaunchError as e:
                meta["collect_error"] = str(e)
                if meta["status"] == "completed":
                    meta["status"] = "failed"
                    meta["error"] = str(e)
            self.release()
            meta["duration_s"] = round(monotonic_s() - started, 3)
            meta["accounting"] = self.accounting()
            meta["failed_nodes"] = dict(self.failed)
            meta["security"] = sec = self.security_facts()
            if sec["control_rejected"]:
                n = sum(sec["control_rejected"].values())
                self.progress(f"control: closed {n} connection(s) that could not authenticate "
                              f"({', '.join(sorted(sec['control_rejected']))})")  # fmt: skip
            meta["nodes"] = {
                n: {"role": p.role, **p.hello, "carrier_pid": p.popen.pid,
                    "exit_code": p.popen.returncode, "counts": (p.done or {}).get("counts")}
                for n, p in self.procs.items()
            }  # fmt: skip
            self._save_meta()

    def _run_nodes(self, res: ResultsDir) -> RunOutcome:
        spec = self.spec
        started = monotonic_s()
        ready = lambda m: m.type == "ready"  # noqa: E731
        ntp_arg = self.ntp_address()
        ntp_more: list[str] = []  # NTP servers 1.. (ntp.servers > 1)
        measure = self.measures_truth()
        embedded_ref = measure and spec.truth.reference == "embedded"
        if ntp_arg is None or embedded_ref:
            # the embedded truth reference lives in the ntp-server node process (alone in it
            # when the experiment's NTP server is external)
            ref = ["--truth-reference", "also" if ntp_arg is None else "only"]
            self._spawn("ntp-server", NTP_NODE, ref if embedded_ref else [])
            ntp_ready = self._wait_for(ready, {NTP_NODE}, 15, "the NTP server")[NTP_NODE]
            if ntp_arg is None:
                ntp_arg = hostport(self.node_address(NTP_NODE), ntp_ready.body["port"])
                ntp_more = more_ntp_servers(self.node_address(NTP_NODE), ntp_ready.body)
        self.progress(f"NTP server ready on {ntp_arg}")
        truth_ref: str | None = None
        if embedded_ref:
            truth_ref = hostport(self.node_address(NTP_NODE), ntp_ready.body["truth_port"])
        elif measure:
            truth_ref = spec.truth.reference
        self.meta["measured_truth"] = self.truth_facts(truth_ref)
        self._save_meta()
        from skewlab.net.link import Network

        self.net = net = Network.start(spec, res)  # via(src, dst, addr): relay or addr itself
        self.link_nemesis = start_link_nemesis(spec, net, res, self.t0_ns)  # link_loss faults

        workers = {w.name for w in spec.workers}
        for w in spec.workers:
            self._spawn(
                "worker",
                w.name,
                [
                    "--ntp",
                    net.via(w.name, NTP_NODE, ntp_arg),
                    *extra_ntp_args(net, w.name, ntp_more),
                    *_truth_args(net, w.name, truth_ref),
                ],
            )
        wait_s = spec.run.warmup_s + spec.run.ready_timeout_s + 10
        ready_msgs = self._wait_for(ready, workers, wait_s, "worker readiness")
        coord = spec.coordinator.name
        waddrs = []
        for n, m in sorted(ready_msgs.items()):
            direct = hostport(self.node_address(n), m.body["port"])
            waddrs.append(f"{n}={net.via(coord, n, direct)}")
        self.progress(f"workers ready: {', '.join(waddrs)}")

        extra = ["--ntp", net.via(coord, NTP_NODE, ntp_arg), *extra_ntp_args(net, coord, ntp_more)]
        extra += _truth_args(net, coord, truth_ref)
        for wa in waddrs:
            extra += ["--worker", wa]
        self._spawn("coordinator", coord, extra)
        self._wait_for(ready, {coord}, wait_s, "coordinator readiness")
        assert self.control is not None
        self.control.send(coord, "start")

        expect_s = expected_duration_ns(spec.workload, spec.seed) / 1e9
        self._wait_for(lambda m: m.type == "done", {coord}, expect_s * 2 + 30, "the coordinator")
        # Drain: late packets, and the workers' last commit-wait re-evaluations (T+Δ).
        cw_ms = max((max(m.body.get("commit_wait_ms") or [0]) for m in ready_msgs.values()),
                    default=0)  # fmt: skip
        self._pause(drain_ns(spec.run.drain_s, [cw_ms] if cw_ms else []) / 1e9)
        for w in workers:
            self.control.send(w, "stop")
        # a worker stopped early (e.g. by a signal) has already reported: don't wait for it
        pending = {w for w in workers if self.procs[w].done is None}
        self._wait_for(lambda m: m.type == "done", pending, 60, "workers to finish")
        if NTP_NODE in self.procs:
            self.control.send(NTP_NODE, "stop")
            self._wait_for(lambda m: m.type == "done", {NTP_NODE}, 10, "the NTP server")
        for p in self.procs.values():
            rc = p.wait(10)
            if rc is None:
                raise self._fail(p.name, f"{p.role} {p.name} ({p.where()}) did not exit")
            if rc != 0:
                raise self._fail(p.name, f"{p.role} {p.name} exited with code {rc}; see {p.log}")
        return RunOutcome(
            res,
            {n: (p.done or {}) for n, p in self.procs.items()},
            monotonic_s() - started,
        )


def _truth_args(net: Any, node: str, reference: str | None) -> list[str]:
    """``--truth`` for a node's prober (none without measured truth); through a relay emulated
    as the node's path to the NTP server when that path is emulated."""
    if reference is None:
        return []
    return ["--truth", net.via_like(node, TRUTH_REFERENCE, NTP_NODE, reference)]


def source_commit() -> str | None:
    """The git commit of the skewlab source in use (with ``+dirty`` if it has local changes),
    or None when it is not a git checkout (an installed wheel)."""
    src = Path(__file__).resolve().parent.parent  # the skewlab package
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)  # fmt: skip
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, timeout=5)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def hostport(host: str, port: int | str) -> str:
    """``host:port``, with IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
