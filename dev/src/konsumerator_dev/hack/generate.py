"""Write every file derived from the Consumer CRD, so none of them can drift from it.

    make generate                              # write the files
    konsumerator-dev hack generate --check     # exit 1 and name the stale files (tests do the same)

Derived from ``src/konsumerator/api/crd.yaml`` (the contract; printed by ``konsumerator crd``):

* ``deploy/crds/consumers.yaml`` and ``charts/konsumerator/files/consumers.yaml``: byte copies
  (kustomize and Helm cannot reach a file outside their root);
* ``deploy/grafana/konsumerator.json``: the dashboard, from :mod:`konsumerator_dev.hack.dashboard`;
* ``docs/consumer-reference.md``: every field of spec and status, with type, constraints and
  description, from the OpenAPI schema. Fields whose schema has no description take it from
  ``EXTRA`` below; a test fails if an ``EXTRA`` key names no field, so it cannot go stale
  either. (Better still: move the text into the CRD's descriptions and delete it here.)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import yaml

from konsumerator_dev import clikit
from konsumerator_dev.hack import dashboard
from konsumerator_dev.paths import REPO as ROOT

CRD = ROOT / "src" / "konsumerator" / "api" / "crd.yaml"
CRD_COPIES = (
    ROOT / "deploy" / "crds" / "consumers.yaml",
    ROOT / "charts" / "konsumerator" / "files" / "consumers.yaml",
)
REFERENCE = ROOT / "docs" / "consumer-reference.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "konsumerator.json"

_DURATION_HINT = "(ns|us|µs|μs|ms|s|m|h)"
_QUANTITY_HINT = "[KMGTPE]i"

#: Descriptions for schema nodes that have none in the CRD, keyed by field path.
EXTRA: Mapping[str, str] = {
    "spec": "What to run and how to size it. In guest mode the same object is the YAML under "
    "the ConfigMap's `consumer.yaml` key.",
    "spec.autoscaler": "How instances are sized.",
    "spec.autoscaler.prometheus": "Where the lag metrics come from and how they turn into "
    'resources. Required when `mode` is `"prometheus"`.',
    "spec.autoscaler.prometheus.address[]": "One Prometheus base URL (`http://` or `https://`).",
    "spec.autoscaler.prometheus.offset": "Instant query for the messages behind (lag in "
    "messages) of every partition.",
    "spec.autoscaler.prometheus.production": "Instant query for the production rate "
    "(messages per second) of every partition.",
    "spec.autoscaler.prometheus.consumption": "Instant query for the consumption rate "
    "(messages per second) of every partition.",
    "spec.autoscaler.prometheus.*.query": "PromQL returning one series per partition.",
    "spec.autoscaler.prometheus.*.partitionLabel": "Label of the result that holds the "
    "partition number.",
    "spec.deploymentTemplate.replicas": "Pods per instance (default 1). Every pod of an "
    "instance consumes the same partitions.",
    "spec.deploymentTemplate.selector": "Label selector of the pods, shared by all instances.",
    "spec.deploymentTemplate.template": "The pod template (apps/v1 PodTemplateSpec).",
    "spec.deploymentTemplate.template.spec": "The PodSpec. Konsumerator sets the resources "
    "of containers that have a policy and injects its env vars into every container.",
    "spec.deploymentTemplate.template.spec.containers": "Containers of the pod.",
    "spec.deploymentTemplate.template.spec.containers[]": "A container (any core/v1 "
    "Container field).",
    "spec.deploymentTemplate.template.spec.containers[].name": "Container name; matched "
    "against `containerPolicies[].containerName`.",
    "spec.resourcePolicy": "Bounds for the computed resources.",
    "spec.resourcePolicy.globalPolicy": "A pool shared by all instances of this Consumer.",
    "spec.resourcePolicy.globalPolicy.maxAllowed": "Upper bound of the sum of requests of all "
    "instances. A resource left out is not limited.",
    "spec.resourcePolicy.containerPolicies": "Per-container bounds. A container without a "
    "policy is not bounded, and gets no resources from the fallback (no metrics).",
    "spec.resourcePolicy.containerPolicies[]": "Bounds of one container.",
    "spec.resourcePolicy.containerPolicies[].containerName": "The container the policy applies to.",
    "spec.resourcePolicy.containerPolicies[].mode": "Accepted for compatibility with the Go "
    "operator; not acted upon (neither operator implements it).",
    "spec.resourcePolicy.containerPolicies[].minAllowed": "Lower bound of the container's "
    "resources; also what it gets while autoscaling is paused and, with "
    "`fallbackStrategy: min`, without metrics. A missing bound is unbounded.",
    "spec.resourcePolicy.containerPolicies[].maxAllowed": "Upper bound of the container's "
    "resources; what it gets at `criticalLag` and, with `fallbackStrategy: max`, without "
    "metrics. A missing bound is unbounded.",
    "spec.resourcePolicy.*.cpu": "CPU quantity (e.g. `500m`, `2`).",
    "spec.resourcePolicy.*.memory": "Memory quantity in whole bytes (e.g. `256Mi`, `1G`).",
    "status": "Written by the operator (server-side apply on the status subresource).",
    "status.observedGeneration": "The `metadata.generation` this status describes.",
    "status.expected": "Instances that should exist: ceil(numPartitions / "
    "numPartitionsPerInstance).",
    "status.running": "Instances whose Deployment exists and is not paused. It counts "
    "Deployments, not pods: replicas and pod readiness are not considered, so a template "
    "with `replicas: 0` still counts every instance (as the Go operator did).",
    "status.paused": "Instances that exist with autoscaling paused (the Consumer's or the "
    "Deployment's `konsumerator.lwolf.org/disable-autoscaler` annotation).",
    "status.missing": "Instances with no Deployment yet.",
    "status.lagging": "Instances (running or paused) whose largest partition lag reached "
    "`tolerableLag`.",
    "status.outdated": "Instances whose Deployment does not match the current spec (being "
    "rolled out).",
    "status.redundant": "Deployments owned by this Consumer that no instance needs (being "
    "deleted).",
    "status.lastSyncTime": "When the metrics were last fetched from Prometheus.",
    "status.lastSyncState": "The last metrics, by partition number; a restarted operator "
    "starts from them instead of querying every Consumer at once. Kept only while it fits "
    "192 KiB (about 2 700 idle or 2 200 busy partitions; guest mode: 64 KiB, about 750 busy "
    "partitions, less if the "
    "ConfigMap's other annotations need the room); above that it is left out and the "
    "`MetricsAvailable` message says so.",
    "status.lastSyncState.*": "Metrics of one partition (absent values are 0).",
    "status.lastSyncState.*.productionRate": "Messages per second produced.",
    "status.lastSyncState.*.consumptionRate": "Messages per second consumed.",
    "status.lastSyncState.*.messageBehind": "Messages behind (lag in messages).",
    "status.conditions": "`Ready`, `MetricsAvailable` and `Saturated`; see "
    "docs/troubleshooting.md for every reason.",
    "status.conditions[]": "One condition.",
    "status.conditions[].type": "`Ready`, `MetricsAvailable` or `Saturated`.",
    "status.conditions[].status": "`True`, `False` or `Unknown`.",
    "status.conditions[].reason": "A CamelCase reason.",
    "status.conditions[].message": "Human-readable details.",
    "status.conditions[].lastTransitionTime": "When `status` last changed.",
    "status.conditions[].observedGeneration": "The generation the condition was computed for.",
}


def _load_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return crd


def _version(crd: Mapping[str, Any]) -> Mapping[str, Any]:
    versions = crd["spec"]["versions"]
    return next(v for v in versions if v.get("storage"))


def _fields(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _fields(child, f"{path}.{name}")
    if isinstance(node.get("items"), Mapping):
        yield from _fields(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from _fields(node["additionalProperties"], f"{path}.*")


def _matches(key: str, path: str) -> bool:
    """An EXTRA key names ``path`` exactly, or with ``*`` standing for one or more segments."""
    if key == path:
        return True
    pattern = r"\.".join(
        r"[^.]+(?:\.[^.]+)*" if part == "*" else re.escape(part) for part in key.split(".")
    )
    return re.fullmatch(pattern, path) is not None


def extra_for(path: str) -> str | None:
    """The most specific EXTRA text for ``path`` (an exact key wins, then the longest)."""
    if path in EXTRA:
        return EXTRA[path]
    keys = sorted((k for k in EXTRA if _matches(k, path)), key=len, reverse=True)
    return EXTRA[keys[0]] if keys else None


def _type(node: Mapping[str, Any]) -> str:
    pattern = str(node.get("pattern", ""))
    if node.get("x-kubernetes-int-or-string"):
        return "quantity" if _QUANTITY_HINT in pattern else "int or string"
    kind = str(node.get("type", "any"))
    if kind == "string" and _DURATION_HINT in pattern:
        return "duration"
    if kind == "array" and isinstance(node.get("items"), Mapping):
        return f"[]{_type(node['items'])}"
    if kind == "object" and isinstance(node.get("additionalProperties"), Mapping):
        return f"map[string]{_type(node['additionalProperties'])}"
    if node.get("format") in {"int32", "int64", "date-time"}:
        return f"{kind} ({node['format']})"
    return kind


def _constraints(node: Mapping[str, Any]) -> list[str]:
    out = []
    if "minimum" in node and "maximum" in node:
        out.append(f"{node['minimum']}..{node['maximum']}")
    elif "minimum" in node:
        out.append(f">= {node['minimum']}")
    elif "maximum" in node:
        out.append(f"<= {node['maximum']}")
    if node.get("enum"):
        out.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    for key, label in (("minLength", "min length"), ("maxLength", "max length")):
        if key in node:
            out.append(f"{label} {node[key]}")
    for key, label in (("minItems", "min items"), ("maxItems", "max items")):
        if key in node:
            out.append(f"{label} {node[key]}")
    pattern = str(node.get("pattern", ""))
    if pattern and _DURATION_HINT not in pattern and _QUANTITY_HINT not in pattern:
        out.append(f"pattern `{pattern}`")
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys") or [])
        out.append(f"unique by {keys}")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.append("other fields kept as given")
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _table(root: Mapping[str, Any], name: str) -> list[str]:
    lines = [
        "| Field | Type | Required | Constraints | Description |",
        "|---|---|---|---|---|",
    ]
    required_of: dict[str, set[str]] = {}
    for path, node in _fields(root, name):
        required_of[path] = set(node.get("required") or [])
    for path, node in _fields(root, name):
        if path == name:
            continue
        parent, _, leaf = path.rpartition(".")
        required = "yes" if leaf in required_of.get(parent, set()) else ""
        description = " ".join(text for text in (node.get("description"), extra_for(path)) if text)
        lines.append(
            f"| `{path}` | {_type(node)} | {required} | "
            f"{_cell('; '.join(_constraints(node)))} | {_cell(description)} |"
        )
    return lines


def _rules(root: Mapping[str, Any], name: str, *, top: Mapping[str, Any]) -> list[str]:
    # Rules on the object itself (they may read metadata.name), then those of the spec.
    lines = [
        f"| `metadata` | {_cell(str(rule['message']))} | `{rule['rule']}` |"
        for rule in top.get("x-kubernetes-validations") or []
    ]
    for path, node in _fields(root, name):
        for rule in node.get("x-kubernetes-validations") or []:
            where = path + str(rule.get("fieldPath", ""))
            lines.append(f"| `{where}` | {_cell(str(rule['message']))} | `{rule['rule']}` |")
    if not lines:
        return []
    return ["| Field | Rejected with | CEL rule |", "|---|---|---|", *lines]


def reference() -> str:
    crd = _load_crd()
    version = _version(crd)
    schema = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    api_version = f"{crd['spec']['group']}/{version['name']}"
    out = [
        "<!-- GENERATED by `make generate` from src/konsumerator/api/crd.yaml: do not edit."
        " A test fails when this file differs from the generated output. -->",
        "# Consumer reference",
        "",
        f"`apiVersion: {api_version}`, `kind: {names['kind']}` "
        f"(plural `{names['plural']}`, {crd['spec']['scope'].lower()}). "
        + _cell(str(schema.get("description", ""))),
        "",
        "In guest mode the same `spec` (without the `spec:` key) is the YAML under the "
        "`consumer.yaml` key of a ConfigMap annotated `konsumerator.lwolf.org/managed`; it is "
        "validated by the operator against the same rules, and its status is written to "
        "`konsumerator.lwolf.org/status.*` annotations. Durations are Go durations "
        "(`30s`, `5m`, `1h30m`); quantities are Kubernetes quantities (`500m`, `2`, `1Gi`).",
        "",
        "## Spec",
        "",
        *_table(schema["properties"]["spec"], "spec"),
        "",
        "### Validation rules",
        "",
        "Besides the constraints above, the API server rejects a Consumer that breaks one of "
        "these rules, with the message shown:",
        "",
        *_rules(schema["properties"]["spec"], "spec", top=schema),
        "",
        "## Status",
        "",
        *_table(schema["properties"]["status"], "status"),
        "",
        "## Columns of `kubectl get consumers`",
        "",
        "| Column | Type | From | Description |",
        "|---|---|---|---|",
        *(
            f"| {c['name']} | {c['type']} | `{c['jsonPath']}` | {_cell(c.get('description', ''))} |"
            for c in version.get("additionalPrinterColumns") or []
        ),
        "",
    ]
    return "\n".join(out)


def outputs() -> dict[Path, str]:
    crd_text = CRD.read_text()
    files = dict.fromkeys(CRD_COPIES, crd_text)
    files[REFERENCE] = reference()
    files[DASHBOARD] = dashboard.render()
    return files


def stale_extras() -> list[str]:
    """EXTRA keys that match no field of the CRD."""
    schema = _version(_load_crd())["schema"]["openAPIV3Schema"]["properties"]
    paths = {p for name in ("spec", "status") for p, _ in _fields(schema[name], name)}
    return sorted(k for k in EXTRA if not any(_matches(k, p) for p in paths))


@click.command("generate", help="write the files derived from the CRD and the dashboard")
@click.option("--check", is_flag=True, help="write nothing; exit 1 naming the stale files")
def main(*, check: bool) -> int:
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        if check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("stale (run `make generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    clikit.run(main, prog_name="python -m konsumerator_dev.hack.generate")
