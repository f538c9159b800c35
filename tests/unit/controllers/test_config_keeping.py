"""The pipeline plans every pass of an unchanged Consumer with one config object.

The operator decodes a Consumer afresh from each watch event (its own status writes
included), so each pass gets a new ``ConsumerSpec`` equal to the last. The planner's
caches (``planning.KeptMemory``: each instance's last "keep") hold only for the very
same config object, so the pipeline keeps the config while the spec stays equal.

Aspects tested:

* two steady passes with equal (not identical) specs: the second decides no instance
  again (no scaling verdict, no rule chain) and reports what the first did;
* what gives a new config: a changed field, a changed CRD default (the apiserver serves
  the new default in the spec, with no new generation), the pause annotation, a Consumer
  deleted and created again under its name (a new UID); and the Recreate fallback of a
  server without pods/resize is kept as one object too;
* an equal manifest is not read (validated) again, a changed one is (its metadata
  included), and one that does not validate is rejected on every pass;
* what to query (``PrometheusConfig``) is made once while the spec stays equal, and
  anew (with the new query) when it changes.
"""

import asyncio
import copy
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from konsumerator.api import manifests
from konsumerator.api.v1 import to_config
from konsumerator.controllers import reconciling
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import (
    OWNER_INDEX,
    Pass,
    Pipeline,
    _Converted,
    owner_index,
)
from konsumerator.domain import keys, planning, rules
from konsumerator.domain.metrics import MetricsSnapshot
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.specs import ConsumerConfig, UpdateMode
from konsumerator.domain.status import ConsumerStatus
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.results import ProviderResult
from konsumerator.runtime.errors import TerminalError
from konsumerator.runtime.stores import Store
from konsumerator.simulating import START, TimelineMetrics, observe

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "consumer.yaml"
PARTITIONS = 40


class WatchedActuator:
    """Writes land in the watch cache, each a new version, as the watch delivers them."""

    def __init__(self, store: Store[ObservedDeployment], *, owner_uid: str) -> None:
        self.store = store
        self.owner_uid = owner_uid
        self.version = 0

    async def act(self, *, plan: planning.Plan, namespace: str, owner_uid: str) -> Outcome:
        outcome = Outcome()
        for apply in plan.applies:
            self.version += 1
            observed = observe(apply.body, owner_uid=self.owner_uid)
            self.store.upsert(replace(observed, resource_version=str(self.version)))
            outcome.done.append(apply)
        return outcome


class SilentReporter:
    async def passed(self, **_: Any) -> None:
        return None

    async def status(self, **_: Any) -> bool:
        return False

    async def rejected(self, **_: Any) -> None:
        return None


