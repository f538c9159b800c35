"""An adopted fleet whose lag is read through Kafka's auto-commit.

A consumer with ``enable.auto.commit`` (the Java client's default) commits every
``auto.commit.interval.ms`` (5 s by default), at its next poll: a consumer that keeps up
reads, at a scrape, between nothing and about 5 s of production behind, plus the poll's
own batch. ``adoption`` keeps an adopted instance's size only while every partition is
within one actuation's worth of its production unless a scale-up wait began, and only
then within ``policy.EMPTY_S`` (5 s), so such a fleet, switched from ``naive`` to
``adaptive`` and keeping up all along, must keep its sizes: no restart for headroom.

The fleet: ``test_adoption``'s ten Recreate instances (sized 500m + 100m·i by naive,
producing 99 % of what that gives), in closed loop; the lag the metrics report is the
true backlog plus the uncommitted messages, a seeded phase of the 5 s interval plus a
poll of 0.5-1.5 s.
"""

from dataclasses import replace
from types import MappingProxyType

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.domain.metrics import MetricsSnapshot

N = 10
RATE_PER_CORE = 2000
ORDERS = ConsumerBuilder(partitions=N, predictor="naive", rate_per_core=RATE_PER_CORE)
STEP_S = 31.0
PRODUCTION = {p: (500 + 100 * p) / 1000 * RATE_PER_CORE * 0.99 for p in range(N)}
COMMIT_S = 5.0


def _unit(seed: int, *key: int) -> float:
    """A deterministic value in [0, 1) for the key (splitmix64)."""
    x = seed * 0x9E3779B97F4A7C15
    for k in key:
        x = (x + (k + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
        x ^= x >> 31
    return (x >> 11) / float(1 << 53)


def _restarts(*, seed: int, syncs: int) -> tuple[int, dict[int, int]]:
    replay = ORDERS.replay()
    backlog = dict.fromkeys(range(N), 0.0)
    cpu: dict[int, int] = {}
    restarts = 0
    try:
        for i in range(10 + syncs):
            if i == 10:  # steady under naive: the upgrade
                replay.spec = replace(ORDERS, predictor="adaptive").load()[1]  # type: ignore[arg-type]
                restarts = 0
            consumed = {}
            reported = {}
            for p, lam in PRODUCTION.items():
                capacity = cpu[p] / 1000 * RATE_PER_CORE if p in cpu else lam
                consumed[p] = min(lam + backlog[p] / STEP_S, capacity)
                backlog[p] = max(0.0, backlog[p] + (lam - consumed[p]) * STEP_S)
                # Uncommitted: the phase of the commit interval and one poll's batch.
                uncommitted_s = COMMIT_S * _unit(seed, i, p) + 0.5 + _unit(seed, i, p, 1)
                reported[p] = backlog[p] + lam * (uncommitted_s if i >= 10 else 0.0)
            replay.step(
                advance_s=STEP_S,
                metrics=MetricsSnapshot(
                    production=MappingProxyType(dict(PRODUCTION)),
                    consumption=MappingProxyType(consumed),
                    offset=MappingProxyType(reported),
                ),
            )
            for d in replay.cluster.observed():
                p = int(d.name.rsplit("-", 1)[1])
                now_m = int(d.current["consumer"].cpu_req_m or 0)
                if p in cpu and now_m != cpu[p]:
                    restarts += 1
                    backlog[p] += PRODUCTION[p] * STEP_S
                cpu[p] = now_m
    finally:
        replay.close()
    return restarts, cpu


@pytest.mark.parametrize("seed", [1, 2])
def test_an_adopted_fleet_that_keeps_up_is_not_restarted_for_its_auto_commit_lag(
    seed: int,
) -> None:
    restarts, cpu = _restarts(seed=seed, syncs=240)  # 2 hours after the upgrade
    assert restarts == 0, (restarts, cpu)
