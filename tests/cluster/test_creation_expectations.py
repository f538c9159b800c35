"""The creations of a pass are not sent again by a pass that runs before the watch has
delivered them; one deleted right after its creation is created again after the timeout.

Aspects tested (the operator's pipeline and actuator in this process, writing to the real
apiserver through the operator's own client, which counts every request by verb; the
Deployment watch cache is the test's, fed by a real watch (``Reflector``) only when the
test says, and the expectations' clock is virtual):

* a pass before the watch has delivered the previous pass's creations makes no request
  at all: no create-only apply refused as AlreadyExists, no GET, no apply; with
  expectations that lapse at once (as before there were any), the same pass makes
  three requests per instance;
* a Deployment deleted by somebody right after our creation, whose addition and deletion
  the watch delivered before the next pass looked, is not created before the timeout and
  is created again (one apply, a new UID) by the first pass after it; the other
  instances, which the cache shows, get no request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from operating import MANAGED_SELECTOR, consumer, get_consumer

from konsumerator.controllers.acting import KubeActuator
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.connecting import connect
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.resources import DEPLOYMENTS
from konsumerator.kube.watching import ListWatch
from konsumerator.kube.writing import Writer
from konsumerator.runtime.expecting import TIMEOUT_S, Expectations
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.stores import Store
from konsumerator_dev.testenv import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("crd")]

INSTANCES = 6
BASE = "eager-consumer"


@dataclass
class VirtualClock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


class NoMetrics:
    """A manual-mode Consumer is never sized from metrics: nothing asks."""

    def forget(self, *, key: str) -> None:
        pass


class QuietReporter:
    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        return False

    async def passed(self, **_: Any) -> None:
        pass


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    api = connect(kubeconfig=cluster.kubeconfig)
    try:
        yield api
    finally:
        await api.aclose()


async def until(predicate: Callable[[], bool], *, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.05)


def passes(
    cluster: Cluster, namespace: str, client: ApiClient, expectations: Expectations
) -> tuple[Store[ObservedDeployment], Callable[[], Awaitable[dict[str, int]]]]:
    """A Consumer of ``INSTANCES`` instances, the watch cache its pipeline plans from
    (empty: the test feeds it), and one pass of it, which returns its requests by verb."""
    manifest = consumer("eager", namespace, num_partitions=INSTANCES, per_instance=1)
    manifest["spec"]["deploymentTemplate"]["replicas"] = 0
    cluster.apply(manifest)
    obj = get_consumer(cluster, namespace, "eager")
    store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
    pipeline = Pipeline(
        deployments=store,
        provider=NoMetrics(),  # type: ignore[arg-type]
        actuator=KubeActuator(client=client, writer=Writer(client=client)),
        reporter=QuietReporter(),  # type: ignore[arg-type]
        now=lambda: datetime.now(tz=UTC),
        expectations=expectations,
    )

    async def one_pass() -> dict[str, int]:
        before = client.counts.snapshot()
        await pipeline.reconcile(
            key=f"{namespace}/eager",
            manifest=obj,
            previous=ConsumerStatus(),
            generation=obj["metadata"]["generation"],
        )
        return client.counts.since(before)

    return store, one_pass


async def test_without_expectations_a_pass_before_the_watch_delivers_costs_three_requests_each(
    cluster: Cluster, namespace: str, client: ApiClient
) -> None:
    """What the expectations save: lapsing at once, each creation is sent again, refused
    as AlreadyExists, read, found ours and applied."""
    _, one_pass = passes(cluster, namespace, client, Expectations(timeout_s=0.0))
    assert await one_pass() == {"apply": INSTANCES}
    assert await one_pass() == {"apply": 2 * INSTANCES, "get": INSTANCES}


async def test_a_pass_before_the_watch_delivers_resends_nothing_and_a_deleted_one_comes_back(
    cluster: Cluster, namespace: str, client: ApiClient
) -> None:
    clock = VirtualClock()
    store, one_pass = passes(cluster, namespace, client, Expectations(clock=clock))
    assert await one_pass() == {"apply": INSTANCES}
    # The watch has delivered nothing (the cache is empty): every name looks missing.
    assert await one_pass() == {}

    victim = f"{BASE}-2"
    first_uid = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{victim}")[
        "metadata"
    ]["uid"]
    cluster.api("DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/{victim}")
    # Now the watch delivers: the others are there, the victim came and went. It has a
    # client of its own, so that the counts are the pipeline's requests only.
    watching = connect(kubeconfig=cluster.kubeconfig)
    reflector = Reflector(
        name="deployments",
        source=ListWatch(
            client=watching,
            resource=DEPLOYMENTS,
            projector=DEPLOYMENT_PROJECTOR,
            namespace=namespace,
            label_selector=MANAGED_SELECTOR,
        ),
        store=store,
        timeout_seconds=30,
    )
    task = asyncio.create_task(reflector.run())
    try:
        await until(lambda: store.has_synced and len(store) == INSTANCES - 1)
        assert victim not in {d.name for d in store.values()}
        # Before the timeout the victim is still awaited: no request.
        clock.now += TIMEOUT_S - 1.0
        assert await one_pass() == {}
        # After it, the first pass creates it again, and only it.
        clock.now += 1.0
        made = await one_pass()
        assert made == {"apply": 1}, made
        again = cluster.api("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{victim}")
        assert again["metadata"]["uid"] != first_uid
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await watching.aclose()
