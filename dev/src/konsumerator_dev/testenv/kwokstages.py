"""KWOK stages that make the fake node answer in-place pod resizes as a kubelet does.

Why: KWOK runs no kubelet, and since Kubernetes 1.35 the apiserver refuses a ``pods/resize``
of a running container whose ``status.containerStatuses[].resources`` is unset ("Pod running
on node without support for resize"); and nothing would ever report a resize as actuated.
KWOK's own "fast" pod stages (copied out of its module at build time, see
:mod:`~konsumerator_dev.testenv.build`) do neither, so :func:`compose` replaces its
``pod-ready`` stage and adds four:

* ``pod-ready``: upstream's, plus each container's ``resources`` (its spec's limits and
  requests) in its status, as a kubelet reports them once the container runs.
* ``pod-resize``: a Running pod whose spec resources differ from what its status reports, and
  whose summed requests fit :data:`RESIZE_CAPACITY`, is acknowledged after
  :data:`RESIZE_DELAY_MS` (+ up to :data:`RESIZE_JITTER_MS`): the status takes the spec's
  resources, ``status.observedGeneration`` the pod's generation, and the ``PodResizePending``
  and ``PodResizeInProgress`` conditions are removed.
* ``pod-resize-infeasible-cpu`` / ``-memory``: the same, but the summed CPU (memory) requests
  exceed :data:`RESIZE_CAPACITY`: condition ``PodResizePending`` status True reason
  ``Infeasible`` (message naming the resource), ``status.observedGeneration`` set, the status
  resources unchanged. Written once per pod generation (the condition's
  ``observedGeneration``), so a stage never patches a pod in a loop.
* ``pod-resize-settled``: a resize taken back (spec equal to the reported resources again)
  leaves no resize condition behind.

Two thresholds. Kubernetes 1.36's ``PodResizeValidator`` admission refuses, with
``403 Forbidden`` (cause ``NodeCapacity``), a resize whose summed requests exceed the node's
allocatable (:data:`NODE_ALLOCATABLE`, which the launcher gives the node), so no such resize
ever reaches a node. The fake kubelet's own ``Infeasible`` therefore starts lower, at
:data:`RESIZE_CAPACITY` (half the node), standing in for the refusals only a node can make
(a static CPU or memory manager policy, swap). It is a constant written into the jq
expressions: KWOK's selectors see only the pod, never its node. Like kubelet, only requests
count, and "Deferred" (fits the node but not beside its other pods) is never reported: the
fake node has room for all.

The pod runner (:mod:`~konsumerator_dev.testenv.podrunner`) does not write pod status: it
applies to a process the CPU the status reports as actuated, so the two never disagree.

Quantities in the selectors are parsed by a small jq function (decimal and binary suffixes
and exponents, the forms the apiserver's canonical quantities take).
"""

from __future__ import annotations

from typing import Any

import yaml

from konsumerator.domain.quantities import cpu_millis, memory_bytes

#: What the launcher's fake node reports as capacity and allocatable. The apiserver itself
#: refuses a resize whose summed requests exceed it (see the module docstring).
NODE_ALLOCATABLE: dict[str, str] = {"cpu": "32", "memory": "256Gi", "pods": "500"}
#: Above these summed requests the fake kubelet answers a resize ``Infeasible``: half the node,
#: so such a resize passes the apiserver's admission and reaches the node.
RESIZE_CAPACITY: dict[str, str] = {"cpu": "16", "memory": "128Gi"}
#: How long the fake kubelet takes to actuate a feasible resize (plus a random jitter up to).
RESIZE_DELAY_MS = 200
RESIZE_JITTER_MS = 500
#: Upstream's stages this module replaces, by ``metadata.name``.
REPLACED = frozenset({"pod-ready"})

# -- jq selectors (gojq, evaluated on the pod as JSON) ------------------------------------

