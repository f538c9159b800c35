"""Hostile review: another controller writes the Consumer's metadata while passes run.

A status write names the ``resourceVersion`` its pass read (so a Consumer deleted and
created again mid-pass never gets the old one's status), and every write to the object
moves that version, a label as much as a re-creation. Argo CD, Flux or a ``kubectl
label`` loop stamping the Consumer every second or so lands between a pass's read and
its status write whenever the pass takes longer than that; if each such write only
failed and requeued the pass, every retry would meet the next stamp, and the status
would never be written.

Aspects tested (an in-process operator, a real apiserver), with the worst case made
certain: a label is stamped on the Consumer just before every status write (the write
then names a version the object has left):

* the Consumer converges: its status is written for its generation, every instance
  counted (before: every write was refused as a conflict, and retried at doubling
  intervals, for good);
* a status write whose Consumer was stamped costs one more GET and one more apply, not
  a pass: the passes stay few;
* the stamps all stand (the status write touches nothing of the metadata).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import pytest
from operating import (
    InProcessOperator,
    consumer,
    consumer_path,
    converged,
    eventually,
    get_consumer,
    in_process_operator,
    metric_sum,
)

from konsumerator.controllers.reporting import _StatusReporter
from konsumerator.domain import keys
from konsumerator.domain.status import ConsumerStatus
from konsumerator.runtime.managing import Endpoint
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

NAME = "stamped"
INSTANCES = 6
# The creating pass, the ones its Deployments' events wake, and a few more: a pass
# retried for every stamp would make one per status write, doubling its delay each time.
PASSES = 8


def _reporter(op: InProcessOperator) -> _StatusReporter:
    (controller,) = op.operator.manager._controllers
    reporter: _StatusReporter = controller._reconcile.__self__._reporter  # type: ignore[attr-defined]
    return reporter


def _before_every_status_write(op: InProcessOperator, stamp: Callable[[], None]) -> None:
    """Run ``stamp`` (off the loop) before every status write that changes something."""
    reporter = _reporter(op)
    original: Callable[..., Awaitable[bool]] = reporter.status

    async def status(*, key: str, status: ConsumerStatus) -> bool:
        await asyncio.to_thread(stamp)
        return await original(key=key, status=status)

    op.call(lambda: setattr(reporter, "status", status))


def test_a_label_stamped_before_every_status_write_does_not_starve_the_status(
    cluster: Cluster, namespace: str
) -> None:
    manifest = consumer(NAME, namespace, num_partitions=INSTANCES, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    counter = itertools.count()
    stamps: list[str] = []

    def stamp() -> None:
        value = str(next(counter))
        cluster.api(
            "PATCH",
            consumer_path(namespace, NAME),
            {"metadata": {"labels": {"example.com/synced": value}}},
        )
        stamps.append(value)

    with in_process_operator(cluster, metrics_bind=Endpoint("127.0.0.1", 0)) as op:
        _before_every_status_write(op, stamp)
        cluster.apply(manifest)
        eventually(
            lambda: get_consumer(cluster, namespace, NAME),
            lambda o: converged(o, INSTANCES),
            timeout=90,
            what="the stamped Consumer's status to be written",
        )
        text = op.metrics()
    requests = "konsumerator_api_requests_total"
    status = f"{keys.PLURAL}/status"
    assert stamps, "no status write was stamped"
    # Read once the operator has stopped: until then a later pass's status write may
    # stamp again after the converged object was read.
    final = get_consumer(cluster, namespace, NAME)
    assert final["metadata"]["labels"]["example.com/synced"] == stamps[-1]
    assert converged(final, INSTANCES)
    # Every stamped write conflicted once and was sent again.
    assert metric_sum(text, requests, verb="apply", resource=status, code="409") >= 1
    passes = metric_sum(
        text, "konsumerator_consumer_reconcile_total", consumer=f"{namespace}/{NAME}"
    )
    assert 1 <= passes <= PASSES, passes
