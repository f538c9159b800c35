"""Reading a Consumer from the two places it can live.

* CRD mode: a ``konsumerator.lwolf.org/v1`` ``Consumer`` object.
* Guest mode: a ConfigMap annotated ``konsumerator.lwolf.org/managed`` whose
  data key ``consumer.yaml`` holds the ConsumerSpec as YAML. The Go operator
  took "the first" data key, which in Go's randomised map order meant any of
  them; here it is ``consumer.yaml``, or the only key if there is just one.
  Guest-mode specs never pass the apiserver's schema, so they get the same
  validation here and the same field-naming messages; the YAML is parsed
  within bounds (``limited_yaml``). A ConfigMap whose ``managed`` annotation
  is false (``"false"``, ``"no"``, ``"off"``, ``"0"``) is not managed.

Status in guest mode lives in ``konsumerator.lwolf.org/status.*``
annotations on the ConfigMap (the Go operator's keys, so its readers work).
"""

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from konsumerator.api import limited_yaml
from konsumerator.api.v1 import ConsumerSpec, SpecError, parse_spec
from konsumerator.domain import keys, status


@dataclass(frozen=True, slots=True)
class Source:
    """The object a spec came from: it owns the Deployments and carries status."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str
    generation: int
    annotations: Mapping[str, str]

    @property
    def guest(self) -> bool:
        return self.kind == "ConfigMap"


def field_name(key: object) -> str:
    """A key as a message names it: as written, or by its repr when it is not a printable
    string (a newline in a key would split the one-line error)."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


def _kind_of(value: object) -> str:
    """What a YAML value is, for a message (not its repr, which may run long)."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def _text(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError([f"metadata.{key}: must be a string, got {_kind_of(value)}"])
    return value


def _generation(meta: Mapping[str, Any]) -> int:
    value = meta.get("generation")
    if value is None:
        return 0
    # bool is an int to Python, and a date, a float or a string is not a generation.
    if type(value) is not int or value < 0:
        raise SpecError(
            [f"metadata.generation: must be a non-negative integer, got {_kind_of(value)}"]
        )
    return value


def _annotations(meta: Mapping[str, Any]) -> dict[str, str]:
    annotations = meta.get("annotations")
    if annotations is None:
        return {}
    if not isinstance(annotations, Mapping):
        raise SpecError(
            [f"metadata.annotations: must be a mapping of strings, got {_kind_of(annotations)}"]
        )
    out: dict[str, str] = {}
    for key, value in annotations.items():
        if not isinstance(key, str):
            raise SpecError([f"metadata.annotations.{field_name(key)}: keys must be strings"])
        # The apiserver takes only strings; a scalar written unquoted in a file (managed:
        # true) reads as its text, as it always has here. A mapping or list is a mistake.
        if isinstance(value, Mapping | list) or value is None:
            raise SpecError(
                [f"metadata.annotations.{field_name(key)}: must be a string, got {_kind_of(value)}"]
            )
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _metadata(obj: Mapping[str, Any]) -> tuple[str, str, str, int, dict[str, str]]:
    """The identity fields, each checked for its type: a file is the user's YAML, where
    any of them can be any value (a date, a list), not an object the apiserver checked."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise SpecError(["metadata.name: is required"])
    return (
        _text(meta, "name"),
        _text(meta, "namespace"),
        _text(meta, "uid"),
        _generation(meta),
        _annotations(meta),
    )


# Values of the managed annotation that mean "not managed" (compared case-insensitively).
# The Go operator managed a ConfigMap whatever the value, ``"false"`` included.
UNMANAGED_VALUES = frozenset({"false", "no", "off", "0"})


def is_managed(annotations: Mapping[str, str]) -> bool:
    """Whether a guest ConfigMap is ours: annotated ``managed``, with a value that is not false."""
    value = annotations.get(keys.MANAGED)
    return value is not None and value.strip().lower() not in UNMANAGED_VALUES


