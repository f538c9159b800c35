"""Decode API objects once, at the edge, into slim immutable projections.

Why projections: deserialisation dominates a Python operator's CPU and memory
at scale (kubespawner#423, kubernetes-client/python#1921). A full Deployment
is ~5 KB of JSON with managedFields, probes and env that the planner never
reads. We decode with msgspec into *wire* Structs that declare only the fields
we read (msgspec skips the rest without building objects for them), then
convert to the value the rest of the code uses:

- ``Deployment`` → ``konsumerator.domain.observed.ObservedDeployment``, which
  also keeps the ``spec`` as the JSON bytes the server sent (1-2 KB), decoded
  only to look for drift of the fields the operator sets; a version whose spec
  is its last version's (a status update) takes what the spec gave from that one
  (``_spec_parts``);
- custom objects (Consumers) → ``CustomObject``: metadata plus ``spec`` and
  ``status`` as plain dicts, because the spec is validated by pydantic in the
  API layer, where the error messages are written;
- ConfigMaps (guest mode) → ``ConfigMapView``: metadata plus ``data``;
- Leases → ``konsumerator.runtime.ports.LeaseRecord``.

Decode-then-convert, rather than decoding straight into the domain class,
because the wire shape (nested ``spec.template.spec.containers[].resources``)
is not the domain shape. Measured (Python 3.11, a 3.5 KB Deployment with two
containers, env, probes and managedFields): msgspec decode 16 us, convert to
``ObservedDeployment`` 16 us, ``json.loads`` alone 91 us. The convert cost is
mostly frozen-dataclass construction (about 5 us per Deployment and 2.4 us per
container); decoding into frozen msgspec Structs as the domain values would
halve the total if it ever matters.

Each ``Projector`` bundles the decoders for one kind: single objects, list
pages (items decoded in the same pass) and watch-event objects.

One object must never make others unreadable. A list page is decoded in one
pass when it can be; if that fails (an object nested deeper than the
decoder's recursion limit, an unexpected shape, or a value the conversion
refuses: any exception, as defence in depth), the page is split with
``kube.scanning`` (bounded stack, any depth) and every item decoded on its own.
An object too deep to decode is tried once more without its
``metadata.managedFields`` (``without_managed_fields``): the one part that every
kind leaves free-form, which anyone who may update an object can nest
thousands of levels deep, and which no projection reads. An item that still
fails is *quarantined*: its identity is read from its metadata alone, and the
kind's ``quarantine`` function turns it into a normal projection marked
``undecodable`` (with the reason), which the controller reports on that object
only. A kind without a quarantine function (managed Deployments, Leases:
typed by the API server, so never deep once managedFields are set aside)
drops the item with an error log instead; nothing else is affected.

Free-form objects (custom objects: a Consumer's ``deploymentTemplate`` keeps
unknown fields) are also held to ``MAX_DEPTH`` levels per top-level part, so
nothing deeper ever reaches the planner, whose rendering and encoding recurse
per level. A Deployment template nests about 15 levels, so 64 is generous.
The check is one C-level pass per level over the page's bytes, stopping past
the limit (``scanning.nesting_depth``); kinds without free-form parts skip it.
"""

from __future__ import annotations

import functools
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Generic, NamedTuple, TypeVar

import msgspec
import structlog

from konsumerator.domain.observed import ObservedContainer, ObservedDeployment, inflate
from konsumerator.kube import scanning
from konsumerator.runtime.ports import LeaseRecord

log = structlog.stdlib.get_logger(__name__)

# Levels of nesting allowed in each top-level part (metadata, spec, status) of
# a free-form object; see the module docstring.
MAX_DEPTH: Final = 64

W = TypeVar("W")
T = TypeVar("T")


