"""The upgrade that makes ``adaptive`` the default restarts nothing that keeps up, on a real
apiserver and a real Prometheus (docs/compatibility.md, row 70; ``adaptive.adoption``).

A small fleet (four ``Recreate`` instances, one partition each, 490 msg/s per partition
at ``ratePerCore`` 1000) runs under ``naive``: 500m each, 2 % to spare, less than the
adaptive headroom (u = 0.95: 516 msg/s, 600m). Then ``predictor`` is removed from the
Consumer, so the apiserver fills in the CRD's default, ``adaptive``, as it does for
every Consumer stored without the field once the new CRD is applied. The operator sizes
the fleet with the adaptive predictor from then on (each Deployment's
``scaling-decision`` says so), and over many passes, well past
``pendingScaleUpDuration`` (4 s), no Deployment's pod template changes: no consumer is
restarted (on the old code all four were resized to 600m together, 4 s after the
switch). The decision names the rule, ``adopted``.

The exporter serves kafka_exporter's series, as in ``test_operator_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    container,
    converged,
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
from konsumerator_dev.testenv import Cluster, MetricsExporter, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PARTITIONS = 4


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


def _decision(d: dict[str, Any]) -> str:
    return str((d["metadata"].get("annotations") or {}).get(keys.SCALING_DECISION, ""))


def _templates(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: d["spec"]["template"] for name, d in found.items()}


def test_switching_a_naive_fleet_to_the_default_restarts_no_instance_that_keeps_up(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = consumer(
        "up",
        namespace,
        num_partitions=PARTITIONS,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
        pending_down="4s",
    )
    manifest["spec"]["autoscaler"].update(updateMode="Recreate", restartTime="5s")
    assert manifest["spec"]["autoscaler"]["predictor"] == "naive"
    # Prometheus rates the full 490 msg/s before the Consumer comes, so naive sizes the
    # fleet from it: a first answer rated over part of the feed's life would be taken at
    # once (an instance created without metrics: docs/compatibility.md, row 79), and naive
    # does not scale up what keeps up.
    production = manifest["spec"]["autoscaler"]["prometheus"]["production"]["query"]
    wait_until(
        lambda: (
            len(rated := cluster.prometheus_query(production)) == PARTITIONS
            and all(float(r["value"][1]) >= 480 for r in rated)
        ),
        timeout=60,
        what="Prometheus to rate the feed's production",
    )
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:

        def passes() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, "up"),
            lambda o: (
                converged(o, PARTITIONS)
                and condition(o, "MetricsAvailable").get("reason") == "Synced"
            ),
            timeout=90,
            what="Consumer up to converge under naive with metrics synced",
        )
        naive = eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == PARTITIONS and {_cpu(d) for d in found.values()} == {500},
            timeout=120,
            what="naive to size every instance for 490 msg/s: 500m",
        )
        assert not any(_decision(d) for d in naive.values())

        # The upgrade, as the operator sees it: the field is gone, the CRD's default reads.
        cluster.kubectl(
            "patch",
            "consumers.konsumerator.lwolf.org",
            "up",
            "-n",
            namespace,
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/spec/autoscaler/predictor"}]',
        )
        assert get_consumer(cluster, namespace, "up")["spec"]["autoscaler"]["predictor"] == (
            "adaptive"
        )
        adopted = eventually(
            lambda: managed(cluster, namespace),
            lambda found: (
                len(found) == PARTITIONS
                and all(_decision(d).startswith("adaptive:") for d in found.values())
            ),
            timeout=90,
            what="every instance sized by the adaptive predictor",
        )
        start = passes()
        # minSyncPeriod 2 s: each pass refreshes the metrics; pendingScaleUpDuration is 4 s.
        wait_until(lambda: passes() >= start + 12, timeout=120, what="12 more passes")
        after = managed(cluster, namespace)
    decisions = [_decision(d) for d in after.values()]
    assert {_cpu(d) for d in after.values()} == {500}, decisions
    assert _templates(after) == _templates(naive) == _templates(adopted)
    assert all("rule adopted:" in d for d in decisions), decisions
