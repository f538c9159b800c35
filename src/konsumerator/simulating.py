"""``konsumerator simulate``: replay a metrics timeline through the real planner.

A user checks a Consumer against a recorded incident before deploying it:
each step of the timeline advances a virtual clock, says what Prometheus
would answer, and runs exactly one reconcile pass of the operator's own
``Pipeline`` (gather, decide, act, report), wired to an in-memory cluster that
starts empty and keeps what earlier passes wrote (``Replay``). Prometheus is
consulted only when the operator would (``minSyncPeriod``), so a step's
metrics between two syncs are not seen, just as in production. A step may also
say the CPU each Deployment used (``cpu:``, the cpuUsage query's answer), which
the operator's learner reads as it reads Prometheus' (the learned rate per core).

Speed matters (a 10,000-step, 100-instance timeline should take seconds), so
the in-memory cluster keeps each Deployment's observed view and its JSON
output fragment, and only re-derives them for Deployments a pass wrote.
"""

import dataclasses
import functools
import json
import math
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal, TextIO, TypeVar

import msgspec
import yaml

from konsumerator.api import manifests
from konsumerator.api.v1 import ConsumerSpec, SpecError
from konsumerator.controllers.outcomes import Outcome
from konsumerator.controllers.reconciling import Pass, Pipeline
from konsumerator.domain import durations, keys, planning
from konsumerator.domain.adaptive import learning
from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot, carry_offsets, refresh_due
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.pods import ObservedPod, PodResize
from konsumerator.domain.status import ConsumerStatus, learning_body
from konsumerator.prom.queries import PrometheusConfig
from konsumerator.prom.results import ProviderResult

START = datetime(2026, 1, 1, tzinfo=UTC)


class InputError(ValueError):
    """A bad CONSUMER or TIMELINE file: one line naming the file and the field."""


class Step:
    """One step of a timeline: how far the clock moves, and what Prometheus answers
    (``metrics``; None: every address fails).

    The answer may be given as a function (``convert``), called on first use: only a
    pass that asks Prometheus uses it (one step in three with 10 s steps and a 30 s
    ``minSyncPeriod``), and building a snapshot (its per-partition lag) costs as much as
    a pass that does not ask.
    """

    __slots__ = ("_convert", "_metrics", "advance_s")

    def __init__(
        self,
        *,
        advance_s: float,
        metrics: MetricsSnapshot | None = None,
        convert: Callable[[], MetricsSnapshot | None] | None = None,
    ) -> None:
        self.advance_s = advance_s
        self._metrics = metrics
        self._convert = convert

    @property
    def metrics(self) -> MetricsSnapshot | None:
        if self._convert is not None:
            self._metrics, self._convert = self._convert(), None
        return self._metrics

    def __repr__(self) -> str:
        return f"Step(advance_s={self.advance_s!r}, metrics={self.metrics!r})"


# libyaml's loader is ~20x faster than the pure-Python one on long timelines.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str, *, source: str) -> Any:
    if text.lstrip().startswith("{"):
        # JSON is YAML too, and a recorded incident is usually exported as
        # JSON: parsing it as such is another ~50x faster on long timelines.
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            # Not JSON after all, or nested deeper than json's recursion goes: the YAML
            # parser says where it fails (libyaml stops at 1,000 levels).
            pass
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError:
        # The pure-Python loader (no libyaml) recurses once per level.
        raise InputError(f"{source}: not valid YAML: nested too deep") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{source}: not valid YAML{where}") from None
    except (ValueError, OverflowError) as e:
        raise _unbuildable(e, source=source) from None


def _unbuildable(error: ValueError | OverflowError, *, source: str) -> InputError:
    """A scalar the YAML resolver accepts but Python cannot build: an integer of more
    than 4,300 digits, a timestamp of month 13 (as ``api.limited_yaml`` says them)."""
    return InputError(f"{source}: not valid YAML: {error}")


def load_consumer(text: str, *, source: str) -> tuple[manifests.Source, ConsumerSpec]:
    try:
        docs = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
    except yaml.YAMLError:
        _load_yaml(text, source=source)  # raises with the line number
        raise InputError(f"{source}: not valid YAML") from None
    except RecursionError:
        raise InputError(f"{source}: not valid YAML: nested too deep") from None
    except (ValueError, OverflowError) as e:
        raise _unbuildable(e, source=source) from None
    if len(docs) != 1 or not isinstance(docs[0], Mapping):
        raise InputError(f"{source}: expected exactly one Consumer or ConfigMap document")
    try:
        return manifests.read(docs[0])
    except SpecError as e:
        raise InputError(
            f"{source}: {e.problems[0]}"
            + (
                f" (and {len(e.problems) - 1} more: {'; '.join(e.problems[1:])})"
                if len(e.problems) > 1
                else ""
            )
        ) from None


