"""What a watched Deployment costs in memory, and that the savings lose nothing.

``deployment.json`` is a Deployment as the API server returned it for the scale bench
(two containers, env, defaults, status).

Aspects tested:

* 2,000 distinct Deployments (names, UIDs, versions, owners of five Consumers, partitions
  in annotations, labels and env, and the in-place target and adaptive memory annotations
  the operator writes by default) decoded through the watch's list path and kept in the
  owner-indexed store retain under 3 KiB each (tracemalloc, 1,594 B run alone; after
  some other kube tests in the same process up to 2.6 KiB, not explained yet; 1,965 B before
  the scaling state was shared, 2.6 KiB before each spec was compressed against a
  sibling's, 6.2 KiB before label/annotation strings were shared and the spec
  compressed, 4.3 KiB before the containers, sizes and parsed target were shared);
* Deployments with the same scaling annotations share one scaling state, and one with
  other annotations reads its own;
* Deployments with the same sizes share their containers and size mappings, and
  different sizes stay apart;
* the spec kept for drift decodes to exactly the spec the server sent (compressed or
  not, ``spec()`` reads both);
* keys and short values of labels and annotations, container names, quantities and the
  owner UID are one string object across Deployments; everything the planner reads is
  unchanged.
"""

import copy
import gc
import json
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from konsumerator.controllers.reconciling import OWNER_INDEX, owner_index
from konsumerator.domain import keys
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.projections import DEPLOYMENT_PROJECTOR, Projector
from konsumerator.runtime.stores import Store

BASE: dict[str, Any] = json.loads((Path(__file__).parent / "deployment.json").read_text())
# What the in-place default writes on every instance: the size each container is given.
BASE["metadata"]["annotations"][keys.TARGET_RESOURCES] = json.dumps(
    {
        c["name"]: {"limits": c["resources"]["limits"], "requests": c["resources"]["requests"]}
        for c in BASE["spec"]["template"]["spec"]["containers"]
    },
    separators=(",", ":"),
    sort_keys=True,
)
# What the adaptive default writes on every instance sized in the same pass (as the 10,000
# bench's Deployments have them).
BASE["metadata"]["annotations"][keys.SCALING_MEMORY] = (
    "peak=527,peakAt=2026-11-30T13:33:51Z,resizedAt=2026-11-30T13:33:51Z"
)
BASE["metadata"]["annotations"][keys.SCALING_DECISION] = (
    "adaptive: lambda=500/s backlog=0 T=300s u=0.95 R=5s ratePerCore=2000 (configured) "
    "term=headroom need=max(lambda/u,lambda(1+R/T))=526/s peak=527/s "
    "+max(0,backlog-lambda*R)/T=0/s -> 527/s = 350m"
)


# The env entries that carry an instance's partition and id, as the operator renders them.
PER_INSTANCE_ENV = ("KONSUMERATOR_PARTITION", "KONSUMERATOR_INSTANCE")


def variant(n: int) -> dict[str, Any]:
    """Deployment ``n`` of five Consumers: its own name, UID, version, owner, and the
    partition and instance id the operator renders into its annotations, labels and env."""
    d = copy.deepcopy(BASE)
    meta = d["metadata"]
    meta["name"] = f"small-{n % 5}-{n}"
    meta["uid"] = f"{n:08d}-aaaa-bbbb-cccc-dddddddddddd"
    meta["resourceVersion"] = str(100_000 + n)
    meta["ownerReferences"][0]["uid"] = f"owner-{n % 5:04d}-bbbb-cccc-dddd-eeeeeeeeeeee"
    meta["annotations"][keys.PARTITION] = meta["annotations"][keys.CONSUMER_ID] = str(n)
    meta["labels"]["partitions"] = str(n)
    for container in d["spec"]["template"]["spec"]["containers"]:
        for env in container["env"]:
            if env["name"] in PER_INSTANCE_ENV:
                env["value"] = str(n)
    return d


def page(items: list[dict[str, Any]]) -> bytes:
    return json.dumps({"metadata": {"resourceVersion": "1"}, "items": items}).encode()


