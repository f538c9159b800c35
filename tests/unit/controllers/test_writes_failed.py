"""A pass whose writes are refused raises ``WritesFailed`` with a bounded message.

The controller logs that message on every retry (every few seconds while the refusal
stands), and an admission policy or a quota refuses every write of a wave: up to
``acting.SLICE`` a pass. The message names the first few failures and how many more.

Aspects tested (the operator's pipeline and actuator over an in-memory watch cache and a
writer that refuses every write; no API server): 200 refused creations give a message
naming 3 of them and "197 more"; a failure or two are named in full.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.pipelines import manifest, owned_store, pipeline, reconcile

from konsumerator.controllers.reconciling import WritesFailed
from konsumerator.kube.writing import Written
from konsumerator.runtime import errors


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
    p = pipeline(store=owned_store(), writer=RefusingWriter())
    doc = manifest(partitions=partitions)
    doc["spec"]["numPartitionsPerInstance"] = 1
    with pytest.raises(WritesFailed) as raised:
        reconcile(p, doc)
    message = str(raised.value)
    assert message.count("refused") == named
    assert message.endswith(more)
