"""The learned rate per core (``domain.adaptive.learning``).

Aspects tested: which pod is whose (uncut names by their last two segments; names
Kubernetes cut to 58 characters, for every Consumer ``spec.name`` length the CRD
allows, by an independent oracle of the generated names; ambiguity said, never
guessed; the owner chain and the namespace label first); what counts as saturated; the sample is
consumption over CPU used (ratio of sums); learning is off without a query,
pauses on a failed or lying answer and holds on no saturation; the estimate
moves by the EWMA, stays within the bounds whatever is answered, converges on
the true rate, restarts from a changed prior; no previous sync skips the sample and
says why; a 10^5-series answer gives the same numbers; and the status round trip.
"""

import math
import re
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.adaptive import learning
from konsumerator.domain.adaptive.learning import (
    ALPHA,
    Learned,
    Observation,
    PodNames,
    Reason,
    State,
    effective_rate,
    generated_pod_name,
    instance_of_pod,
    learn,
    saturated,
)
from konsumerator.domain.metrics import CpuUsage, MetricsSnapshot
from konsumerator.domain.status import ConsumerStatus, learning_body, learning_from_body

T = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
PRIOR = 1000
INSTANCES = (("orders-0", (0, 1)), ("orders-1", (2, 3)))


def snap(produced: float, consumed: float, backlog: float = 10_000) -> MetricsSnapshot:
    """Every partition of both instances alike."""
    parts = range(4)
    return MetricsSnapshot(
        production=MappingProxyType(dict.fromkeys(parts, produced)),
        consumption=MappingProxyType(dict.fromkeys(parts, consumed)),
        offset=MappingProxyType(dict.fromkeys(parts, backlog)),
    )


def usage(**by_pod: float) -> CpuUsage:
    return CpuUsage(by_pod=MappingProxyType({k.replace("_", "-"): v for k, v in by_pod.items()}))


# Both instances saturated at 400 msg/s each (2 partitions × 200), 0.5 core each: 800/s/core.
SATURATED, BEFORE = snap(300, 200), snap(300, 200)
HALF_CORE = usage(orders_0_5d4f8b9c7d_x1y2z=0.5, orders_1_5d4f8b9c7d_a1b2c=0.5)


@pytest.mark.parametrize(
    ("pod", "want"),
    [
        ("orders-0-5d4f8b9c7d-x1y2z", "orders-0"),
        ("orders-1-0-5d4f8b9c7d-x1y2z", "orders-1-0"),  # the Consumer orders-1's instance
        ("orders-0-x1y2z", "orders"),  # a bare pod: then no instance of that name, unknown
        ("orders", None),
        ("-a-b", None),
        ("a--b", None),
    ],
)
def test_a_pod_belongs_to_its_name_without_hash_and_suffix(pod: str, want: str | None) -> None:
    assert instance_of_pod(pod) == want


# What the apiserver's generated names are made of (the random suffix and the
# pod-template-hash's encoding alike: apimachinery's rand alphabet).
ALNUM = "bcdfghjklmnpqrstvwxz2456789"


# Every spec.name length the CRD allows (1-60), equally likely: the cut ones are the
# long ones.
_names = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.text(alphabet="ab1z9-", min_size=n, max_size=n).map(
        lambda raw: ("a" + raw[1:-1] + "z")[:n] if n > 1 else ("a" if raw == "-" else raw)
    )
)
_hashes = st.text(alphabet=ALNUM, min_size=1, max_size=10)
_suffixes = st.text(alphabet=ALNUM, min_size=5, max_size=5)
_indices = st.integers(min_value=0, max_value=99_999)  # numPartitions <= 100 000


def could_be(deployment: str, pod: str) -> bool:
    """The oracle: whether some pod-template-hash makes Kubernetes name a pod of
    ``deployment`` so (``(<deployment>-<hash>-)[:58]`` + 5 random characters)."""
    base, suffix = pod[:-5], pod[-5:]
    if not re.fullmatch(f"[{ALNUM}]{{5}}", suffix):
        return False
    for n in range(1, 11):
        full = f"{deployment}-{'#' * n}-"[:58]
        if len(full) == len(base) and all(
            f == b or (f == "#" and b in ALNUM) for f, b in zip(full, base, strict=True)
        ):
            return True
    return False


