"""Local launcher: every node is its own OS process on this host, talking over loopback.

Order: NTP server → workers (warmup, ready) → coordinator (warmup, ready) → start → done →
drain → stop workers → stop NTP server. Any node failure, Ctrl-C or timeout ends the run with
a one-line error; every process started here is stopped by PID on every exit path.
"""

from __future__ import annotations

import os
import platform
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skewlab import __version__
from skewlab.node.control import ControlServer, Message
from skewlab.node.patterns import expected_duration_ns
from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir, new_experiment_id, write_json_atomic


class LaunchError(RuntimeError):
    """The run failed; the message is one actionable line."""


@dataclass
class Proc:
    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log: Path
    done: dict[str, Any] | None = None


@dataclass
class RunOutcome:
    results: ResultsDir
    node_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    duration_s: float = 0.0


ProgressFn = Callable[[str], None]


class LocalLauncher:
    def __init__(self, spec: ExperimentSpec, out_dir: Path, progress: ProgressFn | None = None):
        self.spec = spec
        self.out_dir = out_dir
        self.progress = progress or (lambda _s: None)
        self.procs: dict[str, Proc] = {}
        self.control: ControlServer | None = None
        self.results: ResultsDir | None = None
        self.meta: dict[str, Any] = {}
        self.net: Any = None  # skewlab.net.link.Network: the link relays of this run, if any

    # -- process management -------------------------------------------------------------------
    def _spawn(self, role: str, name: str, extra: list[str]) -> Proc:
        assert self.results is not None and self.control is not None
        log = self.results.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "skewlab.node", role,
            "--spec", str(self.results.spec_path),
            "--node", name,
            "--control", f"{self.control.address[0]}:{self.control.address[1]}",
            "--results", str(self.results.root),
            "--t0", str(self.t0_ns),
            *extra,
        ]  # fmt: skip
        with open(log, "wb") as logf:
            p = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the launcher, which stops them
            )  # fmt: skip
        proc = Proc(name, role, p, log)
        self.procs[name] = proc
        self.meta.setdefault("pids", {})[name] = p.pid  # so users (and tests) can find them
        write_json_atomic(self.results.metadata_path, self.meta)
        return proc

    def _check_alive(self, expect_running: set[str]) -> None:
        for name in expect_running:
            p = self.procs[name]
            rc = p.popen.poll()
            if rc is not None and p.done is None:
                how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
                raise LaunchError(
                    f"{p.role} {name} (pid {p.popen.pid}) {how} during the run; see {p.log}"
                )

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
        deadline = time.monotonic() + timeout_s
        while set(got) != names:
            self._check_alive(set(self.procs))
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(names - set(got)))
                raise LaunchError(
                    f"timed out after {timeout_s:.0f} s waiting for {what} from {missing}"
                )
            try:
                m = self.control.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            self._handle(m)
            if m.node in names and want(m):
                got[m.node] = m
        return got

    def _handle(self, m: Message) -> None:
        if m.type == "error":
            raise LaunchError(f"{m.node}: {m.body.get('message', 'failed')}")
        if m.type == "done" and m.node in self.procs:
            self.procs[m.node].done = m.body
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
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._check_alive(set(self.procs))
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
        """Stop every process started here, by PID: ask, then SIGTERM, then SIGKILL."""
        live = [p for p in self.procs.values() if p.popen.poll() is None]
        for p in live:
            if self.control is not None:
                self.control.send(p.name, "stop")
        deadline = time.monotonic() + 3
        for p in live:
            try:
                p.popen.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in live:
            try:
                p.popen.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        spec = self.spec
        from skewlab.clocks.external import SourceUnavailable, require_available

        try:  # fail fast on an absent host clock service, before any folder or process exists
            require_available(spec)
        except SourceUnavailable as e:
            raise LaunchError(str(e)) from None
        self.results = ResultsDir.create(self.out_dir, new_experiment_id(spec.name))
        res = self.results
        res.spec_path.write_text(spec.to_json())
        self.t0_ns = time.time_ns()
        started = time.monotonic()
        self.meta = meta = {
            "experiment_id": res.root.name,
            "skewlab_version": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": platform.node(),
            "launcher": "local",
            "truth_available": True,
            "t0_ns": self.t0_ns,
            "started_unix_ns": self.t0_ns,
            "status": "running",
        }
        write_json_atomic(res.metadata_path, meta)
        self.control = ControlServer(spec.run.host)
        try:
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
            self._stop_all()
            if self.net is not None:
                self.net.close()  # stops the relays, writes traces/_links/
            self.control.close()
            meta["duration_s"] = round(time.monotonic() - started, 3)
            meta["accounting"] = self.accounting()
            meta["nodes"] = {
                n: {"role": p.role, "pid": p.popen.pid, "exit_code": p.popen.returncode,
                    "counts": (p.done or {}).get("counts")}
                for n, p in self.procs.items()
            }  # fmt: skip
            write_json_atomic(res.metadata_path, meta)

    def _run_nodes(self, res: ResultsDir) -> RunOutcome:
        spec = self.spec
        started = time.monotonic()
        ready = lambda m: m.type == "ready"  # noqa: E731
        self._spawn("ntp-server", "ntp-server", [])
        ntp_port = self._wait_for(ready, {"ntp-server"}, 15, "the NTP server")["ntp-server"]
        ntp_arg = f"{spec.run.host}:{ntp_port.body['port']}"
        self.progress(f"NTP server ready on {ntp_arg}")
        from skewlab.net.link import Network

        self.net = net = Network.start(spec, res)  # via(src, dst, addr): relay or addr itself

        workers = {w.name for w in spec.workers}
        for w in spec.workers:
            self._spawn("worker", w.name, ["--ntp", net.via(w.name, "ntp-server", ntp_arg)])
        wait_s = spec.run.warmup_s + spec.run.ready_timeout_s + 10
        ready_msgs = self._wait_for(ready, workers, wait_s, "worker readiness")
        coord = spec.coordinator.name
        waddrs = []
        for n, m in sorted(ready_msgs.items()):
            direct = f"{spec.run.host}:{m.body['port']}"
            waddrs.append(f"{n}={net.via(coord, n, direct)}")
        self.progress(f"workers ready: {', '.join(waddrs)}")

        extra = ["--ntp", net.via(coord, "ntp-server", ntp_arg)]
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
        self._pause(max(spec.run.drain_s, cw_ms / 1000 + 0.25 if cw_ms else 0.0))
        for w in workers:
            self.control.send(w, "stop")
        # a worker stopped early (e.g. by a signal) has already reported: don't wait for it
        pending = {w for w in workers if self.procs[w].done is None}
        self._wait_for(lambda m: m.type == "done", pending, 60, "workers to finish")
        self.control.send("ntp-server", "stop")
        self._wait_for(lambda m: m.type == "done", {"ntp-server"}, 10, "the NTP server")
        for p in self.procs.values():
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise LaunchError(f"{p.role} {p.name} (pid {p.popen.pid}) did not exit") from None
            if p.popen.returncode != 0:
                raise LaunchError(
                    f"{p.role} {p.name} exited with code {p.popen.returncode}; see {p.log}"
                )
        return RunOutcome(
            res,
            {n: (p.done or {}) for n, p in self.procs.items()},
            time.monotonic() - started,
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
