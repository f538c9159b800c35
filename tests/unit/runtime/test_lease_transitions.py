"""A takeover never writes a ``leaseTransitions`` the API server refuses.

``leaseTransitions`` is an int32 on the API server, which refuses (400) a Lease whose
count is past it. A takeover adds one; at int32's maximum (a Lease edited by hand, a peer
counting differently) every takeover was refused, and with its holder gone the Lease
could never be led again (the apiserver side is
tests/cluster/test_hostile_lease_transitions.py).

Aspects tested (virtual time, a fake Lease store that refuses counts outside int32 as
the API server does), table-driven over the count a gone holder left: the candidate
leads within a few retries and writes the count plus one, held at int32's maximum.
"""

import asyncio
import random
from datetime import UTC, datetime

import pytest

from konsumerator.runtime import errors
from konsumerator.runtime.electing import LeaderElector
from konsumerator.runtime.ports import LeaseRecord

from .fakes import FakeLeaseStore

INT32_MAX = 2**31 - 1


class Int32LeaseStore(FakeLeaseStore):
    async def update(self, *, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        if not 0 <= record.lease_transitions <= INT32_MAX:
            raise errors.Invalid(status=400, reason="BadRequest", message="not an int32")
        return await super().update(namespace=namespace, name=name, record=record)


CASES = {
    "the most an int32 holds": (INT32_MAX, INT32_MAX),
    "one below it": (INT32_MAX - 1, INT32_MAX),
    "none yet": (0, 1),
    "an ordinary count": (41, 42),
}


@pytest.mark.parametrize(("left", "written"), CASES.values(), ids=CASES.keys())
async def test_a_gone_holders_lease_is_taken_over_whatever_its_count(
    left: int, written: int
) -> None:
    store = Int32LeaseStore()
    then = datetime(2026, 12, 1, tzinfo=UTC)
    store._store(
        LeaseRecord(
            holder_identity="gone_0000",
            lease_duration_seconds=1,
            acquire_time=then,
            renew_time=then,
            lease_transitions=left,
        )
    )
    candidate = LeaderElector(
        store=store,
        namespace="ns",
        name="konsumerator-global",
        identity="new_1111",
        rng=random.Random(0),
    )
    task = asyncio.create_task(candidate.run())
    await asyncio.wait_for(candidate.wait_until_leading(), timeout=30)
    assert store.record is not None
    assert store.record.holder_identity == "new_1111"
    assert store.record.lease_transitions == written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
