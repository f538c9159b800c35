"""Command line entry point (filled in by the engine)."""

import click


@click.group()
def main() -> None:
    """Konsumerator: Kafka consumers on Kubernetes, sized from lag."""
