"""The learned rate per core, on a real apiserver and a real Prometheus.

Aspects tested:

* an adaptive Consumer with a ``cpuUsage`` query, whose instances fall behind at a
  flat consumption while their pods use a known CPU (the exporter serves
  kafka_exporter's series and cAdvisor's ``container_cpu_usage_seconds_total`` for
  pods named like the Deployments' pods), shows in its status a learned
  ``ratePerCore`` moving from the configured 1000 towards consumption / CPU used
  (300 msg/s on 0.5 core: 600), within the 0.3-3x bounds, and the gauge
  ``konsumerator_consumer_learned_rate_per_core`` and the scaling explanation name it;
* the same with hostile CPU answers (0 cores, NaN, only pods of another Consumer, only
  pods of a CronJob named like an instance, a query Prometheus rejects): the rate stays
  at the configured prior, ``learning`` says ``Paused`` and why, and sizing goes on
  (``MetricsAvailable`` stays ``Synced``);
* an adaptive Consumer without the query says learning is ``Off``;
* long ``spec.name``s, on the real apiserver's pod names: a 50-character one gets pods
  named ``(<deployment>-<pod-template-hash>-)[:58]`` + 5 characters (the hash cut), which
  the learner maps to their instance, and learns from; a 57-character one gets the same
  58 characters for both instances' pods: under Recreate (names only) learning says
  ``AmbiguousPodNames`` and keeps the prior, in place the pod cache's owner chain tells
  them apart and it learns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.domain.adaptive.learning import PodNames, instance_of_pod
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, MetricsExporter

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

PRODUCED = 450.0  # msg/s per partition
CONSUMED = 300.0  # msg/s per partition: falling behind, flat
CORES = 0.5  # per pod: 600 msg/s per core used
POD = "-5d4f8b9c7d-x1y2z"  # <deployment><pod-template-hash><suffix>


@dataclass
class Group:
    """One Consumer's topic (one partition per instance) and its pods' CPU series."""

    topic: str
    partitions: int
    # Per pod name: cores used (a counter growing at this rate), or a literal sample
    # value (such as "NaN") served as is.
    cpu: Mapping[str, float | str] = field(default_factory=dict)


class SaturatedFeed:
    """Offsets growing at PRODUCED, consumer offsets at CONSUMED, CPU counters."""

    def __init__(self, exporter: MetricsExporter, groups: list[Group]) -> None:
        self.exporter, self.groups = exporter, groups
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._render()
        self._thread = threading.Thread(target=self._loop, name="saturated-feed", daemon=True)
        self._thread.start()

    def _render(self) -> None:
        t = time.monotonic() - self._start
        lines = [
            "# TYPE kafka_topic_partition_current_offset gauge",
            "# TYPE kafka_consumergroup_current_offset gauge",
            "# TYPE kafka_consumergroup_lag gauge",
            "# TYPE container_cpu_usage_seconds_total counter",
        ]
        for g in self.groups:
            produced, consumed = int(1_000_000 + PRODUCED * t), int(1_000_000 + CONSUMED * t)
            for p in range(g.partitions):
                labels = f'topic="{g.topic}",partition="{p}"'
                group = f'consumergroup="{g.topic}"'
                lines += [
                    f"kafka_topic_partition_current_offset{{{labels}}} {produced}",
                    f"kafka_consumergroup_current_offset{{{group},{labels}}} {consumed}",
                    f"kafka_consumergroup_lag{{{group},{labels}}} {produced - consumed}",
                ]
            for pod, cores in g.cpu.items():
                value = cores if isinstance(cores, str) else f"{100 + cores * t:.3f}"
                lines.append(
                    f'container_cpu_usage_seconds_total{{group="{g.topic}",pod="{pod}"}} {value}'
                )
        self.exporter.set("\n".join(lines) + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._render()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _learning_consumer(
    name: str, namespace: str, cluster: Cluster, *, cpu_query: str | None
) -> dict[str, Any]:
    topic = f"{namespace}-{name}"
    manifest = consumer(
        name,
        namespace,
        num_partitions=2,
        per_instance=1,
        prometheus_url=cluster.prometheus_url,
        topic=topic,
        pending_up="2s",
    )
    manifest["spec"]["autoscaler"].update(predictor="adaptive", updateMode="Recreate")
    if cpu_query is not None:
        manifest["spec"]["autoscaler"]["prometheus"]["cpuUsage"] = {
            "query": cpu_query,
            "podLabel": "pod",
        }
    return manifest


def _cpu_query(topic: str) -> str:
    return f'sum by (pod) (rate(container_cpu_usage_seconds_total{{group="{topic}"}}[5s]))'


@pytest.fixture
def feeds(cluster: Cluster, exporter: MetricsExporter) -> Iterator[list[SaturatedFeed]]:
    started: list[SaturatedFeed] = []
    cluster.set_scrape_targets([exporter.target])
    try:
        yield started
    finally:
        for f in started:
            f.stop()


def _learning(obj: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj.get("status", {}).get("learning") or {}
    return found


def test_a_learned_rate_appears_in_status_from_a_real_prometheus(
    cluster: Cluster, namespace: str, exporter: MetricsExporter, feeds: list[SaturatedFeed]
) -> None:
    name = "ln"
    topic = f"{namespace}-{name}"
    pods = {f"{name}-consumer-{i}{POD}": CORES for i in range(2)}
    feeds.append(SaturatedFeed(exporter, [Group(topic=topic, partitions=2, cpu=pods)]))
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as operator:
        cluster.apply(_learning_consumer(name, namespace, cluster, cpu_query=_cpu_query(topic)))
        learned = eventually(
            lambda: get_consumer(cluster, namespace, name),
            lambda o: (_learning(o).get("samples") or 0) >= 3,
            timeout=150,
            what="three saturated samples folded into status.learning",
        )
        learning = _learning(learned)
        assert learning["state"] == "Learning"
        assert learning["configuredRatePerCore"] == 1000
        # From the prior 1000 towards 300/0.5 = 600, never beyond it nor the bounds.
        assert 600 <= learning["ratePerCore"] < 1000
        assert learning["ratePerCore"] <= 1000 - 0.3 * 400 + 1  # moved by at least one sample
        assert condition(learned, "MetricsAvailable")["reason"] == "Synced"
        explained = eventually(
            lambda: managed(cluster, namespace),
            lambda found: any(
                "(learned; configured 1000)"
                in (d["metadata"].get("annotations") or {}).get(keys.SCALING_DECISION, "")
                for d in found.values()
            ),
            timeout=90,
            what="a scaling decision that names the learned rate",
        )
        assert explained
        gauge = metric_sum(
            operator.metrics(),
            "konsumerator_consumer_learned_rate_per_core",
            consumer=f"{namespace}/{name}",
        )
        assert 600 <= gauge < 1000


HOSTILE: dict[str, tuple[str, Mapping[str, float | str] | None, str]] = {
    # name: (what is served or asked, per pod; the reason learning pauses)
    "zero": ("zero cores", {"consumer-0": 0.0, "consumer-1": 0.0}, "CpuUsageUnusable"),
    "nan": ("NaN", {"consumer-0": "NaN", "consumer-1": "NaN"}, "CpuUsageUnusable"),
    "absent": ("pods of another Consumer", {"other": CORES}, "CpuUsageUnusable"),
    # A CronJob named like the instance: pods <instance>-<minutes since 1970>-<suffix>.
    "cronjob": ("pods of a CronJob named like an instance", {"cronjob": CORES}, "CpuUsageUnusable"),
    "rejected": ("a query Prometheus rejects", None, "CpuUsageUnavailable"),
}


def test_hostile_cpu_answers_leave_the_prior_and_say_why(
    cluster: Cluster, namespace: str, exporter: MetricsExporter, feeds: list[SaturatedFeed]
) -> None:
    groups, manifests = [], []
    for name, (_, served, _) in HOSTILE.items():
        topic = f"{namespace}-{name}"
        # The per-instance pods: <name>-consumer-<index><POD>.
        named = {
            "other": "payments-{i}" + POD,
            "cronjob": "{name}-consumer-{i}-28930560-x7k2p",
        }
        pods = {
            named.get(pod, "{name}-consumer-{i}" + POD).format(name=name, i=i): v
            for i, (pod, v) in enumerate((served or {}).items())
        }
        groups.append(Group(topic=topic, partitions=2, cpu=pods))
        query = _cpu_query(topic) if served is not None else "sum by (pod) (rate(cpu[5s])"
        manifests.append(_learning_consumer(name, namespace, cluster, cpu_query=query))
    manifests.append(_learning_consumer("off", namespace, cluster, cpu_query=None))
    groups.append(Group(topic=f"{namespace}-off", partitions=2))
    feeds.append(SaturatedFeed(exporter, groups))
    with in_process_operator(cluster):
        for m in manifests:
            cluster.apply(m)
        for name, (what, _, reason) in HOSTILE.items():
            paused = eventually(
                lambda name=name: get_consumer(cluster, namespace, name),
                lambda o, reason=reason: (
                    _learning(o).get("reason") == reason
                    and condition(o, "MetricsAvailable").get("reason") == "Synced"
                ),
                timeout=150,
                what=f"{name} ({what}): learning paused with {reason}, sizing synced",
            )
            learning = _learning(paused)
            assert learning["state"] == "Paused", (name, learning)
            assert learning["ratePerCore"] == 1000, (name, learning)
            assert learning["samples"] == 0, (name, learning)
            assert learning["message"], (name, learning)
            assert len(managed_of(cluster, namespace, name)) == 2
        off = eventually(
            lambda: get_consumer(cluster, namespace, "off"),
            lambda o: bool(_learning(o)),
            timeout=90,
            what="the Consumer without cpuUsage to report learning",
        )
        assert _learning(off)["state"] == "Off"
        assert _learning(off)["reason"] == "NoCpuUsageQuery"
        assert "ratePerCore" not in _learning(off)


def managed_of(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return [n for n in managed(cluster, namespace) if n.startswith(f"{name}-consumer-")]


def pods_by_deployment(cluster: Cluster, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Live pods by the Deployment of their ReplicaSet (``<deployment>-<hash>``)."""
    items = cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]
    found: dict[str, list[dict[str, Any]]] = {}
    for pod in items:
        meta = pod["metadata"]
        owners = [o for o in meta.get("ownerReferences") or [] if o["kind"] == "ReplicaSet"]
        if meta.get("deletionTimestamp") or not owners:
            continue
        found.setdefault(owners[0]["name"].rsplit("-", 1)[0], []).append(pod)
    return found


