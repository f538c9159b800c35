"""Hostile review: a Consumer of the CRD's most partitions stops nobody else.

``numPartitions`` goes up to 100,000; with one partition per instance that is 100,000
instances, and every pass plans each of them (``planning.plan``, pure CPU: some 10 s for
the first pass of such a Consumer on a busy 2-core machine, 30 s once its Deployments are
observed). On the event loop, nothing else would run that long: not the Lease renewal
(lost after 10 s, and the process exits), not the ``/healthz`` heartbeat, not another
Consumer's pass. So the operator plans in a thread of its own.

Aspects tested (an in-process operator with leader election):

* every plan is computed off the event loop (the wrapped planner looks for a running
  loop in its thread);
* while a 100,000-instance Consumer is being created, a small Consumer created after it
  converges, and the operator keeps its Lease throughout (it would exit on losing it).

The huge Consumer lives in a namespace of its own whose ResourceQuota allows no
Deployment: its passes plan all 100,000 instances (what is tested) while the apiserver
refuses every create, so no Deployment of it is left for kube-controller-manager to
collect under the tests that come after this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operating import (
    consumer,
    consumer_path,
    converged,
    deployments_refused,
    eventually,
    get_consumer,
    in_process_operator,
)

from konsumerator.domain import planning
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _recording(
    plan: Callable[..., planning.Plan], seen: list[bool]
) -> Callable[..., planning.Plan]:
    @functools.wraps(plan)
    def wrapped(**kwargs: Any) -> planning.Plan:
        seen.append(_on_a_loop())
        return plan(**kwargs)

    return wrapped


@contextlib.contextmanager
def no_deployments_allowed(cluster: Cluster, name: str) -> Iterator[str]:
    """A namespace whose ResourceQuota allows no Deployment, in force before it is used."""
    cluster.create_namespace(name, labels={"konsumerator.testenv/test": "true"})
    try:
        cluster.api(
            "POST",
            f"/api/v1/namespaces/{name}/resourcequotas",
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "no-deployments"},
                "spec": {"hard": {"count/deployments.apps": "0"}},
            },
        )
        deployments_refused(cluster, name, what="the quota")
        yield name
    finally:
        cluster.delete_namespace(name)


def test_a_consumer_of_the_most_partitions_stops_nobody_else(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_loop: list[bool] = []
    monkeypatch.setattr(planning, "plan", _recording(planning.plan, on_loop))
    with (
        no_deployments_allowed(cluster, f"{namespace}-huge") as crowded,
        in_process_operator(cluster, leader_elect=True) as operator,
    ):
        cluster.apply(consumer("huge", crowded, num_partitions=100_000, per_instance=1))
        eventually(
            lambda: len(on_loop),
            lambda n: n >= 1,
            timeout=120,
            what="the huge Consumer's first pass",
        )
        cluster.apply(consumer("small", namespace, num_partitions=2, per_instance=1))
        try:
            eventually(
                lambda: get_consumer(cluster, namespace, "small"),
                lambda o: converged(o, 2),
                timeout=300,
                what="the small Consumer to converge beside the huge one",
            )
            assert operator.alive
            assert operator.operator.manager.leading.is_set()
        finally:
            # Its Deployments go with it, before the namespace.
            cluster.request("DELETE", consumer_path(crowded, "huge"))
    assert on_loop
    assert not any(on_loop), on_loop
