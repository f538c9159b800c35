"""The status is written at the CRD's maximum partition count, on the real API server.

``lastSyncState`` holds ~70 bytes a partition: at 100 000 partitions ~7 MB, which no API
server stores (and 256 KiB of annotations per object in guest mode). Aspects tested:

* CRD mode: a Consumer that grows from 4 to 100 000 partitions (10 000 a Deployment, so
  ten Deployments), with Prometheus serving a metric for every partition, gets its status
  written for the new generation: ten instances, ``lastSyncState`` removed (it was there at
  4 partitions) and ``MetricsAvailable`` saying it was left out;
* guest mode: a ConfigMap with 100 000 partitions gets its status annotations
  (``last-sync-state`` is ``null``); a ConfigMap whose own annotations already take 200 000
  bytes gets them too, because ``lastSyncState`` only takes the room that is left (900
  partitions would fit the 64 KiB budget of an empty ConfigMap, not this one).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    eventually,
    get_consumer,
    guest_configmap,
    in_process_operator,
    install_crd,
    managed,
)

from konsumerator.api import keys
from konsumerator_dev.testenv import Cluster, MetricsExporter

pytestmark = pytest.mark.cluster

CRD_MAXIMUM = 100_000
PER_INSTANCE = 10_000
METRIC = "konsumerator_test_partition_lag"


def every_partition_queries(topic: str) -> dict[str, dict[str, str]]:
    """The lag of every partition from one exported metric; the rates from a constant.

    ``last_over_time`` reads the samples still after their target is gone, so the test can
    stop Prometheus from scraping 100 000 series a second once it holds them.
    """
    series = f'last_over_time({METRIC}{{topic="{topic}"}}[30m])'
    return {
        "offset": {"query": series, "partitionLabel": "partition"},
        "production": {"query": _constant(1000), "partitionLabel": "partition"},
        "consumption": {"query": _constant(900), "partitionLabel": "partition"},
    }


def _constant(value: int) -> str:
    """One series for partition 3 that Prometheus computes without reading storage: the
    rates need no 100 000-series lookup (which times out on a loaded 2-core machine);
    the other partitions borrow the largest known rate, as the operator does."""
    return f'label_replace(vector({value}), "partition", "3", "", "")'


def big(manifest: dict[str, Any], *, queries: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``manifest`` refreshing every 15 s (each refresh moves 300 000 samples)."""
    prometheus = manifest["spec"]["autoscaler"]["prometheus"]
    prometheus.update(queries)
    prometheus["minSyncPeriod"] = "15s"
    return manifest


