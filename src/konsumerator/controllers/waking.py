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

Pods and ReplicaSets (in-place mode) are filtered the same way, by what the
pass derives from them (``PodWakes``): see its docstring.

Events that do pass are batched (``BATCH_S``): the queue's key for the
Consumer becomes due at most that long after the first of a burst
(``WorkQueue.add_batched``), and the rest of the burst joins that pass
instead of queueing another one behind it.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from konsumerator.domain import rules
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.domain.pods import ObservedPod, ObservedReplicaSet

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
    "spec_dictionary": "how spec_json is compressed, not what it holds",
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


# The most drift results carried from one observed version to the next. A pass adds one
# per instance (its intent's key); a new intent without a write is rare, so a few keys
# cover it, and the bound keeps a long run of status updates from accumulating stale ones.
CARRIED_DRIFT_RESULTS: Final = 4


def keep_drift_memo(old: ObservedDeployment | None, new: ObservedDeployment | None) -> None:
    """Deployment store listener: a new version that differs from the old one in nothing
    drift compares (labels, annotations, spec) keeps the old one's drift results.

    The planner remembers what it found comparing a Deployment with its intent on the
    observed value (``ObservedDeployment.drift_memo``), so an unchanged Deployment is
    rendered and compared once. But every status update of kube-controller-manager's
    is a new value: while it settled 1,000 new Deployments, each periodic pass rendered
    and compared all of them again (``rules._drifted``, the largest part of a pass).
    The same labels, annotations and spec bytes give the same differences for the same
    intent, so the results stay true. The deployment controller's revision annotations
    (``CONTROLLER_ANNOTATIONS``, stamped once on every new Deployment) are left out of
    the comparison: the annotations the operator renders are its own keys only
    (``rendering``), so drift never compares those.
    """
    if (
        old is None
        or new is None
        or old is new
        or len(old.drift_memo) > CARRIED_DRIFT_RESULTS
        or old.spec_json != new.spec_json
        # The same bytes compressed against another dictionary are another spec.
        or old.spec_dictionary != new.spec_dictionary
        or old.labels != new.labels
        or _annotations(old) != _annotations(new)
    ):
        return
    # A copy, taken at once: the planner's thread may be adding to the old version's
    # memo while this runs on the event loop (a dict iterated in Python while another
    # thread inserts raises "changed size during iteration").
    for key, found in old.drift_memo.copy().items():
        new.drift_memo.setdefault(key, found)


def deployment_wakes(old: ObservedDeployment | None, new: ObservedDeployment | None) -> bool:
    """Watch predicate for managed Deployments: additions, deletions, and updates that
    change ``wake_view``."""
    if old is None or new is None:
        return True
    return wake_view(old) != wake_view(new)


# -- pods and ReplicaSets (in-place mode) -------------------------------------------

# What a pass reads of a pod that is not quiet (``PodWakes.quiet``): any change to these
# may change a resize, a refusal or an in-place counter.
POD_WAKING: Final = (
    "name",  # the resize patch's target and the refusal's message
    "namespace",
    "uid",  # the patch is conditional on it; refusals and actuation are remembered by it
    "deployment",  # the instance it is indexed under
    "owner_uid",  # the owner chain (controllers.owned)
    "spec",  # rules.resize_pods, planning's in-place counters, actuation
    "actual",
    "pending",  # rules._refusal: Infeasible, or Deferred for too long
    "pending_since",
    "deleting",  # a pod going away is neither resized nor counted
    "running",  # only running pods are resized and counted
)

POD_IGNORED: Final[Mapping[str, str]] = {
    "resource_version": "changes with every write; what changed is compared instead",
    "in_progress": "no rule or counter reads it (a resize in progress shows as spec and "
    "actual resources that differ, which is compared)",
}

# The view of a quiet pod, and of no pod at all: neither is read by a pass.
QUIET: Final = ("quiet",)


