"""The scoring model and score (``scoring.model``, ``scoring.play``): the honesty fixes.

Aspects tested:

* CPU model: under ``REQUEST`` an instance consumes at most its request; under
  ``LIMIT`` (a node with CPU to spare) it bursts up to its limit; an instance
  without a limit consumes its request under both.
* In place: a new size with the same pod template pauses consumption for
  ``in_place_s`` and is not a restart; a template change (Recreate) is one and
  stops consumption for ``restart_s``.
* A stalled partition needs no CPU: the oracle, which gives exactly what can be
  consumed, is not under-provisioned during a downstream outage.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from konsumerator.scoring import command
from konsumerator.scoring.model import Instance, Model
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


@pytest.mark.parametrize(
    ("template", "restarts", "paused_s"),
    [
        ("b", 1, 30.0),  # Recreate: the size is in the template, the pods restart
        ("a", 0, 2.0),  # in place: the template is kept, the running pod is resized
    ],
)
def test_a_resize_in_place_pauses_briefly_and_restarts_nothing(
    template: str, restarts: int, paused_s: float
) -> None:
    model = Model(
        trace=Flat(), num_partitions=1, true_rate_per_core=10_000.0, restart_s=30.0, in_place_s=2.0
    )
    model.allocate([Instance(name="i", partitions=(0,), cpu_m=1000, template="a")])
    consumed_in(model, 60)
    model.allocate([Instance(name="i", partitions=(0,), cpu_m=2000, template=template)])
    assert model.restarts == restarts
    assert consumed_in(model, paused_s) == pytest.approx(0.0)
    assert consumed_in(model, 1) > 0


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
