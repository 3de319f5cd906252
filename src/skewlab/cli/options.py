"""Option and argument definitions shared by several ``skewlab`` commands.

Each function returns a click decorator, so one option is written once and reads the same in
every command that takes it. Only click is imported here: defining a command stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

RUN_OUT_HELP = "Base folder; the run goes to OUT/<experiment-id>/."
RESULTS = Path("results")


def experiment_argument(required: bool = False) -> Decorator[F]:
    """EXPERIMENT: an experiment file (TOML, YAML or JSON); optional means the built-in one."""
    return click.argument(
        "experiment", required=required, type=click.Path(path_type=Path, dir_okay=False)
    )


def config() -> Decorator[F]:
    """-c/--config: the experiment file as an option (``skewlab run``)."""
    return click.option(
        "-c",
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Experiment file (TOML, YAML or JSON). Default: the built-in experiment.",
    )


def results_dir_argument(exists: bool = False) -> Decorator[F]:
    """RESULTS_DIR: a results folder (``exists``: click refuses a missing one, exit 2)."""
    return click.argument(
        "results_dir", type=click.Path(path_type=Path, file_okay=False, exists=exists)
    )


def events() -> Decorator[F]:
    """-n/--events: overrides the experiment's ``workload.events``."""
    return click.option(
        "-n", "--events", type=click.IntRange(min=1), help="Number of events to broadcast."
    )


def seed(help: str = "Random seed (every random stream of the run).") -> Decorator[F]:
    """--seed: by default the experiment's ``seed``, which seeds every random stream."""
    return click.option("--seed", type=int, help=help)


def out(help: str = RUN_OUT_HELP, default: Path | None = RESULTS,
        file: bool = False) -> Decorator[F]:  # fmt: skip
    """-o/--out: a base folder (default ``results``), or a file path with ``file=True``."""
    kind = click.Path(path_type=Path, file_okay=file, dir_okay=not file)
    extra: dict[str, Any] = {"default": default, "show_default": True} if default else {}
    return click.option("-o", "--out", type=kind, help=help, **extra)


def jobs(default: int, help: str) -> Decorator[F]:
    """-j/--jobs: processes to use."""
    return click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=default, show_default=True, help=help
    )


def no_figures() -> Decorator[F]:
    """--no-figures: analyse without drawing (stats.json and the reports, without figures)."""
    return click.option(
        "--no-figures",
        is_flag=True,
        help="Skip figures (stats.json and report.md/.html, no figures; an earlier analysis's "
        "figure files are removed).",
    )


def quiet() -> Decorator[F]:
    """-q/--quiet: no progress on stderr."""
    return click.option("-q", "--quiet", is_flag=True, help="No progress lines.")


def as_json() -> Decorator[F]:
    """--json (flag, parameter ``as_json``): JSON on stdout instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def params(metavar: str, help: str) -> Decorator[F]:
    """-p/--param (repeatable, parameter ``params``): clock source parameters."""
    return click.option("-p", "--param", "params", multiple=True, metavar=metavar, help=help)


def ntp(help: str) -> Decorator[F]:
    """--ntp HOST:PORT: an NTP server the clock sources stand on."""
    return click.option("--ntp", metavar="HOST:PORT", help=help)