@given(
    name=_names,
    index=_indices,
    others=st.lists(_indices, max_size=20),
    pick=st.integers(min_value=0, max_value=100),
    template_hash=_hashes,
    suffix=_suffixes,
)
def test_a_pod_is_of_exactly_the_instances_whose_pods_can_bear_its_name(
    name: str, index: int, others: list[int], pick: int, template_hash: str, suffix: str
) -> None:
    # Neighbours that share digits with the index are the ones a cut can confuse; and
    # a Consumer whose spec.name is "<name>-<index>" has instances "<name>-<index>-<k>".
    indices = sorted({index, index // 10, index * 10, index * 10 + 1, *others})
    instances = [f"{name}-{i}" for i in indices] + [f"{name}-{index}-{k}" for k in range(3)]
    deployment = instances[pick % len(instances)]
    pod = generated_pod_name(deployment=deployment, template_hash=template_hash, suffix=suffix)
    assert len(pod) <= 63
    owners = PodNames(instances).owners(pod)
    assert deployment in owners
    assert set(owners) == {d for d in instances if could_be(d, pod)}


@given(
    name=_names.filter(lambda n: len(n) <= 52),
    index=_indices,
    other=st.one_of(_indices, st.integers(min_value=0, max_value=9).map(lambda d: d)),
    template_hash=_hashes,
    suffix=_suffixes,
)
def test_under_53_characters_no_two_instances_share_a_pod_name(
    name: str, index: int, other: int, template_hash: str, suffix: str
) -> None:
    pod = generated_pod_name(
        deployment=f"{name}-{index}", template_hash=template_hash, suffix=suffix
    )
    for j in {other, index * 10 + other % 10, index // 10}:
        if j != index and j < 100_000:
            assert not could_be(f"{name}-{j}", pod)
            assert PodNames([f"{name}-{index}", f"{name}-{j}"]).owners(pod) == (f"{name}-{index}",)


# A 50-character spec.name: its instances' pods have cut names (Deployment names of 52+).
LONG = "a" * 49 + "z"
# A 56-character one: "<name>-<index>" is cut to "<name>-" and the index's first digit.
LONGEST = "b" * 55 + "z"


@pytest.mark.parametrize(
    ("instances", "pod", "want"),
    [
        ((f"{LONG}-0", f"{LONG}-1"), f"{LONG}-1-5d4f8" + "x1y2z", (f"{LONG}-1",)),
        ((f"{LONG}-1", f"{LONG}-12"), f"{LONG}-12-5d4f" + "x1y2z", (f"{LONG}-12",)),
        ((f"{LONGEST}-1", f"{LONGEST}-2"), f"{LONGEST}-2" + "x1y2z", (f"{LONGEST}-2",)),
        (
            (f"{LONGEST}-1", f"{LONGEST}-12", f"{LONGEST}-2"),
            f"{LONGEST}-1" + "x1y2z",
            (f"{LONGEST}-1", f"{LONGEST}-12"),
        ),
        ((f"{LONGEST}-1",), f"{LONGEST}-" + "x1y2z", ()),  # 62 characters: cut before the index
        # The Consumer "<LONG>-1"'s instance "<LONG>-1-0", cut after "-0-": its last two
        # segments are "0" and hash + suffix, but it is no pod of "<LONG>-1".
        ((f"{LONG}-1",), f"{LONG}-1-0-5d4" + "x1y2z", ()),
        # Longer than any generated name (the scoring model's): the uncut rule.
        ((f"{LONG}-0",), f"{LONG}-0-5d4f8b9c7d-x1y2z", (f"{LONG}-0",)),
        (("orders-0",), "orders-0-5d4f8b9c7d-x1y2z", ("orders-0",)),
    ],
)
def test_cut_pod_names_map_to_their_instance_or_say_they_are_ambiguous(
    instances: tuple[str, ...], pod: str, want: tuple[str, ...]
) -> None:
    assert PodNames(instances).owners(pod) == want


def obs(
    *,
    produced: float = 1000,
    consumed: float = 600,
    backlog: float = 5000,
    before: float | None,
    backlog_before: float | None = None,
) -> Observation:
    return Observation(
        name="x",
        produced=produced,
        consumed=consumed,
        backlog=backlog,
        consumed_before=before,
        cores=1.0,
        backlog_before=backlog_before,
    )


# At capacity and keeping up: 1000/s consumed of 1000/s produced, 100 s of it behind.
def flat(**changes: float | None) -> Observation:
    fields: dict[str, float | None] = {
        "produced": 1000,
        "consumed": 1000,
        "backlog": 100_000,
        "before": 1000,
        "backlog_before": 100_000,
    }
    fields.update(changes)
    return obs(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observation", "want", "why"),
    [
        (obs(before=600), True, "falling behind, flat"),
        (obs(before=590), True, "risen within FLAT"),
        (obs(before=500), False, "rising: a scale-up still taking effect"),
        (obs(before=None), False, "no previous sync to compare with"),
        (obs(consumed=960, before=960), False, "keeping up"),
        (obs(consumed=10, before=10), False, "an outage, not a CPU limit"),
        (obs(backlog=0, before=600), False, "nothing behind"),
        (obs(produced=0, consumed=0, before=0), False, "nothing produced"),
        (flat(), True, "a flat backlog of 100 s of consumption: at capacity"),
        (flat(consumed=1150, before=1150), True, "consuming more than produced, not draining"),
        (flat(backlog=110_000), True, "a backlog growing although consumption keeps up"),
        (flat(backlog=96_000), True, "shrunk within FLAT: flat"),
        (flat(backlog=90_000), False, "a shrinking backlog: draining, maybe idle in between"),
        (flat(backlog=29_000, backlog_before=29_000), False, "under BACKLOG_S of consumption"),
        (flat(backlog=30_000, backlog_before=30_000), True, "BACKLOG_S of consumption"),
        (flat(backlog_before=None), False, "the previous backlog unknown"),
        (flat(before=900), False, "consumption rising: a scale-up taking effect"),
        (flat(before=None), False, "no previous sync to compare with"),
        (flat(consumed=10, before=10), False, "an outage with a backlog, not a CPU limit"),
        (flat(produced=0, consumed=0, before=0), False, "nothing produced"),
    ],
)
def test_saturated_means_at_capacity_and_consumption_flat(
    observation: Observation, want: bool, why: str
) -> None:
    assert saturated(observation) is want, why


rates = st.floats(min_value=0, max_value=1e9, allow_nan=False)


@given(produced=rates, consumed=rates, backlog=rates, backlog_before=rates, before=rates)
def test_keeping_up_a_backlog_is_saturated_only_when_long_flat_and_not_an_outage(
    produced: float, consumed: float, backlog: float, backlog_before: float, before: float
) -> None:
    o = obs(
        produced=produced,
        consumed=consumed,
        backlog=backlog,
        before=before,
        backlog_before=backlog_before,
    )
    if saturated(o) and consumed >= produced * learning.KEEPING_UP:
        assert produced > 0
        assert consumed >= produced * learning.OUTAGE
        assert backlog >= consumed * learning.BACKLOG_S
        assert backlog >= backlog_before * (1 - learning.FLAT)
        assert consumed <= before * (1 + learning.FLAT)


def run(
    *,
    previous: Learned | None = None,
    cpu: CpuUsage | None = HALF_CORE,
    now_snap: MetricsSnapshot = SATURATED,
    before: MetricsSnapshot | None = BEFORE,
    prior: int = PRIOR,
    instances: tuple[tuple[str, tuple[int, ...]], ...] = INSTANCES,
    owned: dict[str, str] | None = None,
    namespace: str | None = None,
) -> Learned:
    return learn(
        previous=previous,
        prior=prior,
        usage=cpu,
        snapshot=now_snap,
        before=before,
        instances=instances,
        now=T,
        owned=owned or {},
        namespace=namespace,
    )


ONE_SAMPLE = round(ALPHA * 800 + (1 - ALPHA) * 1000)


def pods_of(*deployments: str, cores: float = 0.5) -> CpuUsage:
    """Each Deployment's pod as Kubernetes names it (cut to 58 + 5 characters)."""
    return CpuUsage(
        by_pod=MappingProxyType(
            {
                generated_pod_name(deployment=d, template_hash="5d4f8b9c7d", suffix="x1y2z"): cores
                for d in deployments
            }
        )
    )


def test_pods_of_long_deployment_names_are_learned_from() -> None:
    instances = ((f"{LONG}-0", (0, 1)), (f"{LONG}-1", (2, 3)))
    got = run(cpu=pods_of(f"{LONG}-0", f"{LONG}-1"), instances=instances)
    assert (got.reason, got.rate_per_core) == (Reason.LEARNED, ONE_SAMPLE)


def test_ambiguous_pods_are_not_guessed_and_the_status_names_them() -> None:
    names = (f"{LONGEST}-1", f"{LONGEST}-12")
    instances = ((names[0], (0, 1)), (names[1], (2, 3)))
    # Both pods are "<name>-1" + a suffix: whose is whose cannot be told by name.
    got = run(cpu=pods_of(*names), instances=instances)
    assert (got.state, got.reason, got.rate_per_core) == (
        State.PAUSED,
        Reason.AMBIGUOUS_POD_NAMES,
        PRIOR,
    )
    assert names[0] in got.message
    assert names[1] in got.message
    # In place, the owner chain says it (the pods differ by their random suffix).
    owned = {f"{LONGEST}-1" + sfx: d for d, sfx in zip(names, ("x1y2z", "q7r8s"), strict=True)}
    cpu = CpuUsage(by_pod=MappingProxyType(dict.fromkeys(owned, 0.5)))
    assert run(cpu=cpu, instances=instances).reason is Reason.AMBIGUOUS_POD_NAMES
    assert run(cpu=cpu, instances=instances, owned=owned).rate_per_core == ONE_SAMPLE


def test_a_saturated_sample_learns_without_the_ambiguous_instances_and_says_so() -> None:
    names = (f"{LONGEST}-1", f"{LONGEST}-12", f"{LONGEST}-2")
    instances = ((names[0], (0,)), (names[1], (1,)), (names[2], (2, 3)))
    cpu = pods_of(*names)
    got = run(cpu=cpu, instances=instances)
    # Only the unambiguous instance (2 partitions × 200 on 0.5 core): 800/s per core.
    assert (got.reason, got.rate_per_core) == (Reason.LEARNED, ONE_SAMPLE)
    assert "left out" in got.message
    assert names[1] in got.message


def test_series_of_another_namespace_are_not_this_consumers() -> None:
    # The same Consumer name in another namespace: the same pod names, twice the CPU.
    cpu = CpuUsage(
        by_pod=MappingProxyType(
            {
                **{f"shop/{pod}": cores for pod, cores in HALF_CORE.by_pod.items()},
                **{f"test/{pod}": 3.0 for pod in HALF_CORE.by_pod},
            }
        )
    )
    assert run(cpu=cpu, namespace="shop").rate_per_core == ONE_SAMPLE
    assert run(cpu=cpu, namespace="elsewhere").reason is Reason.CPU_USAGE_UNUSABLE


def test_without_a_previous_sync_one_sample_is_skipped_and_the_status_says_why() -> None:
    got = run(previous=LEARNED_900, before=None)
    assert (got.state, got.reason, got.rate_per_core, got.samples) == (
        State.LEARNING,
        Reason.NO_PREVIOUS_SYNC,
        900,
        3,
    )
    assert "resumes" in got.message
    # Keeping up, nothing would have been learned anyway.
    assert run(before=None, now_snap=snap(300, 300)).reason is Reason.NOT_SATURATED


def test_a_huge_answer_gives_the_same_numbers() -> None:
    # 10^5 series: the two instances' pods among 99 998 pods of other Consumers, some
    # with names that share their prefix.
    others = {f"orders-{i}-5d4f8b9c7d-x1y2z": 7.0 for i in range(2, 50_000)}
    others |= {f"payments-{i}-5d4f8b9c7d-x1y2z": 7.0 for i in range(50_000)}
    cpu = CpuUsage(by_pod=MappingProxyType(dict(HALF_CORE.by_pod) | others))
    assert len(cpu.by_pod) == 100_000
    got = run(cpu=cpu)
    assert (got.reason, got.rate_per_core) == (Reason.LEARNED, ONE_SAMPLE)


def test_without_a_query_learning_is_off_and_sizing_uses_the_configured_rate() -> None:
    got = run(cpu=None)
    assert (got.state, got.reason, got.rate_per_core) == (
        State.OFF,
        Reason.NO_CPU_USAGE_QUERY,
        None,
    )
    assert effective_rate(got, prior=PRIOR) is None


def test_a_saturated_sample_moves_the_prior_by_the_ewma() -> None:
    got = run()
    # 800 msg/s per core used, folded into the prior 1000 with weight ALPHA.
    assert got.rate_per_core == round(ALPHA * 800 + (1 - ALPHA) * 1000)
    assert (got.state, got.reason, got.samples, got.learned_at) == (
        State.LEARNING,
        Reason.LEARNED,
        1,
        T,
    )
    assert effective_rate(got, prior=PRIOR) == got.rate_per_core


def test_the_sample_divides_by_cpu_used_as_a_ratio_of_sums() -> None:
    # 400/s on 0.25 core and 400/s on 0.75 core: 800/1.0 = 800, not mean(1600, 533).
    got = run(cpu=usage(orders_0_h_s=0.25, orders_1_h_s=0.75))
    assert got.rate_per_core == round(ALPHA * 800 + (1 - ALPHA) * 1000)


LEARNED_900 = Learned(
    state=State.LEARNING,
    reason=Reason.LEARNED,
    message="",
    rate_per_core=900,
    prior=PRIOR,
    samples=3,
    learned_at=T - timedelta(minutes=5),
)


@pytest.mark.parametrize(
    ("cpu", "now_snap", "state", "reason"),
    [
        (CpuUsage(problem="no answer within 10s"), SATURATED, State.PAUSED, "CpuUsageUnavailable"),
        (usage(orders_0_h_s=math.nan, orders_1_h_s=0.5), SATURATED, State.LEARNING, "Learned"),
        (
            usage(orders_0_h_s=math.nan, orders_1_h_s=-1),
            SATURATED,
            State.PAUSED,
            "CpuUsageUnusable",
        ),
        (usage(orders_0_h_s=0.0, orders_1_h_s=0.0), SATURATED, State.PAUSED, "CpuUsageUnusable"),
        (
            usage(orders_0_h_s=1e9, orders_1_h_s=math.inf),
            SATURATED,
            State.PAUSED,
            "CpuUsageUnusable",
        ),
        (usage(payments_0_h_s=0.5), SATURATED, State.PAUSED, "CpuUsageUnusable"),  # unknown pods
        (usage(), SATURATED, State.PAUSED, "CpuUsageUnusable"),
        (HALF_CORE, snap(300, 300), State.LEARNING, "NotSaturated"),
    ],
)
def test_a_failed_lying_or_idle_answer_holds_the_learned_rate_and_says_why(
    cpu: CpuUsage, now_snap: MetricsSnapshot, state: State, reason: str
) -> None:
    got = run(previous=LEARNED_900, cpu=cpu, now_snap=now_snap)
    assert (got.state, got.reason.value) == (state, reason)
    if reason != "Learned":
        assert (got.rate_per_core, got.samples, got.learned_at) == (900, 3, LEARNED_900.learned_at)
    assert got.message


def test_a_changed_ratepercore_restarts_learning_from_it() -> None:
    got = run(previous=LEARNED_900, prior=2000, now_snap=snap(300, 300))
    assert (got.rate_per_core, got.prior, got.samples) == (2000, 2000, 0)
    assert effective_rate(got, prior=PRIOR) is None  # nothing learned yet: the configured rate


def test_repeated_saturation_converges_on_the_true_rate() -> None:
    learned = None
    for _ in range(30):
        learned = run(previous=learned)
    assert learned is not None
    assert abs((learned.rate_per_core or 0) - 800) <= 2


@given(
    cores=st.lists(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0)),
        min_size=2,
        max_size=2,
    ),
    consumed=st.floats(min_value=0, max_value=1e12),
    prior=st.integers(min_value=1, max_value=10**9),
    steps=st.integers(min_value=1, max_value=5),
)
def test_whatever_is_answered_the_rate_stays_within_the_bounds(
    cores: list[float], consumed: float, prior: int, steps: int
) -> None:
    cpu = usage(orders_0_h_s=cores[0], orders_1_h_s=cores[1])
    current = snap(consumed * 2 + 1, consumed)
    learned = None
    for _ in range(steps):
        learned = run(previous=learned, cpu=cpu, now_snap=current, before=current, prior=prior)
        assert learned.rate_per_core is not None
        assert max(1, math.floor(prior * learning.LOWER)) <= learned.rate_per_core
        assert learned.rate_per_core <= math.ceil(prior * learning.UPPER)


@pytest.mark.parametrize(
    "learned", [learning.off(), LEARNED_900, run(previous=LEARNED_900, cpu=CpuUsage(problem="x"))]
)
def test_the_status_round_trip_keeps_the_learning(learned: Learned) -> None:
    body = ConsumerStatus(learning=learned).to_body()
    assert ConsumerStatus.from_body(body).learning == learned
    assert (
        ConsumerStatus.from_annotations(ConsumerStatus(learning=learned).to_annotations()).learning
        == learned
    )


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.dictionaries(
            st.sampled_from(["state", "reason", "ratePerCore", "samples", "lastLearnedTime"]),
            st.one_of(st.integers(), st.text(), st.booleans(), st.none(), st.floats()),
        ),
    )
)
def test_any_learning_field_reads_back_without_failing(raw: object) -> None:
    got = learning_from_body(raw)
    status = ConsumerStatus.from_body({"learning": raw})
    # Unreadable: carried as it was, and written back unchanged.
    if got is None and raw is not None:
        assert status.to_body()["learning"] == raw
    if got is not None:
        assert learning_body(got)["state"] == got.state.value


