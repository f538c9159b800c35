"""The planner's drift memo on an observed Deployment (``observed.DriftMemo``).

Aspects tested:

* whatever keys are stored and looked up, the memo answers as a plain dict would
  (hypothesis: tuples of shared and own parts, other hashables, equal keys built apart);
* equal parts of keys stored on different Deployments are one object, an instance's
  own index and partitions are never placed in the shared table, and a part whose
  equality leaves a field out (``ScalingState.explanation``) still finds its results;
* the table of shared parts is bounded: past it, it starts over;
* 2,000 Deployments' memos with three keys each (as ``rules.drift_key`` and the planner
  build them for instances sized alike) retain under 800 B per Deployment (tracemalloc,
  676 B; 1,604 B with each key's parts as built).
"""

import gc
import tracemalloc
from collections.abc import Hashable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain import observed
from konsumerator.domain.observed import DriftMemo
from konsumerator.domain.resources import Resources
from konsumerator.domain.rules import drift_key
from konsumerator.domain.scaling import ScalingState, ScalingStatus

SIZES = {
    "consumer": Resources(cpu_req_m=300, mem_req_b=256 << 20, cpu_lim_m=1000, mem_lim_b=256 << 20),
    "metrics-sidecar": Resources(
        cpu_req_m=50, mem_req_b=32 << 20, cpu_lim_m=50, mem_lim_b=32 << 20
    ),
}
SINCE = datetime(2026, 11, 30, 13, 33, 51, tzinfo=UTC)


def key_of(index: int, *, explanation: str = "", cpu_m: int = 300) -> Hashable:
    """A key as ``rules.drift_key`` builds it, its parts built afresh (as each pass does)."""
    sizes = dict(SIZES)
    sizes["consumer"] = Resources(
        cpu_req_m=cpu_m, mem_req_b=256 << 20, cpu_lim_m=1000, mem_lim_b=256 << 20
    )
    return drift_key(
        memo_key=("7534121612825573860", "small-0", "bench", 2000),
        index=index,
        partitions=(index,),
        target=sizes,
        template=dict(sizes),
        scaling=ScalingState(
            status=ScalingStatus.RUNNING, since=SINCE, memory=None, explanation=explanation
        ),
        cpu_shortage_m=0,
    )


PARTS = st.one_of(
    st.integers(-3, 3),
    st.text(max_size=3),
    st.none(),
    st.tuples(st.integers(0, 3)),
    st.tuples(st.text(max_size=2), st.integers(0, 2)),
    st.frozensets(st.integers(0, 3), max_size=2),
)
KEYS = st.one_of(st.tuples(PARTS, PARTS, PARTS), PARTS)


@given(ops=st.lists(st.tuples(st.booleans(), KEYS, st.tuples(st.text(max_size=3))), max_size=30))
def test_the_memo_answers_as_a_plain_dict(
    ops: list[tuple[bool, Hashable, tuple[str, ...]]],
) -> None:
    memo, model = DriftMemo(), dict[Hashable, tuple[str, ...]]()
    for store, key, value in ops:
        if store:
            memo[key] = value
            model[key] = value
        assert memo.get(key) == model.get(key)
        assert len(memo) == len(model)
    assert memo == model


def test_equal_parts_are_shared_and_an_instances_own_are_not_kept() -> None:
    observed._key_parts.clear()
    a, b = DriftMemo(), DriftMemo()
    a[key_of(1)] = ()
    b[key_of(2, explanation="another reason")] = ("spec.replicas",)
    (ka,), (kb,) = a, b
    assert isinstance(ka, tuple)
    assert isinstance(kb, tuple)
    for shared in (0, 3, 4, 5):  # what the pass shares, target, template, scaling state
        assert ka[shared] is kb[shared]
    assert (ka[1], ka[2]) == (1, (1,))
    assert (1,) not in observed._key_parts
    assert (2,) not in observed._key_parts
    # The explanation is not part of the state's equality, so not of the key's.
    assert a.get(key_of(1, explanation="another reason")) == ()
    assert b.get(key_of(2)) == ("spec.replicas",)
    assert a.get(key_of(1, cpu_m=700)) is None


def test_the_shared_parts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observed, "_SHARED_KEY_PARTS", 4)
    observed._key_parts.clear()
    memo = DriftMemo()
    for cpu_m in range(100, 110):
        memo[key_of(0, cpu_m=cpu_m)] = ()
        assert len(observed._key_parts) <= 4
    assert all(memo.get(key_of(0, cpu_m=cpu_m)) == () for cpu_m in range(100, 110))


def test_memos_of_instances_sized_alike_retain_under_800_b_each() -> None:
    count = 2000
    observed._key_parts.clear()
    memos: list[DriftMemo] = []
    gc.collect()
    tracemalloc.start()
    try:
        for n in range(count):
            memo = DriftMemo()
            # Two renderings (sizes before and after a resize) and the planner's own key,
            # each built afresh, as passes build them.
            memo[key_of(n, cpu_m=300, explanation="a decision")] = ()
            memo[key_of(n, cpu_m=350, explanation="another")] = ()
            memo[("planning._kept", 0, n, (n,), True)] = ()
            memos.append(memo)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert retained / count < 800, f"{retained / count:.0f} B per Deployment"
