"""KWOK's config for the test environment: upstream's stages with the resize-aware pod stages.

What the stages do is proven on the real apiserver and KWOK (tests/cluster/test_kwok_resize.py);
this checks the composition only.
"""

from __future__ import annotations

from typing import Any

import yaml

from konsumerator.domain.quantities import cpu_millis, memory_bytes
from konsumerator_dev.testenv.kwokstages import NODE_ALLOCATABLE, RESIZE_CAPACITY, compose

UPSTREAM = """\
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec: {resourceRef: {apiGroup: v1, kind: Node}, selector: {}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec: {resourceRef: {apiGroup: v1, kind: Pod}, selector: {}, next: {statusTemplate: upstream}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec: {resourceRef: {apiGroup: v1, kind: Pod}, selector: {}, next: {delete: true}}
"""


def _stages() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all(compose(UPSTREAM)))
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names)), names  # KWOK would pick among duplicates at random
    return {d["metadata"]["name"]: d for d in docs}


def test_upstream_pod_ready_is_replaced_and_the_other_stages_are_kept() -> None:
    stages = _stages()
    assert list(stages) == [
        "node-initialize",
        "pod-delete",
        "pod-ready",
        "pod-resize",
        "pod-resize-infeasible-cpu",
        "pod-resize-infeasible-memory",
        "pod-resize-settled",
    ]
    ready = stages["pod-ready"]["spec"]["next"]["statusTemplate"]
    assert ready != "upstream"
    assert 'resources: {{ (pick .resources "limits" "requests") | toJson }}' in ready
    assert stages["pod-delete"]["spec"]["next"] == {"delete": True}


def test_only_the_feasible_resize_waits_like_a_kubelet() -> None:
    stages = _stages()
    assert "delay" in stages["pod-resize"]["spec"]
    assert all("delay" not in stages[n]["spec"] for n in stages if "infeasible" in n)


def test_the_node_can_resize_less_than_it_can_schedule() -> None:
    # above the allocatable the apiserver refuses the resize itself; below it, the stages'
    # capacity is what lets a test reach the node's own Infeasible answer
    assert 0 < cpu_millis(RESIZE_CAPACITY["cpu"]) < cpu_millis(NODE_ALLOCATABLE["cpu"])
    assert 0 < memory_bytes(RESIZE_CAPACITY["memory"]) < memory_bytes(NODE_ALLOCATABLE["memory"])