def _foreign(rate: int, *, prior: int = PRIOR, samples: int = 7) -> Learned:
    """A ``status.learning`` someone else wrote (a user with status access, a backup)."""
    return Learned(
        state=State.LEARNING,
        reason=Reason.LEARNED,
        message="",
        rate_per_core=rate,
        prior=prior,
        samples=samples,
        learned_at=T - timedelta(minutes=5),
    )


@pytest.mark.parametrize(
    ("written", "resumed"),
    [
        (_foreign(900), True),  # within 0.3-3x: could be the operator's, resumed
        (_foreign(300), True),  # the lower bound itself
        (_foreign(3000), True),  # the upper bound itself
        (_foreign(299), False),  # below the bound: never written by the operator
        (_foreign(3001), False),
        (_foreign(10**15), False),  # absurd: clamped, it sized with a third of the CPU
        (_foreign(1), False),
    ],
)
def test_a_learned_rate_outside_the_bounds_is_dropped_not_clamped_and_the_status_says_so(
    written: Learned, resumed: bool
) -> None:
    assert (effective_rate(written, prior=PRIOR) is not None) == resumed
    got = run(previous=written, now_snap=snap(300, 300))  # nothing to learn this sync
    if resumed:
        assert (got.rate_per_core, got.samples) == (written.rate_per_core, 7)
        assert "outside" not in got.message
    else:
        assert (got.rate_per_core, got.samples, got.learned_at) == (PRIOR, 0, None)
        assert f"status.learning.ratePerCore={written.rate_per_core} was outside" in got.message
        assert effective_rate(got, prior=PRIOR) is None  # sizing: the configured rate


