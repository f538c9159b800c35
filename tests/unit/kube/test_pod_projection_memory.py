"""What a watched pod and ReplicaSet cost in memory, and that the sharing loses nothing.

``pod.json`` and ``replicaset.json`` are a pod and its ReplicaSet as the API server
returned them for the scale bench (two containers with env, KWOK's status).

Aspects tested:

* 2,000 distinct pods (names, UIDs, versions, owners, template hashes) decoded through the
  watch's list path and kept in the instance-indexed store retain under 1.5 KiB each
  (tracemalloc; 1.9 KiB before the per-container sizes were shared, 0.9 KiB now);
* 2,000 distinct ReplicaSets in the UID-indexed store retain under 1 KiB each (0.75 KiB:
  metadata only);
* pods at the same size share one sizes mapping (spec and running), and what planning
  reads is unchanged: each container's requests and limits, a container the kubelet
  reports no resources for.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from konsumerator.controllers.owned import REPLICASET_UID_INDEX, replicaset_uid_index
from konsumerator.controllers.reconciling import POD_INDEX, pod_index
from konsumerator.domain.resources import Resources
from konsumerator.kube.pods import POD_PROJECTOR, REPLICASET_PROJECTOR
from konsumerator.kube.projections import Projector

from .test_projection_memory import retained_per_object

HERE = Path(__file__).parent
POD: dict[str, Any] = json.loads((HERE / "pod.json").read_text())
REPLICASET: dict[str, Any] = json.loads((HERE / "replicaset.json").read_text())
MI = 1 << 20


def pod_variant(n: int) -> dict[str, Any]:
    d = copy.deepcopy(POD)
    meta, template_hash = d["metadata"], f"{n:010x}"
    meta["name"] = f"small-{n % 5}-{n}-{template_hash}-abcde"
    meta["uid"] = f"{n:08d}-aaaa-bbbb-cccc-dddddddddddd"
    meta["resourceVersion"] = str(100_000 + n)
    meta["labels"]["pod-template-hash"] = template_hash
    meta["ownerReferences"][0]["name"] = f"small-{n % 5}-{n}-{template_hash}"
    meta["ownerReferences"][0]["uid"] = f"{n:08d}-rsrs-bbbb-cccc-dddddddddddd"
    return d


def replicaset_variant(n: int) -> dict[str, Any]:
    d = copy.deepcopy(REPLICASET)
    meta = d["metadata"]
    meta["name"] = f"small-{n % 5}-{n}-{n:010x}"
    meta["uid"] = f"{n:08d}-rsrs-bbbb-cccc-dddddddddddd"
    meta["resourceVersion"] = str(100_000 + n)
    meta["ownerReferences"][0]["uid"] = f"{n:08d}-dddd-bbbb-cccc-dddddddddddd"
    return d


@pytest.mark.parametrize(
    ("projector", "variant", "indexers", "bound"),
    [
        (POD_PROJECTOR, pod_variant, {POD_INDEX: pod_index}, 1536),
        (
            REPLICASET_PROJECTOR,
            replicaset_variant,
            {REPLICASET_UID_INDEX: replicaset_uid_index},
            1024,
        ),
    ],
    ids=["pod", "replicaset"],
)
def test_a_watched_pod_or_replicaset_retains_little(
    projector: Projector[Any, Any],
    variant: Callable[[int], dict[str, Any]],
    indexers: dict[str, Callable[[Any], list[str]]],
    bound: int,
) -> None:
    per_object = retained_per_object(projector, variant, indexers)
    assert per_object < bound, f"{per_object:.0f} B per object"


def test_pods_at_one_size_share_it_and_read_the_same() -> None:
    a, b = (POD_PROJECTOR.decode(json.dumps(pod_variant(n)).encode()) for n in (1, 2))
    assert a.spec is b.spec
    assert a.actual is b.actual
    assert dict(a.spec) == {
        "consumer": Resources(
            cpu_req_m=300, mem_req_b=256 * MI, cpu_lim_m=1000, mem_lim_b=256 * MI
        ),
        "metrics-sidecar": Resources(
            cpu_req_m=50, mem_req_b=32 * MI, cpu_lim_m=50, mem_lim_b=32 * MI
        ),
    }
    assert a.actual == a.spec
    resized = pod_variant(3)
    resized["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2"
    del resized["status"]["containerStatuses"][1]["resources"]
    c = POD_PROJECTOR.decode(json.dumps(resized).encode())
    assert c.spec["consumer"].cpu_req_m == 2000
    assert c.spec["metrics-sidecar"] is a.spec["metrics-sidecar"]
    assert c.actual["metrics-sidecar"] is None
    assert c.actual["consumer"] == a.actual["consumer"]