#: jq: a quantity string in base units (cores, bytes): decimal and binary suffixes, exponents.
_JQ_QUANTITY = (
    'def qty: tostring | capture("^(?<n>[0-9.]+(?:[eE][-+]?[0-9]+)?)(?<s>[a-zA-Z]*)$")'
    ' | (.n | tonumber) * ({"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6,'
    ' "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Ki": 1024, "Mi": 1048576,'
    ' "Gi": 1073741824, "Ti": 1099511627776, "Pi": 1125899906842624,'
    ' "Ei": 1152921504606846976}[.s]);'
    ' def total($r): [.spec.containers[] | .resources.requests[$r] // "0" | qty] | add;'
)
#: jq: true when the spec asks for resources the status does not report (a resize to
#: actuate). False before the pod-ready stage reported any (nothing runs yet).
_JQ_RESIZE_WANTED = (
    "def res: (. // {}) | {limits: (.limits // {}), requests: (.requests // {})};"
    " ([.spec.containers[] | {(.name): (.resources | res)}] | add) as $want"
    " | ([.status.containerStatuses[]? | select(.resources != null)"
    " | {(.name): (.resources | res)}] | add) as $have"
    " | ($have != null) and ($want != $have)"
)
#: jq: true when a resize condition is set.
_JQ_RESIZE_CONDITIONS = (
    '[.status.conditions[]? | select(.type == "PodResizePending" or .type =='
    ' "PodResizeInProgress")] | length > 0'
)
#: jq: the infeasible stages run once per pod generation (no loop on their own writes).
_JQ_NOT_YET_INFEASIBLE = (
    ".metadata.generation as $g | [.status.conditions[]? | select(.type =="
    ' "PodResizePending" and .reason == "Infeasible" and .observedGeneration == $g)]'
    " | length == 0"
)


def capacity_base(resource: str) -> int | float:
    """:data:`RESIZE_CAPACITY` of ``resource`` (``cpu`` or ``memory``) in cores or bytes."""
    if resource == "cpu":
        return cpu_millis(RESIZE_CAPACITY["cpu"]) / 1000
    return memory_bytes(RESIZE_CAPACITY["memory"])


def _jq_over(resource: str) -> str:
    """jq: true when the pod's summed ``resource`` requests exceed :data:`RESIZE_CAPACITY`."""
    return f'{_JQ_QUANTITY} total("{resource}") > {capacity_base(resource)}'


def _expr(key: str, operator: str, values: list[str] | None = None) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": values} if values else {})}


def _resizing() -> list[dict[str, Any]]:
    """Running, not deleting, not a Job's pod, and its spec resources not yet actuated."""
    return [
        _expr(".metadata.deletionTimestamp", "DoesNotExist"),
        _expr(".status.phase", "In", ["Running"]),
        _expr(".metadata.ownerReferences.[].kind", "NotIn", ["Job"]),
        _expr(_JQ_RESIZE_WANTED, "In", ["true"]),
    ]


# -- templates (Go text/template with sprig, rendered on the pod as JSON) -------------------

_RESOURCES = '(pick .resources "limits" "requests")'

_POD_READY = """\
{{ $now := Now }}

conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}

containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  resources: {{ RESOURCES | toJson }}
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}

initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq .restartPolicy "Always" }}
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
{{ with $hostIPs }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
""".replace("RESOURCES", _RESOURCES)

# containerStatuses has no merge key: the list is written whole, each entry as it was but
# with the spec's resources. Conditions merge by type, so a delete directive drops one.
_POD_RESIZED = """\
{{ $spec := .spec }}
observedGeneration: {{ .metadata.generation }}
containerStatuses:
{{ range .status.containerStatuses }}
{{ $status := . }}
{{ range $spec.containers }}
{{ if eq .name $status.name }}
- {{ set (deepCopy $status) "resources" RESOURCES | toJson }}
{{ end }}
{{ end }}
{{ end }}
conditions:
- type: PodResizePending
  $patch: delete
- type: PodResizeInProgress
  $patch: delete
""".replace("RESOURCES", _RESOURCES)


