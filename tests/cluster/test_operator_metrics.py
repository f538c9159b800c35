"""Sizing from a real Prometheus: lag served by a test exporter, scraped every second.

Aspects tested:

* a lag that appears on a partition drives its instance through the pending period: the
  Deployment is annotated PENDING_SCALE_UP first, with its CPU request unchanged, and only
  after ``pendingScaleUpDuration`` gets the higher CPU request (and the other instance,
  without lag, is left alone); status reports the instance LAGGING and the sync state;
* Prometheus stopped mid-run: every Deployment is left exactly as it was, the Consumer gets
  ``MetricsAvailable=False, reason=PrometheusUnreachable`` and a Warning Event; once
  Prometheus is back the condition returns to ``Synced``;
* a spec edit after steady syncs (passes that keep every instance as the last one did)
  still resizes every instance.

The exporter serves kafka_exporter's series (``kafka_consumergroup_lag``,
``kafka_topic_partition_current_offset``, ``kafka_consumergroup_current_offset``) with offsets
that grow at a chosen rate, so the Consumer's ``rate(...)`` queries see real production.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    KubectlWatch,
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

from konsumerator.domain import keys
from konsumerator.domain.quantities import cpu_millis
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, MetricsExporter, start_prometheus, stop_prometheus

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


class KafkaFeed:
    """kafka_exporter-like series for one topic/group; offsets grow at ``rate`` msg/s."""

    def __init__(self, exporter: MetricsExporter, *, topic: str, partitions: int, rate: float):
        self.exporter = exporter
        self.topic = topic
        self.partitions = partitions
        self.rate = rate
        self.lag: dict[int, int] = {}
        # (offset, from when, rate): one value, so the feed thread never reads half a change.
        self._line = (1_000_000, time.monotonic(), rate)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kafka-feed", daemon=True)
        self._render()
        self._thread.start()

    def set_rate(self, rate: float) -> None:
        """Production goes on at ``rate`` from the offset it has reached (no jump)."""
        base, start, old = self._line
        now = time.monotonic()
        self._line = (int(base + old * (now - start)), now, rate)
        self.rate = rate

    def _render(self) -> None:
        base, start, rate = self._line
        produced = int(base + rate * (time.monotonic() - start))
        lines = [
            "# TYPE kafka_topic_partition_current_offset gauge",
            "# TYPE kafka_consumergroup_current_offset gauge",
            "# TYPE kafka_consumergroup_lag gauge",
        ]
        for p in range(self.partitions):
            lag = self.lag.get(p, 0)
            t, g = f'topic="{self.topic}",partition="{p}"', f'consumergroup="{self.topic}"'
            lines += [
                f"kafka_topic_partition_current_offset{{{t}}} {produced}",
                f"kafka_consumergroup_current_offset{{{g},{t}}} {produced - lag}",
                f"kafka_consumergroup_lag{{{g},{t}}} {lag}",
            ]
        self.exporter.set("\n".join(lines) + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._render()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def feed(cluster: Cluster, exporter: MetricsExporter, namespace: str) -> Iterator[KafkaFeed]:
    served = KafkaFeed(exporter, topic=namespace, partitions=2, rate=50)
    cluster.set_scrape_targets([exporter.target])
    try:
        yield served
    finally:
        served.stop()


def _requests_cpu(d: dict[str, Any]) -> int:
    """The instance's CPU request: in place (the default updateMode) the target
    annotation's, which its pods are resized to (the template keeps its rollout's)."""
    text = d["metadata"].get("annotations", {}).get(keys.TARGET_RESOURCES)
    return _target_cpu(text) if text else cpu_millis(container(d)["resources"]["requests"]["cpu"])


def _target_cpu(text: str) -> int:
    return cpu_millis(json.loads(text)["consumer"]["requests"]["cpu"])


def _synced_and_converged(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return eventually(
        lambda: get_consumer(cluster, namespace, name),
        lambda o: (
            converged(o, 2)
            and condition(o, "MetricsAvailable").get("reason") == "Synced"
            # production is seen (rate() needs two scrapes) for every partition
            and all(
                s.get("productionRate", 0) > 0
                for s in ((o.get("status") or {}).get("lastSyncState") or {"-": {}}).values()
            )
        ),
        timeout=90,
        what=f"Consumer {name} to converge with metrics synced",
    )


def test_lag_from_prometheus_scales_up_after_the_pending_period(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = consumer(
        "pay",
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
        pending_up="4s",
        # minAllowed is what naive sizes 50 msg/s for (100m, 256Mi for its 1-core limit):
        # an instance created before Prometheus answered is then sized from metrics in the
        # first pass that has them (docs/compatibility.md, row 79), and the lag below goes
        # through the pending period whichever pass created it.
        min_memory="256Mi",
    )
    with in_process_operator(cluster):
        cluster.apply(manifest)
        _synced_and_converged(cluster, namespace, "pay")
        # 50 msg/s and no lag: 50m, rounded to the policy's 100m minimum.
        before = managed(cluster, namespace)
        assert {n: _requests_cpu(d) for n, d in before.items()} == {
            "pay-consumer-0": 100,
            "pay-consumer-1": 100,
        }

        status_path = "{.metadata.annotations.konsumerator\\.lwolf\\.org/scaling-status}"
        cpu_path = "{.metadata.annotations.konsumerator\\.lwolf\\.org/target-resources}"
        with KubectlWatch(
            cluster,
            "deployment",
            "pay-consumer-0",
            "-n",
            namespace,
            "-o",
            f'jsonpath={status_path} {cpu_path}{{"\\n"}}',
        ) as watch:
            # 100,000 messages behind at 50 msg/s: 2,000 s of lag (tolerable: 10 s).
            feed.lag = {0: 100_000}
            scaled = eventually(
                lambda: managed(cluster, namespace),
                lambda found: _requests_cpu(found["pay-consumer-0"]) > 1000,
                timeout=90,
                what="pay-consumer-0 to be scaled up",
            )
            raised = _requests_cpu(scaled["pay-consumer-0"])
            watch.wait_for(
                lambda lines: any(
                    len(w) == 2 and _target_cpu(w[1]) == raised for w in map(str.split, lines)
                ),
                timeout=30,
                what="the watch to see the new request",
            )
            history = [w for w in map(str.split, watch.stop()) if len(w) == 2]
        lagging = eventually(
            lambda: get_consumer(cluster, namespace, "pay"),
            lambda o: (o.get("status") or {}).get("lagging") == 1,
            timeout=30,
            what="status to count one instance LAGGING",
        )

    # Every written version: PENDING_SCALE_UP with the old request, then the new request.
    cpus = [_target_cpu(cpu) for _, cpu in history]
    pending = [i for i, (state, _) in enumerate(history) if state == "PENDING_SCALE_UP"]
    assert pending, history
    first_raise = next(i for i, c in enumerate(cpus) if c > 100)
    assert pending[0] < first_raise, history
    assert all(cpus[i] == 100 for i in pending if i < first_raise), history
    # (2000 s lag * 50 + 50 * 60 s recovery) / 60 s = 1716 msg/s -> 1.8 cores at 1000/core.
    assert 1000 < _requests_cpu(scaled["pay-consumer-0"]) <= 4000
    assert _requests_cpu(scaled["pay-consumer-1"]) == 100
    assert scaled["pay-consumer-1"]["metadata"]["annotations"][keys.SCALING_STATUS] == "RUNNING"
    state = lagging["status"]["lastSyncState"]
    assert state["0"]["messageBehind"] == 100_000
    assert state["1"]["messageBehind"] == 0
    reasons = [e["reason"] for e in events(cluster, namespace, involved="pay")]
    # In place: no rollout, not even a fallback (the pod keeps its QoS class).
    assert "ResizedInPlace" in reasons
    assert "InPlaceResizeFellBack" not in reasons
    assert "RolledOut" not in reasons


def test_a_spec_edit_after_steady_syncs_resizes_every_instance(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    """The operator keeps a Consumer's config (and with it each instance's last
    decision) while the spec stays equal: a steady pass decides nothing again. An edit
    must still reach every instance, however many passes kept them before."""
    manifest = consumer(
        "edit",
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
        min_cpu="1",
        pending_down="2s",
    )
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        _synced_and_converged(cluster, namespace, "edit")
        # 50 msg/s at 1000 per core: 50m, held at the policy's minimum of 1 core.
        assert {n: _requests_cpu(d) for n, d in managed(cluster, namespace).items()} == {
            "edit-consumer-0": 1000,
            "edit-consumer-1": 1000,
        }
        # Steady passes (a sync every 2 s) that keep each instance as it was.
        passes = metric_sum(op.metrics(), "controller_runtime_reconcile_total")
        eventually(
            lambda: metric_sum(op.metrics(), "controller_runtime_reconcile_total"),
            lambda n: n >= passes + 3,
            timeout=60,
            what="three steady reconciles",
        )
        assert {n: _requests_cpu(d) for n, d in managed(cluster, namespace).items()} == {
            "edit-consumer-0": 1000,
            "edit-consumer-1": 1000,
        }
        # A minimum of 100m: the need (50m, rounded up) is below the current size.
        policy = manifest["spec"]["resourcePolicy"]["containerPolicies"][0]
        policy["minAllowed"]["cpu"] = "100m"
        cluster.apply(manifest)
        resized = eventually(
            lambda: managed(cluster, namespace),
            lambda found: all(_requests_cpu(d) == 100 for d in found.values()),
            timeout=90,
            what="both instances to be scaled down after the spec edit",
        )
    assert sorted(resized) == ["edit-consumer-0", "edit-consumer-1"]


def _frozen(d: dict[str, Any]) -> tuple[Any, ...]:
    """What the operator writes on a Deployment: spec, our annotations, generation."""
    meta = d["metadata"]
    ours = {k: v for k, v in meta.get("annotations", {}).items() if k.startswith(keys.GROUP)}
    return meta["generation"], ours, d["spec"]["template"], d["spec"]["replicas"]


def test_prometheus_down_leaves_resources_untouched_and_sets_a_condition(
    cluster: Cluster, namespace: str, feed: KafkaFeed
) -> None:
    manifest = consumer(
        "blind",
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=namespace,
    )
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        cluster.apply(manifest)
        _synced_and_converged(cluster, namespace, "blind")
        before = {n: _frozen(d) for n, d in managed(cluster, namespace).items()}
        assert len(before) == 2

        stop_prometheus(cluster)
        # Lag that the operator cannot see any more must not move anything either.
        feed.lag = {0: 100_000, 1: 100_000}
        obj = eventually(
            lambda: get_consumer(cluster, namespace, "blind"),
            lambda o: condition(o, "MetricsAvailable").get("status") == "False",
            timeout=60,
            what="MetricsAvailable=False",
        )
        # A few more passes without Prometheus (each sync period requeues).
        passes = metric_sum(op.metrics(), "controller_runtime_reconcile_total")
        eventually(
            lambda: metric_sum(op.metrics(), "controller_runtime_reconcile_total"),
            lambda n: n >= passes + 3,
            timeout=60,
            what="three more reconciles without Prometheus",
        )
        after = {n: _frozen(d) for n, d in managed(cluster, namespace).items()}
        warnings = eventually(
            lambda: events(cluster, namespace, involved="blind"),
            lambda evs: any(e["reason"] == "PrometheusUnreachable" for e in evs),
            timeout=30,
            what="a PrometheusUnreachable Event",
        )

        start_prometheus(cluster)
        back = eventually(
            lambda: get_consumer(cluster, namespace, "blind"),
            lambda o: condition(o, "MetricsAvailable").get("reason") == "Synced",
            timeout=90,
            what="MetricsAvailable back to Synced",
        )

    available = condition(obj, "MetricsAvailable")
    assert available["reason"] == "PrometheusUnreachable"
    assert "left as they are" in available["message"]
    assert after == before
    [warning] = [e for e in warnings if e["reason"] == "PrometheusUnreachable"]
    assert warning["type"] == "Warning"
    assert condition(back, "MetricsAvailable")["status"] == "True"
