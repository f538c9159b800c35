"""From a planned instance to the Deployment body we server-side apply.

The body holds only the fields Konsumerator owns (the ApplyConfiguration
idea): the user's template, our labels and annotations, the controller
ownerReference, and per container the resources and the env vars below.
Fields set by other managers (a user's own annotation, a HPA's replicas if
the template leaves them out) are left alone by server-side apply.

Env vars, set on every container of the pod (sidecars too):

* ``KONSUMERATOR_PARTITION`` (or ``partitionEnvKey``): ``"3,4,5"``
* ``KONSUMERATOR_INSTANCE``, ``KONSUMERATOR_NUM_INSTANCES``,
  ``KONSUMERATOR_NUM_PARTITIONS``
* ``GOMAXPROCS``: the CPU limit rounded up to whole cores, at least 1.
* ``GOMEMLIMIT``: 80% of the memory limit in MiB, rounded down, so the Go
  runtime starts collecting before the kernel kills the pod. The Go operator
  computed it from decimal megabytes and labelled it MiB (83.9% of the limit)
  and left a stale value behind when the limit went away; here it is exact and
  removed with the limit.

A user's env var of the same name is replaced in place (keeping its
position), anything else the user set is kept.

The template hash marks OUTDATED instances. It covers the template and every
other input that shapes the pod template except resources, so a change of
``numPartitions`` that leaves an instance's partitions alone still refreshes
its ``KONSUMERATOR_NUM_PARTITIONS`` (Go left it stale). It is a SHA-256 of the
canonical JSON, printed as a positive decimal (Go's could be negative and
depended on library versions).
"""

import copy
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from konsumerator.domain import keys
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.quantities import Format
from konsumerator.domain.resources import Resources, to_strings
from konsumerator.domain.scaling import ScalingState
from konsumerator.domain.specs import ConsumerConfig, Owner

MIB = 1 << 20


def template_hash(*, config: ConsumerConfig, num_instances: int) -> str:
    payload = {
        "template": config.deployment_template,
        "partitionEnvKey": config.partition_env_key,
        "numPartitions": config.num_partitions,
        "numInstances": num_instances,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 1)


