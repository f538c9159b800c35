"""Checks of ``spec.deploymentTemplate`` that the apiserver would otherwise make too late.

The template is copied into every instance's Deployment. Anything in it that
the apiserver refuses for a Deployment would be found only when the first
instance is written, then fail on every instance and every retry
(``WriteFailed`` forever). What can be known from the template alone is
checked here instead, so the spec is refused once, with the field named:

* it is plain JSON: mapping keys are strings, values are strings, numbers
  (integers within int64, finite floats), booleans, null, lists or mappings.
  Guest-mode YAML can hold more (``1: x`` has an integer key, an unquoted
  ``2024-01-01`` is a date, ``&a [*a]`` is a list that contains itself, a
  "billion laughs" document expands exponentially); none of that can be sent
  to the apiserver, and hashing it used to crash the reconcile;
* ``replicas``, when given, is an int32 of at least 0;
* every container (at most 64) has a unique DNS-1123 label as its name;
* ``template.spec.restartPolicy``, when given, is ``Always`` (the only value
  a Deployment accepts);
* the selector is not empty and selects the template's labels (what apps/v1
  validation calls "selector does not match template labels").

The CRD makes the same checks at admission (schema and CEL), so in CRD mode
these only catch Consumers stored before the rules existed. Every function
returns problems as ``(path, message)`` with paths relative to the template.
"""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Far beyond any real Deployment (the apiserver caps a request at 3 MiB of
# JSON); bounds the work an aliased YAML document can cause.
MAX_NODES = 100_000
MAX_DEPTH = 64
# The CRD's bound (it keeps the cost of its CEL rules bounded).
MAX_CONTAINERS = 64

_INT64 = range(-(2**63), 2**63)
_INT32_NON_NEGATIVE = range(0, 2**31)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

Problem = tuple[str, str]


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key.isprintable():
        # Named by its repr: a newline in a key would split the one-line message.
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def json_problems(value: object) -> list[Problem]:
    """The first thing in ``value`` that is not plain JSON, if any.

    Stops at the first problem: a document that is not JSON is refused as a
    whole, and walking the rest of a hostile one is what must be avoided.
    """
    budget = [MAX_NODES]
    stack: set[int] = set()

    def walk(node: object, path: str, depth: int) -> Problem | None:
        budget[0] -= 1
        if budget[0] < 0:
            return path or "deploymentTemplate", f"has more than {MAX_NODES} values"
        if depth > MAX_DEPTH:
            return path, f"is nested more than {MAX_DEPTH} levels deep"
        if node is None or isinstance(node, bool | str):
            return None
        if isinstance(node, int):
            return None if node in _INT64 else (path, "is an integer outside the int64 range")
        if isinstance(node, float):
            return None if math.isfinite(node) else (path, "is not a finite number")
        if not isinstance(node, Mapping | list):
            kind = type(node).__name__
            return path, f"is a {kind}, not a string, number, boolean, list or mapping (quote it)"
        if id(node) in stack:
            return path, "contains itself (a recursive YAML alias)"
        stack.add(id(node))
        try:
            if isinstance(node, Mapping):
                for key, item in node.items():
                    if not isinstance(key, str):
                        return path or ".", f"has the key {key!r}, which is not a string (quote it)"
                    found = walk(item, _join(path, key), depth + 1)
                    if found is not None:
                        return found
            else:
                for i, item in enumerate(node):
                    found = walk(item, _join(path, i), depth + 1)
                    if found is not None:
                        return found
        finally:
            stack.discard(id(node))
        return None

    found = walk(value, "", 0)
    return [] if found is None else [found]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def container_problems(template: Mapping[str, Any]) -> list[Problem]:
    pod = _mapping(_mapping(template.get("template")).get("spec"))
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        return [("template.spec.containers", "must list at least one container")]
    if len(containers) > MAX_CONTAINERS:
        return [("template.spec.containers", f"must not list more than {MAX_CONTAINERS}")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        path = f"template.spec.containers[{i}].name"
        name = container.get("name") if isinstance(container, Mapping) else None
        if not name:
            problems.append((path, "is required"))
        elif not isinstance(name, str) or len(name) > 63 or not _DNS_LABEL.match(name):
            problems.append((path, f"{name!r} is not a DNS-1123 label (a-z, 0-9, '-', <= 63)"))
        elif name in seen:
            problems.append((path, f"{name!r} is used by another container"))
        else:
            seen.add(name)
    policy = pod.get("restartPolicy")
    if policy is not None and policy != "Always":
        problems.append(
            ("template.spec.restartPolicy", f"is {policy!r}; a Deployment only allows Always")
        )
    replicas = template.get("replicas")
    if replicas is not None and (
        isinstance(replicas, bool)
        or not isinstance(replicas, int)
        or replicas not in _INT32_NON_NEGATIVE
    ):
        problems.append(("replicas", "must be an integer from 0 to 2147483647"))
    return problems


def _expression_problems(
    expressions: object, labels: Mapping[str, Any], path: str
) -> list[Problem]:
    if not isinstance(expressions, list):
        return [(path, "must be a list")]
    problems: list[Problem] = []
    for i, expression in enumerate(expressions):
        at = f"{path}[{i}]"
        e = _mapping(expression)
        key, operator, values = e.get("key"), e.get("operator"), e.get("values") or []
        if not isinstance(key, str) or not key:
            problems.append((f"{at}.key", "is required"))
            continue
        if operator not in _OPERATORS:
            problems.append((f"{at}.operator", f"must be one of {', '.join(_OPERATORS)}"))
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append((f"{at}.values", "must be a list of strings"))
            continue
        if operator in ("In", "NotIn") and not values:
            problems.append((f"{at}.values", f"must not be empty for {operator}"))
            continue
        if operator in ("Exists", "DoesNotExist") and values:
            problems.append((f"{at}.values", f"must be empty for {operator}"))
            continue
        present = key in labels
        matches = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not matches:
            problems.append((at, f"does not select the template's labels ({key} {operator})"))
    return problems


def selector_problems(template: Mapping[str, Any]) -> list[Problem]:
    """The selector must not be empty and must select ``template.metadata.labels``."""
    selector = template.get("selector")
    if not isinstance(selector, Mapping):
        return [("selector", "is required")]
    labels = _mapping(_mapping(_mapping(template.get("template")).get("metadata")).get("labels"))
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return [
            ("selector", "must not be empty (a Deployment needs matchLabels or matchExpressions)")
        ]
    problems: list[Problem] = []
    if not isinstance(match_labels, Mapping):
        problems.append(("selector.matchLabels", "must be a mapping"))
    else:
        for key, value in match_labels.items():
            if labels.get(key) != value:
                problems.append(
                    (
                        f"selector.matchLabels.{key}",
                        f"is {value!r} but template.metadata.labels.{key} is "
                        f"{labels.get(key)!r}: the selector must select the pods",
                    )
                )
    problems.extend(_expression_problems(expressions, labels, "selector.matchExpressions"))
    return problems


def problems(template: Mapping[str, Any]) -> Sequence[Problem]:
    """Every problem of a template; JSON shape first (the rest needs it)."""
    shape = json_problems(template)
    if shape:
        return shape
    return [*container_problems(template), *selector_problems(template)]
