"""The ``skewlab`` command: the click group and every command registered on it.

One module per command family (``run``, ``analysis``, ``simulate``, ``ntp``, ``deploy``,
``sources``, ``clockd``, ``export``); the options several commands share are defined once in
``options``, and ``common`` holds the error exit, spec loading, progress and summary table.
Command modules import only click and these two at load time, and the library inside each
command, so ``skewlab --help`` stays fast. Nothing here is imported back by a command module.
"""

from __future__ import annotations

import click

from skewlab import __version__
from skewlab.cli.analysis import analyze, compare, import_legacy
from skewlab.cli.clockd import clockd
from skewlab.cli.deploy import deploy
from skewlab.cli.export import export
from skewlab.cli.ntp import ntp_query, ntp_server
from skewlab.cli.run import run
from skewlab.cli.simulate import simulate, sweep, validate
from skewlab.cli.sources import sources

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skewlab")
def cli() -> None:
    """skewlab: measure how clock synchronization quality changes the decisions of
    distributed stream processors."""


for _command in (run, analyze, simulate, sweep, validate, deploy, ntp_server, ntp_query,
                 sources, clockd, export, import_legacy, compare):  # fmt: skip
    cli.add_command(_command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
