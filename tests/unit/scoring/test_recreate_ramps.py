"""Ramps under Recreate: the adaptive predictor keeps every partition within tolerableLag.

Rules that let an instance ride its noise under Recreate (``room``'s ride, or
``spike``'s wait for the pass's own need) were measured against these two shapes and
reverted (docs/adaptive.md, "What it does not do"): a ride that lets the backlog
build before a restart leaves the restart's own λ·R on top of it, and on a rising
trace that passed ``tolerableLag``. Each case asserts the direction that failed,
never a figure: no partition-minute beyond tolerableLag, where today's rules have
none (seeds 1-3, on a busy node, where the reverted rules failed). A regression guard
for these seeds, not a claim for every seed: today's rules pass ``tolerableLag`` too on
the x4 noisy ramp with seeds 4, 6 and 9 of 4-12 (0.23-0.63 partition-minutes) and on an x2
noisy ramp with seed 10 (1.37), as the last hostile review measured; the staircase and
``slow-ramp`` stay at 0 on seeds 1-12.

* a staircase, +1 % every 2 minutes (500 msg/s a partition, about x2.5 in 3 h);
* a linear ramp x1 -> x4 of 500 msg/s a partition with ±20 % noise every minute.
"""

from collections.abc import Callable
from types import MappingProxyType

import pytest
from support.scoring import play_example

from konsumerator.scoring import command
from konsumerator.scoring.model import CpuModel, Workload
from konsumerator.scoring.play import Score
from konsumerator.scoring.policies import PipelinePolicy
from konsumerator_dev.sim import traces

HOURS = 3 * 3600.0
STEP_S = 120.0


def _staircase(seed: int) -> Workload:
    steps = tuple((k * STEP_S, 500.0 * 1.01**k) for k in range(int(HOURS // STEP_S)))
    return traces.Trace(
        name="staircase",
        base_rate=500.0,
        duration_s=HOURS,
        table=MappingProxyType({-1: steps}),
        seed=seed,
    )


def _noisy_ramp(seed: int) -> Workload:
    return traces.Trace(
        name="ramp-x4-noise-20",
        base_rate=500.0,
        duration_s=HOURS,
        ramp_to=4.0,
        noise=0.2,
        seed=seed,
    )


def _score(trace: Workload, *, cpu: CpuModel) -> Score:
    return play_example(
        trace, policy=PipelinePolicy("adaptive"), cpu=cpu, mode=command.UpdateMode.RECREATE
    )


CASES: list[tuple[str, Callable[[int], Workload], CpuModel]] = [
    ("staircase", _staircase, CpuModel.REQUEST),
    ("noisy ramp", _noisy_ramp, CpuModel.REQUEST),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("name", "make", "cpu"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_a_ramp_under_recreate_stays_within_tolerable_lag(
    name: str, make: Callable[[int], Workload], cpu: CpuModel, seed: int
) -> None:
    score = _score(make(seed), cpu=cpu)
    assert score.v_tolerable_min == 0.0, (name, seed, score.v_tolerable_min, score.restarts)
