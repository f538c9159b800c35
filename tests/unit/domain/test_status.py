"""The typed status model (``domain.status``, ``domain.conditions``) in both renderings.

Aspects tested:

* condition transitions (table): a condition keeps its ``lastTransitionTime`` while its
  status stays, gets the pass's time when it flips, appears, or the kept time is empty;
  every condition carries the pass's generation;
* Ready (table): NameConflict before WriteFailed before Progressing before Reconciled;
* MetricsAvailable (table): AutoscalingDisabled, AddressNotAllowed, the refresh's own
  reason (PrometheusUnreachable by default), Synced;
* counters: all seven in the CRD body, the Go operator's six in the guest annotations;
* ``restartsHeld`` (table): the restart budget's held count of the last pass that
  refreshed metrics, kept by the passes between refreshes (no write per pass), 0 with
  autoscaling off; absent until the budget first binds, then 0 when none is held (so a
  hand-edited count is written over), CRD mode only; one that is no integer is carried;
* an unusable spec (InvalidSpec, UndecodableObject): only Ready and observedGeneration
  change, counters, the metrics cache and the other conditions are kept;
* bounded messages: any failure text, conflict list or refusal fits ``MESSAGE_LIMIT``;
* reading back never fails and loses nothing: any JSON status survives
  ``from_body``/``to_body`` unchanged when its conditions are conditions, a status the
  model built survives both renderings, and hand-edited conditions that are not
  conditions (a guest annotation holds any JSON) are dropped instead of failing the pass;
* the metrics-snapshot codec through the status: a snapshot written by a pass, in either
  rendering, seeds the same snapshot back (hypothesis).
"""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain import keys
from konsumerator.domain.conditions import (
    FALSE,
    MESSAGE_LIMIT,
    TRUE,
    UNKNOWN,
    Condition,
    merge_conditions,
)
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.status import (
    CONDITIONS,
    ConsumerStatus,
    metrics_available,
    of_pass,
    of_rejection,
    ready,
)
from konsumerator.domain.syncstate import snapshot_from_state

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T0_TEXT, T1_TEXT = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


RUNNING = Counters(expected=2, running=2)
NOTHING = ConsumerStatus()


def plan(counters: Counters = RUNNING, **kw: Any) -> Plan:
    return Plan(
        applies=(),
        deletes=(),
        counters=counters,
        instances=(),
        conflicts=(),
        requeue_after_s=None,
        template_hash="1",
        **kw,
    )


def passed(previous: ConsumerStatus = NOTHING, **kw: Any) -> ConsumerStatus:
    args: dict[str, Any] = {
        "plan": plan(),
        "metrics": Metrics(),
        "autoscaling": False,
        "num_partitions": 2,
        "failures": (),
        "conflicts": (),
        "previous": previous,
        "generation": 1,
        "now": T0,
    }
    return of_pass(**{**args, **kw})


def cond(status: str, since: str = T0_TEXT) -> Condition:
    return Condition(
        type="Ready", status=status, reason="r", message="m", last_transition_time=since
    )


@pytest.mark.parametrize(
    ("previous", "current", "expected_since"),
    [
        ((cond(TRUE),), TRUE, T0_TEXT),  # unchanged: kept
        ((cond(TRUE),), FALSE, T1_TEXT),  # flipped: now
        ((), TRUE, T1_TEXT),  # new: now
        ((cond(TRUE, since=""),), TRUE, T1_TEXT),  # kept time empty: now
        ((cond(FALSE), cond(TRUE)), TRUE, T0_TEXT),  # duplicates: the last one counts
    ],
    ids=["unchanged", "flipped", "new", "empty-time", "duplicate"],
)
def test_a_condition_keeps_its_transition_time_until_its_status_flips(
    previous: tuple[Condition, ...], current: str, expected_since: str
) -> None:
    now = Condition(type="Ready", status=current, reason="x", message="y")
    (merged,) = merge_conditions(previous=previous, current=[now], now=T1, generation=4)
    assert merged == replace(now, last_transition_time=expected_since, observed_generation=4)


def test_a_second_pass_keeps_the_transition_times_of_the_first() -> None:
    first = passed()
    second = passed(previous=first, now=T1, generation=2)
    assert [c.last_transition_time for c in second.conditions] == [T0_TEXT] * 3
    assert {c.observed_generation for c in second.conditions} == {2}
    flipped = passed(previous=second, now=T1, plan=plan(Counters(expected=2, missing=2)))
    ready_now = flipped.condition("Ready")
    assert ready_now is not None
    assert (ready_now.status, ready_now.last_transition_time) == (FALSE, T1_TEXT)