def _frozen(mapping: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(mapping) if mapping else _EMPTY


# Strings up to this long are interned (see ``_shared``); longer ones are rarely repeated.
# The in-place target annotation (about 100 characters per container) is mostly the
# same across a Consumer's instances: one copy of it saves 0.25 KB per Deployment.
_INTERNED_LENGTH: Final = 512


def _shared(mapping: dict[str, str]) -> Mapping[str, str]:
    """``_frozen``, with keys and short values interned.

    10,000 Deployments repeat the same few dozen label and annotation keys, and mostly the
    same values (a Consumer's name, its template hash, a scaling status, a quantity): each
    decoded as its own string, they were a third of the watch cache. ``sys.intern`` keeps
    one copy of each while anything uses it (interned strings are freed with their last
    user), so nothing accumulates with churn.
    """
    if not mapping:
        return _EMPTY
    intern = sys.intern
    return MappingProxyType(
        {intern(k): intern(v) if len(v) <= _INTERNED_LENGTH else v for k, v in mapping.items()}
    )


# zlib level 1: the spec is read only to look for drift (once per observed version), and
# level 1 already takes 1.6 KB of JSON to 0.6 KB, at a few microseconds per event (and to
# 74 B against a sibling's spec as dictionary, ``_dictionary``).
_SPEC_COMPRESSION: Final = 1


_EMPTY: Mapping[str, str] = MappingProxyType({})


# -- wire structs (only what we read) ----------------------------------------


class OwnerReferenceWire(msgspec.Struct, rename="camel"):
    uid: str = ""
    kind: str = ""
    name: str = ""
    api_version: str = ""
    controller: bool = False


class ObjectMetaWire(msgspec.Struct, rename="camel"):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerReferenceWire] = []
    deletion_timestamp: str | None = None
    creation_timestamp: str | None = None


class ListMetaWire(
    msgspec.Struct, rename={"resource_version": "resourceVersion", "continue_": "continue"}
):
    resource_version: str = ""
    continue_: str = ""


class ListWire(msgspec.Struct, Generic[W]):
    metadata: ListMetaWire = msgspec.field(default_factory=ListMetaWire)
    items: list[W] = []


class _Resources(msgspec.Struct):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


class _Container(msgspec.Struct):
    name: str = ""
    resources: _Resources = msgspec.field(default_factory=_Resources)


class _PodSpec(msgspec.Struct):
    containers: list[_Container] = []


class _PodTemplate(msgspec.Struct):
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)


class _DeploymentSpec(msgspec.Struct):
    replicas: int | None = None
    template: _PodTemplate = msgspec.field(default_factory=_PodTemplate)


class _DeploymentStatus(msgspec.Struct, rename="camel"):
    ready_replicas: int = 0
    available_replicas: int = 0
    updated_replicas: int = 0
    observed_generation: int = 0


class DeploymentWire(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)
    # Kept raw: decoded below for what planning reads, and kept (copied out of
    # the response buffer) for drift detection.
    spec: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    status: _DeploymentStatus = msgspec.field(default_factory=_DeploymentStatus)


_deployment_spec = msgspec.json.Decoder(_DeploymentSpec)


class CustomObjectWire(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)
    spec: dict[str, Any] = {}
    status: dict[str, Any] = {}


class ConfigMapWire(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)
    data: dict[str, str] = {}


class _LeaseSpec(msgspec.Struct, rename="camel"):
    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    lease_transitions: int = 0


class LeaseWire(msgspec.Struct):
    metadata: ObjectMetaWire = msgspec.field(default_factory=ObjectMetaWire)
    spec: _LeaseSpec = msgspec.field(default_factory=_LeaseSpec)


# -- projections -------------------------------------------------------------


def controller_uid(meta: ObjectMetaWire) -> str | None:
    """UID of the ownerReference with ``controller: true`` (at most one exists)."""
    for ref in meta.owner_references:
        if ref.controller:
            return ref.uid
    return None


# Distinct container sets (names and sizes) kept shared; a Consumer's Deployments
# mostly have a few.
_SHARED_CONTAINERS: Final = 1024


@functools.lru_cache(maxsize=_SHARED_CONTAINERS)
def _shared_containers(
    key: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...],
) -> tuple[ObservedContainer, ...]:
    """One tuple of (frozen) containers per distinct set of names and sizes: built per
    Deployment, the containers, their request and limit mappings and parsed sizes were
    0.7 KB of each watched Deployment (tracemalloc, two containers)."""
    return tuple(
        ObservedContainer(
            name=sys.intern(name), requests=_shared(dict(requests)), limits=_shared(dict(limits))
        )
        for name, requests, limits in key
    )


class _SpecParts(NamedTuple):
    compressed: bytes
    dictionary: bytes
    replicas: int | None
    containers: tuple[ObservedContainer, ...]


