"""``konsumerator-dev``: every developer command is reachable from one click CLI.

Aspects tested:

* every group (testenv, sim, bench, hack) and every command in it answers ``--help``, so a
  command whose module no longer imports fails here rather than in a Makefile target;
* the Makefile's developer targets call ``konsumerator-dev`` commands that exist;
* a usage error exits 2 with click's message, and a command's return value is the exit
  status (what ``make`` sees).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from konsumerator_dev import clikit
from konsumerator_dev.cli import dev

ROOT = Path(__file__).resolve().parents[2]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


ALL = _commands(dev)


def test_every_area_is_a_group_of_the_one_cli() -> None:
    assert {path[0] for path in ALL} == {"testenv", "sim", "bench", "hack"}


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(dev, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_makefile_calls_existing_commands() -> None:
    makefile = (ROOT / "Makefile").read_text()
    called = re.findall(r"konsumerator-dev ([a-z-]+ [a-z-]+)", makefile)
    assert called
    for words in called:
        assert tuple(shlex.split(words)) in ALL, words


def test_a_usage_error_exits_2_and_a_command_status_is_the_exit_status() -> None:
    @click.command()
    @click.option("--code", type=int, required=True)
    def status(*, code: int) -> int:
        return code

    assert clikit.invoke(status, ["--code", "3"], prog_name="t") == 3
    assert clikit.invoke(status, ["--bogus"], prog_name="t") == 2