def retained_per_object(
    projector: Projector[Any, Any],
    variant: Callable[[int], dict[str, Any]],
    indexers: dict[str, Callable[[Any], list[str]]],
) -> float:
    """Bytes retained per object by 2,000 distinct ``variant``s decoded through the watch's
    list path (pages of 500) and kept in a store with ``indexers``."""
    count = 2000
    pages = [page([variant(p * 500 + i) for i in range(500)]) for p in range(count // 500)]
    store: Store[Any] = Store(indexers=indexers)
    gc.collect()
    tracemalloc.start()
    try:
        for raw in pages:
            for obj in projector.decode_page(raw).items:
                store.upsert(obj)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store.keys()) == count
    return retained / count


def test_a_watched_deployment_retains_under_3_kib() -> None:
    per_object = retained_per_object(
        DEPLOYMENT_PROJECTOR, variant, indexers={OWNER_INDEX: owner_index}
    )
    assert per_object < 3072, f"{per_object:.0f} B per Deployment"


def test_same_scaling_annotations_share_one_state_and_others_read_their_own() -> None:
    a, b = (DEPLOYMENT_PROJECTOR.decode(json.dumps(variant(n)).encode()) for n in (5, 10))
    assert a.scaling is b.scaling
    assert a.scaling.memory is not None
    assert (a.scaling.status.value, a.scaling.memory.peak_rate) == ("RUNNING", 527)
    assert a.scaling.since == datetime(2026, 11, 29, 16, 3, 40, tzinfo=UTC)
    assert a.scaling.explanation == BASE["metadata"]["annotations"][keys.SCALING_DECISION]
    other = variant(15)
    annotations = other["metadata"]["annotations"]
    annotations[keys.SCALING_STATUS] = "PENDING_SCALE_UP"
    annotations[keys.SCALING_STATUS_CHANGE] = "2026-11-30T10:00:00Z"
    annotations[keys.SCALING_MEMORY] = "peak=900,peakAt=2026-11-30T10:00:00Z"
    annotations[keys.SCALING_DECISION] = "another decision"
    c = DEPLOYMENT_PROJECTOR.decode(json.dumps(other).encode())
    assert c.scaling.memory is not None
    assert (c.scaling.status.value, c.scaling.memory.peak_rate) == ("PENDING_SCALE_UP", 900)
    assert c.scaling.since == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert c.scaling.explanation == "another decision"
    assert a.scaling.memory.peak_rate == 527


def test_the_kept_spec_is_the_servers_spec() -> None:
    observed = DEPLOYMENT_PROJECTOR.decode(json.dumps(BASE).encode())
    assert observed.spec() == BASE["spec"]
    plain = ObservedDeployment(name="d", namespace="ns", spec_json=json.dumps({"a": 1}).encode())
    assert plain.spec() == {"a": 1}


def test_repeated_strings_are_shared_and_nothing_read_changes() -> None:
    a, b = (DEPLOYMENT_PROJECTOR.decode(json.dumps(variant(n)).encode()) for n in (5, 10))
    for key in BASE["metadata"]["annotations"]:
        (ka,) = [k for k in a.annotations if k == key]
        (kb,) = [k for k in b.annotations if k == key]
        assert ka is kb
    assert a.labels["app"] is b.labels["app"]
    assert (
        a.annotations["konsumerator.lwolf.org/generation"]
        is (b.annotations["konsumerator.lwolf.org/generation"])
    )
    assert a.containers[0].name is b.containers[0].name
    assert a.containers[0].requests["cpu"] is b.containers[0].requests["cpu"]
    assert a.controller_uid is b.controller_uid
    sent = variant(5)
    meta, container = sent["metadata"], sent["spec"]["template"]["spec"]["containers"][0]
    assert a.spec() == sent["spec"]
    assert dict(a.labels) == meta["labels"]
    assert dict(a.annotations) == meta["annotations"]
    assert dict(a.containers[0].requests) == container["resources"]["requests"]
    assert dict(a.containers[0].limits) == container["resources"]["limits"]
    assert (a.instance, a.partitions, a.replicas) == (5, (5,), 0)


def test_same_sizes_are_shared_and_different_sizes_stay_apart() -> None:
    a, b = (DEPLOYMENT_PROJECTOR.decode(json.dumps(variant(n)).encode()) for n in (5, 10))
    assert a.containers is b.containers
    assert a.template_resources is b.template_resources
    assert a.target is b.target
    assert a.current is b.current
    bigger = variant(15)
    container = bigger["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["requests"]["cpu"] = "3"
    c = DEPLOYMENT_PROJECTOR.decode(json.dumps(bigger).encode())
    name = container["name"]
    assert c.containers[0].resources.cpu_req_m == 3000
    assert a.containers[0].resources.cpu_req_m != 3000
    assert c.template_resources[name].cpu_req_m == 3000
    # The target annotation was not changed: the instance was given the old size.
    assert c.current == a.current
    assert c.target is a.target
