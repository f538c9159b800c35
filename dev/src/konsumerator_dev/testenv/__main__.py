"""``python -m konsumerator_dev.testenv``: the same commands as ``konsumerator-dev testenv``."""

from konsumerator_dev.clikit import run
from konsumerator_dev.testenv.cli import testenv

if __name__ == "__main__":
    run(testenv, prog_name="python -m konsumerator_dev.testenv")
