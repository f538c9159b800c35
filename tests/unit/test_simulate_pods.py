"""The simulator's pods answer for all instances at once (``MemoryPods.instance_pods``).

``instance_pods`` is a cache of ``by_index`` per instance (``ports.InstancePodsView``):
kept while no pod changed and the instances are the same. Tested: on random sequences of
starts, restarts, resizes and deletions, and random instance lists, it is always what
``by_index`` of each instance says; and each way its answer goes stale (a new pod, a
resized one, a deleted one, other instances) gives a new answer.
"""

from collections.abc import Sequence
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.controllers.ports import InstancePodsView
from konsumerator.domain.observed import ObservedContainer, ObservedDeployment
from konsumerator.domain.pods import ObservedPod, PodResize
from konsumerator.domain.resources import Resources
from konsumerator.simulating import MemoryPods

NAMES = ("c-0", "c-1", "c-2")


def deployment(name: str) -> ObservedDeployment:
    return ObservedDeployment(
        name=name,
        namespace="ns",
        containers=(ObservedContainer(name="app", requests=MappingProxyType({"cpu": "100m"})),),
    )


def template(image: str) -> dict[str, object]:
    return {"spec": {"containers": [{"name": "app", "image": image}]}}


def each(pods: MemoryPods, deployments: Sequence[ObservedDeployment]) -> dict[str, object]:
    return {
        d.name: pods.by_index(index="deployment", value=f"{d.namespace}/{d.name}")
        for d in deployments
    }


def resize(pods: MemoryPods, name: str, cpu_m: int) -> None:
    (pod,) = pods.by_index(index="deployment", value=f"ns/{name}")
    pods.resize(
        PodResize(
            pod=pod.name,
            uid=pod.uid,
            instance=name,
            containers={"app": Resources(cpu_req_m=cpu_m)},
        )
    )


ops = st.lists(
    st.tuples(
        st.sampled_from(["start", "resize", "delete", "ask"]),
        st.sampled_from(NAMES),
        st.sampled_from(["busybox", "alpine"]),
        st.lists(st.sampled_from(NAMES), max_size=4),
    ),
    max_size=30,
)


@settings(deadline=None)  # a loaded machine is no failure
@given(ops=ops)
def test_instance_pods_is_by_index_of_each_instance_after_any_changes(
    ops: list[tuple[str, str, str, list[str]]],
) -> None:
    pods = MemoryPods()
    assert isinstance(pods, InstancePodsView)
    for op, name, image, asked in ops:
        if op == "start":
            pods.started(d=deployment(name), template=template(image))
        elif op == "resize" and pods.by_index(index="deployment", value=f"ns/{name}"):
            resize(pods, name, cpu_m=len(asked) * 100 + 50)
        elif op == "delete":
            pods.delete(name)
        deployments = [deployment(n) for n in asked]
        assert dict(pods.instance_pods(deployments=deployments)) == each(pods, deployments)


def first_pod(pods: MemoryPods, name: str = "c-0") -> ObservedPod:
    (pod,) = pods.instance_pods(deployments=[deployment(n) for n in NAMES])[name]
    return pod


def started() -> MemoryPods:
    pods = MemoryPods()
    for name in NAMES:
        pods.started(d=deployment(name), template=template("busybox"))
    return pods


def test_the_same_instances_with_no_pod_changed_get_the_same_answer() -> None:
    pods = started()
    deployments = [deployment(n) for n in NAMES]
    assert pods.instance_pods(deployments=deployments) is pods.instance_pods(
        deployments=[deployment(n) for n in NAMES]
    )


def test_a_new_pod_from_a_new_template_is_in_the_next_answer() -> None:
    pods = started()
    before = first_pod(pods)
    pods.started(d=deployment("c-0"), template=template("alpine"))
    assert first_pod(pods).uid != before.uid


def test_a_resized_pod_is_in_the_next_answer() -> None:
    pods = started()
    first_pod(pods)
    resize(pods, "c-0", cpu_m=700)
    assert first_pod(pods).spec["app"] == Resources(cpu_req_m=700)


def test_a_deleted_pod_is_not_in_the_next_answer() -> None:
    pods = started()
    first_pod(pods)
    pods.delete("c-0")
    assert pods.instance_pods(deployments=[deployment(n) for n in NAMES])["c-0"] == ()


def test_other_instances_get_their_own_answer() -> None:
    pods = started()
    first_pod(pods)
    answer = pods.instance_pods(deployments=[deployment("c-2")])
    assert list(answer) == ["c-2"]