# Deployments whose last spec is kept (``_spec_parts``); beyond it, the oldest entry goes.
_LAST_SPECS: Final = 1 << 15
_last_specs: dict[str, _SpecParts] = {}

# Owners whose compression dictionary is kept (``_dictionary``); beyond it, the oldest goes.
_DICTIONARIES: Final = 1024
# zlib looks back at most this far, so a longer dictionary would only cost memory.
_DICTIONARY_BYTES: Final = 32 * 1024
_dictionaries: dict[str, bytes] = {}


def _dictionary(owner: str, spec_json: bytes) -> bytes:
    """The dictionary the specs of ``owner``'s Deployments are compressed against: the
    first spec seen of one of them.

    A Consumer's Deployments differ in a few values (the partition in env and labels), so
    compressed against a sibling's spec one takes 74 B instead of 624 B (zlib level 1 alone,
    1,865 specs of the 10,000 bench; and in 11 us instead of 30 to decompress). A spec
    unlike the dictionary (a template changed since, an edit by hand) only compresses less
    well, never wrongly: each projection keeps a reference to its own dictionary, so an
    owner's entry pushed out here (past ``_DICTIONARIES`` owners) only means the next spec
    becomes its new dictionary.
    """
    known = _dictionaries.get(owner)
    if known is not None:
        return known
    if len(_dictionaries) >= _DICTIONARIES:
        del _dictionaries[next(iter(_dictionaries))]
    _dictionaries[owner] = chosen = spec_json[-_DICTIONARY_BYTES:]
    return chosen


def _spec_parts(*, uid: str, owner: str, spec_json: bytes) -> _SpecParts:
    """What a Deployment's spec gives its projection: the spec compressed (against its
    owner's dictionary), the replicas and the containers; taken from the object's last
    version when its spec is the same.

    Most versions of a Deployment the watch delivers change only its status (kube-
    controller-manager's and the kubelet's bookkeeping: 2,451 versions while 1,000 new
    Deployments settled); compressing and decoding the same spec again was the largest
    part of projecting one (zlib alone 36 of 157 us). The kept spec is compared whole
    (decompressed), so a different spec is always read afresh. Keyed by UID (a re-created
    Deployment starts afresh) and bounded: an entry of a deleted Deployment stays until
    ``_LAST_SPECS`` newer ones push it out, about 150 B each.
    """
    last = _last_specs.get(uid)
    if last is not None and inflate(last.compressed, zdict=last.dictionary) == spec_json:
        return last
    spec = _deployment_spec.decode(spec_json)
    dictionary = _dictionary(owner, spec_json)
    deflating = zlib.compressobj(_SPEC_COMPRESSION, zdict=dictionary)
    parts = _SpecParts(
        compressed=deflating.compress(spec_json) + deflating.flush(),
        dictionary=dictionary,
        replicas=spec.replicas,
        containers=_shared_containers(
            tuple(
                (c.name, tuple(c.resources.requests.items()), tuple(c.resources.limits.items()))
                for c in spec.template.spec.containers
            )
        ),
    )
    if uid:
        if last is None and len(_last_specs) >= _LAST_SPECS:
            del _last_specs[next(iter(_last_specs))]
        _last_specs[uid] = parts
    return parts


def to_observed_deployment(wire: DeploymentWire) -> ObservedDeployment:
    meta = wire.metadata
    owner = controller_uid(meta)
    spec = _spec_parts(uid=meta.uid, owner=owner or "", spec_json=bytes(wire.spec))
    return ObservedDeployment(
        name=meta.name,
        namespace=sys.intern(meta.namespace),
        uid=meta.uid,
        resource_version=meta.resource_version,
        labels=_shared(meta.labels),
        annotations=_shared(meta.annotations),
        controller_uid=None if owner is None else sys.intern(owner),
        containers=spec.containers,
        replicas=spec.replicas,
        ready_replicas=wire.status.ready_replicas,
        available_replicas=wire.status.available_replicas,
        updated_replicas=wire.status.updated_replicas,
        generation=meta.generation,
        observed_generation=wire.status.observed_generation,
        deleting=meta.deletion_timestamp is not None,
        spec_json=spec.compressed,
        spec_dictionary=spec.dictionary,
    )