def manifest(*, uid: str = "uid-1", **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"] = {"name": "c", "namespace": "ns", "uid": uid, "generation": 1}
    spec = doc["spec"]
    spec.update(numPartitions=PARTITIONS, numPartitionsPerInstance=1, name="c", namespace="ns")
    spec["resourcePolicy"].pop("globalPolicy", None)
    spec["autoscaler"]["predictor"] = "naive"
    spec["autoscaler"]["updateMode"] = "Recreate"
    spec["autoscaler"]["prometheus"]["minSyncPeriod"] = "30s"
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = spec
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return doc


def snapshot() -> MetricsSnapshot:
    rates = {p: 400.0 + 10 * p for p in range(PARTITIONS)}
    return MetricsSnapshot(production=rates, consumption=dict(rates), offset={0: 50.0})


class Operator:
    """The pipeline as the operator drives it: the spec read afresh for every pass,
    a sync (a Prometheus answer, new objects, equal values) every pass."""

    def __init__(self) -> None:
        self.store: Store[ObservedDeployment] = Store(indexers={OWNER_INDEX: owner_index})
        self.metrics = TimelineMetrics()
        self.metrics.answer = snapshot
        self.clock = [START]
        self.actuator = WatchedActuator(self.store, owner_uid="uid-1")
        self.pipeline = Pipeline(
            deployments=self.store,
            provider=self.metrics,
            actuator=self.actuator,
            reporter=SilentReporter(),
            now=lambda: self.clock[0],
        )
        self.status = ConsumerStatus()

    def step(self, doc: dict[str, Any]) -> Pass:
        self.clock[0] += timedelta(seconds=31)
        source, spec = manifests.read(copy.deepcopy(doc))
        self.actuator.owner_uid = source.uid
        done = asyncio.run(
            self.pipeline.run(key="ns/c", source=source, spec=spec, previous=self.status)
        )
        self.status = done.status
        return done


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> list[ConsumerConfig]:
    """The config object each pass plans with."""
    seen: list[ConsumerConfig] = []
    real = planning.plan

    def spy(**kwargs: Any) -> planning.Plan:
        seen.append(kwargs["config"])
        return real(**kwargs)

    monkeypatch.setattr(planning, "plan", spy)
    return seen


def counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    calls = [0]
    real: Callable[..., Any] = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_steady_pass_with_an_equal_spec_decides_no_instance_again(
    monkeypatch: pytest.MonkeyPatch, configs: list[ConsumerConfig]
) -> None:
    op = Operator()
    doc = manifest()
    # Create, see them all (the full rule chain), keep each after its verdict.
    warm = [op.step(doc) for _ in range(3)]
    verdicts = counting(monkeypatch, planning, "scaling_decide")
    chain = counting(monkeypatch, rules, "decide_existing")
    steady = [op.step(doc) for _ in range(2)]
    assert (verdicts[0], chain[0]) == (0, 0)  # each instance kept as it was
    assert configs[-1] is configs[-2] is configs[-3]
    assert steady[0].plan == steady[1].plan == warm[-1].plan
    assert steady[1].plan.counters.running == PARTITIONS
    assert not steady[1].plan.applies


SAME: dict[str, Callable[[], dict[str, Any]]] = {
    "read afresh": lambda: manifest(),
    "a default spelled out": lambda: manifest(numPartitionsPerInstance=1),
}
NEW: dict[str, Callable[[], dict[str, Any]]] = {
    "a changed field": lambda: manifest(autoscaler__prometheus__ratePerCore=2500),
    "a changed CRD default served in the spec": lambda: manifest(
        autoscaler__pendingScaleDownDuration="7m"
    ),
    "a new UID under the same name": lambda: manifest(uid="uid-2"),
}


@pytest.mark.parametrize("case", list(SAME))
def test_an_equal_spec_keeps_the_config_object(case: str, configs: list[ConsumerConfig]) -> None:
    op = Operator()
    op.step(manifest())
    op.step(SAME[case]())
    assert configs[1] is configs[0]


@pytest.mark.parametrize("case", list(NEW))
def test_a_changed_spec_or_object_converts_a_new_config(
    case: str, configs: list[ConsumerConfig]
) -> None:
    op = Operator()
    op.step(manifest())
    op.step(manifest())
    op.step(NEW[case]())
    assert configs[1] is configs[0]
    assert configs[2] is not configs[1]
    _, spec = manifests.read(NEW[case]())
    assert configs[2] == to_config(spec)


def test_the_pause_annotation_converts_a_new_config_and_its_removal_another(
    configs: list[ConsumerConfig],
) -> None:
    op = Operator()
    paused = manifest()
    paused["metadata"]["annotations"] = {keys.DISABLE_AUTOSCALER: "true"}
    op.step(manifest())
    op.step(paused)
    op.step(paused)
    op.step(manifest())
    assert configs[0].paused is False
    assert configs[1].paused is True
    assert configs[2] is configs[1]
    assert configs[3] is not configs[0]
    assert configs[3].paused is False


def test_the_recreate_fallback_is_one_config_object_from_pass_to_pass(
    monkeypatch: pytest.MonkeyPatch, configs: list[ConsumerConfig]
) -> None:
    op = Operator()
    in_place = manifest(autoscaler__updateMode="InPlaceOrRecreate")
    op.step(in_place)
    monkeypatch.setattr(op.pipeline._resizes, "unsupported", lambda key: True)
    op.step(in_place)
    op.step(in_place)
    assert configs[0].update_mode is UpdateMode.IN_PLACE_OR_RECREATE
    assert configs[1].update_mode is UpdateMode.RECREATE
    assert configs[2] is configs[1]


def reconcile(op: Operator, doc: dict[str, Any]) -> None:
    op.clock[0] += timedelta(seconds=31)
    asyncio.run(
        op.pipeline.reconcile(
            key="ns/c", manifest=copy.deepcopy(doc), previous=op.status, generation=1
        )
    )


def test_an_equal_manifest_is_read_once_and_a_changed_one_again(
    monkeypatch: pytest.MonkeyPatch, configs: list[ConsumerConfig]
) -> None:
    reads = counting(monkeypatch, manifests, "read")
    op = Operator()
    paused = manifest()
    paused["metadata"]["annotations"] = {keys.DISABLE_AUTOSCALER: "true"}
    for doc, read in [
        (manifest(), 1),
        (manifest(), 0),  # decoded afresh from a watch event: equal
        (paused, 1),  # the metadata is read too
        (manifest(autoscaler__prometheus__ratePerCore=2500), 1),
        (manifest(autoscaler__prometheus__ratePerCore=2500), 0),
    ]:
        before = reads[0]
        reconcile(op, doc)
        assert reads[0] - before == read
    assert configs[1] is configs[0]
    assert configs[2].paused
    assert configs[3].autoscaling is not None
    assert configs[3].autoscaling.rate_per_core == 2500
    assert configs[4] is configs[3]


def test_a_manifest_that_does_not_validate_is_rejected_on_every_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = counting(monkeypatch, manifests, "read")
    op = Operator()
    bad = manifest(numPartitions=0)
    for _ in range(2):
        with pytest.raises(TerminalError, match="numPartitions"):
            reconcile(op, bad)
    assert reads[0] == 2
    reconcile(op, manifest())
    assert op.store.values()


def test_the_kept_config_compares_every_input_of_to_config() -> None:
    """``to_config`` reads the spec and the pause annotation, and no operator flag: a new
    input (a flag, a default from the command line) must join what ``_Converted``
    compares, or a config would outlive it. This fails when one is added."""
    assert list(inspect.signature(to_config).parameters) == ["spec", "paused"]
    assert {f.name for f in dataclasses.fields(_Converted)} >= {"uid", "spec", "paused"}


def test_what_to_query_is_made_once_per_spec_and_anew_when_the_spec_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = counting(monkeypatch, reconciling, "_prometheus_config")
    op = Operator()
    asked: list[PrometheusConfig] = []
    real = op.metrics.get

    async def spy(**kwargs: Any) -> ProviderResult:
        asked.append(kwargs["config"])
        return await real(**kwargs)

    monkeypatch.setattr(op.metrics, "get", spy)
    for _ in range(3):
        op.step(manifest())
    assert made[0] == 1
    assert asked[0] is asked[1] is asked[2]
    op.step(manifest(autoscaler__prometheus__production__query="sum by (partition) (up)"))
    assert made[0] == 2
    assert asked[3].production.query == "sum by (partition) (up)"
    assert asked[3].offset == asked[2].offset
