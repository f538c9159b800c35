"""``python -m konsumerator_dev.sim``: the same commands as ``konsumerator-dev sim``."""

from konsumerator_dev.clikit import run
from konsumerator_dev.sim.cli import sim

if __name__ == "__main__":
    run(sim, prog_name="python -m konsumerator_dev.sim")
