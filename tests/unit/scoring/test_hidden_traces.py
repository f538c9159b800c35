"""Traces the published scorecard does not show: the adaptive predictor is never costlier.

Reviewers score traces of their own. These are the invented shapes
(``konsumerator_dev.sim.traces.INVENTED``, shortened to 3 h so that the whole
table plays in seconds) on which the adaptive predictor's margin over naive
was smallest or once negative, each in the setting (CPU model, update mode)
where it was. Each case asserts a direction, never a figure: the adaptive
predictor's published cost (``bench.autoscaling.cost``: core-hours, minutes
beyond tolerableLag and restarts at the published prices) is at most naive's.
In place, it also never scales an instance up, down and up again within 30
minutes (``after_up``).

Where the adaptive predictor is costlier (one hot partition at x4, a step down
in place: its 5 % headroom against a naive that happens never to be late) is
said in docs/adaptive.md, not hidden here.
"""

from collections.abc import Callable

import pytest
from support.scoring import play_example

from konsumerator.scoring import command
from konsumerator.scoring.model import CpuModel, Workload
from konsumerator.scoring.play import Score
from konsumerator.scoring.policies import PipelinePolicy
from konsumerator_dev.bench.autoscaling import cost
from konsumerator_dev.sim import traces

HOURS = 3 * 3600.0
RECREATE = command.UpdateMode.RECREATE
IN_PLACE = command.UpdateMode.IN_PLACE_OR_RECREATE
REQUEST, LIMIT = CpuModel.REQUEST, CpuModel.LIMIT


def _score(trace: Workload, *, policy: str, cpu: CpuModel, mode: command.UpdateMode) -> Score:
    return play_example(trace, policy=PipelinePolicy(policy), cpu=cpu, mode=mode)


CASES: list[tuple[str, Callable[[], Workload], CpuModel, command.UpdateMode]] = [
    ("step-up", lambda: traces.step_up(seed=1, duration_s=HOURS), REQUEST, RECREATE),
    ("step-down", lambda: traces.step_down(seed=1, duration_s=HOURS), REQUEST, RECREATE),
    ("slow-ramp", lambda: traces.slow_ramp(seed=1, duration_s=HOURS), LIMIT, RECREATE),
    ("noisy +-30 %", lambda: traces.noisy(seed=1, duration_s=HOURS), REQUEST, IN_PLACE),
    ("sawtooth", lambda: traces.sawtooth(seed=1, duration_s=HOURS), LIMIT, IN_PLACE),
    ("flapping", lambda: traces.flapping(seed=1, duration_s=HOURS), REQUEST, IN_PLACE),
    # The published diurnal, its day pressed into 3 h: in place on a node with CPU to
    # spare, naive rode the limit and was cheaper until ``ride_share``.
    (
        "diurnal, 3 h",
        lambda: traces.diurnal(seed=1, duration_s=HOURS, period_s=HOURS),
        LIMIT,
        IN_PLACE,
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "cpu", "mode"), CASES, ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CASES]
)
def test_the_adaptive_predictor_costs_no_more_than_naive(
    name: str, make: Callable[[], Workload], cpu: CpuModel, mode: command.UpdateMode
) -> None:
    naive = _score(make(), policy="naive", cpu=cpu, mode=mode)
    adaptive = _score(make(), policy="adaptive", cpu=cpu, mode=mode)
    assert cost(adaptive) <= cost(naive), (name, cost(adaptive), cost(naive))
    if mode is IN_PLACE:
        assert adaptive.oscillations == 0
