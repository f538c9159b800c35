"""The scoring model and score (``scoring.model``, ``scoring.play``): the honesty fixes.

Aspects tested:

* CPU model: under ``REQUEST`` an instance consumes at most its request; under
  ``LIMIT`` (a node with CPU to spare) it bursts up to its limit; an instance
  without a limit consumes its request under both.
* (In-place resizes and restarts of the model: tests/unit/sim/test_model.py.)
* A stalled partition needs no CPU: the oracle, which gives exactly what can be
  consumed, is not under-provisioned during a downstream outage.
"""

from dataclasses import dataclass
from pathlib import Path

from konsumerator.scoring import command
from konsumerator.scoring.model import Model
from konsumerator.scoring.play import play
from konsumerator.scoring.policies import Oracle
from konsumerator.simulating import load_consumer

CONSUMER = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"


@dataclass(frozen=True)
class Flat:
    """1000 msg/s per partition; partitions in ``stalled`` consume nothing in [a, b)."""

    duration_s: float = 3600.0
    stall: tuple[float, float] = (0.0, 0.0)
    name: str = "flat"

    def rate(self, *, partition: int, t: float) -> float:
        return 1000.0

    def stalled(self, *, partition: int, t: float) -> bool:
        return self.stall[0] <= t < self.stall[1]

    def phase(self, *, t: float) -> str:
        return ""


def consumed_in(model: Model, seconds: float) -> float:
    before = sum(p.consumed for p in model.partitions)
    for _ in range(int(seconds)):
        model.advance(dt=1.0)
    return sum(p.consumed for p in model.partitions) - before


def test_a_stall_is_not_under_provisioning() -> None:
    source, spec = load_consumer(CONSUMER.read_text(), source="c")
    scenario = command.scenario(
        source=source,
        spec=spec,
        trace=Flat(duration_s=3600.0, stall=(900.0, 1800.0)),
        options=command.Options(dt_s=5.0),
    )
    score = play(scenario=scenario, policy=Oracle())
    assert score.v_critical_min > 0  # the stall breaches the SLO whatever the CPU
    assert score.under_core_hours < 0.05