@pytest.mark.parametrize(
    ("counters", "failures", "conflicts", "expected"),
    [
        (Counters(expected=2, running=2), (), ("c-0",), (FALSE, "NameConflict")),
        (Counters(expected=2, missing=1), ("boom",), ("c-0",), (FALSE, "NameConflict")),
        (Counters(expected=2, missing=1), ("boom",), (), (FALSE, "WriteFailed")),
        (Counters(expected=2, missing=1), (), (), (FALSE, "Progressing")),
        (Counters(expected=2, outdated=1), (), (), (FALSE, "Progressing")),
        (Counters(expected=2, redundant=1), (), (), (FALSE, "Progressing")),
        (Counters(expected=2, running=2), (), (), (TRUE, "Reconciled")),
    ],
)
def test_ready_says_the_first_thing_that_is_wrong(
    counters: Counters,
    failures: tuple[str, ...],
    conflicts: tuple[str, ...],
    expected: tuple[str, str],
) -> None:
    found = ready(counters=counters, failures=failures, conflicts=conflicts)
    assert (found.status, found.reason) == expected


@pytest.mark.parametrize(
    ("metrics", "autoscaling", "refusal", "expected"),
    [
        (Metrics(error="down"), False, "refused", (UNKNOWN, "AutoscalingDisabled")),
        (Metrics(error="down"), True, "refused", (FALSE, "AddressNotAllowed")),
        (Metrics(error="down"), True, None, (FALSE, "PrometheusUnreachable")),
        (Metrics(error="empty", error_reason="NoData"), True, None, (FALSE, "NoData")),
        (Metrics(), True, None, (TRUE, "Synced")),
    ],
)
def test_metrics_available_says_why_metrics_are_missing(
    metrics: Metrics, autoscaling: bool, refusal: str | None, expected: tuple[str, str]
) -> None:
    found = metrics_available(metrics=metrics, autoscaling=autoscaling, refusal=refusal, note=None)
    assert (found.status, found.reason) == expected


def test_metrics_used_not_all_as_given_are_synced_and_say_what_was_dropped() -> None:
    problems = "offset query: 2 series dropped (1 not_finite, 1 out_of_range)"
    found = metrics_available(
        metrics=Metrics(problems=problems), autoscaling=True, refusal=None, note=None
    )
    assert (found.status, found.reason) == (TRUE, "Synced")
    assert found.message == f"metrics are current; {problems}"
    # A failed refresh says why it failed; what the kept snapshot dropped can wait.
    failed = metrics_available(
        metrics=Metrics(error="down", problems=problems), autoscaling=True, refusal=None, note=None
    )
    assert problems not in failed.message


def test_the_crd_body_has_seven_counters_and_the_annotations_the_go_operators_six() -> None:
    status = passed(plan=plan(Counters(1, 2, 3, 4, 5, 6, 7)))
    body = status.to_body()
    assert {k: body[k] for k in status.counter_fields()} == {
        "expected": 1,
        "running": 2,
        "paused": 3,
        "missing": 4,
        "lagging": 5,
        "outdated": 6,
        "redundant": 7,
    }
    annotations = status.to_annotations()
    counters = {
        k.removeprefix(keys.STATUS_PREFIX): v
        for k, v in annotations.items()
        if k.removeprefix(keys.STATUS_PREFIX) in status.counter_fields()
    }
    assert counters == {
        "expected": "1",
        "running": "2",
        "paused": "3",
        "missing": "4",
        "lagging": "5",
        "outdated": "6",
    }


REFRESHED = Metrics(snapshot=MetricsSnapshot(production={0: 5.0}), synced_at=T0, refreshed=True)
CACHED = Metrics(snapshot=MetricsSnapshot(production={0: 5.0}), synced_at=T0)
FAILED = Metrics(error="connection refused")


