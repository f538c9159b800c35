"""``konsumerator-dev``: every developer command under one click CLI.

Each area owns its group (``testenv``, ``sim``, ``bench``, ``hack``); this module only mounts
them. ``python -m konsumerator_dev.<area>`` runs the same group (each area's ``__main__``).
"""

from __future__ import annotations

import click

from konsumerator_dev.bench.cli import bench
from konsumerator_dev.clikit import run
from konsumerator_dev.hack.cli import hack
from konsumerator_dev.sim.cli import sim
from konsumerator_dev.testenv.cli import testenv


@click.group(help="Konsumerator developer tooling: local cluster, simulator, demo, benchmarks")
def dev() -> None:
    pass


dev.add_command(testenv)
dev.add_command(sim)
dev.add_command(bench)
dev.add_command(hack)


def main() -> None:
    run(dev, prog_name="konsumerator-dev")
