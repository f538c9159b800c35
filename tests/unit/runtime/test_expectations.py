"""Creation expectations: what a controller created and its cache has not shown yet.

Aspects tested (``runtime.expecting.Expectations`` on a virtual clock):
- a name expected (about to be created) is awaited while the caller still finds it
  missing, until its deadline (``timeout_s`` after: awaited just before, not at it);
- a name the cache shows (not passed as missing) is settled for good: missing again
  later, it is not awaited (somebody deleted it: it is to be created again);
- a creation recorded again restarts its deadline;
- owners never share a name's expectation; ``forget`` drops an owner's, and an owner
  whose expectations have all settled or lapsed is not kept (no leak);
- ``due_in`` is the time to the owner's earliest deadline, none without expectations;
- a withdrawn creation (not made after all) is not awaited;
- against a model (hypothesis): any sequence of creations, withdrawals, deletions, looks
  and clock steps awaits exactly the names created within the timeout and missing at
  every look since.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.runtime.expecting import SOON_S, TIMEOUT_S, Expectations


@dataclass
class VirtualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def expectations(timeout_s: float = 5.0) -> tuple[Expectations, VirtualClock]:
    clock = VirtualClock()
    return Expectations(timeout_s=timeout_s, clock=clock), clock


def test_the_default_timeout_is_at_most_a_minute() -> None:
    assert 1.0 <= TIMEOUT_S <= 60.0


def test_a_name_the_watch_saw_deleted_is_no_longer_awaited() -> None:
    """Added and deleted before the next pass looked (the watch delivered both): the
    next pass finds it missing and creates it again at once, not after the timeout."""
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    awaiting.gone(owner="uid-a", name="x-0")
    awaiting.gone(owner="uid-b", name="x-1")  # another owner's object of that name
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-1"}
    awaiting.gone(owner="uid-a", name="x-1")
    assert awaiting.owners() == frozenset()


def test_a_withdrawn_creation_is_not_awaited() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    awaiting.withdraw(owner="uid-a", names=["x-1", "x-9"])
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-0"}


def test_a_created_name_is_awaited_while_missing() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1", "x-2"]) == {"x-0", "x-1"}
    # Asked again (the next pass, the watch still behind): still awaited.
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1", "x-2"]) == {"x-0", "x-1"}


@pytest.mark.parametrize(
    ("elapsed", "awaited"),
    [(0.0, True), (4.999, True), (5.0, False), (60.0, False)],
)
def test_an_expectation_lapses_at_its_deadline(elapsed: float, awaited: bool) -> None:
    awaiting, clock = expectations(timeout_s=5.0)
    awaiting.expect(owner="uid-a", names=["x-0"])
    clock.now += elapsed
    assert awaiting.awaited(owner="uid-a", missing=["x-0"]) == ({"x-0"} if awaited else set())


def test_a_name_the_cache_showed_is_created_again_when_it_goes_missing() -> None:
    """Seen once (not missing), the expectation is settled: a later deletion makes the
    name missing again, and it is not awaited (else it would wait for the timeout)."""
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    assert awaiting.awaited(owner="uid-a", missing=["x-1"]) == {"x-1"}
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-1"}


def test_a_creation_recorded_again_restarts_its_deadline() -> None:
    awaiting, clock = expectations(timeout_s=5.0)
    awaiting.expect(owner="uid-a", names=["x-0"])
    clock.now += 4.0
    awaiting.expect(owner="uid-a", names=["x-0"])
    clock.now += 4.0
    assert awaiting.awaited(owner="uid-a", missing=["x-0"]) == {"x-0"}


def test_owners_never_share_an_expectation() -> None:
    """Two Consumers in two namespaces plan the same Deployment names: each owner's
    creations are its own."""
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["orders-0"])
    assert awaiting.awaited(owner="uid-b", missing=["orders-0"]) == set()
    assert awaiting.awaited(owner="uid-a", missing=["orders-0"]) == {"orders-0"}


def test_forget_drops_only_that_owners_expectations() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0"])
    awaiting.expect(owner="uid-b", names=["x-0"])
    awaiting.forget(owner="uid-a")
    assert awaiting.owners() == {"uid-b"}
    assert awaiting.awaited(owner="uid-a", missing=["x-0"]) == set()
    assert awaiting.awaited(owner="uid-b", missing=["x-0"]) == {"x-0"}


@pytest.mark.parametrize(
    ("missing", "elapsed"),
    [((), 0.0), (("x-0",), 10.0)],
    ids=["all-shown", "all-lapsed"],
)
def test_an_owner_with_nothing_left_to_await_is_not_kept(
    missing: tuple[str, ...], elapsed: float
) -> None:
    awaiting, clock = expectations(timeout_s=5.0)
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    clock.now += elapsed
    awaiting.awaited(owner="uid-a", missing=missing)
    assert awaiting.owners() == set()
    assert awaiting.due_in(owner="uid-a") is None


def test_nothing_created_keeps_no_owner() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=[])
    assert awaiting.owners() == set()


def test_due_in_is_the_time_to_the_earliest_deadline() -> None:
    awaiting, clock = expectations(timeout_s=5.0)
    assert awaiting.due_in(owner="uid-a") is None
    awaiting.expect(owner="uid-a", names=["x-0"])
    clock.now += 2.0
    awaiting.expect(owner="uid-a", names=["x-1"])
    clock.now += 1.0
    assert awaiting.due_in(owner="uid-a") == pytest.approx(2.0)
    awaiting.awaited(owner="uid-a", missing=["x-1"])  # x-0 shown: x-1's deadline is next
    assert awaiting.due_in(owner="uid-a") == pytest.approx(4.0)


NAMES = st.sampled_from(["a", "b", "c", "d"])
OWNERS = st.sampled_from(["uid-1", "uid-2"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), OWNERS, st.frozensets(NAMES)),
        st.tuples(st.just("look"), OWNERS, st.frozensets(NAMES)),
        st.tuples(st.just("wait"), st.just(""), st.sampled_from([0.5, 1.0, 2.5, 5.0])),
        st.tuples(st.just("forget"), OWNERS, st.just(frozenset[str]())),
        st.tuples(st.just("gone"), OWNERS, st.frozensets(NAMES, max_size=1)),
        st.tuples(st.just("withdraw"), OWNERS, st.frozensets(NAMES)),
    ),
    max_size=30,
)


@given(STEPS)
def test_awaited_names_match_a_model(steps: list[tuple[str, str, object]]) -> None:
    """The model: per owner and name, the time of the last creation, cleared by the deletion
    of the name, when the creation is withdrawn, when a look does not find the name
    missing, when the owner is forgotten, or at a look past it by the timeout."""
    awaiting, clock = expectations(timeout_s=3.0)
    model: dict[tuple[str, str], float] = {}
    for verb, owner, arg in steps:
        if verb == "wait":
            assert isinstance(arg, float)
            clock.now += arg
        elif verb == "create":
            assert isinstance(arg, frozenset)
            awaiting.expect(owner=owner, names=sorted(arg))
            model.update({(owner, name): clock.now for name in arg})
        elif verb == "gone":
            assert isinstance(arg, frozenset)
            for name in arg:
                awaiting.gone(owner=owner, name=name)
                model.pop((owner, name), None)
        elif verb == "withdraw":
            assert isinstance(arg, frozenset)
            awaiting.withdraw(owner=owner, names=sorted(arg))
            model = {k: t for k, t in model.items() if k[0] != owner or k[1] not in arg}
        elif verb == "forget":
            awaiting.forget(owner=owner)
            model = {k: t for k, t in model.items() if k[0] != owner}
        else:
            assert isinstance(arg, frozenset)
            expected = {
                name
                for (o, name), t in model.items()
                if o == owner and name in arg and clock.now - t < 3.0
            }
            assert awaiting.awaited(owner=owner, missing=sorted(arg)) == expected
            model = {k: t for k, t in model.items() if k[0] != owner or k[1] in expected}
        due = [t + 3.0 - clock.now for (o, _), t in model.items() if o == owner]
        if verb == "look" and due:
            assert awaiting.due_in(owner=owner) == pytest.approx(max(SOON_S, min(due)))
    assert awaiting.owners() == {o for o, _ in model}