def gomaxprocs(cpu_limit_m: int | None) -> str:
    return str(max(1, -(-(cpu_limit_m or 0) // 1000)))


def gomemlimit(mem_limit_b: int | None) -> str | None:
    if not mem_limit_b:
        return None
    return f"{mem_limit_b * 8 // 10 // MIB}MiB"


def resources_body(resources: Resources, *, memory_format: Format) -> dict[str, Any]:
    """A container's ``resources`` field: requests and limits, the unset ones left out."""
    requests, limits = to_strings(resources, memory_format=memory_format)
    body: dict[str, Any] = {}
    if requests:
        body["requests"] = requests
    if limits:
        body["limits"] = limits
    return body


def target_annotation(resources: Mapping[str, Resources], *, memory_format: Format) -> str:
    """The target-resources annotation: canonical JSON, so an unchanged target is
    byte-identical and its apply a no-op (containers without resources left out)."""
    return _target_annotation(tuple(sorted(resources.items())), memory_format)


# By the sorted sizes: an in-place Consumer's writes render a few sizes again and again
# (a string, immutable, so shared safely).
@functools.lru_cache(maxsize=1024)
def _target_annotation(items: tuple[tuple[str, Resources], ...], memory_format: Format) -> str:
    body = {
        name: resources_body(r, memory_format=memory_format) for name, r in items if not r.is_empty
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def resize_patch(
    containers: Mapping[str, Resources], *, memory_format: Format = Format.DECIMAL_SI
) -> dict[str, Any]:
    """The strategic merge patch for ``pods/resize``: containers merged by name.

    Strategic, not a JSON merge patch: a JSON merge patch replaces the pod's whole
    containers list (and a container's whole resources map), which the server
    refuses ("resource requests cannot be removed"); a strategic one merges each
    container by its name and each resource by its key.
    """
    return {
        "spec": {
            "containers": [
                {"name": name, "resources": resources_body(r, memory_format=memory_format)}
                for name, r in sorted(containers.items())
            ]
        }
    }


def deployment_name(*, config: ConsumerConfig, index: int) -> str:
    return _name(config.name, index)


def _name(name: str, index: int) -> str:
    return f"{name}-{index}"


def deployment_names(*, config: ConsumerConfig, count: int) -> tuple[str, ...]:
    """``deployment_name`` of the instances ``0..count-1``: every pass claims every
    Deployment by its name."""
    return _names(config.name, count)


@functools.lru_cache(maxsize=64)
def _names(name: str, count: int) -> tuple[str, ...]:
    return tuple(_name(name, index) for index in range(count))


def deployment_indexes(*, config: ConsumerConfig, count: int) -> Mapping[str, int]:
    """The instances ``0..count-1`` by ``deployment_name`` (read only)."""
    return _indexes(config.name, count)


@functools.lru_cache(maxsize=64)
def _indexes(name: str, count: int) -> Mapping[str, int]:
    return MappingProxyType({n: i for i, n in enumerate(_names(name, count))})


# A scaling state's ``since`` is rendered on every write of its Deployment.
@functools.lru_cache(maxsize=1024)
def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _env(
    existing: Sequence[Mapping[str, Any]], values: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """The user's env with ours replaced in place, appended, or (None) removed."""
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for entry in existing:
        name = entry.get("name")
        if isinstance(name, str) and name in values:
            seen.add(name)
            value = values[name]
            if value is not None:
                result.append({"name": name, "value": value})
        else:
            result.append(dict(entry))
    for name, value in values.items():
        if name not in seen and value is not None:
            result.append({"name": name, "value": value})
    return result


def labels(*, config: ConsumerConfig, owner: Owner, partitions: tuple[int, ...]) -> dict[str, str]:
    """Our labels on an instance's Deployment (label values are capped at 63 chars)."""
    return {
        keys.LABEL_APP: config.name[:63],
        keys.LABEL_CONTROLLER: owner.name[:63],
        keys.LABEL_PARTITIONS: partitioning.range_label(partitions),
        keys.LABEL_MANAGED_BY: keys.MANAGED_BY_VALUE,
    }


def _label_pods(template_body: dict[str, Any]) -> None:
    """In-place mode: put our managed-by label on the pod template (the pod watch selects by it)."""
    pod_meta = template_body.setdefault("metadata", {})
    pod_meta["labels"] = {
        **(pod_meta.get("labels") or {}),
        keys.LABEL_MANAGED_BY: keys.MANAGED_BY_VALUE,
    }


def _fill_container(
    container: dict[str, Any],
    *,
    config: ConsumerConfig,
    index: int,
    partition_list: str,
    num_instances: int,
    res: Resources | None,
    memory_format: Format,
) -> None:
    """Set one template container's resources and our env vars, in place.

    No (or empty) resources removes the field. ``GOMAXPROCS`` is left out in
    in-place mode (it cannot follow an in-place resize).
    """
    if res is not None and not res.is_empty:
        container["resources"] = resources_body(res, memory_format=memory_format)
    else:
        container.pop("resources", None)
    limits_ = res or Resources()
    env: dict[str, str | None] = {config.partition_env_key: partition_list}
    if not config.in_place:
        env[keys.ENV_GOMAXPROCS] = gomaxprocs(limits_.cpu_lim_m)
    env[keys.ENV_GOMEMLIMIT] = gomemlimit(limits_.mem_lim_b)
    env[keys.ENV_INSTANCE] = str(index)
    env[keys.ENV_NUM_PARTITIONS] = str(config.num_partitions)
    env[keys.ENV_NUM_INSTANCES] = str(num_instances)
    container["env"] = _env(container.get("env") or [], env)


def _annotations(
    *,
    in_place: bool,
    index: int,
    partition_list: str,
    resources: Mapping[str, Resources],
    scaling: ScalingState,
    cpu_shortage_m: int,
    hash_value: str,
    memory_format: Format,
) -> dict[str, str]:
    """The Deployment's annotations: claim, generation, scaling state and targets."""
    annotations = {
        keys.PARTITION: partition_list,
        keys.CONSUMER_ID: str(index),
        keys.GENERATION: hash_value,
        keys.SCALING_STATUS: scaling.status.value,
        keys.SCALING_STATUS_CHANGE: format_time(scaling.since) if scaling.since else "",
    }
    if cpu_shortage_m > 0:
        annotations[keys.CPU_SATURATION_LEVEL] = str(cpu_shortage_m)
    if in_place:
        annotations[keys.TARGET_RESOURCES] = target_annotation(
            resources, memory_format=memory_format
        )
    if scaling.memory is not None:
        annotations[keys.SCALING_MEMORY] = adaptive_memory.encode(scaling.memory)
        annotations[keys.SCALING_DECISION] = scaling.explanation
    return annotations


def _owner_reference(owner: Owner) -> dict[str, Any]:
    """The controller reference that makes the owner's deletion collect the Deployment."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (a template), which ``copy.deepcopy`` makes
    several times slower; anything else is left to it."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def render(
    *,
    config: ConsumerConfig,
    owner: Owner,
    index: int,
    partitions: tuple[int, ...],
    num_instances: int,
    resources: Mapping[str, Resources],
    scaling: ScalingState,
    cpu_shortage_m: int,
    hash_value: str,
    memory_format: Format = Format.DECIMAL_SI,
    template_resources: Mapping[str, Resources] | None = None,
) -> dict[str, Any]:
    """The complete apply body for instance ``index``.

    ``resources`` maps container names to what they get; a container that is
    not in it (or has empty resources) gets no resources field at all.

    With ``updateMode: InPlaceOrRecreate`` (``config.in_place``) the template gets
    ``template_resources`` (what it was created or last rolled out with: changing
    it would roll out) and ``resources`` go into the target annotation, from
    which the pods are resized in place; the pod template gets our managed-by
    label (the pod watch selects by it); ``GOMAXPROCS`` is not set (it cannot
    follow an in-place resize; Go >= 1.25 follows the CPU limit by itself) and
    ``GOMEMLIMIT`` comes from the template's memory limit, the one the pod
    started with, which in-place resizes never lower (``rules.pod_target``).
    """
    in_place = config.in_place
    template = resources if template_resources is None or not in_place else template_resources
    spec: dict[str, Any] = _copy(dict(config.deployment_template))
    template_body = spec.setdefault("template", {})
    pod_spec = template_body.setdefault("spec", {})
    if in_place:
        _label_pods(template_body)
    partition_list = partitioning.format_list(partitions)
    for container in pod_spec.get("containers") or []:
        _fill_container(
            container,
            config=config,
            index=index,
            partition_list=partition_list,
            num_instances=num_instances,
            res=template.get(container.get("name", "")),
            memory_format=memory_format,
        )
    annotations = _annotations(
        in_place=in_place,
        index=index,
        partition_list=partition_list,
        resources=resources,
        scaling=scaling,
        cpu_shortage_m=cpu_shortage_m,
        hash_value=hash_value,
        memory_format=memory_format,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(config=config, index=index),
            "namespace": config.namespace,
            "labels": labels(config=config, owner=owner, partitions=partitions),
            "annotations": annotations,
            "ownerReferences": [_owner_reference(owner)],
        },
        "spec": spec,
    }