def available(status: dict[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    if isinstance(conditions, str):  # guest mode: a JSON annotation
        conditions = json.loads(conditions)
    return next((c for c in conditions if c["type"] == "MetricsAvailable"), {})


def test_a_consumer_at_the_crd_maximum_gets_its_status_written(
    cluster: Cluster, namespace: str, exporter: MetricsExporter
) -> None:
    install_crd(cluster)
    exporter.set(
        "".join(
            f'{METRIC}{{topic="{namespace}",partition="{p}"}} {p % 5000}\n'
            for p in range(CRD_MAXIMUM)
        )
    )
    cluster.set_scrape_targets([exporter.target])
    eventually(
        lambda: cluster.prometheus_query(f'count({METRIC}{{topic="{namespace}"}})', timeout=30),
        lambda r: bool(r) and r[0]["value"][1] == str(CRD_MAXIMUM),
        timeout=90,
        what=f"Prometheus to hold {CRD_MAXIMUM} partition series",
    )
    cluster.set_scrape_targets([])
    manifest = big(
        consumer("huge", namespace, num_partitions=4, prometheus_url=cluster.prometheus_url),
        queries=every_partition_queries(namespace),
    )
    with in_process_operator(cluster):
        cluster.apply(manifest)
        small = eventually(
            lambda: get_consumer(cluster, namespace, "huge").get("status") or {},
            lambda s: bool(s.get("lastSyncState")) and available(s).get("reason") == "Synced",
            timeout=120,
            what="the 4-partition Consumer's lastSyncState",
        )
        assert small["lastSyncState"]["3"] == {
            "productionRate": 1000,
            "consumptionRate": 900,
            "messageBehind": 3,
        }

        cluster.api(
            "PATCH",
            consumer_path(namespace, "huge"),
            {"spec": {"numPartitions": CRD_MAXIMUM, "numPartitionsPerInstance": PER_INSTANCE}},
        )
        grown = eventually(
            lambda: get_consumer(cluster, namespace, "huge"),
            lambda o: (
                (o.get("status") or {}).get("observedGeneration") == 2
                and o["status"].get("expected") == CRD_MAXIMUM // PER_INSTANCE
                and available(o["status"]).get("reason") == "Synced"
            ),
            timeout=180,
            what="the status of the 100 000-partition generation",
        )
        names = eventually(
            lambda: sorted(managed(cluster, namespace)),
            lambda found: len(found) == CRD_MAXIMUM // PER_INSTANCE,
            timeout=120,
            what="ten Deployments",
        )
    status = grown["status"]
    assert "lastSyncState" not in status
    assert status["lastSyncTime"] > small["lastSyncTime"]
    assert (
        "lastSyncState is left out: 100000 partitions exceed its 192 KiB budget"
        in (available(status)["message"])
    )
    assert len(json.dumps(status)) < 8 * 1024
    assert names == sorted(f"huge-consumer-{i}" for i in range(10))


def status_annotations(
    cluster: Cluster, namespace: str, name: str, *, expected: int
) -> dict[str, str]:
    """The ConfigMap's annotations once its status says ``expected`` instances, synced."""
    path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"

    def written(a: dict[str, str]) -> bool:
        conditions = a.get(f"{keys.STATUS_PREFIX}conditions", "[]")
        return (
            a.get(f"{keys.STATUS_PREFIX}expected") == str(expected)
            and available({"conditions": conditions}).get("reason") == "Synced"
        )

    found: dict[str, str] = eventually(
        lambda: cluster.api("GET", path)["metadata"].get("annotations", {}),
        written,
        timeout=180,
        what=f"the status annotations of {name}",
    )
    return found


def test_guest_configmaps_get_their_status_at_any_size(cluster: Cluster, namespace: str) -> None:
    # One series, for partition 0, from Prometheus itself: every refresh succeeds (a query
    # matching nothing would be NoData) and the other partitions are absent, so a
    # lastSyncState of every partition is what would have to be stored.
    one = 'label_replace(vector(0), "partition", "0", "", "")'
    queries = {
        name: {"query": one, "partitionLabel": "partition"}
        for name in ("offset", "production", "consumption")
    }

    def spec(name: str, partitions: int, per_instance: int) -> dict[str, Any]:
        manifest = consumer(
            name,
            namespace,
            num_partitions=partitions,
            per_instance=per_instance,
            prometheus_url=cluster.prometheus_url,
        )
        spec: dict[str, Any] = big(manifest, queries=queries)["spec"]
        return spec

    huge = guest_configmap("huge", namespace, spec("huge", CRD_MAXIMUM, PER_INSTANCE))
    crowded = guest_configmap("crowded", namespace, spec("crowded", 900, 100))
    crowded["metadata"]["annotations"]["example.com/notes"] = "n" * 200_000
    with in_process_operator(cluster, namespace=namespace):
        cluster.apply(huge)
        # Created, not applied: kubectl's last-applied copy would double the annotation.
        cluster.api("POST", f"/api/v1/namespaces/{namespace}/configmaps", crowded)

        written = {
            name: status_annotations(cluster, namespace, name, expected=expected)
            for name, expected in (("huge", 10), ("crowded", 9))
        }
    for name, written_annotations in written.items():
        assert written_annotations[f"{keys.STATUS_PREFIX}last-sync-state"] == "null", name
        assert written_annotations[f"{keys.STATUS_PREFIX}last-sync-time"], name
        message = available({"conditions": written_annotations[f"{keys.STATUS_PREFIX}conditions"]})[
            "message"
        ]
        assert "lastSyncState is left out" in message, name
    assert written["crowded"]["example.com/notes"] == "n" * 200_000
    # 256 KiB - 200 000 bytes of notes - 48 KiB kept for the other status annotations.
    assert (
        "exceed its 12 KiB budget"
        in available({"conditions": written["crowded"][f"{keys.STATUS_PREFIX}conditions"]})[
            "message"
        ]
    )
