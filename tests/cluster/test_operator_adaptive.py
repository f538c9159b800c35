"""The adaptive predictor in the operator, on a real apiserver and a real Prometheus.

Aspects tested:

* instances created before Prometheus answered (at ``minAllowed``) are sized from metrics
  in the first pass that has them, without ``pendingScaleUpDuration`` (rule ``first``);
* a Consumer with ``predictor: adaptive`` whose instances need more than they have (the
  high-water mark: production / 0.95) without any lag waits ``pendingScaleUpDuration``
  (PENDING_SCALE_UP), and its Deployments carry the policy's state (``scaling-memory``)
  and the explanation of its last decision (``scaling-decision``, naming u) as written
  by server-side apply;
* a lag that will cross ``tolerableLag`` is scaled up at once (rule ``urgent``) although
  ``pendingScaleUpDuration`` is an hour; the ``Scaled`` Event's message names the inputs;
* an operator restarted afterwards keeps the state (it reads it back from the Deployments):
  the remembered resize survives, and the other instance's pending period goes on from
  where it was instead of restarting;
* a pass with nothing to change writes nothing: instances waiting out
  ``pendingScaleUpDuration`` at a steady rate get no Deployment write over many metric
  syncs, though the recent peak rotates every two (it is kept in the process; the
  apiserver's own request counters show no write to Deployments).

The exporter serves kafka_exporter's series, as in ``test_operator_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    InProcessOperator,
    condition,
    consumer,
    container,
    converged,
    events,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)
from test_operator_metrics import KafkaFeed

from konsumerator.domain import keys
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.quantities import cpu_millis
from konsumerator.kube.requesting import WRITE_VERBS
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, MetricsExporter, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


@pytest.fixture
def feed(cluster: Cluster, exporter: MetricsExporter, namespace: str) -> Iterator[KafkaFeed]:
    served = KafkaFeed(exporter, topic=namespace, partitions=2, rate=450)
    cluster.set_scrape_targets([exporter.target])
    try:
        yield served
    finally:
        served.stop()


def _cpu(d: dict[str, Any]) -> int:
    return cpu_millis(container(d)["resources"]["requests"]["cpu"])


def _annotations(d: dict[str, Any]) -> dict[str, str]:
    return dict(d["metadata"].get("annotations") or {})


def _adaptive(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """Two adaptive instances fed by the package's Kafka feed, waiting out a 1h
    pendingScaleUpDuration; Recreate, so the size is in the template, where it is read."""
    manifest = consumer(
        name,
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
        pending_up="1h",
    )
    manifest["spec"]["autoscaler"].update(
        predictor="adaptive", restartTime="5s", updateMode="Recreate"
    )
    return manifest


def test_the_adaptive_predictor_sizes_explains_and_remembers(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = _adaptive(cluster, namespace, "ad")
    with in_process_operator(cluster):
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, "ad"),
            lambda o: (
                converged(o, 2) and condition(o, "MetricsAvailable").get("reason") == "Synced"
            ),
            timeout=90,
            what="Consumer ad to converge with metrics synced",
        )
        # 450 msg/s at u=0.95: 474 msg/s, 500m at 1000 msg/s per core. Instances created
        # before rate() saw production (at minAllowed, 100m) take it at once (rule first),
        # not after pendingScaleUpDuration (1h); created with metrics they have it already.
        first = eventually(
            lambda: managed(cluster, namespace),
            lambda found: all(_cpu(d) > 100 for d in found.values()),
            timeout=90,
            what="both instances sized from metrics without waiting pendingScaleUpDuration",
        )
        sized = _cpu(first["ad-consumer-0"])
        assert _cpu(first["ad-consumer-1"]) == sized
        for d in first.values():
            decision = _annotations(d)[keys.SCALING_DECISION]
            assert "rule first" in decision or "rule create" in decision, decision
        # 1100 msg/s: 1158 msg/s at u=0.95, beyond what the 1-core limit gives (so not
        # ``bursting``): the high-water mark asks for more without any lag, and waits
        # pendingScaleUpDuration (1h) for it. (The explanation is that of the pass that
        # entered PENDING_SCALE_UP, which writes: ``pending_up``, or ``gap_elapsed`` when it
        # came within R + minSyncPeriod of a first size that rate() saw only part of.)
        feed.set_rate(1100)
        pending = eventually(
            lambda: managed(cluster, namespace),
            lambda found: all(
                _annotations(d).get(keys.SCALING_STATUS) == "PENDING_SCALE_UP"
                for d in found.values()
            ),
            timeout=150,
            what="both instances PENDING_SCALE_UP under the high-water mark",
        )
        for d in pending.values():
            assert "u=0.95" in _annotations(d)[keys.SCALING_DECISION]
            assert _cpu(d) == sized

        # 110,000 behind at 1100 msg/s: 100 s of lag, beyond tolerableLag (10 s): urgent.
        feed.lag = {0: 110_000}
        scaled = eventually(
            lambda: managed(cluster, namespace),
            lambda found: _cpu(found["ad-consumer-0"]) > sized,
            timeout=90,
            what="ad-consumer-0 scaled up at once, pendingScaleUpDuration is 1h",
        )
        decision = _annotations(scaled["ad-consumer-0"])[keys.SCALING_DECISION]
        assert "rule urgent" in decision
        assert _cpu(scaled["ad-consumer-1"]) == sized
        messages = [
            e["message"]
            for e in events(cluster, namespace, involved="ad")
            if e["reason"] == "Scaled"
        ]
        assert any("adaptive: lambda=" in m and "rule urgent" in m for m in messages), messages
        remembered = adaptive_memory.decode(
            _annotations(scaled["ad-consumer-0"])[keys.SCALING_MEMORY]
        )
        assert remembered is not None
        assert remembered.resized_at is not None
        since = _annotations(scaled["ad-consumer-1"])[keys.SCALING_STATUS_CHANGE]

    # A new operator process: what it knows of the policy's state is on the Deployments.
    with in_process_operator(cluster):
        eventually(
            lambda: get_consumer(cluster, namespace, "ad"),
            lambda o: condition(o, "MetricsAvailable").get("reason") == "Synced",
            timeout=90,
            what="the restarted operator to sync",
        )
        kept = managed(cluster, namespace)
    # the pending period goes on from where it was (1h: not over), and the resize is remembered
    assert _cpu(kept["ad-consumer-1"]) == sized
    assert _annotations(kept["ad-consumer-1"])[keys.SCALING_STATUS_CHANGE] == since
    memory = adaptive_memory.decode(_annotations(kept["ad-consumer-0"])[keys.SCALING_MEMORY])
    assert memory is not None
    assert memory.resized_at == remembered.resized_at


def _deployment_writes(op: InProcessOperator) -> int:
    """The operator's own write requests to Deployments. Not the apiserver's count: that
    holds everyone's, and the garbage collector deleting an earlier test's Deployments
    writes to them meanwhile."""
    counts = op.call(lambda: dict(op.operator.client.counts.by_resource))
    return sum(
        n
        for (verb, resource), n in counts.items()
        if resource == "deployments" and verb in WRITE_VERBS
    )


def test_adaptive_passes_with_nothing_to_change_write_no_deployment(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = _adaptive(cluster, namespace, "still")
    # Prometheus rates the full 450 msg/s before the Consumer comes: a first size from a
    # rate() that saw only part of the feed is taken at once (rule first) and then waits
    # out its scale-up, a PENDING_SCALE_UP write that could fall in the counted window.
    production = manifest["spec"]["autoscaler"]["prometheus"]["production"]["query"]
    wait_until(
        lambda: (
            len(rated := cluster.prometheus_query(production)) == 2
            and all(float(r["value"][1]) >= 440 for r in rated)
        ),
        timeout=60,
        what="Prometheus to rate the feed's production",
    )
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:

        def reconciles() -> float:
            return metric_sum(op.metrics(), "controller_runtime_reconcile_total")

        cluster.apply(manifest)
        # Both instances sized from metrics (at once, rule first, when created before
        # Prometheus answered), then held at a steady 450 msg/s: right-sized, or waiting out
        # pendingScaleUpDuration (1h) when the first size came from a rate() that saw only
        # part of the production, and their memory written once with everything but the
        # recent peak settled.
        eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == 2 and all(_cpu(d) > 100 for d in found.values()),
            timeout=90,
            what="both instances sized from metrics",
        )
        settle = reconciles()
        wait_until(lambda: reconciles() >= settle + 8, timeout=90, what="8 more passes")
        before, start = _deployment_writes(op), reconciles()
        # minSyncPeriod 2s: each pass refreshes the metrics; the peak rotates every two.
        wait_until(lambda: reconciles() >= start + 12, timeout=120, what="12 more passes")
        after = _deployment_writes(op)
    assert after - before == 0
