"""Hostile review: a guest ConfigMap's ``consumer.yaml`` edited while its pass runs.

In guest mode the spec and the status share one object: a pass reads ``consumer.yaml``,
plans, acts, then writes its status as annotations of that same ConfigMap. Edited in
between, the ConfigMap must not get the old spec's status (it would say "2 expected"
beside a spec of 3 partitions until the next pass). The write names the version its pass
read; only a change that leaves the spec as it was (a label stamped by a GitOps tool)
has it sent again at the new version.

Aspects tested, with an in-process guest-mode operator whose status write is hooked:

* ``consumer.yaml`` edited (2 -> 3 partitions) just before the first pass's status
  write: right after that write, the ConfigMap holds no status of the old spec (before:
  ``status.expected`` was "2" on the 3-partition spec), and its own pass then reports 3;
* a label stamped just before every status write: the status is still written (every
  stamped write is sent again at the new version), and the stamps stand.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import yaml
from operating import (
    InProcessOperator,
    consumer,
    eventually,
    guest_configmap,
    in_process_operator,
    metric_sum,
)

from konsumerator.controllers.reporting import _StatusReporter
from konsumerator.domain import keys
from konsumerator.domain.status import ConsumerStatus
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster, wait_until

pytestmark = [pytest.mark.cluster]

NAME = "orders"
EXPECTED = f"{keys.STATUS_PREFIX}expected"


def _spec(namespace: str, partitions: int) -> dict[str, Any]:
    spec: dict[str, Any] = consumer(NAME, namespace, num_partitions=partitions, per_instance=1)[
        "spec"
    ]
    spec["deploymentTemplate"]["replicas"] = 0
    return spec


def _reporter(op: InProcessOperator) -> _StatusReporter:
    (controller,) = op.operator.manager._controllers
    reporter: _StatusReporter = controller._reconcile.__self__._reporter  # type: ignore[attr-defined]
    return reporter


def _around_status_writes(
    op: InProcessOperator,
    before: Callable[[], None],
    after: Callable[[], None] = lambda: None,
    *,
    once: bool,
) -> list[bool]:
    """Run ``before`` (off the loop) just before a status write that changes something,
    and ``after`` once it returned or failed: the first such write only, or every one."""
    reporter = _reporter(op)
    original: Callable[..., Awaitable[bool]] = reporter.status
    fired: list[bool] = []

    async def status(*, key: str, status: ConsumerStatus) -> bool:
        if once and fired:
            return await original(key=key, status=status)
        fired.append(True)
        await asyncio.to_thread(before)
        try:
            return await original(key=key, status=status)
        finally:
            await asyncio.to_thread(after)

    op.call(lambda: setattr(reporter, "status", status))
    return fired


def test_a_spec_edited_mid_pass_does_not_get_the_old_specs_status(
    cluster: Cluster, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/{NAME}"
    seen: dict[str, Any] = {}

    def edit() -> None:
        text = yaml.safe_dump(_spec(namespace, 3), sort_keys=True)
        seen["edited"] = cluster.api("PATCH", path, {"data": {keys.GUEST_SPEC_KEY: text}})

    def look() -> None:
        seen["after"] = cluster.api("GET", path)

    def annotations() -> dict[str, str]:
        found: dict[str, str] = cluster.api("GET", path)["metadata"].get("annotations") or {}
        return found

    with in_process_operator(cluster, namespace=namespace) as op:
        fired = _around_status_writes(op, edit, look, once=True)
        cluster.apply(guest_configmap(NAME, namespace, _spec(namespace, 2)))
        wait_until(lambda: bool(fired), timeout=60, what="the first pass's status write")
        wait_until(lambda: "after" in seen, timeout=60, what="the hooked write to finish")
        after = seen["after"]
        assert "numPartitions: 3" in after["data"][keys.GUEST_SPEC_KEY]
        # The old pass's status (2 expected) is not beside the new spec.
        assert (after["metadata"].get("annotations") or {}).get(EXPECTED) != "2"
        eventually(
            annotations,
            lambda a: a.get(EXPECTED) == "3",
            timeout=60,
            what="the edited spec's own pass to report it",
        )


def test_a_label_stamped_before_every_guest_status_write_does_not_starve_the_status(
    cluster: Cluster, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/{NAME}"
    counter = itertools.count()
    stamps: list[str] = []

    def stamp() -> None:
        value = str(next(counter))
        cluster.api("PATCH", path, {"metadata": {"labels": {"example.com/synced": value}}})
        stamps.append(value)

    def configmap() -> dict[str, Any]:
        found: dict[str, Any] = cluster.api("GET", path)
        return found

    with in_process_operator(
        cluster, namespace=namespace, metrics_bind=Endpoint("127.0.0.1", 0)
    ) as op:
        _around_status_writes(op, stamp, once=False)
        cluster.apply(guest_configmap(NAME, namespace, _spec(namespace, 4)))
        eventually(
            configmap,
            lambda cm: (
                (cm["metadata"].get("annotations") or {}).get(EXPECTED) == "4"
                and (cm["metadata"].get("annotations") or {}).get(f"{keys.STATUS_PREFIX}running")
                == "4"
            ),
            timeout=90,
            what="the stamped ConfigMap's status to be written",
        )
        text = op.metrics()
    final = configmap()
    assert stamps, "no status write was stamped"
    assert final["metadata"]["labels"]["example.com/synced"] == stamps[-1]
    # Every stamped write conflicted once and was sent again.
    assert (
        metric_sum(
            text, "konsumerator_api_requests_total", verb="apply", resource="configmaps", code="409"
        )
        >= 1
    )
