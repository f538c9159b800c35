"""The operator's pipeline with no API server and no metrics, for the tests of what a
pass writes (creations, slices of writes, expectations).

``examples/consumer.yaml`` without its autoscaler (a pass then needs no metrics source to
create its Deployments), ``pipeline`` over an in-memory watch cache the test feeds, with
a writer that stands for the API server, and the stand-ins it needs for the rest.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from konsumerator.controllers.acting import SLICE, KubeActuator
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.writing import Written
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.expecting import Expectations
from konsumerator.runtime.stores import Store

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
UID = "uid-orders"


def manifest(
    *, namespace: str = "default", uid: str = UID, partitions: int | None = None
) -> dict[str, Any]:
    """The example Consumer in ``namespace`` with ``uid``, without its autoscaler."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] |= {"namespace": namespace, "uid": uid, "generation": 1}
    doc["spec"]["namespace"] = namespace
    if partitions is not None:
        doc["spec"]["numPartitions"] = partitions
    doc["spec"].pop("autoscaler", None)
    return doc


def written(*, namespace: str, name: str, count: int) -> Written:
    """What the API server answers to the ``count``-th apply, of ``name``."""
    return Written(
        namespace=namespace, name=name, uid=f"u-{name}", generation=1,
        resource_version=str(count),
    )  # fmt: skip


class NoMetrics:
    """A Consumer without an autoscaler is never sized from metrics: nothing asks."""

    def forget(self, *, key: str) -> None:
        pass


class QuietReporter:
    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        return False

    async def passed(self, **_: Any) -> None:
        pass


def pipeline(
    *,
    store: Store[ObservedDeployment],
    writer: Any,
    expectations: Expectations | None = None,
    limit: int = SLICE,
) -> Pipeline:
    """The pipeline over ``store``, writing with ``writer`` at most ``limit`` writes a
    pass; nothing reads (a creation refused as AlreadyExists would fail the test)."""
    return Pipeline(
        deployments=store,
        provider=NoMetrics(),  # type: ignore[arg-type]
        actuator=KubeActuator(client=None, writer=writer, limit=limit),  # type: ignore[arg-type]
        reporter=QuietReporter(),  # type: ignore[arg-type]
        now=lambda: NOW,
        expectations=expectations,
    )


def owned_store() -> Store[ObservedDeployment]:
    """A Deployment watch cache indexed by owner, as the operator's."""
    return Store(indexers={OWNER_INDEX: owner_index})


def reconcile(p: Pipeline, doc: dict[str, Any]) -> Result:
    """One pass of ``p`` over the Consumer ``doc``."""
    meta = doc["metadata"]
    return asyncio.run(
        p.reconcile(
            key=f"{meta['namespace']}/{meta['name']}",
            manifest=doc,
            previous=ConsumerStatus(),
            generation=1,
        )
    )
