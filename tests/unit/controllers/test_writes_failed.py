"""A pass whose writes are refused raises ``WritesFailed`` with a bounded message.

The controller logs that message on every retry (every few seconds while the refusal
stands), and an admission policy or a quota refuses every write of a wave: up to
``acting.SLICE`` a pass. The message names the first few failures and how many more.

Aspects tested (the operator's pipeline and actuator over an in-memory watch cache and a
writer that refuses every write; no API server): 200 refused creations give a message
naming 3 of them and "197 more"; a failure or two are named in full.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from konsumerator.controllers.acting import KubeActuator
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, WritesFailed, owner_index
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors
from konsumerator.runtime.stores import Store

from .test_sliced_writes import NOW, NoMetrics, QuietReporter, manifest


class RefusingWriter:
    """Every write is refused, as an admission policy refuses it."""

    async def apply(self, *, name: str, **_: Any) -> Written:
        raise errors.Forbidden(status=403, reason="Forbidden", message=f"{name} refused")


@pytest.mark.parametrize(
    ("partitions", "named", "more"),
    [(200, 3, "; and 197 more"), (3, 3, ""), (1, 1, "")],
    ids=["wave", "three", "one"],
)
def test_refused_writes_name_a_few_failures_and_count_the_rest(
    partitions: int, named: int, more: str
) -> None:
    store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
    pipeline = Pipeline(
        deployments=store,
        provider=NoMetrics(),  # type: ignore[arg-type]
        actuator=KubeActuator(client=None, writer=RefusingWriter()),  # type: ignore[arg-type]
        reporter=QuietReporter(),  # type: ignore[arg-type]
        now=lambda: NOW,
    )
    manifest_ = manifest(partitions=partitions)
    manifest_["spec"]["numPartitionsPerInstance"] = 1
    with pytest.raises(WritesFailed) as raised:
        asyncio.run(
            pipeline.reconcile(
                key="default/orders",
                manifest=manifest_,
                previous=ConsumerStatus(),
                generation=1,
            )
        )
    message = str(raised.value)
    assert message.count("refused") == named
    assert message.endswith(more)
