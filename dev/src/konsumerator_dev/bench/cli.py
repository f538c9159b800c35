"""``konsumerator-dev bench``: the scorecard and the benchmarks, one command each.

The commands are imported when run, not when the CLI starts: the scorecard needs the
``bench`` dependency group (matplotlib) and the Kafka benchmarks a built broker.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: command name -> module under konsumerator_dev.bench whose ``main`` is the command.
COMMANDS = {
    "scorecard": "autoscaling",
    "scale": "scale",
    "simulate": "simulate",
    "consumer-cpu": "consumer_cpu",
    "kafka-stack": "kafka_stack",
    "passes": "passes",
}


class _Lazy(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: Any = importlib.import_module(f"konsumerator_dev.bench.{module}").main
        assert isinstance(command, click.Command)
        return command


bench = _Lazy("bench", help="The autoscaling scorecard and the benchmarks (not tests)")
