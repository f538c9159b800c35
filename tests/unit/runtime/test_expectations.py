"""Creation expectations: what a controller created and its cache has not shown yet.

Aspects tested (``runtime.expecting.Expectations`` on a virtual clock):
- a name expected (about to be created) is awaited while the caller still finds it
  missing, until its deadline (``timeout_s`` after: awaited just before, not at it);
- the deletion of the object created settles its expectation, delivered before or after
  the creation is back; the deletion of an older object of the name settles nothing;
- a name the cache shows (not passed as missing) is settled for good: missing again
  later, it is not awaited (somebody deleted it: it is to be created again);
- a creation recorded again restarts its deadline;
- owners never share a name's expectation; ``forget`` drops an owner's, and an owner
  whose expectations have all settled or lapsed is not kept (no leak);
- ``due_in`` is the time to the owner's earliest deadline, none without expectations;
- a creation not made after all (refused, failed, a cancelled pass) is not awaited;
- against a model (hypothesis): any sequence of creations (expected, then made),
  creations not made, deletions of the objects made or of older ones, looks and clock steps
  awaits exactly the names created within the timeout, not deleted, and missing at
  every look since.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def made(awaiting: Expectations, *, owner: str, names: list[str]) -> None:
    """``names`` created for ``owner`` (expected, then made), each object's UID ``u-NAME``."""
    awaiting.expect(owner=owner, names=names)
    awaiting.settle(owner=owner, names=names, made={n: f"u-{n}" for n in names})


def test_a_name_the_watch_saw_deleted_is_no_longer_awaited() -> None:
    """Added and deleted before the next pass looked (the watch delivered both): the
    next pass finds it missing and creates it again at once, not after the timeout."""
    awaiting, _ = expectations()
    made(awaiting, owner="uid-a", names=["x-0", "x-1"])
    awaiting.gone(owner="uid-a", name="x-0", uid="u-x-0")
    awaiting.gone(owner="uid-b", name="x-1", uid="u-x-1")  # another owner's object
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-1"}
    awaiting.gone(owner="uid-a", name="x-1", uid="u-x-1")
    assert awaiting.owners() == frozenset()


def test_the_deletion_of_an_older_object_of_the_name_settles_nothing() -> None:
    """Ours, deleted and created again under its name in one pass: the old one's
    deletion, delivered after the creation was back or while it was in flight, does
    not end the new one's expectation."""
    awaiting, _ = expectations()
    made(awaiting, owner="uid-a", names=["x-0"])
    awaiting.gone(owner="uid-a", name="x-0", uid="u-old")
    awaiting.expect(owner="uid-a", names=["x-1"])
    awaiting.gone(owner="uid-a", name="x-1", uid="u-old")
    awaiting.settle(owner="uid-a", names=["x-1"], made={"x-1": "u-x-1"})
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-0", "x-1"}


def test_a_deletion_delivered_while_its_creation_is_in_flight_settles_it_once_made() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1"])
    awaiting.gone(owner="uid-a", name="x-0", uid="u-x-0")
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-0", "x-1"}
    awaiting.settle(owner="uid-a", names=["x-0", "x-1"], made={"x-0": "u-x-0", "x-1": "u-x-1"})
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1"]) == {"x-1"}


def test_a_creation_not_made_is_not_awaited() -> None:
    awaiting, _ = expectations()
    awaiting.expect(owner="uid-a", names=["x-0", "x-1", "x-2"])
    awaiting.settle(owner="uid-a", names=["x-0", "x-1", "x-9"], made={"x-0": "u-x-0"})
    # x-2 is still in flight (another settle is to come): awaited.
    assert awaiting.awaited(owner="uid-a", missing=["x-0", "x-1", "x-2"]) == {"x-0", "x-2"}


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
        st.tuples(st.just("expect"), OWNERS, st.frozensets(NAMES)),
        st.tuples(st.just("made"), OWNERS, st.frozensets(NAMES)),
        st.tuples(st.just("look"), OWNERS, st.frozensets(NAMES)),
        st.tuples(st.just("wait"), st.just(""), st.sampled_from([0.5, 1.0, 2.5, 5.0])),
        st.tuples(st.just("forget"), OWNERS, st.just(frozenset[str]())),
        st.tuples(st.just("gone-ours"), OWNERS, st.frozensets(NAMES, max_size=1)),
        st.tuples(st.just("gone-old"), OWNERS, st.frozensets(NAMES, max_size=1)),
        st.tuples(st.just("not made"), OWNERS, st.frozensets(NAMES)),
    ),
    max_size=30,
)


@dataclass
class Modelled:
    """One expectation in the model: since ``t``, of the object ``uid`` will be once made."""

    t: float
    uid: str
    made: bool = False
    gone: set[str] = field(default_factory=set)


@given(STEPS)
def test_awaited_names_match_a_model(steps: list[tuple[str, str, object]]) -> None:
    """The model: per owner and name, the time of the last creation, cleared by the deletion
    of the object it made (delivered before or after it was made), when the creation is
    withdrawn, when a look does not find the name missing, when the owner is forgotten,
    or at a look past it by the timeout; the deletion of an older object of the name
    clears nothing."""
    awaiting, clock = expectations(timeout_s=3.0)
    model: dict[tuple[str, str], Modelled] = {}
    for k, (verb, owner, arg) in enumerate(steps):
        names = sorted(arg) if isinstance(arg, frozenset) else []
        if verb == "wait":
            assert isinstance(arg, float)
            clock.now += arg
        elif verb == "expect":
            awaiting.expect(owner=owner, names=names)
            model.update({(owner, n): Modelled(t=clock.now, uid=f"{n}-{k}") for n in names})
        elif verb == "made":
            made = {n: e.uid for n in names if (e := model.get((owner, n))) and not e.made}
            awaiting.settle(owner=owner, names=made, made=made)
            for n in made:
                entry = model[(owner, n)]
                if entry.uid in entry.gone:
                    del model[(owner, n)]
                else:
                    entry.made = True
        elif verb in ("gone-ours", "gone-old"):
            for n in names:
                entry = model.get((owner, n))
                uid = entry.uid if entry is not None and verb == "gone-ours" else "old"
                awaiting.gone(owner=owner, name=n, uid=uid)
                if entry is not None and not entry.made:
                    entry.gone.add(uid)
                elif entry is not None and uid == entry.uid:
                    del model[(owner, n)]
        elif verb == "not made":
            awaiting.settle(owner=owner, names=names, made={})
            # Only creations in flight are settled: one already made is awaited still.
            model = {k: e for k, e in model.items() if k[0] != owner or k[1] not in arg or e.made}
        elif verb == "forget":
            awaiting.forget(owner=owner)
            model = {k: e for k, e in model.items() if k[0] != owner}
        else:
            expected = {
                n
                for (o, n), e in model.items()
                if o == owner and n in arg and clock.now - e.t < 3.0
            }
            assert awaiting.awaited(owner=owner, missing=names) == expected
            model = {k: e for k, e in model.items() if k[0] != owner or k[1] in expected}
        due = [e.t + 3.0 - clock.now for (o, _), e in model.items() if o == owner]
        if verb == "look" and due:
            assert awaiting.due_in(owner=owner) == pytest.approx(max(SOON_S, min(due)))
    assert awaiting.owners() == {o for o, _ in model}