_SETTLED = """\
observedGeneration: {{ .metadata.generation }}
conditions:
- type: PodResizePending
  $patch: delete
- type: PodResizeInProgress
  $patch: delete
"""


_INFEASIBLE = """\
{{ $now := Now }}
observedGeneration: {{ .metadata.generation }}
{{ $asked := list }}
{{ range .spec.containers }}
{{ with .resources.requests }}{{ with index . "RESOURCE" }}
{{ $asked = append $asked . }}
{{ end }}{{ end }}
{{ end }}
conditions:
- type: PodResizePending
  status: "True"
  reason: Infeasible
  observedGeneration: {{ .metadata.generation }}
  lastTransitionTime: {{ $now | Quote }}
  lastProbeTime: {{ $now | Quote }}
  message: {{ printf "Node cannot resize in place: RESOURCE, requested: %s, resizable: CAPACITY" \
(join "+" $asked) | Quote }}
"""


def _infeasible(resource: str) -> str:
    """The PodResizePending/Infeasible condition, its message naming ``resource``."""
    return _INFEASIBLE.replace("RESOURCE", resource).replace("CAPACITY", RESIZE_CAPACITY[resource])


def _stage(
    name: str, selector: list[dict[str, Any]], template: str, **extra: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": selector},
            **extra,
            "next": {"statusTemplate": template},
        },
    }


def pod_stages() -> list[dict[str, Any]]:
    """This project's pod stages: ``pod-ready`` and the four resize stages."""
    ready = _stage(
        "pod-ready",
        [
            _expr(".metadata.deletionTimestamp", "DoesNotExist"),
            _expr(".status.phase", "In", ["Pending"]),
            _expr(
                '.status.conditions.[] | select( .type == "Ready" ) | .status', "NotIn", ["True"]
            ),
        ],
        _POD_READY,
    )
    resize = _stage(
        "pod-resize",
        [
            *_resizing(),
            _expr(_jq_over("cpu"), "In", ["false"]),
            _expr(_jq_over("memory"), "In", ["false"]),
        ],
        _POD_RESIZED,
        delay={
            "durationMilliseconds": RESIZE_DELAY_MS,
            "jitterDurationMilliseconds": RESIZE_DELAY_MS + RESIZE_JITTER_MS,
        },
    )
    # exclusive selectors (KWOK picks at random among matching stages): CPU is named first
    cpu = _stage(
        "pod-resize-infeasible-cpu",
        [
            *_resizing(),
            _expr(_jq_over("cpu"), "In", ["true"]),
            _expr(_JQ_NOT_YET_INFEASIBLE, "In", ["true"]),
        ],
        _infeasible("cpu"),
    )
    memory = _stage(
        "pod-resize-infeasible-memory",
        [
            *_resizing(),
            _expr(_jq_over("cpu"), "In", ["false"]),
            _expr(_jq_over("memory"), "In", ["true"]),
            _expr(_JQ_NOT_YET_INFEASIBLE, "In", ["true"]),
        ],
        _infeasible("memory"),
    )
    # a resize undone before it was actuated (the spec back at what the status reports)
    # leaves nothing pending: kubelet drops the conditions then too
    settled = _stage(
        "pod-resize-settled",
        [
            _expr(".metadata.deletionTimestamp", "DoesNotExist"),
            _expr(".status.phase", "In", ["Running"]),
            _expr(_JQ_RESIZE_WANTED, "In", ["false"]),
            _expr(_JQ_RESIZE_CONDITIONS, "In", ["true"]),
        ],
        _SETTLED,
    )
    return [ready, resize, cpu, memory, settled]


def compose(upstream: str) -> str:
    """KWOK's config: upstream's stages (minus :data:`REPLACED`) and :func:`pod_stages`."""
    kept = [
        doc
        for doc in yaml.safe_load_all(upstream)
        if doc and (doc.get("metadata") or {}).get("name") not in REPLACED
    ]
    return "".join(
        f"---\n{yaml.safe_dump(doc, sort_keys=False, width=10_000)}"
        for doc in [*kept, *pod_stages()]
    )