@pytest.mark.parametrize(
    ("autoscaling", "metrics", "held_now", "held_before", "expected"),
    [
        (True, REFRESHED, 9, None, 9),  # the budget binds: the pass's count
        (True, REFRESHED, 8, 9, 8),  # fewer waiting: the new count
        (True, REFRESHED, 0, 9, 0),  # every scale-down admitted: 0, written over the count
        (True, REFRESHED, 0, 0, 0),  # still none: unchanged
        (True, REFRESHED, 0, None, None),  # never held: no field
        (True, CACHED, 0, 9, 9),  # a pass between refreshes decides no scale-down: kept
        (True, CACHED, 2, None, None),  # a fallback held between refreshes: at the next
        (True, FAILED, 0, 5, 5),  # a failed refresh scaled nothing down: kept
        (False, CACHED, 0, 9, 0),  # autoscaling off (manual, paused): nothing is held
        (False, REFRESHED, 0, None, None),  # autoscaling off, never held: no field
    ],
    ids=[
        "binds",
        "fewer",
        "cleared",
        "still-none",
        "never",
        "between-refreshes",
        "fallback-between",
        "refresh-failed",
        "autoscaling-off",
        "off-never",
    ],
)
def test_restarts_held_is_the_count_of_the_last_pass_that_refreshed_metrics(
    autoscaling: bool,
    metrics: Metrics,
    held_now: int,
    held_before: int | None,
    expected: int | None,
) -> None:
    before = {} if held_before is None else {"restartsHeld": held_before}
    status = passed(
        previous=ConsumerStatus.from_body(before),
        autoscaling=autoscaling,
        metrics=metrics,
        plan=plan(restarts_held=held_now),
    )
    assert status.restarts_held == expected
    body = status.to_body()
    assert ("restartsHeld" in body) == (expected is not None)
    assert body.get("restartsHeld") == expected
    assert ConsumerStatus.from_body(body).restarts_held == expected


def test_restarts_held_is_absent_until_the_budget_binds_and_never_a_guest_annotation() -> None:
    quiet = passed(autoscaling=True, metrics=REFRESHED)
    held = passed(autoscaling=True, metrics=REFRESHED, plan=plan(restarts_held=3))
    assert "restartsHeld" not in quiet.to_body()
    assert held.to_body()["restartsHeld"] == 3
    # Guest mode keeps the Go operator's annotations (like ``inPlace``): nothing new.
    assert held.to_annotations() == quiet.to_annotations()


def test_a_pass_between_refreshes_reports_the_same_status_as_the_refresh_before() -> None:
    """No status write per pass while the budget binds: the passes the admitted
    scale-downs' writes wake render the refreshed pass's status unchanged."""
    refreshed = passed(autoscaling=True, metrics=REFRESHED, plan=plan(restarts_held=9))
    woken = passed(previous=refreshed, autoscaling=True, metrics=CACHED, now=T1)
    assert woken.to_body() == refreshed.to_body()


@pytest.mark.parametrize("edited", [7, -1, 2**40], ids=["made-up", "negative", "huge"])
def test_a_hand_edited_restarts_held_is_written_over_by_the_next_refresh(edited: int) -> None:
    """Cleared by writing 0, not by leaving the field out: a server-side apply that
    leaves out a field somebody else wrote does not remove it."""
    previous = ConsumerStatus.from_body({"restartsHeld": edited})
    assert previous.restarts_held == edited
    status = passed(previous=previous, autoscaling=True, metrics=REFRESHED)
    assert status.to_body()["restartsHeld"] == 0


@pytest.mark.parametrize("edited", ["3", True, 1.5, None], ids=["str", "bool", "float", "null"])
def test_a_restarts_held_that_is_no_integer_is_carried_as_it_was(edited: object) -> None:
    previous = ConsumerStatus.from_body({"restartsHeld": edited})
    assert previous.restarts_held is None
    assert previous.to_body() == {"restartsHeld": edited}


@pytest.mark.parametrize("reason", ["InvalidSpec", "UndecodableObject"])
def test_an_unusable_spec_changes_only_ready_and_the_generation(reason: str) -> None:
    synced = MetricsSnapshot(production={0: 5.0})
    before = passed(
        autoscaling=True, metrics=Metrics(snapshot=synced, synced_at=T0, refreshed=True)
    )
    after = of_rejection(
        message="spec.x: bad", previous=before, generation=9, now=T1, reason=reason
    )
    assert (after.counters, after.last_sync_time, after.last_sync_state) == (
        before.counters,
        before.last_sync_time,
        before.last_sync_state,
    )
    assert after.observed_generation == 9
    ready_now = after.condition("Ready")
    assert ready_now is not None
    assert (ready_now.status, ready_now.reason, ready_now.message) == (FALSE, reason, "spec.x: bad")
    assert [c for c in after.conditions if c.type != "Ready"] == [
        c for c in before.conditions if c.type != "Ready"
    ]


def test_an_unusable_spec_that_was_never_usable_reports_only_ready() -> None:
    body = of_rejection(message="bad", previous=ConsumerStatus(), generation=1, now=T0).to_body()
    assert sorted(body) == ["conditions", "observedGeneration"]
    assert [c["type"] for c in body["conditions"]] == ["Ready"]


texts = st.text(max_size=3_000)


