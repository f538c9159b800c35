"""Events are correlated like client-go's recorder: aggregated, deduplicated, rate-limited
per distinct Event, and never silently lost to an earlier flood on the same object.

Aspects tested (against a recording fake of the Writer, with injected clocks):

* 580 deletions in one pass: 9 Deleted Events of their own, then one combined Event
  whose count reaches 571 and whose message is the last deletion's; the Events that
  follow on the same object (a different reason) are still recorded;
* the same Event repeated is one Event with a rising count, until its own token bucket
  (burst 25) is empty; then dropped and counted, and a token returns after 5 minutes;
* a flood of one message does not stop a different message or reason on that object;
* outside the 10-minute window similar Events start afresh;
* the caches are bounded (LRU);
* a batch (a pass's writes) sends each Event's update once, with the final count, and
  leaves the Events as recording them one by one does; a failed patch forgets the Event.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest.mock import ANY

from konsumerator.kube.eventing import COMBINED_PREFIX, EventRecorder, EventSpec, InvolvedObject
from konsumerator.runtime import errors

OBJ = InvolvedObject(
    api_version="konsumerator.lwolf.org/v1", kind="Consumer", namespace="ns", name="c", uid="u-1"
)


@dataclass
class FakeWriter:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0

    async def create(self, *, resource: object, namespace: str, body: dict[str, Any]) -> None:
        self.calls += 1
        self.events[body["metadata"]["name"]] = dict(body)

    async def merge_patch(
        self, *, resource: object, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        self.calls += 1
        if name not in self.events:
            raise errors.NotFound(status=404, message=name)
        self.events[name].update(patch)

    def by_reason(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["reason"] == reason]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recorder(writer: FakeWriter, clock: Clock, **kw: Any) -> EventRecorder:
    return EventRecorder(
        writer=writer,  # type: ignore[arg-type]
        clock=clock,
        wall_clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        **kw,
    )


async def test_mass_deletion_is_aggregated_and_later_events_still_recorded() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    for i in range(580):
        await events.record(obj=OBJ, type="Normal", reason="Deleted", message=f"deleted c-{i}")
    await events.record(obj=OBJ, type="Warning", reason="WriteFailed", message="create c-0: 403")

    deleted = writer.by_reason("Deleted")
    individual = [e for e in deleted if not e["message"].startswith(COMBINED_PREFIX)]
    (combined,) = [e for e in deleted if e["message"].startswith(COMBINED_PREFIX)]
    assert len(individual) == 9
    assert combined["count"] == 571
    assert combined["message"] == COMBINED_PREFIX + "deleted c-579"
    assert sum(e["count"] for e in deleted) == 580
    assert [e["message"] for e in writer.by_reason("WriteFailed")] == ["create c-0: 403"]
    assert events.dropped == 0


async def test_a_repeated_event_is_counted_then_rate_limited() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    for _ in range(40):
        await events.record(obj=OBJ, type="Warning", reason="WriteFailed", message="same")
    (event,) = writer.by_reason("WriteFailed")
    assert event["count"] == 25
    assert events.dropped == 15
    assert writer.calls == 25

    clock.now += 300  # one token back
    await events.record(obj=OBJ, type="Warning", reason="WriteFailed", message="same")
    assert event["count"] == 26


async def test_a_flood_of_one_message_does_not_silence_others() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    for _ in range(100):
        await events.record(obj=OBJ, type="Warning", reason="WriteFailed", message="same")
    await events.record(obj=OBJ, type="Warning", reason="WriteFailed", message="other")
    await events.record(obj=OBJ, type="Normal", reason="Deleted", message="deleted c-3")
    assert {e["message"] for e in writer.by_reason("WriteFailed")} == {"same", "other"}
    assert [e["message"] for e in writer.by_reason("Deleted")] == ["deleted c-3"]


async def test_similar_events_start_afresh_after_the_window() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    for i in range(12):
        await events.record(obj=OBJ, type="Normal", reason="Scaled", message=f"m{i}")
    clock.now += 601
    await events.record(obj=OBJ, type="Normal", reason="Scaled", message="after")
    assert any(e["message"] == "after" for e in writer.by_reason("Scaled"))


async def test_an_expired_event_is_created_again() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    await events.record(obj=OBJ, type="Normal", reason="Scaled", message="m")
    writer.events.clear()  # the apiserver's 1 h TTL
    await events.record(obj=OBJ, type="Normal", reason="Scaled", message="m")  # 404, forgotten
    await events.record(obj=OBJ, type="Normal", reason="Scaled", message="m")
    assert [e["count"] for e in writer.by_reason("Scaled")] == [1]


async def test_caches_are_bounded() -> None:
    """With room for 100 entries, the first of 500 objects is forgotten: its repeat is a
    new Event, not a patch of the old one (which is what an unbounded cache would do)."""
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock, cache_size=100)
    objects = [
        InvolvedObject(
            api_version="v1", kind="ConfigMap", namespace="ns", name=f"o{i}", uid=f"u{i}"
        )
        for i in range(500)
    ]
    for obj in objects:
        await events.record(obj=obj, type="Normal", reason="Created", message="m")
    await events.record(obj=objects[0], type="Normal", reason="Created", message="m")
    await events.record(obj=objects[-1], type="Normal", reason="Created", message="m")
    assert len(writer.events) == 501
    assert sorted(e["count"] for e in writer.events.values())[-1] == 2


async def test_a_batch_sends_each_events_update_once_and_leaves_what_one_by_one_would() -> None:
    """A pass creating 1,000 Deployments: 10 Events created and one patch with the final
    count, not 1,000 requests; the Events end as recording them one by one leaves them."""
    one_by_one, batched = FakeWriter(), FakeWriter()
    messages = [f"created instance {i}" for i in range(1000)]
    single = recorder(one_by_one, Clock())
    for m in messages:
        await single.record(obj=OBJ, type="Normal", reason="Created", message=m)
    await recorder(batched, Clock()).record_all(
        obj=OBJ, events=[EventSpec(type="Normal", reason="Created", message=m) for m in messages]
    )
    assert batched.calls == 11
    assert one_by_one.calls == 1000
    assert sorted(batched.events.values(), key=lambda e: e["message"]) == sorted(
        (dict(e, metadata=ANY) for e in one_by_one.events.values()), key=lambda e: e["message"]
    )


async def test_a_failed_patch_in_a_batch_starts_the_event_afresh_next_time() -> None:
    writer, clock = FakeWriter(), Clock()
    events = recorder(writer, clock)
    await events.record(obj=OBJ, type="Normal", reason="Scaled", message="m")
    writer.events.clear()  # the apiserver's 1 h TTL
    same = EventSpec(type="Normal", reason="Scaled", message="m")
    await events.record_all(obj=OBJ, events=[same, same])  # one patch: 404, forgotten
    await events.record_all(obj=OBJ, events=[same])
    assert [e["count"] for e in writer.by_reason("Scaled")] == [1]
