"""Other controllers settling the Deployments do not wake the Consumer: counted.

Aspects tested:

* a Consumer with 40 instances (replicas 1, so KWOK runs a pod for each; the default
  ``updateMode``, in place, so its pods and their ReplicaSets are watched and read)
  converges in a couple of passes: the creating one and the one its own writes' events
  wake (batched into one), and room for one more; beyond those, only passes whose cache
  had not yet shown every Deployment the creating pass made (each re-sends at least one
  creation, refused as AlreadyExists): what the operator controls is that a pass which
  sees them all wakes nothing more, not how fast the watch delivers its own writes.
  kube-controller-manager is frozen (SIGSTOP; it runs without leader election)
  meanwhile, so that all of its work on the new Deployments comes after convergence, as
  it does at scale;
* once it is thawed it creates the ReplicaSets, stamps each Deployment's
  ``deployment.kubernetes.io/revision`` annotation and moves its status along
  (observedGeneration, replicas, ready, available), and KWOK starts the pods at their
  template's size, which is the instance's (``waking.PodWakes``: such a pod is quiet):
  no pass runs for any of it (the Consumer's ``konsumerator_consumer_reconcile_total``
  does not move until every Deployment is available and the queue is idle), and the
  operator's pod cache saw every pod run;
* the Deployments are untouched by the operator meanwhile (no write request).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from operating import (
    WRITE_VERBS,
    alone,
    consumer,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    managed,
    metric_sum,
)

from konsumerator.runtime.managing import Endpoint
from konsumerator.runtime.stores import ObjectKey
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

INSTANCES = 40
# The creating pass, the pass its own writes wake (batched), and room for one more when
# the last creation events land after that pass has started. A bound on passes alone was
# a timing assumption: it held only while the watch delivered the 40 creations before
# the second pass read its cache. Under load one pass saw 19 of the 40 and re-sent 21
# creations, and the creations still on their way woke a fourth pass. Each such extra
# pass (its cache behind the server) re-sends at least one creation, so the bound is
# CONVERGING_PASSES plus the re-sent creations: a pass woken by anything else (its own
# status write, a write that changes nothing) still breaks it.
CONVERGING_PASSES = 3


def deployment_creations(counts: Any) -> int:
    """Deployment applies sent so far (on the operator's loop): all creations here, since
    nothing else is planned for a Consumer without metrics before it converges."""
    return int(counts.by_resource[("apply", "deployments")])


def _stamped(d: dict[str, Any]) -> bool:
    return "deployment.kubernetes.io/revision" in d["metadata"].get("annotations", {})


def _settled(found: dict[str, dict[str, Any]]) -> bool:
    """kcm and KWOK are done with every Deployment: stamped, observed, available."""
    return len(found) == INSTANCES and all(
        _stamped(d)
        and d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]
        and d.get("status", {}).get("availableReplicas") == 1
        for d in found.values()
    )


def settling_consumer(namespace: str) -> dict[str, Any]:
    """40 instances, the default ``updateMode`` (in place): its pods are watched."""
    manifest = consumer("settle", namespace, num_partitions=INSTANCES, per_instance=1)
    assert "updateMode" not in manifest["spec"]["autoscaler"]
    return manifest


@contextlib.contextmanager
def frozen_controller_manager(cluster: Cluster) -> Iterator[None]:
    pid = cluster.processes()["kube-controller-manager"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_deployments_settling_wake_no_pass(cluster: Cluster, namespace: str) -> None:
    alone(cluster, namespace)
    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        controller = op.operator.manager._controllers[0]

        def reconciles() -> float:
            # This Consumer's passes only: Consumers of earlier tests whose namespaces are
            # still going away are reconciled by this operator too.
            return metric_sum(
                op.metrics(),
                "konsumerator_consumer_reconcile_total",
                consumer=f"{namespace}/settle",
            )

        key = ObjectKey(namespace, "settle")

        def idle() -> bool:
            """Nothing pending for this Consumer (other tests' Consumers may have timers)."""
            queue = controller.queue
            return op.call(
                lambda: (
                    not queue.is_dirty(key)
                    and not queue.is_processing(key)
                    and key not in queue.waiting()
                )
            )

        start = reconciles()
        created_before = op.call(lambda: deployment_creations(op.operator.client.counts))
        with frozen_controller_manager(cluster):
            cluster.apply(settling_consumer(namespace))
            eventually(
                lambda: get_consumer(cluster, namespace, "settle"),
                lambda obj: converged(obj, INSTANCES),
                timeout=120,
                what="the Consumer to converge",
            )
            wait_until(idle, timeout=60, what="the operator's queue to drain")
            at_convergence = reconciles()
            written = op.counts()
            created = (
                op.call(lambda: deployment_creations(op.operator.client.counts)) - created_before
            )
            unsettled = managed(cluster, namespace)
        eventually(
            lambda: managed(cluster, namespace),
            _settled,
            timeout=180,
            what="kube-controller-manager and KWOK to settle every Deployment",
        )
        (pods,) = (r.store for r in op.operator.manager._reflectors if r.name == "pods")

        def count_running() -> int:  # in the operator's thread
            return sum(p.running for p in pods.values() if p.namespace == namespace)

        def running() -> int:
            return op.call(count_running)

        # The watch cache follows the server a little later (a trickling watch lets its
        # events gather between reads): every pod start must reach it, and wake nothing.
        wait_until(
            lambda: running() == INSTANCES, timeout=60, what="the operator to see every pod run"
        )
        wait_until(idle, timeout=60, what="the operator's queue to drain")
        after = reconciles()
        made = op.call(lambda: op.operator.client.counts.since(written))

    assert not any(_stamped(d) for d in unsettled.values())  # kcm's work was all to come
    assert created >= INSTANCES
    resent = created - INSTANCES
    assert 1 <= at_convergence - start <= CONVERGING_PASSES + resent, (
        f"{at_convergence - start} passes, {resent} creations re-sent"
    )
    assert after - at_convergence == 0, "passes while kcm and KWOK settled the Deployments"
    assert not {verb: n for verb, n in made.items() if verb in WRITE_VERBS}, made
