"""A status the API server refuses is said in a Warning Event, not only in the log.

A guest ConfigMap whose own annotations fill the 256 KiB they share leaves no room for
the status annotations: every status write is refused (422), and before, the pass's
exception reached only the operator's log, retried with backoff, while the object said
nothing (the apiserver side is tests/cluster/test_hostile_guest_full_annotations.py).

Aspects tested (the operator's pipeline; a reporter whose status write raises, table-
driven over the error): a 422 gives one ``StatusRefused`` Warning Event carrying the
API server's message, and the error is raised on (the controller retries it); other
failures of the status write (unreachable, conflict) give no such Event; an Event that
fails too does not hide the refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from support.pipelines import NOW, manifest

from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import STATUS_REFUSED, Pipeline
from konsumerator.domain.status import ConsumerStatus
from konsumerator.prom.results import ProviderResult
from konsumerator.runtime import errors

TOO_LONG = (
    'ConfigMap "full" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes'
)


class Refusing:
    """A reporter whose status write raises ``error``; its Events recorded (or failing)."""

    def __init__(self, *, error: Exception, events_fail: bool = False) -> None:
        self.error = error
        self.events_fail = events_fail
        self.rejections: list[tuple[str, str]] = []

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        raise self.error

    async def passed(self, **_: Any) -> None:
        pass

    async def rejected(self, *, manifest: Mapping[str, Any], reason: str, message: str) -> None:
        if self.events_fail:
            raise errors.Unreachable(message="events refused too")
        self.rejections.append((reason, message))


KEY = "default/orders"


class Ports:
    """The cache, metrics source and actuator of a pass with nothing to do but report."""

    async def get(self, **_: Any) -> ProviderResult:
        return ProviderResult(snapshot=None, synced_at=None, refreshed=False)

    def seed(self, **_: Any) -> None:
        pass

    def forget(self, **_: Any) -> None:
        pass

    def by_index(self, *, index: str, value: str) -> list[Any]:
        return []

    async def act(self, **_: Any) -> Outcome:
        return Outcome()


def _reconcile(reporter: Refusing) -> None:
    ports = Ports()
    pipeline = Pipeline(
        deployments=ports,
        provider=ports,  # type: ignore[arg-type]
        actuator=ports,
        reporter=reporter,
        now=lambda: NOW,
    )
    asyncio.run(
        pipeline.reconcile(
            key=KEY, manifest=manifest(partitions=2), previous=ConsumerStatus(), generation=3
        )
    )


def test_a_refused_status_is_said_in_one_warning_event_and_raised_on() -> None:
    refusal = errors.Invalid(message=TOO_LONG)
    reporter = Refusing(error=refusal)
    with pytest.raises(errors.Invalid):
        _reconcile(reporter)
    assert reporter.rejections == [
        (STATUS_REFUSED, f"the API server refused the status: {TOO_LONG}")
    ]


OTHER_FAILURES = {
    "unreachable": errors.Unreachable(message="connection refused"),
    "conflict": errors.Conflict(status=409, reason="Conflict", message="changed"),
}


@pytest.mark.parametrize("error", OTHER_FAILURES.values(), ids=OTHER_FAILURES.keys())
def test_other_status_write_failures_are_no_refusal(error: Exception) -> None:
    reporter = Refusing(error=error)
    with pytest.raises(type(error)):
        _reconcile(reporter)
    assert reporter.rejections == []


def test_an_event_that_fails_too_does_not_hide_the_refusal() -> None:
    reporter = Refusing(error=errors.Invalid(message=TOO_LONG), events_fail=True)
    with pytest.raises(errors.Invalid) as raised:
        _reconcile(reporter)
    assert any("events refused too" in note for note in raised.value.__notes__)
