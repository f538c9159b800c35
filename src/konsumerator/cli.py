"""The ``konsumerator`` command.

Input errors (a bad Consumer, timeline or flag) print one line naming the
file and the field and exit with status 2; nothing is half-applied, because
every input is validated before the first step runs.
"""

import sys
from importlib import resources
from pathlib import Path

import click

from konsumerator import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="konsumerator")
def main() -> None:
    """Konsumerator: Kafka consumers on Kubernetes, one Deployment per partition
    group, sized from Prometheus lag metrics."""


def crd_text() -> str:
    return resources.files("konsumerator.api").joinpath("crd.yaml").read_text()


@main.command()
def crd() -> None:
    """Print the Consumer CustomResourceDefinition (pipe it to kubectl apply -f -)."""
    click.echo(crd_text(), nl=False)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise click.UsageError(f"{path}: {e.strerror}") from None


@main.command()
@click.argument("consumer", type=click.Path(dir_okay=False))
@click.argument("timeline", type=click.Path(dir_okay=False))
def simulate(consumer: str, timeline: str) -> None:
    """Replay TIMELINE (YAML steps of metrics) through the planner for CONSUMER.

    Prints one JSON object per step: the Consumer status and every Deployment's
    partitions, scaling state, resources and env, in virtual time.
    """
    from konsumerator import simulating

    try:
        source, spec = simulating.load_consumer(_read(consumer), source=consumer)
        steps = simulating.load_timeline(_read(timeline), source=timeline)
    except simulating.InputError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    simulating.run(source=source, spec=spec, steps=steps, out=sys.stdout)
