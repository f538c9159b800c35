"""Hostile review of rule ``at_cap``: absurd resources, lying metrics, interleavings.

One instance of two partitions (``ratePerCore`` 2000, 1000 msg/s a partition, a pass
every 31 s, ``criticalLag`` 10 m, Recreate), kept up, then an outage long enough to pass
``criticalLag`` (30 passes), then the drain. Whatever the Consumer's resources, the size
the rule applies must lie within every policy bound with sane memory, and the drain after
it must not restart the pods again (the point of the rule).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
from support.consumers import ConsumerBuilder

from konsumerator.api import manifests
from konsumerator.domain import keys
from konsumerator.domain.adaptive import certificate
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.resources import Resources
from konsumerator.simulating import Replay

STEP_S = 31.0
LAM = 1000.0
GI = 2**30
MI = 2**20

Manifest = dict[str, Any]


def _snapshot(*, consumed: float, behind: float) -> MetricsSnapshot:
    return MetricsSnapshot(
        production=MappingProxyType({0: LAM, 1: LAM}),
        consumption=MappingProxyType({0: consumed, 1: consumed}),
        offset=MappingProxyType({0: behind, 1: behind}),
    )


def _prom(m: Manifest) -> dict[str, Any]:
    prom: dict[str, Any] = m["spec"]["autoscaler"]["prometheus"]
    return prom


def _policy(m: Manifest, name: str = "consumer") -> dict[str, Any]:
    for p in m["spec"]["resourcePolicy"]["containerPolicies"]:
        if p["containerName"] == name:
            return p  # type: ignore[no-any-return]
    raise KeyError(name)


def _no_max_cpu(m: Manifest) -> None:
    del _policy(m)["maxAllowed"]["cpu"]


def _no_max_at_all(m: Manifest) -> None:
    del _policy(m)["maxAllowed"]


def _max_memory_below_ram_per_core(m: Manifest) -> None:
    _policy(m)["maxAllowed"]["memory"] = "1Gi"  # 8 cores x 256Mi = 2Gi


def _ram_per_core_huge(m: Manifest) -> None:
    _prom(m)["ramPerCore"] = "64Gi"


def _ram_per_core_huge_capped(m: Manifest) -> None:
    _prom(m)["ramPerCore"] = "64Gi"
    _policy(m)["maxAllowed"]["memory"] = "16Gi"


def _cpu_increment_odd(m: Manifest) -> None:
    _prom(m)["cpuIncrement"] = "300m"


def _max_cpu_odd(m: Manifest) -> None:
    _prom(m)["cpuIncrement"] = "300m"
    _policy(m)["maxAllowed"]["cpu"] = "7100m"


def _sidecar_unpinned(m: Manifest) -> None:
    policies = m["spec"]["resourcePolicy"]["containerPolicies"]
    m["spec"]["resourcePolicy"]["containerPolicies"] = [
        p for p in policies if p["containerName"] != "sidecar"
    ]


def _pool_3_cores(m: Manifest) -> None:
    del _policy(m)["maxAllowed"]["cpu"]
    m["spec"]["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"cpu": "3"}}


def _pool_below_max(m: Manifest) -> None:
    m["spec"]["resourcePolicy"]["globalPolicy"] = {"maxAllowed": {"cpu": "5", "memory": "1Gi"}}


def _nothing(m: Manifest) -> None:
    return None


def _replay(builder: ConsumerBuilder, mutate: Callable[[Manifest], None]) -> Replay:
    manifest = copy.deepcopy(builder.manifest())
    mutate(manifest)
    source, spec = manifests.read(manifest)
    return Replay(source=source, spec=spec)


def _observed(replay: Replay) -> tuple[dict[str, Resources], dict[str, str]]:
    (d,) = replay.cluster.observed()
    return dict(d.current), dict(d.annotations)


def _outage_then_drain(
    replay: Replay, *, passes: int = 30
) -> tuple[list[dict[str, Resources]], int, int, float]:
    """Kept up for 10 passes, then ``passes`` of outage; the sizes after every outage
    pass, the restarts at the outage's end and after the drain's first pass, and the
    backlog."""
    for _ in range(10):
        replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=LAM, behind=0.0))
    behind = 0.0
    sizes = []
    for _ in range(passes):
        behind += LAM * STEP_S
        replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=0.0, behind=behind))
        sizes.append(_observed(replay)[0])
    restarts = replay.cluster.pods.restarts
    cpu = sizes[-1]["consumer"].cpu_req_m or 0
    # the drain: consuming what the CPU gives
    replay.step(advance_s=STEP_S, metrics=_snapshot(consumed=cpu * 2.0, behind=behind))
    return sizes, restarts, replay.cluster.pods.restarts, behind


BASE = ConsumerBuilder(per_instance=2, target_utilization_percent=90, restart_time="30s")
SIDECAR = ConsumerBuilder(
    per_instance=2, target_utilization_percent=90, restart_time="30s", sidecar=True
)


@pytest.mark.parametrize(
    ("builder", "mutate", "max_cpu_m", "max_mem_b", "jumps"),
    [
        pytest.param(BASE, _nothing, 8000, None, True, id="plain"),
        pytest.param(BASE, _no_max_cpu, None, None, False, id="no-maxAllowed-cpu"),
        pytest.param(BASE, _no_max_at_all, None, None, False, id="no-maxAllowed"),
        pytest.param(BASE, _max_memory_below_ram_per_core, 8000, GI, True, id="max-mem-1Gi"),
        pytest.param(BASE, _ram_per_core_huge, 8000, None, True, id="ramPerCore-64Gi"),
        pytest.param(
            BASE, _ram_per_core_huge_capped, 8000, 16 * GI, True, id="ramPerCore-64Gi-max-16Gi"
        ),
        pytest.param(BASE, _cpu_increment_odd, 8000, None, True, id="cpuIncrement-300m"),
        pytest.param(BASE, _max_cpu_odd, 7100, None, True, id="cpuIncrement-300m-max-7100m"),
        pytest.param(SIDECAR, _nothing, 8000, None, True, id="sidecar-pinned"),
        pytest.param(BASE, _pool_3_cores, 3000, None, True, id="pool-3-cores-no-max"),
        pytest.param(BASE, _pool_below_max, 5000, GI, True, id="pool-5-cores-1Gi-max-8"),
        pytest.param(SIDECAR, _sidecar_unpinned, None, None, False, id="sidecar-unpinned-no-cap"),
    ],
)
def test_at_cap_applies_a_size_within_every_bound_and_the_drain_does_not_restart_again(
    builder: ConsumerBuilder,
    mutate: Callable[[Manifest], None],
    max_cpu_m: int | None,
    max_mem_b: int | None,
    jumps: bool,
) -> None:
    certificate.forget_all()
    replay = _replay(builder, mutate)
    try:
        sizes, at_end, after_drain, _ = _outage_then_drain(replay)
        _, annotations = _observed(replay)
        last = sizes[-1]
        consumer = last["consumer"]
        assert consumer.cpu_req_m is not None
        if not jumps:
            # without a cap the outage holds, as before: the size of the kept-up load
            assert consumer.cpu_req_m == sizes[0]["consumer"].cpu_req_m, sizes
            return
        if max_cpu_m is not None:
            assert consumer.cpu_req_m <= max_cpu_m, consumer
            assert consumer.cpu_req_m >= max_cpu_m / 1.15, consumer  # it went to the cap
        if max_mem_b is not None:
            assert consumer.mem_req_b is not None
            assert consumer.mem_req_b <= max_mem_b, consumer
            if mutate is not _pool_below_max:  # a pool bounds requests, not limits
                assert consumer.mem_lim_b is None or consumer.mem_lim_b <= max_mem_b, consumer
        # memory sane: at least the floor of ramPerCore for the request, and a finite figure
        assert consumer.mem_req_b is not None
        assert 0 < consumer.mem_req_b < 2**50, consumer
        if "sidecar" in last and builder.sidecar and mutate is _nothing:
            assert last["sidecar"].cpu_req_m == 50, last  # pinned stays pinned
        # one jump during the outage, then no restart at the drain's start
        changes = sum(1 for a, b in zip(sizes, sizes[1:], strict=False) if a != b)
        assert changes <= 1, [s["consumer"] for s in sizes]
        assert after_drain == at_end, (at_end, after_drain, annotations)
    finally:
        replay.close()
        certificate.forget_all()
