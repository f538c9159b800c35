"""Which of the fields the operator sets in a Deployment someone else has changed.

The operator server-side applies a body that holds only the fields it owns
(``rendering.render``). A hand edit of one of them (an instance's
``KONSUMERATOR_PARTITION``, so partitions are consumed twice; its image; its
resources in manual mode) must be reverted, so the planner compares the body
it would apply with the Deployment it observes, *projected onto that body*:
only fields we set are compared, and everything the API server or other
managers added (defaults, a human's annotation, a sidecar) is ignored.

The rules mirror what the API server does to an applied body, so that a pass
with nothing to repair finds nothing (a false difference would be a write on
every pass):

* mappings: every key we set must match; other keys are not ours.
* lists of mappings (containers and env by ``name``, ports, volumes...): each
  of our items must match a distinct observed item, the one of the same
  ``name`` when it has one. Order is not compared: other managers' items sit
  in between, and the order of an associative list is not ours to keep.
* lists of scalars (``command``, ``args``) are atomic: compared whole.
* an empty value we set (null, ``""``, ``[]``, ``{}``) matches anything: the
  server drops it and may default it (``imagePullPolicy: ""`` comes back
  ``IfNotPresent``).
* ``0`` and ``false`` match an equal value or a missing one (omitted as empty).
* quantities (under ``requests``, ``limits``, ``overhead``, and ``sizeLimit``)
  compare by value: the server canonicalises them ("1000m" is "1").
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

from konsumerator.domain.quantities import QuantityError, parse_quantity

# Keys whose values are maps of quantities, and keys that are quantities.
_QUANTITY_MAPS: Final = frozenset({"requests", "limits", "overhead"})
_QUANTITY_KEYS: Final = frozenset({"sizeLimit"})
# A difference report names at most this many fields.
MAX_REPORTED: Final = 10


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


def differences(*, intent: Any, observed: Any, path: str) -> list[str]:
    """The paths under ``path`` where ``observed`` does not hold what ``intent`` sets.

    ``observed`` may be ``MISSING``. Empty means nothing we set was changed.
    """
    found: list[str] = []
    _walk(intent, observed, path, quantity=False, found=found)
    return found[:MAX_REPORTED]


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and not value)


def _walk(intent: Any, observed: Any, path: str, *, quantity: bool, found: list[str]) -> None:
    if _is_empty(intent):
        return
    if isinstance(intent, Mapping):
        _walk_mapping(intent, observed, path, quantity=quantity, found=found)
    elif isinstance(intent, list):
        _walk_list(intent, observed, path, found=found)
    elif not _scalar_matches(intent, observed, quantity=quantity):
        found.append(path)


def _walk_mapping(
    intent: Mapping[str, Any], observed: Any, path: str, *, quantity: bool, found: list[str]
) -> None:
    held: Mapping[str, Any] = observed if isinstance(observed, Mapping) else {}
    if observed is not MISSING and not isinstance(observed, Mapping):
        found.append(path)
        return
    for key, value in intent.items():
        _walk(
            value,
            held.get(key, MISSING),
            f"{path}.{key}",
            quantity=quantity or key in _QUANTITY_MAPS or key in _QUANTITY_KEYS,
            found=found,
        )


def _walk_list(intent: list[Any], observed: Any, path: str, *, found: list[str]) -> None:
    if not isinstance(observed, list):
        found.append(path)
        return
    if not all(isinstance(item, Mapping) for item in intent):
        if intent != observed:
            found.append(path)
        return
    used: set[int] = set()
    for position, item in enumerate(intent):
        name = item.get("name")
        label = name if isinstance(name, str) else str(position)
        candidates = [
            j
            for j, held in enumerate(observed)
            if j not in used
            and isinstance(held, Mapping)
            and (name is None or held.get("name") == name)
        ]
        match = next((j for j in candidates if not _differs(item, observed[j])), None)
        if match is not None:
            used.add(match)
        elif name is not None and candidates:
            # The item of that name is there but changed: say which field.
            used.add(candidates[0])
            _walk(item, observed[candidates[0]], f"{path}[{label}]", quantity=False, found=found)
        else:
            found.append(f"{path}[{label}]")


def _differs(intent: Any, observed: Any) -> bool:
    probe: list[str] = []
    _walk(intent, observed, "", quantity=False, found=probe)
    return bool(probe)


def _scalar_matches(intent: Any, observed: Any, *, quantity: bool) -> bool:
    if isinstance(intent, bool) or isinstance(observed, bool):
        return intent is observed or (intent is False and observed is MISSING)
    if isinstance(intent, int | float) and not intent:
        return observed is MISSING or _same_number(intent, observed)
    if isinstance(intent, int | float):
        return _same_number(intent, observed)
    if intent == observed:
        return True
    return quantity and _same_quantity(intent, observed)


def _same_number(intent: int | float, observed: Any) -> bool:
    return (
        isinstance(observed, int | float)
        and not isinstance(observed, bool)
        and (intent == observed)
    )


def _same_quantity(intent: Any, observed: Any) -> bool:
    if not isinstance(intent, str | int | float) or not isinstance(observed, str | int | float):
        return False
    try:
        return parse_quantity(intent) == parse_quantity(observed)
    except QuantityError:
        return False


def describe(paths: Sequence[str]) -> str:
    """A short, human list of changed fields."""
    return ", ".join(paths) if paths else "nothing"