def test_a_rate_learned_for_another_ratepercore_restarts_and_the_status_says_so() -> None:
    got = run(previous=_foreign(2500, prior=2000), now_snap=snap(300, 300))
    assert (got.rate_per_core, got.prior, got.samples) == (PRIOR, PRIOR, 0)
    assert "learned 2500 was for ratePerCore=2000" in got.message
    assert effective_rate(_foreign(2500, prior=2000), prior=PRIOR) is None


@given(rate=st.integers(min_value=1, max_value=2**62), prior=st.integers(1, 10**9))
def test_whatever_the_status_held_sizing_stays_within_the_bounds(rate: int, prior: int) -> None:
    used = effective_rate(_foreign(rate, prior=prior), prior=prior)
    assert used is None or max(1, math.floor(prior * learning.LOWER)) <= used
    assert used is None or used <= math.ceil(prior * learning.UPPER)
    assert (used is None) == (not learning.written_by_us(rate, prior=prior))


@pytest.mark.parametrize(
    ("pod", "owners"),
    [
        ("orders-0-5d4f8b9c7d-x1y2z", ("orders-0",)),  # the instance's own pod
        ("orders-0-28930560-x7k2p", ()),  # a CronJob named orders-0: minutes, not a hash
        ("orders-0-canary-x7k2p", ()),  # a user's bare ReplicaSet orders-0-canary
        ("orders-0-0-x7k2p", ()),  # a hash never has a 0
        ("orders-1-0-5d4f8b9c7d-x1y2z", ()),  # another Consumer's instance orders-1-0
    ],
)
def test_only_pods_named_with_a_pod_template_hash_are_an_instances(
    pod: str, owners: tuple[str, ...]
) -> None:
    assert PodNames(["orders-0", "orders-1"]).owners(pod) == owners


def test_a_cronjob_named_like_an_instance_does_not_feed_its_learned_rate() -> None:
    # The instance's pods use 0.5 core each (800 msg/s per core); a CronJob "orders-0" in
    # the namespace the query selects runs a pod using 1.5 cores. Counted, orders-0 used
    # 2 cores and the sample was 400 msg/s per core instead of 800.
    cronjob = usage(
        orders_0_5d4f8b9c7d_x1y2z=0.5,
        orders_1_5d4f8b9c7d_a1b2c=0.5,
        orders_0_28930560_x7k2p=1.5,
    )
    assert run(cpu=cronjob).rate_per_core == run(cpu=HALF_CORE).rate_per_core == ONE_SAMPLE