@dataclass(frozen=True, slots=True)
class CustomObject:
    """A custom resource: identity and metadata typed, ``spec``/``status`` raw.

    ``spec`` and ``status`` are the decoded JSON; treat them as read-only.
    ``undecodable`` is set (to the reason) on a quarantined object: its
    metadata is real, ``spec`` is empty and must not be acted on, ``status``
    is what could be read of it (possibly empty).
    """

    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    deletion_timestamp: str | None = None
    spec: Mapping[str, Any] = field(default_factory=dict)
    status: Mapping[str, Any] = field(default_factory=dict)
    undecodable: str | None = None

    @property
    def deleting(self) -> bool:
        return self.deletion_timestamp is not None


def to_custom_object(wire: CustomObjectWire) -> CustomObject:
    return _custom_object(wire.metadata, spec=wire.spec, status=wire.status)


def _custom_object(
    meta: ObjectMetaWire,
    *,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    undecodable: str | None = None,
) -> CustomObject:
    return CustomObject(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        generation=meta.generation,
        labels=_frozen(meta.labels),
        annotations=_frozen(meta.annotations),
        deletion_timestamp=meta.deletion_timestamp,
        spec=spec,
        status=status,
        undecodable=undecodable,
    )


@dataclass(frozen=True, slots=True)
class ConfigMapView:
    """A ConfigMap; ``undecodable`` as in :class:`CustomObject` (``data`` empty then)."""

    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    data: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    deleting: bool = False
    undecodable: str | None = None


def to_configmap(wire: ConfigMapWire) -> ConfigMapView:
    return _configmap(wire.metadata, data=_frozen(wire.data))