# spec.name -> (updateMode, what learning says). 50 characters: Deployments of 52, pods cut
# in the hash. 57: "<name>-" is all that is left of either instance's pod name.
LONG_NAMES = {
    "c" * 49 + "t": ("Recreate", "Learned"),
    "b" * 56 + "r": ("Recreate", "AmbiguousPodNames"),
    "b" * 56 + "i": ("InPlaceOrRecreate", "Learned"),
}


def test_long_deployment_names_get_cut_pod_names_that_learning_maps_exactly(
    cluster: Cluster, namespace: str, exporter: MetricsExporter, feeds: list[SaturatedFeed]
) -> None:
    groups: dict[str, Group] = {}
    # Served for each pod once the apiserver has named it (the feed reads it live).
    cpu: dict[str, dict[str, float | str]] = {s: {} for s in LONG_NAMES}
    with in_process_operator(cluster):
        for i, (spec_name, (mode, _)) in enumerate(LONG_NAMES.items()):
            name = f"long{i}"
            topic = f"{namespace}-{name}"
            groups[spec_name] = Group(topic=topic, partitions=2, cpu=cpu[spec_name])
            manifest = _learning_consumer(name, namespace, cluster, cpu_query=_cpu_query(topic))
            manifest["spec"]["name"] = spec_name
            manifest["spec"]["autoscaler"]["updateMode"] = mode
            cluster.apply(manifest)
        feeds.append(SaturatedFeed(exporter, list(groups.values())))
        instances = {s: [f"{s}-0", f"{s}-1"] for s in LONG_NAMES}
        found = eventually(
            lambda: pods_by_deployment(cluster, namespace),
            lambda f: all(d in f for names in instances.values() for d in names),
            timeout=120,
            what="a pod of every long-named Deployment",
        )
        for spec_name, names in instances.items():
            for deployment in names:
                for pod in found[deployment]:
                    meta = pod["metadata"]
                    name, template_hash = meta["name"], meta["labels"]["pod-template-hash"]
                    # What the apiserver did: cut "<deployment>-<hash>-" to 58, add 5.
                    assert len(name) == 63, name
                    assert name[:58] == f"{deployment}-{template_hash}-"[:58], name
                    assert instance_of_pod(name) != deployment, name  # the old rule missed
                    assert deployment in PodNames(names).owners(name), name
                    cpu[spec_name][name] = CORES
        for i, (spec_name, (_, reason)) in enumerate(LONG_NAMES.items()):
            said = eventually(
                lambda i=i: get_consumer(cluster, namespace, f"long{i}"),
                lambda o, reason=reason: _learning(o).get("reason") == reason,
                timeout=150,
                what=f"{len(spec_name)}-character spec.name: learning says {reason}",
            )
            learning = _learning(said)
            if reason == "Learned":
                assert 600 <= learning["ratePerCore"] < 1000, (spec_name, learning)
            else:
                assert learning["state"] == "Paused", learning
                assert (learning["ratePerCore"], learning["samples"]) == (1000, 0), learning
                assert f"{spec_name}-0" in learning["message"], learning
