"""Hostile review: a ``deploymentTemplate`` with a field no DeploymentSpec has.

The CRD keeps ``deploymentTemplate`` free-form (``x-kubernetes-preserve-unknown-fields``:
an apps/v1 DeploymentSpec of any Kubernetes version), so ``kubectl apply`` takes a
``metadata`` at the DeploymentSpec's level or a typo deep in the pod template, and
only the Deployment write finds out: the apiserver's server-side apply refuses a field
its schema does not declare.

Aspects tested (an in-process operator, a real apiserver), table-driven over where the
field is (the DeploymentSpec's level, a container, the pod spec):

* the Consumer says ``Ready=False, reason=WriteFailed`` and the message names the field
  by its path in the Consumer
  (``spec.deploymentTemplate.template.spec.containers[name="consumer"].imagePullPolicyy``),
  not only by the apiserver's path in the Deployment (before: "500: failed to create
  typed patch object (ns/typo-consumer-1; apps/v1, Kind=Deployment):
  .spec.template.spec.containers[name="consumer"].imagePullPolicyy: field not declared
  in schema", once per instance);
* nothing is half-applied: no instance's Deployment exists (every instance's write is
  refused alike, the template is theirs all);
* fixed, the Consumer converges.
"""

from __future__ import annotations

from typing import Any

import pytest
from operating import (
    condition,
    consumer,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
)

from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "typo"
INSTANCES = 3


def _at_spec(template: dict[str, Any]) -> str:
    template["metadata"] = {"labels": {"team": "a"}}
    return "spec.deploymentTemplate.metadata"


def _in_container(template: dict[str, Any]) -> str:
    template["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    return 'spec.deploymentTemplate.template.spec.containers[name="consumer"].imagePullPolicyy'


def _in_pod_spec(template: dict[str, Any]) -> str:
    template["template"]["spec"]["restartPolcy"] = "Always"
    return "spec.deploymentTemplate.template.spec.restartPolcy"


TYPOS = {
    "at the spec's level": _at_spec,
    "in a container": _in_container,
    "in the pod spec": _in_pod_spec,
}


@pytest.mark.parametrize("typo", TYPOS.values(), ids=TYPOS.keys())
def test_an_undeclared_template_field_is_named_and_nothing_is_half_applied(
    cluster: Cluster, namespace: str, typo: Any
) -> None:
    manifest = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1)
    template = manifest["spec"]["deploymentTemplate"]
    template["replicas"] = 0
    good = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1)
    good["spec"]["deploymentTemplate"]["replicas"] = 0
    field = typo(template)
    with in_process_operator(cluster) as op:
        cluster.apply(manifest)
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: condition(o, "Ready").get("reason") == "WriteFailed",
            timeout=60,
            what="the write to be refused",
        )
        ready = condition(obj, "Ready")
        assert field in ready["message"], ready["message"]
        assert managed(cluster, namespace) == {}
        cluster.apply(good)
        op.enqueue(namespace, NAME)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, INSTANCES),
            timeout=90,
            what="the fixed Consumer to converge",
        )