def guest_spec_text(data: object) -> str:
    """The ConsumerSpec's YAML in a guest ConfigMap's ``data`` (any YAML value in a file)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError([f"data: must be a mapping of strings, got {_kind_of(data)}"])
    if keys.GUEST_SPEC_KEY in data:
        key, text = keys.GUEST_SPEC_KEY, data[keys.GUEST_SPEC_KEY]
    elif len(data) == 1:
        key, text = next(iter(data.items()))
    else:
        raise SpecError([f"data.{keys.GUEST_SPEC_KEY}: is required (the ConsumerSpec as YAML)"])
    if not isinstance(text, str):
        raise SpecError(
            [
                f"data.{field_name(key)}: must be a string (the ConsumerSpec as YAML),"
                f" got {_kind_of(text)}"
            ]
        )
    return text


def identify(obj: Mapping[str, Any]) -> Source:
    """Who an object is, before (and whether or not) its spec validates."""
    name, namespace, uid, generation, annotations = _metadata(obj)
    return Source(
        api_version=str(obj.get("apiVersion") or ""),
        kind=str(obj.get("kind")),
        name=name,
        namespace=namespace,
        uid=uid,
        generation=generation,
        annotations=annotations,
    )


# A label value: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _check_name(name: str) -> None:
    # The owner's name is the value of the Deployments' `controller` label.
    # Object names may have 253 characters; cutting one to 63 could end it on
    # a "." or "-", which no label value may, and then no Deployment is valid.
    if len(name) > 63 or not _LABEL_VALUE.match(name):
        raise SpecError(
            [
                "metadata.name: must be at most 63 characters, alphanumeric at both ends:"
                " it is the value of the Deployments' controller label"
            ]
        )


def read(obj: Mapping[str, Any]) -> tuple[Source, ConsumerSpec]:
    """Validate a Consumer or a guest-mode ConfigMap; :class:`SpecError` names each bad field."""
    source = identify(obj)
    _check_name(source.name)
    kind, api_version, namespace = source.kind, source.api_version, source.namespace
    annotations = source.annotations
    if kind == keys.KIND and api_version == keys.API_VERSION:
        spec = parse_spec(obj.get("spec"), field_prefix="spec")
    elif kind == "ConfigMap" and api_version == "v1":
        if not is_managed(annotations):
            raise SpecError([f"metadata.annotations: {keys.MANAGED} is missing or false"])
        text = guest_spec_text(obj.get("data"))
        try:
            raw = limited_yaml.load(text)
        except limited_yaml.Rejected as e:
            where = f"data.{keys.GUEST_SPEC_KEY}" + (f".{e.path}" if e.path else "")
            raise SpecError([f"{where}: {e}"]) from None
        spec = parse_spec(raw, field_prefix=f"data.{keys.GUEST_SPEC_KEY}")
    else:
        raise SpecError(
            [
                f"kind: expected {keys.API_VERSION} {keys.KIND} or v1 ConfigMap,"
                f" got {field_name(api_version)} {field_name(kind)}"
            ]
        )
    if not namespace:
        # A manifest not yet applied (simulate) lives where its spec says.
        namespace = spec.namespace
        source = dataclasses.replace(source, namespace=namespace)
    if spec.namespace != namespace:
        raise SpecError(
            [
                f"spec.namespace: is {spec.namespace!r} but the {kind} lives in {namespace!r};"
                " Deployments must be in the owner's namespace"
            ]
        )
    return source, spec


# Guest-mode status annotations: the format lives with the status model.
STATUS_COUNTERS = status.STATUS_COUNTERS
LAST_SYNC_TIME = status.LAST_SYNC_TIME
LAST_SYNC_STATE = status.LAST_SYNC_STATE
status_annotations = status.status_annotations
status_from_annotations = status.status_from_annotations

# The API server's limit on all annotations of one object together, keys and values
# (apimachinery's TotalAnnotationSizeLimitB): a ConfigMap over it cannot be written at all.
ANNOTATIONS_LIMIT_BYTES = 256 * 1024
# What last-sync-state may take at most, leaving most of the limit to the ConfigMap's
# other annotations (kubectl's last-applied-configuration holds the whole spec).
GUEST_STATE_BUDGET_BYTES = 64 * 1024
# An upper bound of every other status annotation: six counters, the sync time and three
# conditions whose messages have at most 1 024 characters, each escaped by json.dumps into
# at most 12 bytes (a surrogate pair).
GUEST_STATUS_RESERVE_BYTES = 48 * 1024


def annotations_size(annotations: Mapping[str, str]) -> int:
    """Bytes the API server counts against ``ANNOTATIONS_LIMIT_BYTES``."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())


def guest_state_budget(annotations: Mapping[str, str]) -> int:
    """Room for last-sync-state on a ConfigMap with these annotations (may be < 0: none).

    The annotations that are not ours are someone else's and stay; ours are rewritten.
    """
    others = {k: v for k, v in annotations.items() if not k.startswith(keys.STATUS_PREFIX)}
    room = ANNOTATIONS_LIMIT_BYTES - annotations_size(others) - GUEST_STATUS_RESERVE_BYTES
    return min(GUEST_STATE_BUDGET_BYTES, room)