def _configmap(
    meta: ObjectMetaWire, *, data: Mapping[str, str], undecodable: str | None = None
) -> ConfigMapView:
    return ConfigMapView(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        resource_version=meta.resource_version,
        labels=_frozen(meta.labels),
        annotations=_frozen(meta.annotations),
        data=data,
        deleting=meta.deletion_timestamp is not None,
        undecodable=undecodable,
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def to_lease_record(wire: LeaseWire) -> LeaseRecord:
    return LeaseRecord(
        holder_identity=wire.spec.holder_identity,
        lease_duration_seconds=wire.spec.lease_duration_seconds,
        acquire_time=_aware(wire.spec.acquire_time),
        renew_time=_aware(wire.spec.renew_time),
        lease_transitions=wire.spec.lease_transitions,
        resource_version=wire.metadata.resource_version,
    )


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A watched Lease: its identity (for the watch cache) and its election record."""

    namespace: str
    name: str
    resource_version: str
    record: LeaseRecord


def to_lease_view(wire: LeaseWire) -> LeaseView:
    return LeaseView(
        namespace=wire.metadata.namespace,
        name=wire.metadata.name,
        resource_version=wire.metadata.resource_version,
        record=to_lease_record(wire),
    )


# -- quarantine -------------------------------------------------------------


class UndecodableObject(Exception):
    """An object that cannot be projected, of a kind without a quarantine."""

    def __init__(self, *, problem: str, namespace: str = "", name: str = "") -> None:
        who = f"{namespace}/{name}" if namespace else name or "an object without a name"
        super().__init__(f"{who}: {problem}")
        self.problem = problem
        self.namespace = namespace
        self.name = name


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What can be read of an object that cannot be decoded whole."""

    metadata: ObjectMetaWire
    # The object's top-level members, undecoded (e.g. ``status`` may be fine).
    parts: Mapping[str, bytes]
    problem: str


_meta_decoder = msgspec.json.Decoder(ObjectMetaWire)
_list_meta_decoder = msgspec.json.Decoder(ListMetaWire)
_mapping_decoder = msgspec.json.Decoder(dict[str, Any])
# Identity first, then the flat maps; never managedFields (mirrors the spec's depth).
_IDENTITY = ("name", "namespace", "uid", "resourceVersion", "generation", "deletionTimestamp")
_FLAT = ("labels", "annotations", "ownerReferences", "creationTimestamp")
_DECODE_ERRORS = (RecursionError, msgspec.DecodeError, msgspec.ValidationError)


def _reassembled(fields: Mapping[str, bytes], names: tuple[str, ...]) -> bytes:
    pairs = [msgspec.json.encode(n) + b":" + fields[n] for n in names if n in fields]
    return b"{" + b",".join(pairs) + b"}"


def salvage_metadata(raw: bytes | None) -> ObjectMetaWire:
    """The metadata of an object that may not decode: whole if it can, else its
    identity (and flat maps) member by member; empty if not even that."""
    if raw is None:
        return ObjectMetaWire()
    try:
        return _meta_decoder.decode(raw)
    except _DECODE_ERRORS:
        pass
    try:
        fields = scanning.members(raw)
        for names in (_IDENTITY + _FLAT, _IDENTITY):
            try:
                return _meta_decoder.decode(_reassembled(fields, names))
            except _DECODE_ERRORS:
                continue
    except msgspec.DecodeError:
        pass
    return ObjectMetaWire()


def without_managed_fields(data: bytes) -> bytes | None:
    """``data`` (one object) without its ``metadata.managedFields``; None if it has none
    or is no object.

    managedFields is the one free-form part of every object, typed kinds included: anyone
    who may update an object may write an entry whose ``fieldsV1`` nests thousands of
    levels, and the API server stores it (3,000 levels, 26 KB, were measured). No
    projection reads it, but a decoder recurses even to skip it. Cut out with
    ``scanning`` (no recursion); the rest is copied byte for byte.
    """
    try:
        members = list(scanning.children(data))
        out: list[bytes] = []
        found = False
        for name, value in members:
            if name is None:
                return None
            if scanning.key(name) == "metadata":
                fields = [(n, v) for n, v in scanning.children(value) if n is not None]
                kept = [n + b":" + v for n, v in fields if scanning.key(n) != "managedFields"]
                found = len(kept) < len(fields)
                value = b"{" + b",".join(kept) + b"}"
            out.append(name + b":" + value)
    except msgspec.DecodeError:
        return None
    return b"{" + b",".join(out) + b"}" if found else None


def salvage_mapping(raw: bytes | None, *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A top-level part (``status``) if it is a shallow enough object, else empty."""
    if raw is None or scanning.nesting_depth(raw, limit=max_depth) > max_depth:
        return {}
    try:
        return _mapping_decoder.decode(raw)
    except _DECODE_ERRORS:
        return {}


def quarantined_custom_object(bad: Undecodable) -> CustomObject:
    return _custom_object(
        bad.metadata,
        spec={},
        status=salvage_mapping(bad.parts.get("status")),
        undecodable=bad.problem,
    )


def quarantined_configmap(bad: Undecodable) -> ConfigMapView:
    return _configmap(bad.metadata, data=_EMPTY, undecodable=bad.problem)


def _bounded(text: str, *, limit: int = 200) -> str:
    """An error message cut to ``limit`` characters: it may quote the hostile value."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _depth_problem(data: bytes, *, limit: int) -> str:
    """Which top-level parts of an object nest more than ``limit`` levels, in words."""
    deep = [
        name
        for name, value in scanning.members(data).items()
        if scanning.nesting_depth(value, limit=limit) > limit
    ]
    parts = " and ".join(deep) or "the object"
    verb = "nest" if len(deep) > 1 else "nests"
    return f"{parts} {verb} more than {limit} levels of JSON, the operator's limit"


# -- projectors --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    resource_version: str
    continue_token: str


class Projector(Generic[W, T]):
    """Decoders for one kind: object, list page, and the conversion to ``T``.

    ``quarantine`` turns what can be read of an undecodable object into a
    ``T`` marked as such; without it such an object raises (``decode``) or is
    left out with an error log (``decode_page``). ``max_depth`` bounds each
    top-level part's nesting (free-form kinds only; see the module docstring).
    """

    def __init__(
        self,
        *,
        wire: type[W],
        convert: Callable[[W], T],
        quarantine: Callable[[Undecodable], T] | None = None,
        max_depth: int | None = None,
    ) -> None:
        self._convert = convert
        self._quarantine = quarantine
        self._max_depth = max_depth
        self._item: msgspec.json.Decoder[W] = msgspec.json.Decoder(wire)
        self._page: msgspec.json.Decoder[ListWire[W]] = msgspec.json.Decoder(ListWire[wire])  # type: ignore[valid-type]

    def decode(self, data: bytes | msgspec.Raw) -> T:
        """One object; a quarantined ``T``, or ``UndecodableObject``, if it cannot be read.

        One too deep is tried once more without its ``metadata.managedFields``
        (``without_managed_fields``): nobody's edit of those may hide an object. If it
        still cannot be read, the problem reported is the whole object's."""
        decoded, problem, deep = self._attempt(data)
        if deep:
            slim = without_managed_fields(bytes(data))
            if slim is not None:
                decoded = self._attempt(slim)[0]
        if decoded is not None:
            return decoded
        return self._quarantined(bytes(data), problem)

    def _attempt(self, data: bytes | msgspec.Raw) -> tuple[T | None, str, bool]:
        """``(the projection, "", False)``, or ``(None, the problem, whether it is depth)``."""
        if self._max_depth is not None and self._too_deep(data, levels=1):
            return None, _depth_problem(bytes(data), limit=self._max_depth), True
        try:
            wire = self._item.decode(data)
        except RecursionError:
            return None, "is nested too deeply to decode", True
        except msgspec.ValidationError as e:
            return None, f"cannot be decoded: {e}", False
        try:
            return self._convert(wire), "", False
        except Exception as e:  # one object must never stop a watch
            return None, f"cannot be converted: {type(e).__name__}: {_bounded(str(e))}", False

    def decode_page(self, data: bytes) -> Page[T]:
        """A list page: in one pass if every item decodes, else item by item."""
        if not self._too_deep(data, levels=3):
            try:
                page = self._page.decode(data)
            except (RecursionError, msgspec.ValidationError):
                pass
            else:
                try:
                    items = [self._convert(item) for item in page.items]
                except Exception:  # redone item by item, each on its own
                    pass
                else:
                    return Page(
                        items=items,
                        resource_version=page.metadata.resource_version,
                        continue_token=page.metadata.continue_,
                    )
        return self._decode_items(data)

    def _decode_items(self, data: bytes) -> Page[T]:
        parts = scanning.members(data)
        meta = _list_meta_decoder.decode(parts.get("metadata", b"{}"))
        items: list[T] = []
        for raw in scanning.elements(parts.get("items", b"[]")):
            try:
                items.append(self.decode(raw))
            except UndecodableObject as e:
                log.error("object left out of the cache: cannot be decoded", error=str(e))
        return Page(
            items=items, resource_version=meta.resource_version, continue_token=meta.continue_
        )

    def _too_deep(self, data: bytes | msgspec.Raw, *, levels: int) -> bool:
        """Whether a part ``levels`` below ``data``'s root nests more than ``max_depth``
        (1 for an object's parts, 3 for those of a list page's items)."""
        if self._max_depth is None:
            return False
        limit = self._max_depth + levels
        return scanning.nesting_depth(bytes(data), limit=limit) > limit

    def _quarantined(self, data: bytes, problem: str) -> T:
        try:
            parts = scanning.members(data)
        except msgspec.DecodeError:
            parts = {}
        meta = salvage_metadata(parts.get("metadata"))
        if self._quarantine is None or not meta.name:
            raise UndecodableObject(problem=problem, namespace=meta.namespace, name=meta.name)
        log.warning(
            "object quarantined: cannot be decoded",
            namespace=meta.namespace,
            name=meta.name,
            problem=problem,
        )
        return self._quarantine(Undecodable(metadata=meta, parts=parts, problem=problem))


DEPLOYMENT_PROJECTOR: Projector[DeploymentWire, ObservedDeployment] = Projector(
    wire=DeploymentWire, convert=to_observed_deployment
)
CUSTOM_OBJECT_PROJECTOR: Projector[CustomObjectWire, CustomObject] = Projector(
    wire=CustomObjectWire,
    convert=to_custom_object,
    quarantine=quarantined_custom_object,
    max_depth=MAX_DEPTH,
)
CONFIGMAP_PROJECTOR: Projector[ConfigMapWire, ConfigMapView] = Projector(
    wire=ConfigMapWire, convert=to_configmap, quarantine=quarantined_configmap
)
LEASE_PROJECTOR: Projector[LeaseWire, LeaseRecord] = Projector(
    wire=LeaseWire, convert=to_lease_record
)
LEASE_VIEW_PROJECTOR: Projector[LeaseWire, LeaseView] = Projector(
    wire=LeaseWire, convert=to_lease_view
)
