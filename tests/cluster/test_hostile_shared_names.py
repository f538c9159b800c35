"""Hostile review: two modes and three claimants for the same Deployment names.

A CRD-mode operator (cluster-wide) and a guest-mode operator (``--namespace``) may both
run on one namespace: a team installs guest mode where an admin already runs the CRD.
Deployments are named ``{spec.name}-{index}``, and nothing stops a second Consumer, a
guest ConfigMap of the same ``metadata.name``, or a second guest from asking for the same
``spec.name``. The promise: no object can make the operator touch what is not its own, and
none affects another; a name held by somebody else is a ``NameConflict``, reported.

Aspects tested (the CRD-mode operator in process, the guest-mode one as a process, both
with the same field manager): a Consumer ``shared`` owns its two Deployments; then a guest
ConfigMap also named ``shared``, a second guest ``rival``, and a second Consumer ``other``
all ask for the same ``spec.name``. Each of the three reports ``NameConflict`` (the guests
in their status annotation, the Consumer in its condition), and the two Deployments stay
the first Consumer's, never written by anyone (our fields and managed-field times
unchanged) while every claimant has been reconciled; the first Consumer stays Ready.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from operating import (
    condition,
    consumer,
    converged,
    eventually,
    get_consumer,
    guest_configmap,
    in_process_operator,
    managed,
    operator_process,
)

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

CONDITIONS = f"{keys.STATUS_PREFIX}conditions"
NAMES = ["shared-consumer-0", "shared-consumer-1"]


def _ours(d: dict[str, Any]) -> dict[str, Any]:
    meta = d["metadata"]
    return {
        "uid": meta["uid"],
        "spec": d.get("spec"),
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("ownerReferences"),
        "managed": [
            m for m in meta.get("managedFields") or [] if m.get("manager") == keys.FIELD_MANAGER
        ],
    }


def _guest_ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cm = cluster.api("GET", f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    conditions = json.loads((cm["metadata"].get("annotations") or {}).get(CONDITIONS, "[]"))
    return next((c for c in conditions if c["type"] == "Ready"), {})


def test_a_guest_a_second_guest_and_a_second_consumer_never_take_a_consumers_deployments(
    cluster: Cluster, namespace: str
) -> None:
    first = consumer("shared", namespace, num_partitions=2, per_instance=1)
    spec = first["spec"]
    other = copy.deepcopy(first)
    other["metadata"]["name"] = "other"
    with in_process_operator(cluster):
        cluster.apply(first)
        owner = eventually(
            lambda: get_consumer(cluster, namespace, "shared"),
            lambda o: converged(o, 2),
            timeout=60,
            what="the first Consumer to converge",
        )
        before = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
        assert sorted(before) == NAMES
        for d in before.values():
            [ref] = d["ownerReferences"]
            assert ref["uid"] == owner["metadata"]["uid"]

        with operator_process(cluster, "--namespace", namespace):
            for name in ("shared", "rival"):
                cm = guest_configmap(name, namespace, {})
                cm["data"] = {keys.GUEST_SPEC_KEY: yaml.safe_dump(spec)}
                cluster.apply(cm)
            cluster.apply(other)
            guests = {
                name: eventually(
                    lambda name=name: _guest_ready(cluster, namespace, name),
                    lambda r: bool(r),
                    timeout=90,
                    what=f"the guest {name} to be reported",
                )
                for name in ("shared", "rival")
            }
            rival = eventually(
                lambda: get_consumer(cluster, namespace, "other"),
                lambda o: bool(condition(o, "Ready")),
                timeout=60,
                what="the second Consumer to be reported",
            )
        after = {n: _ours(d) for n, d in managed(cluster, namespace).items()}
        first_after = get_consumer(cluster, namespace, "shared")

    for name, ready in guests.items():
        assert (ready["status"], ready["reason"]) == ("False", "NameConflict"), (name, ready)
    assert (condition(rival, "Ready")["status"], condition(rival, "Ready")["reason"]) == (
        "False",
        "NameConflict",
    )
    assert after == before, "nobody wrote to the first Consumer's Deployments"
    assert converged(first_after, 2)
