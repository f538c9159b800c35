"""Running a click command and getting its exit status back.

Commands return their exit status (an int; ``None`` counts as 0) so that tests can call them
through :func:`invoke` and read the status, and :func:`run` makes it the process's. Usage
errors print click's message and give 2, as in a standalone click program.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click


def invoke(command: click.Command, argv: Sequence[str] | None, *, prog_name: str) -> int:
    """Run ``command`` on ``argv`` and return its exit status instead of exiting.

    Commands return an int (0 when they return nothing); usage errors print click's message
    and give 2, as in a standalone click program.
    """
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0


def run(command: click.Command, *, prog_name: str) -> None:
    """Run ``command`` on the process's arguments and exit with its status."""
    sys.exit(invoke(command, None, prog_name=prog_name))
