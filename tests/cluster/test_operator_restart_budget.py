"""The restart budget on a real apiserver and a real Prometheus (docs/compatibility.md,
row 76; ``domain.disruption``).

Ten ``Recreate`` instances (one partition each, 490 msg/s per partition at
``ratePerCore`` 1000) are created at ``maxAllowed`` (2 cores: ``fallbackStrategy: max``,
while Prometheus has no rate yet); ``naive`` then scales every one down (to about 500m:
the size depends on the first ``rate()`` samples, and naive never scales up without
lag), a restart of each, all wanting it from the same passes. With
``restartBudgetPercent: 10`` one pass restarts one of them: the scale-downs land in at
least five different passes (each Deployment's ``scaling-status-change`` is the time of
its own), the operator counts the held ones (``konsumerator_consumer_restarts_held_total``),
and every instance gets its turn: none is left at 2 cores or waiting in
``PENDING_SCALE_DOWN``. On the old code all ten were scaled down in one pass.

``status.restartsHeld`` shows the held count while the budget binds (at most nine:
one of the ten restarts per pass) and 0 once every instance has had its turn
(``kubectl get consumers -o wide``, column ``HELD``); a count edited in by hand is
written over by the next refresh (a server-side apply that left the field out would
not remove one another field manager wrote). On the code before the field, it never
appeared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    consumer_path,
    container,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)
from test_operator_metrics import KafkaFeed

from konsumerator.domain import keys
from konsumerator.domain.quantities import cpu_millis
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, MetricsExporter

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 10
MAX_CPU_M = 2000


@pytest.fixture
def feed(cluster: Cluster, exporter: MetricsExporter, namespace: str) -> Iterator[KafkaFeed]:
    served = KafkaFeed(exporter, topic=namespace, partitions=PARTITIONS, rate=490)
    cluster.set_scrape_targets([exporter.target])
    try:
        yield served
    finally:
        served.stop()


def _cpu(d: dict[str, Any]) -> int:
    return cpu_millis(container(d)["resources"]["requests"]["cpu"])


def _held(consumer: dict[str, Any]) -> int:
    return int(consumer.get("status", {}).get("restartsHeld", 0))


def _pending_down(d: dict[str, Any]) -> bool:
    status = d["metadata"]["annotations"].get(keys.SCALING_STATUS)
    return bool(status == "PENDING_SCALE_DOWN")


def test_a_fleet_wide_scale_down_restarts_one_instance_per_pass_and_each_gets_its_turn(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = consumer(
        "paced",
        namespace,
        num_partitions=PARTITIONS,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
        pending_down="2s",
        max_cpu=f"{MAX_CPU_M}m",
    )
    manifest["spec"]["autoscaler"].update(updateMode="Recreate", restartBudgetPercent=10)
    manifest["spec"]["autoscaler"]["prometheus"]["fallbackStrategy"] = "max"
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, "paced"),
            lambda o: condition(o, "MetricsAvailable").get("reason") == "Synced",
            timeout=120,
            what="metrics synced",
        )
        binding = eventually(
            lambda: get_consumer(cluster, namespace, "paced"),
            lambda o: _held(o) > 0,
            timeout=240,
            what="status.restartsHeld while the budget holds scale-downs",
        )
        done = eventually(
            lambda: managed(cluster, namespace),
            lambda found: (
                len(found) == PARTITIONS
                and all(_cpu(d) < MAX_CPU_M and not _pending_down(d) for d in found.values())
            ),
            timeout=240,
            what="every instance scaled down from maxAllowed, none still waiting",
        )
        held = metric_sum(
            op.metrics(), "konsumerator_consumer_restarts_held_total", consumer=f"{namespace}/paced"
        )
        eventually(
            lambda: get_consumer(cluster, namespace, "paced"),
            lambda o: o.get("status", {}).get("restartsHeld") == 0,
            timeout=120,
            what="status.restartsHeld 0 once every instance had its turn",
        )
        wide = cluster.kubectl("get", "consumers", "-n", namespace, "-o", "wide").stdout
        lie = {"status": {"restartsHeld": 7}}
        edited = cluster.api("PATCH", consumer_path(namespace, "paced") + "/status", lie)
        assert _held(edited) == 7
        eventually(
            lambda: get_consumer(cluster, namespace, "paced"),
            lambda o: o.get("status", {}).get("restartsHeld") == 0,
            timeout=120,
            what="a restartsHeld edited by hand written over by the next refresh",
        )
    # Read HELD by its offsets: the in-place columns before it are empty cells here.
    header, row = wide.splitlines()[:2]
    assert row[header.index("HELD") : header.index("AUTOSCALER")].strip() == "0"
    assert 1 <= _held(binding) <= PARTITIONS - 1
    changes = {d["metadata"]["annotations"][keys.SCALING_STATUS_CHANGE] for d in done.values()}
    # One scale-down per pass, passes 2 s apart (minSyncPeriod): the ten land in at least
    # five different seconds (a bound, not a timing: all ten in one on the old code).
    assert len(changes) >= 5, sorted(changes)
    assert held >= PARTITIONS - 1
