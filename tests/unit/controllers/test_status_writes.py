"""Status writes when the watch cache lags the operator's own write.

Aspects tested (the controllers with an in-memory cache, a scripted pipeline, the mode's
reporter and a writer that records; no API server):
- CRD mode: a pass that computes the status the cache still shows is written anyway when
  the previous pass wrote something else (the cache has not seen it yet), and builds on
  the status last written, not on the stale cache;
- guest mode, the same with status annotations;
- a status equal to what the object holds is not written again; a re-created object (new
  UID) starts from its own status;
- a status somebody else wrote after ours (the cache shows a later resourceVersion) is
  compared with, and overwritten by the next pass, in both modes; once the cache shows our
  own write, a pass computing the same status writes nothing;
- a Consumer's status write names, as its precondition, the resourceVersion the cache
  shows, or the one our own last write produced while the cache has not shown it (so the
  operator's own writes never make its next write conflict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from konsumerator.api import manifests
from konsumerator.controllers.configmap import ConfigMapController
from konsumerator.controllers.consumer import ConsumerController
from konsumerator.controllers.reporting import CrdReporter, GuestReporter
from konsumerator.domain import keys
from konsumerator.domain.status import ConsumerStatus
from konsumerator.kube.projections import ConfigMapView, CustomObject
from konsumerator.kube.writing import Written
from konsumerator.runtime.controlling import Result
from konsumerator.runtime.stores import ObjectKey, Store

KEY = ObjectKey("ns", "c")
S0 = {"expected": 2, "outdated": 0}
S1 = {"expected": 2, "outdated": 1}


class ScriptedPipeline:
    """Each reconcile reports the next status of the script through the mode's reporter,
    and records its ``previous`` (as a status body)."""

    def __init__(self, reporter: CrdReporter | GuestReporter, *statuses: dict[str, Any]) -> None:
        self.reporter = reporter
        self.statuses = list(statuses)
        self.previous: list[Mapping[str, Any]] = []

    def forget(self, key: str) -> None:
        pass

    async def reconcile(
        self,
        *,
        key: str,
        manifest: Mapping[str, Any],
        previous: ConsumerStatus,
        generation: int,
        undecodable: str | None = None,
        state_budget_bytes: int = 0,
    ) -> Result:
        self.previous.append(previous.to_body())
        await self.reporter.status(key=key, status=ConsumerStatus.from_body(self.statuses.pop(0)))
        return Result()


class NoEvents:
    async def record(self, *, obj: object, type: str, reason: str, message: str) -> None:
        raise AssertionError("a status write records no Event")


NO_EVENTS = NoEvents()


class RecordingWriter:
    """Records each write; the n-th write produces resourceVersion ``100 + n``."""

    def __init__(self) -> None:
        self.statuses: list[Mapping[str, Any]] = []
        self.preconditions: list[str | None] = []
        self.annotations: list[Mapping[str, str]] = []

    def _written(self, kw: Mapping[str, Any]) -> Written:
        version = str(100 + len(self.statuses) + len(self.annotations))
        return Written(
            namespace=kw["namespace"],
            name=kw["name"],
            uid="u1",
            resource_version=version,
            generation=1,
        )

    async def apply_status(self, **kw: Any) -> Written:
        self.statuses.append(kw["status"])
        self.preconditions.append(kw.get("resource_version"))
        return self._written(kw)

    async def apply(self, **kw: Any) -> Written:
        self.annotations.append(kw["body"]["metadata"]["annotations"])
        return self._written(kw)


def consumer(uid: str = "u1", status: Mapping[str, Any] = S0, rv: str = "1") -> CustomObject:
    return CustomObject(
        namespace="ns", name="c", uid=uid, resource_version=rv, generation=1, status=status
    )


def configmap(annotations: Mapping[str, str], rv: str = "1") -> ConfigMapView:
    return ConfigMapView(
        namespace="ns",
        name="c",
        uid="u1",
        resource_version=rv,
        annotations={keys.MANAGED: "true", **annotations},
    )


def crd_mode(
    *script: dict[str, Any],
) -> tuple[Store[CustomObject], RecordingWriter, ScriptedPipeline, ConsumerController]:
    """A CRD-mode controller over a cache holding the Consumer with status S0; its pipeline
    reports ``script``, one status per pass."""
    cache: Store[CustomObject] = Store()
    cache.upsert(consumer())
    writer = RecordingWriter()
    reporter = CrdReporter(events=NO_EVENTS, writer=writer)  # type: ignore[arg-type]
    pipeline = ScriptedPipeline(reporter, *script)
    controller = ConsumerController(
        consumers=cache,
        pipeline=pipeline,  # type: ignore[arg-type]
        reporter=reporter,
    )
    return cache, writer, pipeline, controller


def guest_mode(
    *script: dict[str, Any],
) -> tuple[Store[ConfigMapView], RecordingWriter, ScriptedPipeline, ConfigMapController]:
    """The same in guest mode: a ConfigMap whose status annotations say S0."""
    cache: Store[ConfigMapView] = Store()
    cache.upsert(configmap(manifests.status_annotations(S0)))
    writer = RecordingWriter()
    reporter = GuestReporter(events=NO_EVENTS, writer=writer)  # type: ignore[arg-type]
    pipeline = ScriptedPipeline(reporter, *script)
    controller = ConfigMapController(
        configmaps=cache,
        pipeline=pipeline,  # type: ignore[arg-type]
        reporter=reporter,
    )
    return cache, writer, pipeline, controller


async def test_a_consumer_status_the_cache_still_shows_is_written_after_a_different_one() -> None:
    # The cache keeps showing S0: the watch has not delivered our writes yet.
    _, writer, pipeline, controller = crd_mode(S1, S0, S0)
    for _ in range(3):
        await controller.reconcile(KEY)
    assert writer.statuses == [S1, S0]  # the third pass found S0 already written
    assert pipeline.previous == [S0, S1, S0]


async def test_a_recreated_consumer_starts_from_its_own_status() -> None:
    cache, writer, pipeline, controller = crd_mode(S1, S1)
    await controller.reconcile(KEY)
    cache.upsert(consumer(uid="u2", status={}, rv="9"))
    await controller.reconcile(KEY)
    assert writer.statuses == [S1, S1]
    assert pipeline.previous == [S0, {}]


async def test_a_guest_status_the_cache_still_shows_is_written_after_a_different_one() -> None:
    _, writer, pipeline, controller = guest_mode(S1, S0, S0)
    for _ in range(3):
        await controller.reconcile(KEY)
    outdated = f"{keys.STATUS_PREFIX}outdated"
    assert [a[outdated] for a in writer.annotations] == ["1", "0"]
    assert [p["outdated"] for p in pipeline.previous] == [0, 1, 0]


async def test_a_consumer_status_written_by_somebody_else_after_ours_is_overwritten() -> None:
    cache, writer, pipeline, controller = crd_mode(S1, S1, S1)
    await controller.reconcile(KEY)  # writes S1 as version 101
    cache.upsert(consumer(status=S1, rv="101"))  # the cache sees our write
    await controller.reconcile(KEY)  # nothing to do
    cache.upsert(consumer(status={"expected": 7}, rv="102"))  # somebody else's
    await controller.reconcile(KEY)
    assert writer.statuses == [S1, S1]
    assert pipeline.previous == [S0, S1, {"expected": 7}]


AUDITED = {"type": "Audited", "status": "True", "reason": "PolicyPassed", "message": "ok"}
READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "message": ""}


@pytest.mark.parametrize(
    ("held", "written"),
    [
        ([READY, AUDITED], []),
        ([AUDITED, READY], []),
        ([AUDITED], [[READY]]),
        ([{**READY, "status": "False"}, AUDITED], [[READY]]),
    ],
    ids=["after ours", "before ours", "ours missing", "ours differs"],
)
async def test_a_condition_of_another_writers_type_makes_no_status_write(
    held: list[dict[str, Any]], written: list[list[dict[str, Any]]]
) -> None:
    # Our apply never removes another manager's condition: counted as a difference, it
    # made every pass a status write.
    cache, writer, _, controller = crd_mode({**S0, "conditions": [READY]})
    cache.upsert(consumer(status={**S0, "conditions": held}, rv="5"))
    await controller.reconcile(KEY)
    assert [s["conditions"] for s in writer.statuses] == written


async def test_a_consumer_status_rewritten_before_the_cache_saw_ours_is_overwritten() -> None:
    cache, writer, pipeline, controller = crd_mode(S1, S1)
    await controller.reconcile(KEY)  # writes S1 as version 101
    # The watch jumps past our write (a relist): only the later, foreign, status is seen.
    cache.upsert(consumer(status={}, rv="150"))
    await controller.reconcile(KEY)
    assert writer.statuses == [S1, S1]
    assert pipeline.previous == [S0, {}]


async def test_a_guest_status_written_by_somebody_else_after_ours_is_overwritten() -> None:
    cache, writer, pipeline, controller = guest_mode(S1, S1, S1)
    await controller.reconcile(KEY)  # writes S1 as version 101
    cache.upsert(configmap(manifests.status_annotations(S1), rv="101"))
    await controller.reconcile(KEY)  # nothing to do
    cache.upsert(
        configmap(
            {**manifests.status_annotations(S1), f"{keys.STATUS_PREFIX}outdated": "5"}, rv="102"
        )
    )
    await controller.reconcile(KEY)
    outdated = f"{keys.STATUS_PREFIX}outdated"
    assert [a[outdated] for a in writer.annotations] == ["1", "1"]
    assert [p["outdated"] for p in pipeline.previous] == [0, 1, 5]


@pytest.mark.parametrize(
    ("cached_after_first", "expected"),
    [
        (None, ["1", "101"]),  # the cache still shows version 1: our write's version
        (consumer(status=S1, rv="101"), ["1", "101"]),  # the cache shows our write
        (consumer(status={}, rv="150"), ["1", "150"]),  # a later version (a relist)
        (consumer(uid="u2", status={}, rv="9"), ["1", "9"]),  # re-created: its own
    ],
    ids=["cache-lags", "cache-caught-up", "cache-ahead", "recreated"],
)
async def test_a_consumer_status_write_names_the_version_its_pass_built_on(
    cached_after_first: CustomObject | None, expected: list[str]
) -> None:
    cache, writer, _, controller = crd_mode(S1, S0)
    await controller.reconcile(KEY)  # writes S1 over version 1, producing 101
    if cached_after_first is not None:
        cache.upsert(cached_after_first)
    await controller.reconcile(KEY)
    assert writer.preconditions == expected


def test_the_watch_predicate_drops_only_the_events_of_our_own_last_status_write() -> None:
    """A status-only event showing what our last write sent (it can come back before the
    write's answer) or the version it produced is ours; anything else is somebody else's
    edit, which must wake the object so the next pass restores it."""
    from konsumerator.controllers.statuses import WrittenStatus
    from konsumerator.runtime.stores import ObjectKey

    statuses = WrittenStatus()
    key = ObjectKey(namespace="ns", name="c")
    sent, edited = {"running": 2}, {"running": 7}
    assert not statuses.is_ours(key=key, resource_version="10", shown=sent)
    statuses.sending(key=key, shown=sent)
    # The write's own event, before its answer arrived.
    assert statuses.is_ours(key=key, resource_version="11", shown=sent)
    statuses.wrote(key=key, uid="u", base="10", resource_version="11", status=sent)
    assert statuses.is_ours(key=key, resource_version="11", shown=sent)
    # The cache catching up drops the remembered status, not what identifies our write.
    assert statuses.written(key=key, uid="u", resource_version="11") is None
    assert statuses.is_ours(key=key, resource_version="11", shown=sent)
    assert not statuses.is_ours(key=key, resource_version="12", shown=edited)
    statuses.forget(key)
    assert not statuses.is_ours(key=key, resource_version="11", shown=sent)
