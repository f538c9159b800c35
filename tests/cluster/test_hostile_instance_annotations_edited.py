"""Hostile review: an instance's identity annotations edited by hand on its own Deployment.

Compatibility row 17: an instance is the Deployment named ``{spec.name}-{index}``; row 60:
a hand edit of what the operator sets is reverted in the same pass (``Repaired``). The
planner recognised instances by their ``consumer-id`` and ``partition`` annotations
first: a Deployment of the right name whose annotations were garbled, or named another
instance, was deleted as redundant and created again, so its pods were killed at once (no
rolling update) and its partitions had no consumer meanwhile.

Aspects tested (an in-process CRD-mode operator, manual mode, a 2-instance Consumer):
``consumer-id`` of instance 0 edited to ``x``, and that of instance 1 to ``0``: each
Deployment keeps its UID (it is repaired, not replaced) and gets its annotations back.
"""

from __future__ import annotations

import pytest
from operating import consumer, converged, eventually, get_consumer, in_process_operator, managed

from konsumerator.domain import keys
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


def test_an_instance_whose_identity_annotations_are_edited_is_repaired_not_replaced(
    cluster: Cluster, namespace: str
) -> None:
    with in_process_operator(cluster):
        cluster.apply(consumer("ids", namespace, num_partitions=2, per_instance=1))
        eventually(
            lambda: get_consumer(cluster, namespace, "ids"),
            lambda o: converged(o, 2),
            timeout=60,
            what="the Consumer to converge",
        )
        before = {n: d["metadata"]["uid"] for n, d in managed(cluster, namespace).items()}
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        for name, value in (("ids-consumer-0", "x"), ("ids-consumer-1", "0")):
            cluster.api(
                "PATCH", f"{path}/{name}", {"metadata": {"annotations": {keys.CONSUMER_ID: value}}}
            )
        after = eventually(
            lambda: managed(cluster, namespace),
            lambda found: (
                sorted(found) == ["ids-consumer-0", "ids-consumer-1"]
                and [d["metadata"]["annotations"].get(keys.CONSUMER_ID) for d in found.values()]
                == ["0", "1"]
                and converged(get_consumer(cluster, namespace, "ids"), 2)
            ),
            timeout=60,
            what="both instances to carry their own consumer-id again",
        )
    assert {n: d["metadata"]["uid"] for n, d in after.items()} == before