@given(
    failures=st.lists(texts, max_size=4),
    conflicts=st.lists(st.text(min_size=1, max_size=70), max_size=200),
    refusal=st.none() | texts,
    error=st.none() | texts,
    problems=st.none() | texts,
)
def test_every_condition_message_is_bounded(
    failures: list[str],
    conflicts: list[str],
    refusal: str | None,
    error: str | None,
    problems: str | None,
) -> None:
    status = passed(
        failures=failures,
        conflicts=conflicts,
        refusal=refusal,
        autoscaling=True,
        metrics=Metrics(error=error, problems=problems),
        plan=plan(saturated=tuple(conflicts)),
    )
    assert all(len(c.message) <= MESSAGE_LIMIT for c in status.conditions)
    rejected = of_rejection(message="".join(failures), previous=status, generation=2, now=T1)
    assert all(len(c.message) <= MESSAGE_LIMIT for c in rejected.conditions)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
any_field = st.sampled_from(
    [
        "expected",
        "running",
        "redundant",
        "observedGeneration",
        "lastSyncTime",
        "lastSyncState",
        "restartsHeld",
    ]
) | st.text(max_size=8).filter(lambda k: k != "conditions")


@given(st.dictionaries(any_field, json_values, max_size=8))
def test_a_status_read_back_is_rendered_back_unchanged(raw: dict[str, Any]) -> None:
    raw = {k: v for k, v in raw.items() if not (k == "lastSyncState" and v is None)}
    assert ConsumerStatus.from_body(raw).to_body() == raw


conditions = st.builds(
    Condition,
    type=st.sampled_from(["Ready", "MetricsAvailable", "Saturated"]),
    status=st.sampled_from([TRUE, FALSE, UNKNOWN]),
    reason=st.text(max_size=10),
    message=st.text(max_size=20),
    last_transition_time=st.just(T0_TEXT),
    observed_generation=st.integers(0, 2**40),
)
statuses = st.builds(
    ConsumerStatus,
    counters=st.builds(Counters, *[st.integers(0, 2**31 - 1)] * 7),
    observed_generation=st.integers(0, 2**40),
    last_sync_time=st.just(T0_TEXT),
    last_sync_state=st.none(),
    conditions=st.lists(conditions, max_size=3, unique_by=lambda c: c.type).map(tuple),
    restarts_held=st.none() | st.integers(0, 2**31 - 1),
)


@given(statuses)
def test_a_status_the_model_built_survives_both_renderings(status: ConsumerStatus) -> None:
    assert ConsumerStatus.from_body(json.loads(json.dumps(status.to_body()))) == status
    guest = ConsumerStatus.from_annotations(status.to_annotations())
    assert guest.conditions == status.conditions
    assert guest.last_sync_time == status.last_sync_time
    assert guest.to_annotations() == status.to_annotations()


@pytest.mark.parametrize(
    "edited",
    ['[1, "x", null, {"type": 5}, {"status": "True"}]', '{"type": "Ready"}', '"Ready"', "7"],
    ids=["junk-items", "object", "string", "number"],
)
def test_hand_edited_guest_conditions_that_are_not_conditions_do_not_fail_the_pass(
    edited: str,
) -> None:
    previous = ConsumerStatus.from_annotations({CONDITIONS: edited})
    status = passed(previous=previous)
    rejected = of_rejection(message="bad", previous=previous, generation=1, now=T0)
    assert [c.type for c in status.conditions] == ["Ready", "MetricsAvailable", "Saturated"]
    assert [c.type for c in rejected.conditions] == ["Ready"]
    assert json.loads(status.to_annotations()[CONDITIONS])[0]["type"] == "Ready"


rates = st.dictionaries(st.integers(0, 9), st.integers(1, 2**53), max_size=10)


@given(production=rates, consumption=rates, offset=rates)
def test_a_snapshot_a_pass_reports_seeds_the_same_snapshot_from_either_rendering(
    production: dict[int, int], consumption: dict[int, int], offset: dict[int, int]
) -> None:
    snapshot = MetricsSnapshot(
        production={p: float(v) for p, v in production.items()},
        consumption={p: float(v) for p, v in consumption.items()},
        offset={p: float(v) for p, v in offset.items()},
    )
    status = passed(
        autoscaling=True,
        num_partitions=10,
        metrics=Metrics(snapshot=snapshot, synced_at=T0, refreshed=True),
    )
    assert status.last_sync_time == T0_TEXT
    for read_back in (
        ConsumerStatus.from_body(json.loads(json.dumps(status.to_body()))),
        ConsumerStatus.from_annotations(status.to_annotations()),
    ):
        seeded = snapshot_from_state(read_back.last_sync_state)
        assert seeded is not None
        assert (seeded.production, seeded.consumption, seeded.offset) == (
            snapshot.production,
            snapshot.consumption,
            snapshot.offset,
        )
