"""One validation path for command-line and file values (issue 20, item 9): an option that
overrides a spec key is validated exactly as the key in a file is, and refused in one line
naming the option and the key (exit 2); a boolean where the spec holds a number is refused
rather than read as 1."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from skewlab.cli import cli
from skewlab.spec import SpecError, from_dict


def _refused(args: list[str], *parts: str) -> None:
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit)
    err = r.stderr.strip()
    assert err.startswith("skewlab: error: ") and err.count("\n") == 0, err
    for p in parts:
        assert p in err, err


@pytest.mark.parametrize("command", ["run", "simulate", "validate"])
def test_event_count_beyond_the_limit_is_one_line(tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    _refused([command, "-n", "200000000", "-o", str(out)], "--events 200000000",
             "workload.events: ")  # fmt: skip
    assert not out.exists()


def test_same_value_in_a_file_gives_the_same_key(tmp_path: Path) -> None:
    cfg = tmp_path / "e.toml"
    cfg.write_text("[workload]\nevents = 200000000\n")
    _refused(["simulate", str(cfg), "-o", str(tmp_path / "o")], str(cfg), "workload.events: ")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("workload:\n  events: true\n", "workload.events"),
        ("seed: false\n", "seed"),
        ("nodes:\n- {name: C, role: coordinator}\n- {name: B, offset_ms: true}\n"
         "- {name: W, offset_ms: 1}\n", "nodes[1].offset_ms"),
    ],
)  # fmt: skip
def test_boolean_for_a_number_is_refused(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "e.yaml"
    cfg.write_text(text)
    _refused(["simulate", str(cfg), "-o", str(tmp_path / "o")], f"{key}: true" if "true" in
             text else f"{key}: false", "a number is expected")  # fmt: skip


def test_booleans_stay_booleans() -> None:
    with pytest.raises(SpecError):
        from_dict({"workload": {"events": True}})
    spec = from_dict({"run": {"netns": True}})
    assert spec.run.netns is True


def test_unknown_source_parameter_is_refused_everywhere(tmp_path: Path) -> None:
    """`sources -p skewlab.nope=1`, `clockd -p nope=1` and `source_params.truetime.max_drift`
    in a file were swallowed by the sources' **kwargs; each is refused naming the key."""
    _refused(["sources", "-p", "skewlab.nope=1", "--wait", "0"], "skewlab.nope", "window")
    _refused(["clockd", "--source", "skewlab", "-p", "nope=1", "--path", str(tmp_path / "s")],
             "skewlab.nope")  # fmt: skip
    cfg = tmp_path / "e.toml"
    cfg.write_text("[source_params.truetime]\nmax_drift = 3\n")
    _refused(["simulate", str(cfg), "-o", str(tmp_path / "o")], "truetime.max_drift",
             "max_drift_us_per_s")  # fmt: skip
    cfg.write_text("[source_params.truetime]\nmax_drift_us_per_s = 3\noptional = true\n")
    from skewlab.cli.common import load_spec

    assert load_spec(cfg).source_params["truetime"]["max_drift_us_per_s"] == 3


def test_unsimulable_spec_is_bad_input_in_every_command(tmp_path: Path) -> None:
    """issue 20, item 10: the same input error gives the same exit code (2) in simulate,
    validate and sweep (validate and sweep said 1)."""
    cfg = tmp_path / "e.toml"
    cfg.write_text('sources = ["system", "chrony"]\n')
    sw = tmp_path / "s.toml"
    sw.write_text(f'base = "{cfg}"\n[grid]\n"ntp.poll_s" = [1]\n')
    out = str(tmp_path / "o")
    for args in (["simulate", str(cfg)], ["validate", str(cfg)], ["sweep", str(sw), "-q"]):
        _refused([*args, "-o", out], "chrony", "cannot be simulated")


def test_network_profiles_are_offered_and_checked_without_loading_them_up_front() -> None:
    """`--network`'s choices are the profiles' names, in the help and in the refusal; they are
    read only then, so loading the CLI (every command does) builds no pydantic model."""
    import subprocess
    import sys

    from skewlab.net.profiles import profile_names

    names = profile_names()
    r = CliRunner().invoke(cli, ["run", "--help"])
    assert r.exit_code == 0 and f"[{'|'.join(names)}]" in r.output
    r = CliRunner().invoke(cli, ["run", "--network", "nope"])
    assert r.exit_code == 2 and "'nope' is not one of" in r.output and repr(names[-1]) in r.output
    probe = ("import sys, skewlab.cli; "
             "print(sorted(m for m in ('pydantic', 'skewlab.spec', 'skewlab.net.profiles')"
             " if m in sys.modules))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert loaded == "[]", loaded
