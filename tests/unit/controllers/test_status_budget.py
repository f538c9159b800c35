"""The reported status stays bounded whatever the partition count (the CRD allows 100 000).

Aspects tested:

* for any partition count up to the CRD's maximum, any metric values (huge, infinite, NaN)
  and any number of conflicting or saturated instances with any failure texts, the CRD
  status fits 256 KiB and the guest-mode status annotations fit their share of the
  ConfigMap's 256 KiB annotation limit;
* ``lastSyncState`` keeps the Go operator's shape (every partition, absent values as 0)
  while it fits its budget; above it, it is left out, a stale one from the previous status
  is removed too, and ``MetricsAvailable`` says so;
* values beyond int64 (the CRD's format) are clamped, so a broken exporter cannot make
  every status write fail;
* lists of names in condition messages are cut with "and N more".
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.api import manifests
from konsumerator.domain.conditions import MESSAGE_LIMIT, bounded, listing
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.status import ConsumerStatus, of_pass
from konsumerator.domain.syncstate import STATE_BUDGET_BYTES, snapshot_from_state, state_size

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CRD_MAXIMUM = 100_000
STATUS_LIMIT = 256 * 1024


def plan(*, saturated: tuple[str, ...] = (), missing: int = 0) -> Plan:
    return Plan(
        applies=(),
        deletes=(),
        counters=Counters(expected=10, running=10 - missing, missing=missing),
        instances=(),
        conflicts=(),
        requeue_after_s=None,
        template_hash="1",
        saturated=saturated,
    )


def synced(snapshot: MetricsSnapshot) -> Metrics:
    return Metrics(snapshot=snapshot, refreshed=True, synced_at=NOW - timedelta(seconds=5))


def report(
    *,
    num_partitions: int,
    metrics: Metrics,
    previous: dict[str, Any] | None = None,
    saturated: tuple[str, ...] = (),
    conflicts: tuple[str, ...] = (),
    failures: tuple[str, ...] = (),
    **budget: int,
) -> dict[str, Any]:
    return of_pass(
        plan=plan(saturated=saturated),
        metrics=metrics,
        autoscaling=True,
        num_partitions=num_partitions,
        failures=failures,
        conflicts=conflicts,
        previous=ConsumerStatus.from_body(previous or {}),
        generation=3,
        now=NOW,
        **budget,
    ).to_body()


def available(status: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in status["conditions"] if c["type"] == "MetricsAvailable"]
    return found


def uniform(num_partitions: int, value: float, every: int) -> MetricsSnapshot:
    values = dict.fromkeys(range(0, num_partitions, every), value)
    return MetricsSnapshot(production=values, consumption=values, offset=values)


values = st.sampled_from([0.0, 1.0, 987.5, 12_345_678.0, 1e18, 1e30, math.inf, math.nan])
partition_counts = st.one_of(
    st.just(CRD_MAXIMUM), st.integers(1, 4_000), st.integers(1, CRD_MAXIMUM)
)
# Names as the planner makes them ({spec.name}-{index}), up to the CRD's 60 + 6 characters.
names = st.builds(
    lambda base, count: tuple(f"{base}-{i}" for i in range(count)),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=60),
    st.integers(0, CRD_MAXIMUM),
)
# Failure texts come from the API server and Prometheus: anything, astral characters too.
texts = st.lists(st.text(max_size=3_000), max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    num_partitions=partition_counts,
    value=values,
    every=st.integers(1, 7),
    saturated=names,
    conflicts=names,
    failures=texts,
    error=st.one_of(st.none(), st.text(max_size=5_000)),
)
def test_status_fits_its_budgets_whatever_the_partition_count(
    num_partitions: int,
    value: float,
    every: int,
    saturated: tuple[str, ...],
    conflicts: tuple[str, ...],
    failures: list[str],
    error: str | None,
) -> None:
    metrics = Metrics(
        snapshot=uniform(num_partitions, value, every),
        refreshed=error is None,
        synced_at=NOW,
        error=error,
    )
    crd = report(
        num_partitions=num_partitions,
        metrics=metrics,
        saturated=saturated,
        conflicts=conflicts,
        failures=tuple(failures),
    )
    assert len(json.dumps(crd).encode()) <= STATUS_LIMIT
    assert all(len(c["message"]) <= MESSAGE_LIMIT for c in crd["conditions"])

    guest = report(
        num_partitions=num_partitions,
        metrics=metrics,
        saturated=saturated,
        conflicts=conflicts,
        failures=tuple(failures),
        state_budget_bytes=manifests.guest_state_budget({}),
    )
    annotations = manifests.status_annotations(guest)
    state = annotations.pop(manifests.LAST_SYNC_STATE)
    assert manifests.annotations_size(annotations) <= manifests.GUEST_STATUS_RESERVE_BYTES
    assert len(state.encode()) <= manifests.GUEST_STATE_BUDGET_BYTES


def test_the_crd_maximum_leaves_the_state_out_and_says_so() -> None:
    status = report(
        num_partitions=CRD_MAXIMUM, metrics=synced(uniform(CRD_MAXIMUM, 1_000.0, every=1))
    )
    assert "lastSyncState" not in status
    assert status["lastSyncTime"] == "2024-05-01T11:59:55Z"
    condition = available(status)
    assert (condition["status"], condition["reason"]) == ("True", "Synced")
    assert (
        "lastSyncState is left out: 100000 partitions exceed its 192 KiB budget"
        in (condition["message"])
    )
    assert len(json.dumps(status)) < 4 * 1024


def test_a_state_that_fits_keeps_the_go_shape_with_absent_partitions_as_zero() -> None:
    snapshot = MetricsSnapshot(production={0: 10.7}, consumption={1: 3.0}, offset={0: 99.0})
    status = report(num_partitions=3, metrics=synced(snapshot))
    assert status["lastSyncState"] == {
        "0": {"productionRate": 10, "consumptionRate": 0, "messageBehind": 99},
        "1": {"productionRate": 0, "consumptionRate": 3, "messageBehind": 0},
        "2": {"productionRate": 0, "consumptionRate": 0, "messageBehind": 0},
    }
    assert available(status)["message"] == "metrics are current"
    seeded = snapshot_from_state(status["lastSyncState"])
    assert seeded is not None
    assert dict(seeded.production) == {0: 10.0}


def idle_size(num_partitions: int) -> int:
    """Bytes of an all-zero state: 70 a partition, plus the digits of ids above 9."""
    return 70 * num_partitions + sum(len(str(p)) - 1 for p in range(num_partitions))


def most_idle_partitions(budget: int) -> int:
    n = 0
    while idle_size(n + 1) <= budget:
        n += 1
    return n


FITS_CRD = most_idle_partitions(STATE_BUDGET_BYTES)
FITS_GUEST = most_idle_partitions(manifests.GUEST_STATE_BUDGET_BYTES)


@pytest.mark.parametrize(
    ("num_partitions", "budget", "kept"),
    [
        (1, 70, True),  # exactly the smallest entry
        (1, 69, False),
        (FITS_CRD, STATE_BUDGET_BYTES, True),
        (FITS_CRD + 1, STATE_BUDGET_BYTES, False),
        (FITS_GUEST, manifests.GUEST_STATE_BUDGET_BYTES, True),
        (FITS_GUEST + 1, manifests.GUEST_STATE_BUDGET_BYTES, False),
        (10, -1, False),  # a guest ConfigMap with no room left
    ],
)
def test_the_state_is_kept_exactly_while_it_fits(
    num_partitions: int, budget: int, kept: bool
) -> None:
    status = report(
        num_partitions=num_partitions,
        metrics=synced(MetricsSnapshot()),
        state_budget_bytes=budget,
    )
    assert ("lastSyncState" in status) is kept
    if kept:
        assert state_size(status["lastSyncState"]) == idle_size(num_partitions)


def test_a_guest_configmap_without_room_says_so() -> None:
    status = report(num_partitions=4, metrics=synced(MetricsSnapshot()), state_budget_bytes=-900)
    assert "lastSyncState" not in status
    assert available(status)["message"] == (
        "metrics are current; lastSyncState is left out: the object's other annotations"
        " leave it no room, so a restarted operator queries Prometheus afresh"
    )


def test_busy_partitions_take_more_room_than_idle_ones() -> None:
    idle = report(num_partitions=2_000, metrics=synced(MetricsSnapshot()))
    busy = report(num_partitions=2_000, metrics=synced(uniform(2_000, 1e15, every=1)))
    assert "lastSyncState" in idle
    assert "lastSyncState" not in busy


def test_a_previous_state_is_removed_when_the_new_one_does_not_fit() -> None:
    small = report(num_partitions=4, metrics=synced(MetricsSnapshot()))
    assert "lastSyncState" in small
    grown = report(num_partitions=CRD_MAXIMUM, metrics=synced(MetricsSnapshot()), previous=small)
    assert "lastSyncState" not in grown


@pytest.mark.parametrize(("budget", "kept"), [(STATE_BUDGET_BYTES, True), (100, False)])
def test_a_carried_over_state_is_kept_only_within_the_budget(budget: int, kept: bool) -> None:
    previous = report(num_partitions=4, metrics=synced(MetricsSnapshot()))
    # No refresh this pass (e.g. a failed one): the previous state is carried over.
    status = report(
        num_partitions=4,
        metrics=Metrics(error="down"),
        previous=previous,
        state_budget_bytes=budget,
    )
    assert ("lastSyncState" in status) is kept


@pytest.mark.parametrize("value", [1e19, 1e300, math.inf])
def test_values_beyond_int64_are_clamped_or_zero(value: float) -> None:
    status = report(num_partitions=1, metrics=synced(uniform(1, value, every=1)))
    expected = 0 if math.isinf(value) else 2**63 - 1
    assert status["lastSyncState"]["0"]["messageBehind"] == expected


def test_long_lists_of_names_are_cut_with_a_count() -> None:
    names = [f"orders-consumer-{i}" for i in range(100_000)]
    status = report(
        num_partitions=1,
        metrics=synced(MetricsSnapshot()),
        saturated=tuple(names),
        conflicts=tuple(names),
    )
    messages = {c["type"]: c["message"] for c in status["conditions"]}
    for kind in ("Ready", "Saturated"):
        assert len(messages[kind]) <= MESSAGE_LIMIT
        shown = messages[kind].count("orders-consumer-")
        assert messages[kind].endswith(f" and {100_000 - shown} more")
        assert shown > 10


def test_a_short_list_is_written_whole() -> None:
    assert listing("held back: ", ["a-0", "a-1"]) == "held back: a-0, a-1"


def _listing_by_definition(prefix: str, names: list[str], limit: int) -> str:
    """``listing`` as its docstring says it: the most names whose message, with the
    " and N more" of all names, fits; then bounded."""
    reserve = len(f" and {len(names)} more")
    shown = 0
    while shown < len(names) and (
        len(prefix) + len(", ".join(names[: shown + 1])) + reserve <= limit
    ):
        shown += 1
    hidden = len(names) - shown
    text = prefix + ", ".join(names[:shown]) + (f" and {hidden} more" if hidden else "")
    return bounded(text, limit=limit)


@settings(deadline=None)  # a loaded machine is no failure
@given(
    prefix=st.text(max_size=20),
    names=st.lists(st.text(max_size=12), max_size=30),
    limit=st.integers(min_value=0, max_value=120),
)
def test_a_listing_shows_as_many_names_as_fit(prefix: str, names: list[str], limit: int) -> None:
    assert listing(prefix, names, limit=limit) == _listing_by_definition(prefix, names, limit)


@pytest.mark.parametrize(
    ("annotations", "budget"),
    [
        ({}, manifests.GUEST_STATE_BUDGET_BYTES),
        # Our own status annotations do not count: they are rewritten.
        ({f"{manifests.LAST_SYNC_STATE}": "x" * 200_000}, manifests.GUEST_STATE_BUDGET_BYTES),
        ({"note": "x" * 180_000}, 256 * 1024 - 180_004 - manifests.GUEST_STATUS_RESERVE_BYTES),
        ({"note": "x" * 250_000}, 256 * 1024 - 250_004 - manifests.GUEST_STATUS_RESERVE_BYTES),
    ],
)
def test_guest_state_budget_is_what_the_other_annotations_leave(
    annotations: dict[str, str], budget: int
) -> None:
    assert manifests.guest_state_budget(annotations) == budget
