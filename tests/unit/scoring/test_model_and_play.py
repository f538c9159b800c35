"""The scoring model and score (``scoring.model``, ``scoring.play``): the honesty fixes.

Aspects tested:

* CPU model: under ``REQUEST`` an instance consumes at most its request; under
  ``LIMIT`` (a node with CPU to spare) it bursts up to its limit; an instance
  without a limit consumes its request under both.
* In place: a resize that keeps the partitions pauses consumption for
  ``in_place_s`` and is not a restart; under Recreate it is one and stops
  consumption for ``restart_s``.
* A stalled partition needs no CPU: the oracle, which gives exactly what can be
  consumed, is not under-provisioned during a downstream outage.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest

from konsumerator.scoring import command
from konsumerator.scoring.model import CpuModel, Instance, Model
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
    ("cpu_model", "limit_m", "want_per_s"),
    [
        (CpuModel.REQUEST, 1000, 500.0),  # 500m at 1000 msg/s per core
        (CpuModel.LIMIT, 1000, 1000.0),  # bursts to the limit
        (CpuModel.LIMIT, None, 500.0),  # no limit known: the request
    ],
)
def test_the_cpu_model_caps_consumption_at_the_request_or_the_limit(
    cpu_model: CpuModel, limit_m: int | None, want_per_s: float
) -> None:
    model = Model(
        trace=Flat(),
        num_partitions=1,
        true_rate_per_core=1000.0,
        restart_s=0.0,
        cpu_model=cpu_model,
    )
    model.allocate(
        [Instance(name="i", partitions=(0,), cpu_m=500, template="a", cpu_limit_m=limit_m)]
    )
    model.advance(dt=1.0)  # the start
    assert consumed_in(model, 10) == pytest.approx(10 * want_per_s)


@pytest.mark.parametrize(("in_place_s", "restarts", "paused_s"), [(None, 1, 30.0), (2.0, 0, 2.0)])
def test_a_resize_in_place_pauses_briefly_and_restarts_nothing(
    in_place_s: float | None, restarts: int, paused_s: float
) -> None:
    model = Model(
        trace=Flat(),
        num_partitions=1,
        true_rate_per_core=10_000.0,
        restart_s=30.0,
        in_place_s=in_place_s,
    )
    model.allocate([Instance(name="i", partitions=(0,), cpu_m=1000, template="a")])
    consumed_in(model, 60)
    model.allocate([Instance(name="i", partitions=(0,), cpu_m=2000, template="b")])
    assert model.restarts == restarts
    # 60 s of 1000 msg/s produced; consumed all but what came in while paused (caught up after)
    assert consumed_in(model, paused_s) == pytest.approx(0.0)


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
