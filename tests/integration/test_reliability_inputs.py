"""Untrusted input: nothing a user gives skewlab reaches a shell, and bad config files are
refused with one clear line naming the bad key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import skewlab
from skewlab.cli import cli

SRC = Path(skewlab.__file__).parent
SHELL_CALLS = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|commands\.getoutput|"
                         r"subprocess\.getoutput|subprocess\.getstatusoutput")  # fmt: skip


def test_no_shell_anywhere_in_skewlab() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    hits = [
        f"{p.relative_to(SRC)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if SHELL_CALLS.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[workload]\nevents = -3\n", "workload.events"),
        ("[run]\nhmac_kye = 'x'\n", "run.hmac_kye"),
        ("[[nodes]]\nname = 'a; rm -rf /'\n", "nodes[0].name"),
        ("[[faults]]\nkind = 'clock_step'\nat_s = 1\nnode = 'B'\ndelta_ms = 'big'\n",
         "faults[0].delta_ms"),
        ("[ntp]\nservers = 99\n", "ntp.servers"),
        ("name = '../../etc'\n", "name"),
    ],
)  # fmt: skip
def test_bad_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    """In process (click's runner: ~0.6 s less per case than a fresh interpreter); a
    ``skewlab run`` process refusing a bad config is tests/e2e/test_run.py."""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = CliRunner().invoke(cli, ["run", "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code != 0
    assert isinstance(r.exception, SystemExit)  # a deliberate exit, no uncaught exception
    assert f"{key}: " in r.stderr, r.stderr
    assert r.stderr.startswith("skewlab: error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was created
