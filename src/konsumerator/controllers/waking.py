"""Which Deployment watch events can change what a Consumer's pass decides or reports.

Every event of a managed Deployment used to wake a full pass over all of its
Consumer's instances. Most of them are other controllers' bookkeeping: while
kube-controller-manager creates the ReplicaSets of 1,000 new Deployments it
stamps each one's ``deployment.kubernetes.io/revision`` annotation and then
updates its status several times (observedGeneration, replicas, ready,
available, conditions), and KWOK or the kubelet moves the pods along. None of
that is read by a rule or a counter, yet it cost hundreds of passes.

So, as a controller-runtime predicate does, an update event passes only when
the projection of the Deployment onto what the pass reads (``wake_view``)
changed. Additions and deletions always pass. The fields of
``ObservedDeployment`` are split below into the ones the pass reads
(``WAKING``) and the ones it does not (``IGNORED``, each with the reason); a
unit test checks that the two cover every field, so a field added to the
projection must be placed in one of them (whoever makes a rule or a counter
read ``ready_replicas`` moves it to ``WAKING``).

Annotations are compared without the ones the deployment controller writes
(``CONTROLLER_ANNOTATIONS``): the operator never sets them (a template that
did would fight the deployment controller over them anyway), so their change
cannot be drift to repair.

Events that do pass are batched (``BATCH_S``): the queue's key for the
Consumer becomes due at most that long after the first of a burst
(``WorkQueue.add_batched``), and the rest of the burst joins that pass
instead of queueing another one behind it.
"""

from collections.abc import Mapping
from typing import Final

from konsumerator.domain.observed import ObservedDeployment

# The longest a Deployment event waits for the rest of its burst before its Consumer's
# pass is due: a bound on the added latency, long enough to gather the events of one
# pass's own writes (up to 16 in flight) and a controller's quick succession of updates.
BATCH_S: Final = 0.5

# Written by kube-controller-manager's deployment controller on every Deployment it syncs.
CONTROLLER_ANNOTATIONS: Final = frozenset(
    {"deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history"}
)

# What a pass reads of an observed Deployment (directly or through the values derived
# from these in ``ObservedDeployment.__post_init__``).
WAKING: Final = (
    "name",
    "namespace",
    "uid",
    "labels",
    "annotations",  # without CONTROLLER_ANNOTATIONS
    "controller_uid",
    "containers",
    "replicas",
    "generation",  # moves with every spec change: a hand edit may be drift to repair
    "deleting",
)

# What it does not read, and why an event changing only these may be dropped.
IGNORED: Final[Mapping[str, str]] = {
    "resource_version": "changes with every write; what changed is compared instead",
    "spec_json": "read for drift only; every spec change also moves generation",
    "ready_replicas": "no rule or counter reads pod readiness",
    "available_replicas": "no rule or counter reads pod availability",
    "updated_replicas": "no rule or counter reads rollout progress",
    "observed_generation": "no rule or counter reads the deployment controller's progress",
    # Derived in __post_init__ from annotations and containers, compared through them.
    "instance": "derived from annotations",
    "partitions": "derived from annotations",
    "scaling": "derived from annotations",
    "saturation_m": "derived from annotations",
    "paused": "derived from annotations",
    "current": "derived from containers and the in-place target annotation",
    "template_resources": "derived from containers",
    "target": "derived from annotations",
    "drift_memo": "a cache of the planner's, not an observation",
}


def _annotations(d: ObservedDeployment) -> dict[str, str]:
    return {k: v for k, v in d.annotations.items() if k not in CONTROLLER_ANNOTATIONS}


def wake_view(d: ObservedDeployment) -> tuple[object, ...]:
    """What a pass reads of ``d``: equal views cannot give different decisions or counters."""
    return tuple(_annotations(d) if name == "annotations" else getattr(d, name) for name in WAKING)


def deployment_wakes(old: ObservedDeployment | None, new: ObservedDeployment | None) -> bool:
    """Watch predicate for managed Deployments: additions, deletions, and updates that
    change ``wake_view``."""
    if old is None or new is None:
        return True
    return wake_view(old) != wake_view(new)
