"""Guest mode against hostile or unusable ConfigMaps, on a real API server.

A ``consumer.yaml`` is written by anyone who may edit ConfigMaps in the namespace. Parsed
without bounds, deep nesting blocked the event loop for most of a second per parse and was
retried within milliseconds (``RecursionError`` is not a spec error), and an alias bomb
expanded into millions of values in every write; with leader election the operator could
miss its Lease renewals and exit.

Aspects tested:

* ten hostile ConfigMaps (five nesting 1,100 levels, five alias bombs) next to a good one,
  with ``--leader-elect``: the good one is reconciled, and so is a change to it made after
  the hostile ones were reported; each hostile one gets ``Ready=False, reason=InvalidSpec``
  in its status annotation, naming the bound, and a Warning Event; each is parsed and
  rejected once (``konsumerator_rejected_objects_total``), not in a retry loop; the
  operator keeps its Lease (same holder, no transition, renewals going on);
* ``numPartitions`` above the CRD's maximum is refused in guest mode too, naming the field
  (status annotation and Event), and nothing is created;
* a ConfigMap annotated ``managed: "false"`` is left alone: no status, no Event, no
  Deployment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from operating import (
    configmap_annotations,
    consumer_spec,
    events,
    eventually,
    guest_configmap,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.domain import keys
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = pytest.mark.cluster

STATUS = keys.STATUS_PREFIX
CONDITIONS = f"{STATUS}conditions"


def _bomb(level: int) -> str:
    """Nine copies of the level below, each level's first copy anchoring it: ``9**(level+1)``
    values once expanded, from a text of a few hundred bytes."""
    if level == 0:
        return "[" + ", ".join(['"lol"'] * 9) + "]"
    return f"[&b{level - 1} {_bomb(level - 1)}, " + ", ".join([f"*b{level - 1}"] * 8) + "]"


# 4.8 million values (about 30 MB as JSON): far past the bound, small enough that the old
# operator, which expanded it, did not endanger the test machine.
ALIAS_BOMB = _bomb(6)


def _hostile(name: str, namespace: str, *, bomb: bool) -> dict[str, Any]:
    """A valid spec plus, in the template's container args, an alias bomb or 1,100 nested
    lists (both reach the planner if the parser lets them through)."""
    text = yaml.safe_dump(consumer_spec(name, namespace, num_partitions=1, per_instance=1))
    args = ALIAS_BOMB if bomb else "[" * 1_100 + "]" * 1_100
    text = text.replace("image: ", f"args: {args}\n        image: ", 1)
    assert args in text
    cm = guest_configmap(name, namespace, {})
    cm["data"] = {keys.GUEST_SPEC_KEY: text}
    return cm


def _configmap(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cm: dict[str, Any] = cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return cm


def _ready(annotations: dict[str, str]) -> dict[str, Any]:
    conditions = json.loads(annotations.get(CONDITIONS, "[]"))
    return next((c for c in conditions if c["type"] == "Ready"), {})


def _lease(cluster: Cluster, namespace: str) -> dict[str, Any]:
    lease: dict[str, Any] = cluster.api(
        "GET",
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/"
        f"{keys.lease_name(namespace=namespace)}",
    )
    return lease


def test_hostile_configmaps_are_rejected_once_and_the_leader_keeps_its_lease(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(
        guest_configmap(
            "good", namespace, consumer_spec("good", namespace, num_partitions=2, per_instance=1)
        )
    )
    hostile = [f"deep-{i}" for i in range(5)] + [f"bomb-{i}" for i in range(5)]
    with in_process_operator(
        cluster, namespace=namespace, leader_elect=True, metrics_bind=Endpoint("127.0.0.1", 0)
    ) as op:
        eventually(
            lambda: managed(cluster, namespace),
            lambda found: len(found) == 2,
            timeout=60,
            what="the good ConfigMap's Deployments",
        )
        before = _lease(cluster, namespace)["spec"]
        for name in hostile:
            cluster.api(
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                _hostile(name, namespace, bomb=name.startswith("bomb")),
            )
        reported = {
            name: eventually(
                lambda name=name: configmap_annotations(cluster, namespace, name),
                lambda annotations: bool(_ready(annotations)),
                timeout=60,
                what=f"the status annotation of {name}",
            )
            for name in hostile
        }
        # The good ConfigMap changes after all that: the operator still works.
        cluster.apply(
            guest_configmap(
                "good",
                namespace,
                consumer_spec("good", namespace, num_partitions=4, per_instance=1),
            )
        )
        eventually(
            lambda: configmap_annotations(cluster, namespace, "good"),
            lambda a: a.get(f"{STATUS}expected") == "4" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the change to the good ConfigMap to be reconciled",
        )
        warned = {
            name: eventually(
                lambda name=name: events(cluster, namespace, involved=name),
                lambda evs: any(e["reason"] == "InvalidSpec" for e in evs),
                timeout=30,
                what=f"an InvalidSpec Event for {name}",
            )
            for name in hostile
        }
        # Lease renewals go on: wait for one after everything above.
        after = eventually(
            lambda: _lease(cluster, namespace)["spec"],
            lambda spec: spec["renewTime"] != before["renewTime"],
            timeout=30,
            what="a Lease renewal after the hostile ConfigMaps",
        )
        rejected = metric_sum(
            op.metrics(), "konsumerator_rejected_objects_total", reason="InvalidSpec"
        )
        assert op.alive

    assert (after["holderIdentity"], after.get("leaseTransitions")) == (
        before["holderIdentity"],
        before.get("leaseTransitions"),
    )
    assert rejected == len(hostile), "each hostile ConfigMap is parsed and rejected once"
    for name, found in reported.items():
        ready = _ready(found)
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), name
        bound = "expands to more than 50000 values" if name.startswith("bomb") else "nesting"
        assert ready["message"].startswith("data.consumer.yaml: "), ready
        assert bound in ready["message"], ready
        [warning] = [e for e in warned[name] if e["reason"] == "InvalidSpec"]
        assert warning["type"] == "Warning"
    assert sorted(managed(cluster, namespace)) == [f"good-consumer-{i}" for i in range(4)]


def _reconcile_each(cluster: Cluster, namespace: str, names: list[str]) -> None:
    """Run a guest operator until each ConfigMap of ``names`` had a reconcile."""
    with in_process_operator(
        cluster, namespace=namespace, metrics_bind=Endpoint("127.0.0.1", 0)
    ) as op:
        eventually(
            lambda: metric_sum(
                op.metrics(), "controller_runtime_reconcile_total", controller="configmap"
            ),
            lambda passes: passes >= len(names),
            timeout=60,
            what=f"a reconcile of each of {names}",
        )
        eventually(
            lambda: configmap_annotations(cluster, namespace, "good"),
            lambda a: a.get(f"{STATUS}expected") == "1" and a.get(f"{STATUS}missing") == "0",
            timeout=60,
            what="the good ConfigMap to be reconciled",
        )


def test_guest_num_partitions_above_the_crds_maximum_is_refused_naming_the_field(
    cluster: Cluster, namespace: str
) -> None:
    # One instance whatever numPartitions, so the old operator would create one Deployment.
    huge = consumer_spec("huge", namespace, num_partitions=100_001, per_instance=100_001)
    cluster.apply(guest_configmap("huge", namespace, huge))
    cluster.apply(
        guest_configmap("good", namespace, consumer_spec("good", namespace, num_partitions=1))
    )
    _reconcile_each(cluster, namespace, ["huge", "good"])

    ready = _ready(configmap_annotations(cluster, namespace, "huge"))
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == (
        "data.consumer.yaml.numPartitions: Input should be less than or equal to 100000"
    )
    [warning] = events(cluster, namespace, involved="huge")
    assert (warning["type"], warning["reason"]) == ("Warning", "InvalidSpec")
    assert sorted(managed(cluster, namespace)) == ["good-consumer-0"]


def test_a_guest_configmap_with_managed_false_is_left_alone(
    cluster: Cluster, namespace: str
) -> None:
    optout = guest_configmap("optout", namespace, consumer_spec("optout", namespace))
    optout["metadata"]["annotations"][keys.MANAGED] = "false"
    cluster.apply(optout)
    version = _configmap(cluster, namespace, "optout")["metadata"]["resourceVersion"]
    cluster.apply(
        guest_configmap("good", namespace, consumer_spec("good", namespace, num_partitions=1))
    )
    _reconcile_each(cluster, namespace, ["optout", "good"])

    after = _configmap(cluster, namespace, "optout")
    assert after["metadata"]["resourceVersion"] == version, "nothing wrote to it"
    assert not any(k.startswith(STATUS) for k in after["metadata"]["annotations"])
    assert events(cluster, namespace, involved="optout") == []
    assert sorted(managed(cluster, namespace)) == ["good-consumer-0"]