_KINDS = ("production", "consumption", "offset")
# A key as a message names it (a newline in it would split the one-line error).
_named = manifests.field_name
# The largest finite float: also bounds an int, which float() could not convert beyond it.
_MAX_FLOAT = sys.float_info.max


def _why_not_a_metric(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > sys.float_info.max:
        # An integer too large for a float (JSON numbers are unbounded): no repr of it,
        # which may run to thousands of digits.
        return f"must be a finite number, got an integer of {value.bit_length()} bits"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    return f"must not be negative, got {value!r}"


def _snapshot(raw: object, *, where: str, cpu: CpuUsage | None = None) -> MetricsSnapshot | None:
    if raw == "unavailable":
        return None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: must map partition ids to metrics, or be 'unavailable'")
    values: dict[str, dict[int, float]] = {k: {} for k in _KINDS}
    for key, sample in raw.items():
        text = str(key)
        if not text.isascii() or not text.isdigit():
            raise InputError(f"{where}.{_named(key)}: partition ids are non-negative integers")
        if not isinstance(sample, Mapping):
            raise InputError(f"{where}.{key}: must be a mapping of {', '.join(_KINDS)}")
        partition = int(text)
        for kind, value in sample.items():
            target = values.get(kind)
            if target is None:
                raise InputError(
                    f"{where}.{key}.{_named(kind)}: unknown metric (use {', '.join(_KINDS)})"
                )
            # Millions of values in a long timeline: one inline test on the hot
            # path (NaN fails the comparison, bool is not exactly int or float).
            if (type(value) is float or type(value) is int) and 0 <= value <= _MAX_FLOAT:
                target[partition] = float(value)
            else:
                raise InputError(f"{where}.{key}.{kind}: {_why_not_a_metric(value)}")
    return MetricsSnapshot(
        production=MappingProxyType(values["production"]),
        consumption=MappingProxyType(values["consumption"]),
        offset=MappingProxyType(values["offset"]),
        cpu_usage=cpu,
    )


# -- the CPU each instance used (``cpu:``) ------------------------------------------------
#
# What the cpuUsage query would answer, keyed by the Deployment (instance) name that
# simulate prints: a user reads those names in the output and has never seen a pod's.
# The replay turns each into the name Kubernetes gives that Deployment's pod, so the
# operator's own learner (``domain.adaptive.learning``) finds whose it is by name, as
# it does for a Prometheus answer: a name of no instance, NaN, a negative or a huge
# figure is judged there, exactly as the operator judges such a series.

# A pod-template-hash and a random suffix as Kubernetes spells them (the learner's
# ``HASH_ALPHABET``; any 5 letters or digits for the suffix).
_POD_HASH = "5d4f8b9c7d"
_POD_SUFFIX = "simul"
# ``cpu: unavailable``: the cpuUsage query failed at this step (the sizing queries did not).
CPU_UNAVAILABLE = "the timeline says it failed at this step (cpu: unavailable)"


def _pod_name(instance: str) -> str:
    return learning.generated_pod_name(
        deployment=instance, template_hash=_POD_HASH, suffix=_POD_SUFFIX
    )


def _cpu_usage(cores: Mapping[str, float]) -> CpuUsage:
    return CpuUsage(by_pod=MappingProxyType({_pod_name(k): v for k, v in cores.items()}))


def _why_not_cores(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"must be a number of cores, got an integer of {value.bit_length()} bits"
    return f"must be a number of cores, got {value!r}"


def _cpu(raw: object, *, where: str) -> CpuUsage:
    """A step's ``cpu:`` (already known to be given): the cpuUsage query's answer."""
    if raw == "unavailable":
        return CpuUsage(problem=CPU_UNAVAILABLE)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(
            f"{where}: must map Deployment names to the cores they used, or be 'unavailable'"
        )
    cores: dict[str, float] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InputError(f"{where}.{_named(key)}: must be a Deployment name, got {key!r}")
        # Any float, NaN and negative included: the learner judges them, as it does
        # Prometheus' answers. An integer beyond a float is no answer Prometheus gives.
        if type(value) is float or (type(value) is int and abs(value) <= _MAX_FLOAT):
            cores[key] = float(value)
        else:
            raise InputError(f"{where}.{_named(key)}: {_why_not_cores(value)}")
    return _cpu_usage(cores)


# -- the typed fast path of ``load_timeline`` ------------------------------------------
#
# A 10,000-step, 100-partition timeline is 3 million numbers: checked one by one in Python
# they cost seconds. The wire types below say in msgspec's terms what ``load_timeline``
# accepts, so a JSON timeline is decoded and checked in C in one pass. They are narrower,
# never wider: anything they refuse (an error, but also an unusual spelling such as a
# partition id "01", a number for ``advance``) goes the careful way, which accepts what it
# accepts and names the field of what it does not; so both ways give the same steps or
# the same message.

_Metric = Annotated[float, msgspec.Meta(ge=0)]  # JSON has no NaN, 1e400 is out of range


# ``gc=False``: the decoded steps and samples live as long as the replay (a million
# samples for 10,000 steps x 100 partitions) and hold only numbers and strings, so they
# can be in no reference cycle; tracked, every collection of the oldest generation
# walked them all, about a fifth of the replay's CPU.
class _SampleWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    production: msgspec.UnsetType | _Metric = msgspec.UNSET
    consumption: msgspec.UnsetType | _Metric = msgspec.UNSET
    offset: msgspec.UnsetType | _Metric = msgspec.UNSET


class _StepWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    advance: str = "0s"
    metrics: (
        dict[Annotated[int, msgspec.Meta(ge=0)], _SampleWire] | Literal["unavailable"] | None
    ) = None
    # Absent: the previous step's holds.
    cpu: msgspec.UnsetType | dict[str, float] | Literal["unavailable"] = msgspec.UNSET


class _TimelineWire(msgspec.Struct, forbid_unknown_fields=True):
    steps: list[_StepWire]


_timeline_decoder = msgspec.json.Decoder(_TimelineWire)


def _typed_snapshot(
    raw: dict[int, _SampleWire] | str | None, cpu: CpuUsage | None = None
) -> MetricsSnapshot | None:
    if isinstance(raw, str):
        return None  # "unavailable", the only string the wire type lets through
    unset = msgspec.UNSET
    production: dict[int, float] = {}
    consumption: dict[int, float] = {}
    offset: dict[int, float] = {}
    # One loop for the three (one refresh in three converts its step's samples).
    for p, s in (raw or {}).items():
        if s.production is not unset:
            production[p] = s.production
        if s.consumption is not unset:
            consumption[p] = s.consumption
        if s.offset is not unset:
            offset[p] = s.offset
    return MetricsSnapshot(
        production=MappingProxyType(production),
        consumption=MappingProxyType(consumption),
        offset=MappingProxyType(offset),
        cpu_usage=cpu,
    )


def _load_typed(text: str) -> list[Step] | None:
    """The steps of a JSON timeline in the common spelling; None: take the careful way."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        wire = _timeline_decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    advances: dict[str, float] = {}
    steps: list[Step] = []
    cpu: CpuUsage | None = None  # held until a step gives it
    for raw in wire.steps:
        advance = advances.get(raw.advance)
        if advance is None:
            try:
                duration = durations.parse_duration(raw.advance)
            except durations.DurationError:
                return None
            if duration.nanoseconds < 0:
                return None
            advances[raw.advance] = advance = duration.seconds
        if raw.cpu is not msgspec.UNSET:
            cpu = (
                CpuUsage(problem=CPU_UNAVAILABLE)
                if isinstance(raw.cpu, str)
                else _cpu_usage(raw.cpu)
            )
        steps.append(
            Step(advance_s=advance, convert=functools.partial(_typed_snapshot, raw.metrics, cpu))
        )
    return steps


_STEP_FIELDS = frozenset({"advance", "metrics", "cpu"})


def load_timeline(text: str, *, source: str) -> list[Step]:
    typed = _load_typed(text)
    return typed if typed is not None else _load_checked(text, source=source)


def _load_checked(text: str, *, source: str) -> list[Step]:
    """Any spelling ``load_timeline`` accepts, checked in Python: names the bad field."""
    doc = _load_yaml(text, source=source)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("steps"), list):
        raise InputError(f"{source}: steps: must be a list")
    # The first unknown key as written: keys may be of any type YAML has (an integer next
    # to strings), which sorted() could not order.
    unknown = [k for k in doc if k != "steps"]
    if unknown:
        raise InputError(f"{source}: {_named(unknown[0])}: unknown field")
    steps: list[Step] = []
    cpu: CpuUsage | None = None  # held until a step gives it
    # One snapshot per metrics mapping object: YAML's aliases (``&m`` ... ``*m``) repeat one
    # object, and a snapshot each expanded a 1.3 MB file of 2,000 steps naming one map of
    # 20,000 partitions into some 11 GB. A snapshot is immutable, so steps share it.
    made: dict[tuple[int, int], MetricsSnapshot | None] = {}
    for i, raw in enumerate(doc["steps"]):
        where = f"{source}: steps[{i}]"
        if not isinstance(raw, Mapping):
            raise InputError(f"{where}: must be a mapping with advance, metrics and cpu")
        extra = [k for k in raw if k not in _STEP_FIELDS]
        if extra:
            raise InputError(f"{where}.{_named(extra[0])}: unknown field")
        advance = raw.get("advance", "0s")
        try:
            duration = durations.parse_duration(str(advance))
        except durations.DurationError as e:
            raise InputError(f"{where}.advance: {e}") from None
        if duration.nanoseconds < 0:
            raise InputError(f"{where}.advance: must not be negative, got {advance}")
        if "cpu" in raw:
            cpu = _cpu(raw["cpu"], where=f"{where}.cpu")
        metrics = raw.get("metrics")
        shared = (id(metrics), id(cpu))
        if metrics is None or shared not in made:
            made[shared] = _snapshot(metrics, where=f"{where}.metrics", cpu=cpu)
        steps.append(Step(advance_s=duration.seconds, metrics=made[shared]))
    return steps


def observe(
    body: Mapping[str, Any],
    *,
    owner_uid: str,
    containers: tuple[ObservedContainer, ...] | None = None,
) -> ObservedDeployment:
    """What a watch would show of a Deployment we applied (resources as written);
    ``containers``: its pod template's, when they are known already."""
    meta = body["metadata"]
    pod = body["spec"].get("template", {}).get("spec", {})
    return ObservedDeployment(
        name=meta["name"],
        namespace=meta["namespace"],
        uid=f"uid-{meta['name']}",
        labels=MappingProxyType(dict(meta.get("labels", {}))),
        annotations=MappingProxyType(dict(meta.get("annotations", {}))),
        controller_uid=owner_uid,
        containers=containers
        if containers is not None
        else tuple(
            ObservedContainer(
                name=c["name"],
                requests=MappingProxyType(dict(c.get("resources", {}).get("requests", {}))),
                limits=MappingProxyType(dict(c.get("resources", {}).get("limits", {}))),
            )
            for c in pod.get("containers", [])
        ),
    )


def _containers_json(body: Mapping[str, Any]) -> str:
    """The containers of one Deployment in ``simulate``'s output, as JSON: the resources
    are the pods' (in-place mode: the target annotation's, else the template's)."""
    annotations = body["metadata"]["annotations"]
    target = json.loads(annotations.get(keys.TARGET_RESOURCES) or "{}")
    containers = {}
    for c in body["spec"].get("template", {}).get("spec", {}).get("containers", []):
        resources = target.get(c["name"]) or c.get("resources", {})
        containers[c["name"]] = {
            "requests": resources.get("requests", {}),
            "limits": resources.get("limits", {}),
            "env": {e["name"]: e.get("value", "") for e in c.get("env", [])},
        }
    return json.dumps(containers, separators=(",", ":"))


def _fragment(body: Mapping[str, Any], *, containers_json: str) -> str:
    """One Deployment in ``simulate``'s output: ``"name":{"partitions":...,
    "scalingStatus":...,"containers":...}``, as ``json.dumps`` with compact separators
    writes the entry (``containers_json``: ``_containers_json(body)``)."""
    annotations = body["metadata"]["annotations"]
    return (
        f"{_fragment_head(body['metadata']['name'], annotations[keys.PARTITION])}"
        f"{_json_string(annotations[keys.SCALING_STATUS])},"
        f'"containers":{containers_json}}}'
    )


# The parts of a fragment that a Deployment keeps from write to write (its name and
# partitions, its scaling status among four), encoded once: ten thousand writes of a
# replay re-annotate a hundred Deployments. Bounded.
@functools.lru_cache(maxsize=4096)
def _fragment_head(name: str, partitions: str) -> str:
    """``"name":{"partitions":[...],"scalingStatus":`` of ``_fragment``."""
    numbers = json.dumps([int(p) for p in partitions.split(",")], separators=(",", ":"))
    return f'{json.dumps(name)}:{{"partitions":{numbers},"scalingStatus":'


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    return json.dumps(text)


class MemoryPods:
    """One running pod per Deployment (``ports.PodsView``), as a kubelet would keep it.

    A Deployment whose pod template changes gets a new pod (a restart, counted in
    ``restarts``); a resize (``resize``) changes the pod's spec and running
    resources at once (counted in ``resizes``): in-place actuation, instantly.
    """

    def __init__(self) -> None:
        self._pods: dict[str, ObservedPod] = {}
        # ``by_index``'s answer for each Deployment, made when its pod changes: the same
        # object from pass to pass, which the planner's memory compares first by identity.
        self._held: dict[str, tuple[ObservedPod, ...]] = {}
        self._templates: dict[str, str] = {}
        # ``instance_pods``' last answer and the names it was for, until a pod changes.
        self._answer: tuple[list[str], Mapping[str, Sequence[ObservedPod]]] | None = None
        self.restarts = 0
        self.resizes = 0

    def started(self, *, d: ObservedDeployment, template: Mapping[str, Any]) -> None:
        """The Deployment ``d`` was applied with pod ``template``: a new pod if it changed."""
        text = json.dumps(template, sort_keys=True)
        if self._templates.get(d.name) == text:
            return
        if d.name in self._templates:
            self.restarts += 1
        self._templates[d.name] = text
        self._answer = None
        generation = (
            int(self._pods[d.name].uid.rsplit("-", 1)[-1]) + 1 if d.name in self._pods else 0
        )
        self._pods[d.name] = pod = ObservedPod(
            name=f"{d.name}-pod",
            namespace=d.namespace,
            uid=f"uid-{d.name}-pod-{generation}",
            deployment=d.name,
            spec=d.template_resources,
            actual=d.template_resources,
            running=True,
        )
        self._held[d.name] = (pod,)

    def resize(self, item: PodResize) -> None:
        for name, pod in self._pods.items():
            if pod.uid == item.uid:
                spec = {**pod.spec, **item.containers}
                self._pods[name] = resized = dataclasses.replace(pod, spec=spec, actual=spec)
                self._held[name] = (resized,)
                self._answer = None
                self.resizes += 1

    def delete(self, name: str) -> None:
        self._answer = None
        self._pods.pop(name, None)
        self._held.pop(name, None)
        self._templates.pop(name, None)

    def by_index(self, *, index: str, value: str) -> tuple[ObservedPod, ...]:
        return self._held.get(value.partition("/")[2], ())

    def instance_pods(
        self, *, deployments: Sequence[ObservedDeployment]
    ) -> Mapping[str, Sequence[ObservedPod]]:
        """``ports.InstancePodsView``: ``by_index`` of each, the last answer while no pod
        changed and the names are the same (every pass of a replay but those after a
        write: one lookup per instance per pass was a tenth of a pass)."""
        names = [d.name for d in deployments]
        if self._answer is None or self._answer[0] != names:
            held = self._held
            self._answer = (names, MappingProxyType({n: held.get(n, ()) for n in names}))
        return self._answer[1]


class MemoryCluster:
    """Deployments by name, with their observed views and output fragments cached,
    and their pods (``pods``)."""

    def __init__(self, *, owner_uid: str) -> None:
        self._owner_uid = owner_uid
        self._bodies: dict[str, dict[str, Any]] = {}
        self._observed: dict[str, ObservedDeployment] = {}
        self._fragments: dict[str, str] = {}
        self._containers: dict[str, str] = {}  # ``_containers_json`` of each body
        self._order: list[str] | None = None
        # ``deployments_json`` until a Deployment is written or deleted.
        self._json: str | None = None
        self._bytes: bytes | None = None
        self.pods = MemoryPods()

    def apply(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        old = self._bodies.get(name)
        if old is None:
            self._order = None
        self._bodies[name] = body
        self._json = self._bytes = None
        template = body["spec"].get("template", {})
        if old is not None and old["spec"].get("template", {}) == template:
            # The same pod template (most writes only re-annotate): the same containers
            # and pod. Two renderings of one Consumer's template differ, if at all, in
            # the strings the operator writes, so equal here is equal as JSON too.
            self._observed[name] = observe(
                body, owner_uid=self._owner_uid, containers=self._observed[name].containers
            )
            target = keys.TARGET_RESOURCES
            if old["metadata"]["annotations"].get(target) != body["metadata"]["annotations"].get(
                target
            ):
                self._containers[name] = _containers_json(body)
        else:
            self._observed[name] = observed = observe(body, owner_uid=self._owner_uid)
            self._containers[name] = _containers_json(body)
            self.pods.started(d=observed, template=template)
        self._fragments[name] = _fragment(body, containers_json=self._containers[name])

    def delete(self, name: str) -> None:
        self._order = self._json = self._bytes = None
        for store in (self._bodies, self._observed, self._fragments, self._containers):
            store.pop(name, None)
        self.pods.delete(name)

    def observed(self) -> list[ObservedDeployment]:
        return list(self._observed.values())

    def by_index(self, *, index: str, value: str) -> list[ObservedDeployment]:
        """``ports.DeploymentsView``: every Deployment here is the one owner's."""
        return self.observed() if value == self._owner_uid else []

    async def act(self, *, plan: planning.Plan, namespace: str, owner_uid: str) -> Outcome:
        """``ports.Actuator``: the plan's writes, which always succeed here."""
        outcome = Outcome()
        for delete in plan.deletes:
            self.delete(delete.name)
            outcome.done.append(delete)
        for apply in plan.applies:
            self.apply(apply.body)
            # Observed from the very body the planner rendered, the Deployment holds it:
            # what ``rules.repair_drift`` would find comparing the two is known (nothing).
            self._observed[apply.name].drift_memo[apply.drift_key] = ()
            outcome.done.append(apply)
        for resize in plan.resizes:
            self.pods.resize(resize)
            outcome.resized.append(resize)
        return outcome

    def deployments_json(self) -> str:
        """All Deployments in instance order; recomputed only when one was written or deleted
        (the order only when names change)."""
        if self._order is None:

            def index(name: str) -> tuple[int, str]:
                suffix = name.rsplit("-", 1)[-1]
                return (int(suffix) if suffix.isdigit() else -1, name)

            self._order = sorted(self._fragments, key=index)
        if self._json is None:
            self._json = "{" + ",".join(map(self._fragments.__getitem__, self._order)) + "}"
        return self._json

    def deployments_bytes(self) -> bytes:
        """``deployments_json`` encoded (JSON as ``json.dumps`` writes it is ASCII), once
        per change: a line of a 100-instance replay is mostly this."""
        if self._bytes is None:
            self._bytes = self.deployments_json().encode("ascii")
        return self._bytes


def _answer(step: Step) -> Callable[[], MetricsSnapshot | None]:
    """``step``'s answer, converted only if a pass asks for it."""
    return lambda: step.metrics


class TimelineMetrics:
    """The ``ports.MetricsSource`` of a replay: each step says what Prometheus would answer.

    Asked only when the operator would ask (``minSyncPeriod`` has passed), so a
    step's metrics between two syncs are not seen, as in production.
    """

    def __init__(self) -> None:
        # What Prometheus answers at this step (None: it fails), or a function giving
        # it, called only when a pass asks.
        self.answer: MetricsSnapshot | Callable[[], MetricsSnapshot | None] | None = None
        self._snapshot: MetricsSnapshot | None = None
        self._synced_at: datetime | None = None
        # The period the pipeline asked with (None: it never asked: no autoscaling).
        self._period: float | None = None

    async def get(
        self,
        *,
        key: str,
        config: PrometheusConfig,
        num_partitions: int,
        min_sync_period_seconds: float,
        now: datetime,
    ) -> ProviderResult:
        self._period = min_sync_period_seconds
        if not self.due(now):
            return ProviderResult(
                snapshot=self._snapshot, synced_at=self._synced_at, refreshed=False
            )
        answer = self.answer() if callable(self.answer) else self.answer
        if answer is None:
            return ProviderResult(
                snapshot=self._snapshot,
                synced_at=self._synced_at,
                refreshed=False,
                error="every Prometheus address failed",
            )
        self._snapshot = carry_offsets(new=answer, previous=self._snapshot)
        self._synced_at = now
        return ProviderResult(snapshot=self._snapshot, synced_at=now, refreshed=True)

    def due(self, now: datetime) -> bool:
        """Whether a pass at ``now`` would ask (and so get new metrics, or an error)."""
        return self._period is not None and refresh_due(
            synced_at=self._synced_at, now=now, min_sync_period_s=self._period
        )

    @property
    def synced_at(self) -> datetime | None:
        """When the snapshot in use was taken (None: never)."""
        return self._synced_at

    def seed(self, *, key: str, snapshot: MetricsSnapshot, synced_at: datetime) -> None:
        if self._synced_at is None or self._synced_at < synced_at:
            self._snapshot, self._synced_at = snapshot, synced_at

    def forget(self, *, key: str) -> None:
        self._snapshot = self._synced_at = None


class Silent:
    """The ``ports.Reporter`` of a replay: its output is the status and the Deployments.

    The status is the one the operator computes (``domain.status``); a replay keeps it
    as the next pass's previous status (``Replay.status``) instead of writing it.
    """

    async def status(self, *, key: str, status: ConsumerStatus) -> bool:
        return False

    async def passed(
        self,
        *,
        key: str,
        source: manifests.Source,
        plan: planning.Plan,
        outcome: Outcome,
        metrics: planning.Metrics,
        refusal: str | None,
    ) -> None:
        return None

    async def rejected(self, *, manifest: Mapping[str, Any], reason: str, message: str) -> None:
        return None


_T = TypeVar("_T")


def _at_once(coro: Coroutine[Any, Any, _T]) -> _T:
    """What ``coro`` returns, run to its end in one go: every port of a replay answers
    without waiting (no I/O, no timer), so its pass never suspends, and an event loop's
    task and scheduling cost more than some passes themselves."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: _T = done.value
        return result
    coro.close()
    raise RuntimeError("a replay pass waited for something: every port of a replay answers")


class Replay:
    """The operator's ``Pipeline`` over an in-memory cluster, a timeline and a virtual clock.

    ``step`` runs exactly one reconcile pass, as the operator would when its
    requeue or a watch event fires; the status of each pass is the previous
    status of the next, as the status subresource is for the operator.
    """

    def __init__(
        self, *, source: manifests.Source, spec: ConsumerSpec, start: datetime = START
    ) -> None:
        # A manifest without a UID (a file) still owns its Deployments.
        self.source = dataclasses.replace(source, uid=source.uid or "simulated")
        self.spec = spec
        self.start = self.now = start
        self.cluster = MemoryCluster(owner_uid=self.source.uid)
        self.metrics = TimelineMetrics()
        self.pipeline = Pipeline(
            deployments=self.cluster,
            pods=self.cluster.pods,
            provider=self.metrics,
            actuator=self.cluster,
            reporter=Silent(),
            now=lambda: self.now,
        )
        self.status = ConsumerStatus()
        # The last pass was a fixed point that no time can move (see ``quiet``).
        self._settled = False

    def step(
        self,
        *,
        advance_s: float,
        metrics: MetricsSnapshot | Callable[[], MetricsSnapshot | None] | None,
    ) -> Pass:
        """Advance the clock, set what Prometheus answers (None: it fails; a function: the
        answer, asked for only if the pass asks Prometheus), run one pass."""
        self.now += timedelta(seconds=advance_s)
        self.metrics.answer = metrics
        due = self.metrics.due(self.now)
        done = _at_once(
            self.pipeline.run(
                key=self.source.name, source=self.source, spec=self.spec, previous=self.status
            )
        )
        if due:
            # A refresh that worked and wrote nothing: the next pass sees what this one
            # saw, but for the refresh (see ``quiet``).
            self._settled = (
                not done.plan.applies
                and not done.plan.deletes
                and not done.plan.resizes
                and not self.metrics.due(self.now)
            )
        else:
            self._settled = (
                not done.plan.applies and not done.plan.deletes and done.status == self.status
            )
        self.status = done.status
        return done

    def quiet(self, *, advance_s: float) -> bool:
        """Whether a pass ``advance_s`` from now would change nothing: skip it (``skip``).

        True when the last pass was a fixed point (it did not ask Prometheus, wrote
        nothing, and reported the status it was given) and the next would not ask either.
        Then the next pass has the last one's inputs, but for the time: the same spec,
        Deployments (nothing else writes here), status and metrics (the same snapshot,
        not refreshed, no error). Time alone moves nothing: scaling timers are read only
        in passes that refresh metrics, a rule that reads the time writes, and a
        condition's transition time is stamped only when the condition changes. So its
        status and Deployments would be the last ones (a property test compares runs
        with and without skipping on random timelines, byte for byte).

        Also true after a pass that refreshed metrics and wrote nothing (no Deployment,
        no pod): the next pass (not asking either) sees the same Deployments, pods and
        snapshot, and its rules decide without the refresh what that pass decided with
        it, since a scaling decision that changes anything writes; its counters and
        conditions are that pass's, so its status is the one that pass reported. Half
        the passes of a replay with a noisy timeline are such passes.
        """
        return self._settled and not self.metrics.due(self.now + timedelta(seconds=advance_s))

    def skip(self, *, advance_s: float) -> None:
        """Advance the clock past a ``quiet`` step without its pass."""
        self.now += timedelta(seconds=advance_s)

    def close(self) -> None:
        """Nothing to release (kept for callers that close what they open)."""


# The status fields ``simulate`` prints, in order (its output format predates the
# shared pipeline and is kept byte for byte): the operator's counters but ``redundant``.
_STATUS_FIELDS = ("expected", "running", "paused", "missing", "lagging", "outdated")


def run(
    *,
    source: manifests.Source,
    spec: ConsumerSpec,
    steps: Iterable[Step],
    out: TextIO,
    start: datetime = START,
    skip_quiet: bool = True,
) -> None:
    """Replay ``steps`` and write one JSON line per step to ``out``.

    A step whose pass would change nothing (``Replay.quiet``) is not run unless
    ``skip_quiet`` is off: its line is the last one's, at its own time.
    """
    replay = Replay(source=source, spec=spec, start=start)
    write = _line_writer(out)
    learned = _LearningField() if _learns(spec) else None
    shown: tuple[ConsumerStatus | None, str] = (None, "")  # a status, and its line part
    try:
        for number, step in enumerate(steps, start=1):
            if skip_quiet and replay.quiet(advance_s=step.advance_s):
                replay.skip(advance_s=step.advance_s)
            else:
                replay.step(advance_s=step.advance_s, metrics=_answer(step))
            if shown[0] is not replay.status:  # most lines show the status of the last
                shown = (replay.status, _status_text(replay.status, learned))
            t = (replay.now - start).total_seconds()
            t_text = str(int(t)) if t == int(t) else repr(t)
            write(
                f'{{"step":{number},"t":{t_text},"status":{{{shown[1]}}},"deployments":'.encode(
                    "ascii"
                ),
                replay.cluster.deployments_bytes(),
            )
    finally:
        replay.close()
        out.flush()


def _status_text(status: ConsumerStatus, learned: "_LearningField | None") -> str:
    """What a line shows of ``status``: the counters (and ``learned``'s field)."""
    fields = status.counter_fields()
    text = ",".join(f'"{k}":{fields[k]}' for k in _STATUS_FIELDS)
    return text if learned is None else text + learned.text(status.learning)


def _learns(spec: ConsumerSpec) -> bool:
    """Whether the Consumer has a cpuUsage query: only then does a line show
    ``status.learning`` (the lines of every other Consumer stay as they were)."""
    prom = spec.autoscaler.prometheus
    return prom is not None and prom.cpu_usage is not None


class _LearningField:
    """``,"learning":...`` in a line's status: the operator's ``status.learning``
    (null: the predictor does not learn), written once per change."""

    def __init__(self) -> None:
        self._last: learning.Learned | None = None
        self._text = ',"learning":null'

    def text(self, learned: learning.Learned | None) -> str:
        if learned is not self._last:
            self._last = learned
            body = None if learned is None else learning_body(learned)
            self._text = f',"learning":{json.dumps(body, separators=(",", ":"))}'
        return self._text


def _line_writer(out: TextIO) -> Callable[[bytes, bytes], object]:
    """How ``run`` writes a line (its head, then its Deployments, then ``}\\n``): one
    write of bytes to the stream under ``out`` when it has one (a file, stdout), so the
    Deployments part is neither decoded nor encoded again (a 10,000-step replay of 100
    instances prints 600 MB)."""
    binary = getattr(out, "buffer", None)
    if binary is None:
        return lambda head, deployments: out.write((head + deployments + b"}\n").decode("ascii"))
    out.flush()  # what was written as text comes first
    return lambda head, deployments: binary.write(b"".join((head, deployments, b"}\n")))