class PodWakes:
    """Watch predicates for the pods and ReplicaSets of managed Deployments.

    Every pod event used to wake its Consumer: with the in-place default, the
    pods that kube-controller-manager and the kubelet (KWOK) start for 1,000 new
    Deployments woke 62 passes after convergence (batched), each reading every
    instance, for nothing: a new pod comes up with its template's resources,
    which are the instance's size.

    A pod is *quiet* when a pass derives nothing from it: its Deployment (from
    the cache, by name) has no in-place target other than its template's size
    (``resources_differ``, as planning compares them), and the pod is being
    deleted, or has no resize condition and is either not running (not resized,
    not counted) or runs exactly what ``rules.pod_target`` would resize it to
    (nothing to patch; it adds neither ``resized`` nor ``pending`` to the
    in-place counters, which are both zero for such an instance whether or not
    the pod runs). A quiet pod and no pod at all look the same to a pass, so an
    event between two quiet states (a new pod, one that starts at its
    template's size, one of a plain instance going away) is dropped; any other
    event wakes when the ``POD_WAKING`` fields changed.

    Sound because the view is taken against the Deployment as cached when the
    event comes: whatever makes that Deployment not plain later (a target
    annotation written by a pass, a hand edit) is a Deployment event that wakes
    the Consumer by itself (``WAKING`` has annotations and containers), and that
    pass reads every pod as cached then. Within a pass the target can only move
    away from the cached one in a pass that writes it (metrics refreshed, or a
    new spec), whose own write wakes the follow-up pass.

    A ReplicaSet matters only through its pods (``controllers.owned``: a pod
    counts once its ReplicaSet is cached and controlled by the instance's
    Deployment), so its event wakes only when its projection (name, UID,
    controller) changed and one of the pods it owns (by UID) is not quiet. Only the
    pods of a Deployment it names as its controller (before or after) are looked at:
    no other pod can count (``controllers.owned``).
    """

    def __init__(
        self,
        *,
        deployment: Callable[[str, str], ObservedDeployment | None],
        deployments_by_uid: Callable[[str], Sequence[ObservedDeployment]],
        instance_pods: Callable[[ObservedDeployment], Sequence[ObservedPod]],
    ) -> None:
        """``deployment(namespace, name)``: the managed Deployment of that name, if
        cached; ``deployments_by_uid(uid)``: the one with that UID;
        ``instance_pods(d)``: the cached pods indexed under ``d`` (by name)."""
        self._deployment = deployment
        self._deployments_by_uid = deployments_by_uid
        self._instance_pods = instance_pods

    def quiet(self, pod: ObservedPod) -> bool:
        d = self._deployment(pod.namespace, pod.deployment) if pod.deployment else None
        if d is None or rules.resources_differ(d.template_resources, d.current):
            return False
        if pod.deleting:
            return True
        if pod.pending is not None:
            return False
        return not pod.running or pod.actuated(rules.pod_target(pod, d.current))

    def view(self, pod: ObservedPod | None) -> tuple[object, ...]:
        """What a pass reads of ``pod``: equal views cannot give different decisions or
        counters."""
        if pod is None or self.quiet(pod):
            return QUIET
        return tuple(getattr(pod, name) for name in POD_WAKING)

    def pod(self, old: ObservedPod | None, new: ObservedPod | None) -> bool:
        return self.view(old) != self.view(new)

    def replicaset(self, old: ObservedReplicaSet | None, new: ObservedReplicaSet | None) -> bool:
        if old is not None and new is not None and old == new:
            return False  # its status: not projected
        sides = [rs for rs in (old, new) if rs is not None]
        uids = {rs.uid for rs in sides if rs.uid}
        controllers = {rs.controller_uid for rs in sides if rs.controller_uid}
        return any(
            pod.owner_uid in uids and not self.quiet(pod)
            for uid in controllers
            for d in self._deployments_by_uid(uid)
            for pod in self._instance_pods(d)
        )
