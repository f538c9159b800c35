"""``konsumerator-dev hack generate|build-helm``: generated files and the pinned helm."""

from __future__ import annotations

import click

from konsumerator_dev.hack import build_helm, generate


@click.group(help="Generated files and the pinned helm binary")
def hack() -> None:
    pass


hack.add_command(generate.main)
hack.add_command(build_helm.main)
