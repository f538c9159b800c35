"""A pass waits for its Events at most ``events.EVENTS_BUDGET_S`` (10 s).

Events are sent in the pass, before its status. An Event request that hangs (an
admission webhook on Events timing out, an overloaded apiserver) held the pass, its
worker and its status for as long as the request lasted, every pass; an Event is a
courtesy, so past the budget the rest of the batch is dropped, with a warning.

Aspects tested (the Events reporter over the real recorder and a writer whose Event
requests never answer; no API server): a refused object's Warning Event gives up after
the budget (a pass's Events go through the same bounded batch), and says so in the log.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from konsumerator.controllers import events
from konsumerator.controllers.events import EventReporter
from konsumerator.kube.eventing import EventRecorder
from konsumerator.kube.writing import Written

# The budget this test sets, and far past it: a pass that waited this long was held.
BUDGET_S = 0.05
HELD = 10.0

MANIFEST: dict[str, Any] = {
    "apiVersion": "konsumerator.lwolf.org/v1",
    "kind": "Consumer",
    "metadata": {"name": "c", "namespace": "ns", "uid": "u1", "generation": 1},
    "spec": {},
}


class HangingWriter:
    """Every Event request waits forever for its answer."""

    def __init__(self) -> None:
        self.sent = 0

    async def create(self, **_: Any) -> Written:
        self.sent += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_hanging_event_request_does_not_hold_the_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "EVENTS_BUDGET_S", BUDGET_S, raising=False)
    writer = HangingWriter()
    reporter = EventReporter(events=EventRecorder(writer=writer))  # type: ignore[arg-type]
    with capture_logs() as logs:
        await asyncio.wait_for(
            reporter.rejected(manifest=MANIFEST, reason="InvalidSpec", message="bad"),
            timeout=HELD,
        )
    assert writer.sent == 1
    assert [e["event"] for e in logs] == ["events not recorded in time; dropped"]


async def test_after_a_batch_ran_out_of_time_the_next_passes_events_are_dropped_unsent_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What held one batch holds the next: every pass waiting the whole budget held every
    worker. The passes after one that ran out send nothing for ``EVENTS_PAUSE_S`` (one
    warning in all), and the first batch after the pause tries again."""
    monkeypatch.setattr(events, "EVENTS_BUDGET_S", BUDGET_S, raising=False)
    now = [0.0]
    writer = HangingWriter()
    reporter = EventReporter(
        events=EventRecorder(writer=writer),  # type: ignore[arg-type]
        clock=lambda: now[0],
    )

    async def rejected() -> None:
        await asyncio.wait_for(
            reporter.rejected(manifest=MANIFEST, reason="InvalidSpec", message="bad"),
            timeout=HELD,
        )

    with capture_logs() as logs:
        await rejected()
        for _ in range(3):
            now[0] += events.EVENTS_PAUSE_S / 4
            await rejected()
        assert writer.sent == 1
        now[0] += events.EVENTS_PAUSE_S
        await rejected()
    assert writer.sent == 2
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["events not recorded in time; dropped"] * 2
