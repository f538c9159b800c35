"""The slice of a live Deployment that planning needs, decoded once at the edge.

The kube layer projects watch events into these values; the planner never sees
API objects or dicts. Everything planning derives from annotations and
resources is derived here, once per watch event, instead of on every pass:
with hundreds of instances per Consumer, re-parsing quantities and
timestamps on each reconcile dominated planning time.

Quantities are kept as the strings the apiserver returned (for display) and
as exact integers (for comparison), so "1000m" and "1" never look different.
"""

import functools
import json
import sys
import zlib
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import msgspec

from konsumerator.domain import keys
from konsumerator.domain import partitions as partitioning
from konsumerator.domain.adaptive import memory as adaptive_memory
from konsumerator.domain.numbers import INT32_MAX, parse_decimal
from konsumerator.domain.rendering import parse_time
from konsumerator.domain.resources import Resources, from_strings
from konsumerator.domain.scaling import ScalingState, ScalingStatus


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


# What we write is a few hundred characters per container; a template has at most a
# few dozen containers.
MAX_TARGET_CHARS = 64 * 1024

# Shared derived values (see ``parse_target`` and ``ObservedDeployment``): the
# Deployments of a Consumer mostly carry the same few sizes, so one read-only mapping
# per distinct value is kept for all of them, in bounded caches (what is evicted is
# only rebuilt). Targets longer than ``_SHARED_TARGET_CHARS`` (not what the operator
# writes) are parsed per Deployment, so the cache's keys stay small.
_SHARED: Final = 1024
_SHARED_TARGET_CHARS: Final = 4096


def parse_target(text: str | None) -> Mapping[str, Resources] | None:
    """The target-resources annotation, or None when absent or unreadable.

    Anyone who may edit the Deployment may write anything here: a value that is
    not the shape we write reads as absent (the instance then counts as having
    its template's size, and the next in-place decision writes it afresh).
    Nor may it cost more than reading what we write: beyond ``MAX_TARGET_CHARS``,
    or nested past the decoder's recursion limit (a JSON nesting bomb fits in a
    few KB), it is unreadable too, never an exception (which would hide the
    Deployment from the cache, and with it the instance).

    The result is read-only and shared by every Deployment with the same text: parsed
    per Deployment, the in-place default's target was 1.2 KB of each watched
    Deployment (its decoded keys, ``Resources`` and mapping).
    """
    if text is not None and len(text) <= _SHARED_TARGET_CHARS:
        return _shared_target(text)
    return _parse_target(text)


@functools.lru_cache(maxsize=_SHARED)
def _shared_target(text: str) -> Mapping[str, Resources] | None:
    return _parse_target(text)


def _parse_target(text: str | None) -> Mapping[str, Resources] | None:
    if not text or len(text) > MAX_TARGET_CHARS:
        return None
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            return None
        result: dict[str, Resources] = {}
        for name, entry in raw.items():
            requests, limits = entry.get("requests", {}), entry.get("limits", {})
            if not all(
                isinstance(m, dict) and all(isinstance(v, str) for v in m.values())
                for m in (requests, limits)
            ):
                return None
            result[sys.intern(str(name))] = from_strings(requests=requests, limits=limits)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None
    return MappingProxyType(result)


@functools.lru_cache(maxsize=_SHARED)
def _shared_sizes(items: tuple[tuple[str, Resources], ...]) -> Mapping[str, Resources]:
    """One read-only name -> size mapping per distinct set (a template's sizes, or
    what an instance has been given): two per Deployment, 200 B each, before."""
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class ObservedContainer:
    name: str
    requests: Mapping[str, str] = field(default_factory=_empty)
    limits: Mapping[str, str] = field(default_factory=_empty)
    resources: Resources = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "resources", from_strings(requests=self.requests, limits=self.limits)
        )


# Weakly referenced by the adaptive keep's certificates (``adaptive.certificate``).
@dataclass(frozen=True, slots=True, weakref_slot=True)
class ObservedDeployment:
    name: str
    namespace: str
    uid: str = ""
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=_empty)
    annotations: Mapping[str, str] = field(default_factory=_empty)
    # UID of the ownerReference with controller=true, if any.
    controller_uid: str | None = None
    containers: tuple[ObservedContainer, ...] = ()
    replicas: int | None = None
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    generation: int = 0
    observed_generation: int = 0
    deleting: bool = False
    # The Deployment's ``spec`` as the API server returned it (JSON), kept
    # encoded and decoded only to look for drift (``domain.drift``), at most
    # once per observed version. None where it is not known (simulations).
    # The watch keeps it zlib-compressed (``kube.projections``: 1.6 KB -> 0.6 KB
    # per Deployment); ``spec()`` reads either form (JSON always starts "{").
    spec_json: bytes | None = None

    # Derived from the annotations above (see module docstring).
    instance: int | None = field(init=False)
    partitions: tuple[int, ...] | None = field(init=False)
    scaling: ScalingState = field(init=False)
    saturation_m: int = field(init=False)
    paused: bool = field(init=False)
    # What the template's containers have, and the in-place target annotation
    # (None when absent or unreadable). ``current`` is the size the instance
    # has been given: the target when there is one, else the template's.
    template_resources: Mapping[str, Resources] = field(init=False)
    target: Mapping[str, Resources] | None = field(init=False)
    current: Mapping[str, Resources] = field(init=False)
    # What the planner found comparing this version with its intent, by
    # intent: a cache that lives and dies with this value, not part of it.
    drift_memo: dict[Hashable, tuple[str, ...]] = field(
        init=False, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        a = self.annotations
        status = ScalingStatus.parse(a.get(keys.SCALING_STATUS)) or ScalingStatus.RUNNING
        template = _shared_sizes(tuple((c.name, c.resources) for c in self.containers))
        target = parse_target(a.get(keys.TARGET_RESOURCES))
        # One ``object.__setattr__`` per derived field, spelled out: this runs for every
        # watch event (and every write of ``konsumerator simulate``), where building a
        # mapping of them first cost a fifth of it.
        put = object.__setattr__
        # Anyone who may edit the Deployment may write anything here: an unreadable value
        # is absent (never an exception, see numbers). The Go operator parses the id as
        # int32.
        put(self, "instance", parse_decimal(a.get(keys.CONSUMER_ID, ""), maximum=INT32_MAX))
        put(self, "partitions", partitioning.parse_list(a.get(keys.PARTITION, "")))
        put(
            self,
            "scaling",
            ScalingState(
                status=status,
                since=parse_time(a.get(keys.SCALING_STATUS_CHANGE)),
                memory=adaptive_memory.decode(a.get(keys.SCALING_MEMORY)),
                explanation=a.get(keys.SCALING_DECISION, ""),
            ),
        )
        put(self, "saturation_m", parse_decimal(a.get(keys.CPU_SATURATION_LEVEL, "")) or 0)
        put(self, "paused", keys.DISABLE_AUTOSCALER in a)
        put(self, "template_resources", template)
        put(self, "target", target)
        # Only containers the template has: a target for a container that is gone is stale.
        put(
            self,
            "current",
            template
            if target is None
            else _shared_sizes(tuple((n, target.get(n, r)) for n, r in template.items())),
        )
        put(self, "drift_memo", {})

    def spec(self) -> Mapping[str, Any] | None:
        """The decoded ``spec``, or None when it was not observed."""
        if self.spec_json is None:
            return None
        data = self.spec_json
        decoded = msgspec.json.decode(data if data[:1] == b"{" else zlib.decompress(data))
        return decoded if isinstance(decoded, Mapping) else {}
