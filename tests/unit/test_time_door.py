"""Time enters skewlab through one door, ``skewlab/timebase.py``, checked over the source with
``ast``: no other module reads a clock or sleeps through ``time`` or ``datetime`` directly.

Reads are references (called or bound to a name for a hot loop) to ``time.time``,
``time_ns``, ``monotonic[_ns]``, ``perf_counter[_ns]``, ``process_time[_ns]``,
``thread_time[_ns]``, ``clock_gettime[_ns]`` and ``sleep``; ``time.gmtime``/``localtime``/
``ctime``/``asctime`` called without a time and ``time.strftime`` without a struct (each reads
the clock); ``datetime.now``/``utcnow``/``today`` and ``date.today``; and importing any of
these names (``from time import monotonic``). ``import time`` itself stays allowed for
formatting a given instant (``time.strftime(fmt, time.gmtime(s))``) and the ``CLOCK_*``
constants. Aliases (``import time as t``, ``from datetime import datetime as dt``) and
function-level imports are followed.

The companion tests plant each kind of violation in a fake module under ``tmp_path`` and show
the check reports it (and leaves the clean forms alone).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "skewlab"
DOOR = "timebase.py"  # the one module allowed to read time (relative to the package root)

TIME_READS = frozenset(
    {
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
        "process_time", "process_time_ns", "thread_time", "thread_time_ns",
        "clock_gettime", "clock_gettime_ns", "sleep",
    }
)  # fmt: skip
# read the clock when called with at most this many arguments (no explicit instant)
TIME_NOW_IF_FEW_ARGS = {"gmtime": 0, "localtime": 0, "ctime": 0, "asctime": 0, "strftime": 1}
DATETIME_NOW = frozenset({"now", "utcnow", "today"})
DATETIME_CLASSES = frozenset({"datetime", "date"})


def time_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Every direct read of time in one module: (line, what) sorted by line."""
    time_mods: set[str] = set()  # names bound to the ``time`` module
    dt_mods: set[str] = set()  # names bound to the ``datetime`` module
    dt_classes: set[str] = set()  # names bound to ``datetime.datetime`` / ``datetime.date``
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "time":
                    time_mods.add(a.asname or "time")
                elif a.name == "datetime":
                    dt_mods.add(a.asname or "datetime")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for a in node.names:
                if node.module == "time" and (
                    a.name == "*" or a.name in TIME_READS or a.name in TIME_NOW_IF_FEW_ARGS
                ):
                    found.append((node.lineno, f"from time import {a.name}"))
                elif node.module == "datetime" and a.name in DATETIME_CLASSES:
                    dt_classes.add(a.asname or a.name)
                elif node.module == "datetime" and a.name == "*":
                    dt_classes |= DATETIME_CLASSES
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = node.value.id
            if base in time_mods and node.attr in TIME_READS:
                found.append((node.lineno, f"time.{node.attr}"))
            elif base in dt_classes and node.attr in DATETIME_NOW:
                found.append((node.lineno, f"{base}.{node.attr}"))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in DATETIME_NOW
            and isinstance(node.value, ast.Attribute)
            and node.value.attr in DATETIME_CLASSES
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id in dt_mods
        ):
            found.append((node.lineno, f"datetime.{node.value.attr}.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in time_mods
            and node.func.attr in TIME_NOW_IF_FEW_ARGS
            and len(node.args) + len(node.keywords) <= TIME_NOW_IF_FEW_ARGS[node.func.attr]
        ):
            found.append((node.lineno, f"time.{node.func.attr}() without an instant"))
    return sorted(found)


def reads_outside_door(root: Path, door: str = DOOR) -> list[str]:
    """``path:line: what`` for every direct read of time in package ``root`` outside ``door``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == door:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        out += [f"{rel}:{line}: {what}" for line, what in time_reads(tree)]
    return out


def test_time_enters_only_through_timebase() -> None:
    assert (SRC / DOOR).exists() and len(list(SRC.rglob("*.py"))) > 50  # the check sees skewlab
    found = reads_outside_door(SRC)
    assert not found, (
        "read time through skewlab.timebase (an injected TimeSource/Scheduler, or its aliases "
        "host_ns, monotonic_ns, perf_ns, cpu_s, thread_cpu_s, sleep):\n" + "\n".join(found)
    )


def test_timebase_itself_reads_time() -> None:
    # guards the check against passing because it cannot see a read at all
    assert time_reads(ast.parse((SRC / DOOR).read_text()))


# --- the check reports a planted violation (a fake package in tmp_path) ----------------------

CLEAN = """\
import time
import datetime
from datetime import datetime as dt, timezone
from skewlab import timebase

def stamp(s):
    return time.strftime("%Y", time.gmtime(s)), dt.fromtimestamp(s, timezone.utc)

def coarse():
    return time.CLOCK_MONOTONIC, datetime.timedelta(seconds=1)

def now():
    return timebase.host_ns()
"""


def _fake(root: Path, extra: str, where: str = "mod.py") -> list[str]:
    pkg = root / "fake"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "timebase.py").write_text("import time\nhost_ns = time.time_ns\n")
    (pkg / "mod.py").write_text(CLEAN)
    (pkg / "sub" / "deep.py").write_text("")
    p = pkg / where
    p.write_text(p.read_text() + textwrap.dedent(extra))
    return reads_outside_door(pkg)


def test_the_clean_fake_package_passes(tmp_path: Path) -> None:
    assert _fake(tmp_path, "") == []


@pytest.mark.parametrize(
    "extra, what",
    [
        ("t = time.time_ns()\n", "time.time_ns"),
        ("def f():\n    return time.monotonic()\n", "time.monotonic"),
        ("def f():\n    now = time.perf_counter_ns\n    return now()\n", "time.perf_counter_ns"),
        ("def f():\n    time.sleep(0.1)\n", "time.sleep"),
        ("c = time.process_time()\n", "time.process_time"),
        ("c = time.thread_time()\n", "time.thread_time"),
        ("c = time.clock_gettime_ns(time.CLOCK_MONOTONIC)\n", "time.clock_gettime_ns"),
        ("s = time.strftime('%Y')\n", "time.strftime() without an instant"),
        ("s = time.gmtime()\n", "time.gmtime() without an instant"),
        ("def f():\n    import time as t\n    return t.time()\n", "time.time"),
        ("def f():\n    from time import monotonic_ns\n", "from time import monotonic_ns"),
        ("from time import *\n", "from time import *"),
        ("n = dt.now()\n", "dt.now"),
        ("n = datetime.datetime.utcnow()\n", "datetime.datetime.utcnow"),
        ("n = datetime.date.today()\n", "datetime.date.today"),
        ("def f():\n    from datetime import date\n    return date.today()\n", "date.today"),
    ],
)
def test_a_planted_read_is_reported(tmp_path: Path, extra: str, what: str) -> None:
    found = _fake(tmp_path, extra)
    assert len(found) == 1 and found[0].startswith("mod.py:") and found[0].endswith(what), found


def test_a_read_in_a_subpackage_is_reported_and_the_door_is_not(tmp_path: Path) -> None:
    found = _fake(tmp_path, "import time\nx = time.monotonic_ns()\n", where="sub/deep.py")
    assert found == ["sub/deep.py:2: time.monotonic_ns"]


# --- node logic that reads or waits on true time takes an injected clock ---------------------


def test_the_host_clock_is_the_c_function() -> None:
    """No wrapper between a hot loop and the host clock (bound once, it costs what
    ``time.time_ns`` does)."""
    import time

    from skewlab import timebase

    assert timebase.HOST_CLOCK.now_ns is time.time_ns
    assert timebase.host_ns is time.time_ns and timebase.monotonic_ns is time.monotonic_ns


def test_ntp_client_holdoff_and_burst_pause_run_on_its_scheduler() -> None:
    from types import SimpleNamespace

    from skewlab.ntp.client import NtpClient, NtpError
    from skewlab.timebase import VirtualClock

    vc = VirtualClock(10**18)
    with NtpClient("127.0.0.1", 9, poll_s=1.0, scheduler=vc) as c:
        c._on_failure(NtpError("kod_rate"))  # a RATE kiss: poll doubles, hold off that long
        assert c.holdoff_s == 2.0
        vc.advance(1_500_000_000)
        assert c.holdoff_s == 0.5
        vc.advance(500_000_000)
        assert c.holdoff_s == 0.0
        delays = iter([30, 10, 20])
        c.exchange = lambda: SimpleNamespace(delay_ns=next(delays))  # type: ignore[method-assign]
        t0 = vc.now_ns()
        assert c.best_of(3, gap_s=0.25).delay_ns == 10
        assert vc.now_ns() - t0 == 500_000_000  # two pauses, in virtual time


def test_fault_records_stamp_recorded_ns_from_their_clock(tmp_path: Path) -> None:
    from skewlab.nemesis.record import FaultRecorder, load_faults
    from skewlab.timebase import VirtualClock

    rec = FaultRecorder(tmp_path, "n", clock=VirtualClock(123_456_789))
    rec.record(0, "clock_step", "B", "start", 100, {"delta_ms": 5})
    assert load_faults(tmp_path).column("recorded_ns").to_pylist() == [123_456_789]
