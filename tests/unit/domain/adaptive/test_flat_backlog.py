"""A consumer exactly at capacity with a backlog, in virtual time, closed loop.

The example Consumer (``examples/consumer-learning.yaml``: ratePerCore 2000, the
adaptive predictor with a cpuUsage query) on a node with CPU to spare: its pods use
CPU up to their limit, and really do ``TRUE_RATE`` msg/s per core. Production is
1000 msg/s per partition and a backlog of 100,000 messages per partition is left by
an outage. Sized at the configured 2000/core, each instance gets a 2-core limit:
exactly its production of 2000 msg/s, so the backlog stays flat however long it
runs, and consumption never falls below 95 % of production. Such a consumer is at
capacity (it consumes as fast as it can), so the adaptive predictor must learn the
true rate from it and size with it, and the backlog must drain.
"""

from pathlib import Path
from types import MappingProxyType

from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.simulating import Replay, _pod_name, load_consumer

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "consumer-learning.yaml"
TRUE_RATE = 1000.0  # msg/s per core, half the configured ratePerCore
PRODUCTION = 1000.0  # msg/s per partition
BACKLOG = 100_000.0  # messages per partition, left by an outage
STEP_S = 31.0
INSTANCES = {"orders-consumer-0": (0, 1), "orders-consumer-1": (2, 3)}


def run(steps: int) -> tuple[list[int | None], list[float]]:
    """The learned rate and the backlog per partition after each pass."""
    source, spec = load_consumer(EXAMPLE.read_text(), source=str(EXAMPLE))
    replay = Replay(source=source, spec=spec)
    backlog = BACKLOG
    consumed = 0.0
    cores_used: dict[str, float] = {}
    rates: list[int | None] = []
    backlogs: list[float] = []
    for _ in range(steps):
        parts = range(4)
        snapshot = MetricsSnapshot(
            production=MappingProxyType(dict.fromkeys(parts, PRODUCTION)),
            consumption=MappingProxyType(dict.fromkeys(parts, consumed)),
            offset=MappingProxyType(dict.fromkeys(parts, backlog)),
            cpu_usage=CpuUsage(
                by_pod=MappingProxyType({_pod_name(k): v for k, v in cores_used.items()})
            ),
        )
        done = replay.step(advance_s=STEP_S, metrics=snapshot)
        learning = done.status.learning
        rates.append(None if learning is None else learning.rate_per_core)
        # The pods run STEP_S with what the operator decided: up to their limit (whole
        # cores), each instance the same, consuming what TRUE_RATE per core gives.
        (limit_m,) = {d.current["consumer"].cpu_lim_m or 0 for d in replay.cluster.observed()}
        capacity = TRUE_RATE * limit_m / 1000 / 2  # per partition
        consumed = min(capacity, PRODUCTION + backlog / STEP_S)
        cores_used = dict.fromkeys(INSTANCES, 2 * consumed / TRUE_RATE)
        backlog = max(0.0, backlog + (PRODUCTION - consumed) * STEP_S)
        backlogs.append(backlog)
    replay.close()
    return rates, backlogs


def test_a_consumer_at_capacity_with_a_flat_backlog_learns_the_true_rate_and_drains() -> None:
    rates, backlogs = run(60)
    # it starts exactly at capacity: the backlog is flat, not growing
    assert backlogs[:3] == [BACKLOG] * 3
    # learned from the flat backlog, toward the true rate and never past it...
    learned = [r for r in rates if r is not None]
    assert learned[0] == 2000  # the prior
    assert learned == sorted(learned, reverse=True)
    assert TRUE_RATE <= learned[-1] < 1400, rates
    # ...sized with it, and drained (learning then stops: a shrinking backlog is no sample)
    assert backlogs[-1] == 0, backlogs
