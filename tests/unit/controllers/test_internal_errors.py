"""A pass that raises what nobody classified says so on its object.

Before, such a pass (a bug, or an input nobody foresaw) only reached the controller's
log: the object kept its last status, ``Ready=True`` included, while nothing was
reconciled. Now the pipeline reports it before the exception goes on to the
controller (which logs its traceback and retries with backoff).

Aspects tested (the operator's pipeline with a fault injected in one port at a time; a
reporter that records; no API server, the apiserver side is
tests/cluster/test_hostile_internal_error.py), table-driven over where the fault is:

* reading the spec, fetching metrics, acting: ``Ready=False, reason=InternalError``, the
  message names the exception's type and carries no traceback or exception text, one
  Warning Event with the same reason, the exception itself raised (so the controller
  retries it with backoff), and the Consumer's failed-reconcile counter moves;
* the classified failures keep their own handling: an API error (the controller's
  retry), an invalid spec (``InvalidSpec``) report no ``InternalError``;
* a status write that fails too does not hide the pass's own exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.pipelines import NOW, manifest

from konsumerator.api import manifests
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import INTERNAL_ERROR, Pipeline
from konsumerator.domain.status import ConsumerStatus
from konsumerator.obs.consumers import ConsumerMetrics
from konsumerator.prom.results import ProviderResult
from konsumerator.runtime import errors
from konsumerator.runtime.errors import TerminalError

KEY = "default/orders"


class Recorder:
    def __init__(self, *, status_fails: bool = False) -> None:
        self.statuses: list[ConsumerStatus] = []
        self.rejections: list[tuple[str, str]] = []
        self.status_fails = status_fails

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        if self.status_fails:
            raise errors.Unreachable(message="connection refused")
        self.statuses.append(status)
        return True

    async def passed(self, **_: Any) -> None:
        pass

    async def rejected(self, *, manifest: Mapping[str, Any], reason: str, message: str) -> None:
        self.rejections.append((reason, message))


class Faulty:
    """Every port, each raising ``fault`` where ``where`` says."""

    def __init__(self, *, where: str, fault: BaseException) -> None:
        self.where, self.fault = where, fault

    def _maybe(self, here: str) -> None:
        if self.where == here:
            raise self.fault

    async def get(self, **_: Any) -> ProviderResult:
        self._maybe("metrics")
        return ProviderResult(snapshot=None, synced_at=None, refreshed=False)

    def seed(self, **_: Any) -> None:
        pass

    def forget(self, **_: Any) -> None:
        pass

    def by_index(self, *, index: str, value: str) -> list[Any]:
        self._maybe("cache")
        return []

    async def act(self, **_: Any) -> Outcome:
        self._maybe("act")
        return Outcome()


def _consumer() -> dict[str, Any]:
    doc = manifest(partitions=2)
    doc["spec"]["autoscaler"] = {
        "mode": "prometheus",
        "prometheus": {
            "address": ["http://prometheus:9090"],
            "offset": {"query": "lag", "partitionLabel": "partition"},
            "production": {"query": "prod", "partitionLabel": "partition"},
            "consumption": {"query": "cons", "partitionLabel": "partition"},
            "ratePerCore": 1000,
            "ramPerCore": "1Gi",
            "recoveryTime": "30m",
        },
    }
    return doc


def _pipeline(
    faulty: Faulty, reporter: Recorder, gauges: ConsumerMetrics | None = None
) -> Pipeline:
    return Pipeline(
        deployments=faulty,
        provider=faulty,  # type: ignore[arg-type]
        actuator=faulty,
        reporter=reporter,
        now=lambda: NOW,
        metrics=gauges,
    )


def _reconcile(pipeline: Pipeline, doc: Mapping[str, Any]) -> None:
    asyncio.run(pipeline.reconcile(key=KEY, manifest=doc, previous=ConsumerStatus(), generation=3))


def _ready(status: ConsumerStatus) -> Any:
    (ready,) = [c for c in status.conditions if c.type == "Ready"]
    return ready


FAULTS = {
    "the metrics source": ("metrics", ZeroDivisionError("float division by zero")),
    "the cache": ("cache", KeyError("secret-looking key")),
    "acting": ("act", RecursionError("maximum recursion depth exceeded")),
}


@pytest.mark.parametrize(("where", "fault"), FAULTS.values(), ids=FAULTS.keys())
def test_a_pass_that_raises_reports_an_internal_error_and_raises_it_on(
    where: str, fault: Exception
) -> None:
    reporter = Recorder()
    gauges = ConsumerMetrics(registry=CollectorRegistry())
    with pytest.raises(type(fault)):
        _reconcile(_pipeline(Faulty(where=where, fault=fault), reporter, gauges), _consumer())
    (status,) = reporter.statuses
    ready = _ready(status)
    assert (ready.status, ready.reason) == ("False", INTERNAL_ERROR)
    assert type(fault).__name__ in ready.message
    assert str(fault.args[0]) not in ready.message
    assert "Traceback" not in ready.message
    assert status.observed_generation == 3
    assert reporter.rejections == [(INTERNAL_ERROR, ready.message)]
    assert gauges.reconcile_errors.labels(KEY)._value.get() == 1


def test_a_spec_that_fails_to_read_with_an_unforeseen_error_reports_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: Mapping[str, Any]) -> Any:
        raise TypeError("unhashable type: 'dict'")

    monkeypatch.setattr(manifests, "read", broken)
    reporter = Recorder()
    with pytest.raises(TypeError):
        _reconcile(_pipeline(Faulty(where="", fault=Exception()), reporter), _consumer())
    assert _ready(reporter.statuses[0]).reason == INTERNAL_ERROR


CLASSIFIED = {
    "an API error": ("act", errors.ServerError(status=500, message="etcd"), errors.ServerError),
    "an invalid spec": ("spec", None, TerminalError),
}


@pytest.mark.parametrize(("where", "fault", "raised"), CLASSIFIED.values(), ids=CLASSIFIED.keys())
def test_classified_failures_are_no_internal_error(
    where: str, fault: Exception | None, raised: type[Exception]
) -> None:
    doc = _consumer()
    if where == "spec":
        doc["spec"]["numPartitions"] = 0
    reporter = Recorder()
    with pytest.raises(raised):
        _reconcile(_pipeline(Faulty(where=where, fault=fault or Exception()), reporter), doc)
    reasons = [_ready(s).reason for s in reporter.statuses] + [r for r, _ in reporter.rejections]
    assert INTERNAL_ERROR not in reasons


def test_a_failing_status_write_does_not_hide_the_passs_own_exception() -> None:
    reporter = Recorder(status_fails=True)
    with pytest.raises(ZeroDivisionError) as raised:
        _reconcile(
            _pipeline(Faulty(where="metrics", fault=ZeroDivisionError()), reporter), _consumer()
        )
    assert any("Unreachable" in note for note in raised.value.__notes__)
