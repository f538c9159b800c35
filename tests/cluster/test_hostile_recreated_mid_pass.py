"""Hostile review: an object deleted and created again while its pass runs.

A pass reads a Consumer (or guest ConfigMap), plans, acts, then writes its status. If the
object is deleted and created again under its name meanwhile (``kubectl replace
--force``, a GitOps tool recreating it), the status the pass computed is about the old
object and must not land on the new one. The status subresource of a Consumer ignores a
``metadata.uid`` in the write, so the write names a ``resourceVersion``; the operator's
own status writes must not then make its next pass conflict.

Aspects tested, with an in-process operator whose status write is hooked (the hook
deletes the object and creates it again, with another spec, just before the write):

* right after the old pass's write, the new object holds no status of the old one (CRD
  and guest mode), and the new object's own pass then reports its own spec;
* a wave cut into slices (a slice's pass writes the status when its counters changed,
  then asks for the next pass at once, before the watch has shown that write) makes
  no status write the apiserver refuses as a conflict (409), and its status writes all
  land.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from operating import (
    InProcessOperator,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    guest_configmap,
    in_process_operator,
    metric_sum,
)

from konsumerator.controllers.reporting import _StatusReporter
from konsumerator.domain import keys
from konsumerator.domain.status import ConsumerStatus
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "orders"


def _reporter(op: InProcessOperator) -> _StatusReporter:
    (controller,) = op.operator.manager._controllers
    reporter: _StatusReporter = controller._reconcile.__self__._reporter  # type: ignore[attr-defined]
    return reporter


def _hook_next_status_write(
    op: InProcessOperator, target: str, before: Callable[[], None], after: Callable[[], None]
) -> list[bool]:
    """Run ``before`` (off the loop) just before the next status write of ``target``
    (``namespace/name``) that changes something, and ``after`` once that write returned
    or failed. Returns a list that gets one element when the hook has fired. Other
    Consumers' writes pass through: the operator watches the whole cluster, where an
    earlier test's Consumer may still be going away."""
    reporter = _reporter(op)
    original: Callable[..., Awaitable[bool]] = reporter.status
    fired: list[bool] = []

    async def status(*, key: str, status: ConsumerStatus) -> bool:
        if fired or key != target:
            return await original(key=key, status=status)
        fired.append(True)
        await asyncio.to_thread(before)
        try:
            return await original(key=key, status=status)
        finally:
            await asyncio.to_thread(after)

    op.call(lambda: setattr(reporter, "status", status))
    return fired


def test_a_consumer_recreated_mid_pass_does_not_get_the_old_ones_status(
    cluster: Cluster, namespace: str
) -> None:
    old = consumer(NAME, namespace, num_partitions=2, per_instance=1)
    old["spec"]["deploymentTemplate"]["replicas"] = 0
    new = consumer(NAME, namespace, num_partitions=3, per_instance=1)
    new["spec"]["deploymentTemplate"]["replicas"] = 0
    seen: dict[str, Any] = {}

    def recreate() -> None:
        cluster.api("DELETE", consumer_path(namespace, NAME))
        wait_until(
            lambda: cluster.request("GET", consumer_path(namespace, NAME)).status == 404,
            timeout=30,
            what="the old Consumer to go",
        )
        seen["new"] = cluster.api("POST", consumer_path(namespace), new)

    def look() -> None:
        seen["after"] = get_consumer(cluster, namespace, NAME)

    with in_process_operator(cluster) as op:
        fired = _hook_next_status_write(op, f"{namespace}/{NAME}", recreate, look)
        cluster.apply(old)
        wait_until(lambda: bool(fired), timeout=60, what="the first pass's status write")
        wait_until(lambda: "after" in seen, timeout=60, what="the hooked write to finish")
        after = seen["after"]
        assert after["metadata"]["uid"] == seen["new"]["metadata"]["uid"]
        # The old pass's status (2 expected) is not on the new object.
        assert (after.get("status") or {}).get("expected") != 2, after.get("status")
        obj = eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, 3),
            timeout=60,
            what="the new Consumer's own pass to report it",
        )
    assert obj["metadata"]["uid"] == seen["new"]["metadata"]["uid"]


def test_a_guest_configmap_recreated_mid_pass_does_not_get_the_old_ones_status(
    cluster: Cluster, namespace: str
) -> None:
    spec = consumer(NAME, namespace, num_partitions=2, per_instance=1)["spec"]
    spec["deploymentTemplate"]["replicas"] = 0
    newer = consumer(NAME, namespace, num_partitions=3, per_instance=1)["spec"]
    newer["deploymentTemplate"]["replicas"] = 0
    path = f"/api/v1/namespaces/{namespace}/configmaps/{NAME}"
    expected = f"{keys.STATUS_PREFIX}expected"
    seen: dict[str, Any] = {}

    def recreate() -> None:
        cluster.api("DELETE", path)
        seen["new"] = cluster.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            guest_configmap(NAME, namespace, newer),
        )

    def look() -> None:
        seen["after"] = cluster.api("GET", path)

    def annotations() -> dict[str, str]:
        found: dict[str, str] = cluster.api("GET", path)["metadata"].get("annotations") or {}
        return found

    with in_process_operator(cluster, namespace=namespace) as op:
        fired = _hook_next_status_write(op, f"{namespace}/{NAME}", recreate, look)
        cluster.apply(guest_configmap(NAME, namespace, spec))
        wait_until(lambda: bool(fired), timeout=60, what="the first pass's status write")
        wait_until(lambda: "after" in seen, timeout=60, what="the hooked write to finish")
        after = seen["after"]
        assert after["metadata"]["uid"] == seen["new"]["metadata"]["uid"]
        assert (after["metadata"].get("annotations") or {}).get(expected) != "2"
        eventually(
            annotations,
            lambda a: a.get(expected) == "3",
            timeout=60,
            what="the new ConfigMap's own pass to report it",
        )


def test_a_wave_in_slices_writes_every_status_without_a_conflict(
    cluster: Cluster, namespace: str
) -> None:
    partitions, per_pass = 24, 3
    manifest = consumer(NAME, namespace, num_partitions=partitions, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    with in_process_operator(
        cluster, metrics_bind=Endpoint("127.0.0.1", 0), writes_per_pass=per_pass
    ) as op:
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, partitions),
            timeout=120,
            what="the sliced wave to converge",
        )
        text = op.metrics()
    requests = "konsumerator_api_requests_total"
    status = f"{keys.PLURAL}/status"
    # Several passes wrote a status (a slice writes one when the counters the watch shows
    # changed: not at every slice, since a pass no longer sends again the creations the
    # watch has not shown yet, and may run before it does), and none was refused.
    assert metric_sum(text, requests, verb="apply", resource=status) >= 2
    assert metric_sum(text, requests, verb="apply", resource=status, code="409") == 0
