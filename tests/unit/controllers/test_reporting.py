"""What a pass writes to status, as docs/troubleshooting.md ("What a pass writes") says.

Aspects tested:

* a usable spec: the seven counters, observedGeneration and exactly the three conditions
  Ready, MetricsAvailable and Saturated;
* an invalid spec: only Ready (False, InvalidSpec) and observedGeneration change; the
  counters and the other conditions of the last usable spec are kept as they were;
* an invalid spec that was never valid: no counters, only the Ready condition.
"""

from datetime import UTC, datetime

from konsumerator.domain.planning import Counters, Metrics, Plan
from konsumerator.domain.status import ConsumerStatus, of_pass, of_rejection

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
COUNTERS = ("expected", "running", "paused", "missing", "lagging", "outdated", "redundant")


def usable_status() -> dict[str, object]:
    plan = Plan(
        applies=(),
        deletes=(),
        counters=Counters(expected=2, running=2),
        instances=(),
        conflicts=(),
        requeue_after_s=None,
        template_hash="1",
        allocated_cpu_m=0,
        allocated_mem_b=0,
        saturated=(),
    )
    return of_pass(
        plan=plan,
        metrics=Metrics(),
        autoscaling=False,
        num_partitions=2,
        failures=[],
        conflicts=[],
        previous=ConsumerStatus(),
        generation=1,
        now=NOW,
    ).to_body()


def types(status: dict[str, object]) -> list[str]:
    conditions = status["conditions"]
    assert isinstance(conditions, list)
    return [c["type"] for c in conditions]


def test_a_usable_spec_writes_counters_and_three_conditions():
    status = usable_status()
    assert {k: status[k] for k in COUNTERS} == {
        "expected": 2,
        "running": 2,
        "paused": 0,
        "missing": 0,
        "lagging": 0,
        "outdated": 0,
        "redundant": 0,
    }
    assert status["observedGeneration"] == 1
    assert sorted(types(status)) == ["MetricsAvailable", "Ready", "Saturated"]


def test_an_invalid_spec_rewrites_only_ready_and_keeps_the_rest():
    before = usable_status()
    after = of_rejection(
        message="spec.namespace: must be ns",
        previous=ConsumerStatus.from_body(before),
        generation=2,
        now=LATER,
    ).to_body()
    assert {k: after[k] for k in COUNTERS} == {k: before[k] for k in COUNTERS}
    assert after["observedGeneration"] == 2
    conditions = {c["type"]: c for c in after["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "InvalidSpec",
    )
    previous = before["conditions"]
    assert isinstance(previous, list)
    kept = {c["type"]: c for c in previous if c["type"] != "Ready"}
    assert {t: c for t, c in conditions.items() if t != "Ready"} == kept


def test_an_invalid_spec_that_was_never_valid_has_no_counters_and_only_ready():
    status = of_rejection(message="bad", previous=ConsumerStatus(), generation=1, now=NOW).to_body()
    assert not set(COUNTERS) & set(status)
    assert types(status) == ["Ready"]
