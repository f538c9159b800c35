"""The store's indexes: what a lookup returns, and what an index costs per object.

Aspects tested:

* after any sequence of upserts, re-upserts under another index value, deletes and
  replaces, every index lookup returns exactly the stored objects whose index function
  yields that value, and the index holds no value nobody yields (hypothesis, against a
  model that recomputes the index from the items);
* an index function that yields a value twice for one object counts it once;
* a unique index (one object per value, like a Deployment's UID) keeps the bare key:
  under 120 B per object over the items' own dict (tracemalloc; 216 B for a one-element
  set before, 335 B for both).
"""

import gc
import tracemalloc
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from konsumerator.runtime.stores import ObjectKey, Store


@dataclass(frozen=True, slots=True)
class Item:
    namespace: str
    name: str
    resource_version: str
    group: str


def groups(item: Item) -> list[str]:
    return [item.group]


def uid(item: Item) -> list[str]:
    return [f"uid-{item.namespace}-{item.name}"]


def store() -> Store[Item]:
    return Store(indexers={"group": groups, "uid": uid})


def assert_indexes_match(s: Store[Item]) -> None:
    for index, fn in (("group", groups), ("uid", uid)):
        expected: dict[str, set[ObjectKey]] = {}
        stored = s.keys()
        for key in stored:
            item = s.get(key)
            assert item is not None
            for value in fn(item):
                expected.setdefault(value, set()).add(key)
        assert sorted(s.index_values(index=index)) == sorted(expected)
        for value, keys in expected.items():
            found = s.by_index(index=index, value=value)
            assert len(found) == len(keys)
            assert {ObjectKey(i.namespace, i.name) for i in found} == keys
        assert s.by_index(index=index, value="nobody's") == []


NAMES = st.sampled_from(["a", "b", "c", "d"])
GROUPS = st.sampled_from(["g1", "g2", "g3"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), NAMES, GROUPS),
        st.tuples(st.just("delete"), NAMES, GROUPS),
        st.tuples(st.just("replace"), st.lists(st.tuples(NAMES, GROUPS), max_size=4)),
    ),
    max_size=40,
)


@given(ops=OPS)
def test_every_lookup_returns_exactly_the_objects_of_that_index_value(
    ops: list[tuple[object, ...]],
) -> None:
    s = store()
    for version, op in enumerate(ops, start=1):
        if op[0] == "upsert":
            _, name, group = op
            s.upsert(Item("ns", str(name), str(version), str(group)))
        elif op[0] == "delete":
            s.delete(ObjectKey("ns", str(op[1])))
        else:
            pairs = op[1]
            assert isinstance(pairs, list)
            s.replace(Item("ns", n, f"{version}-{n}", g) for n, g in pairs)
        assert_indexes_match(s)


def test_a_value_yielded_twice_for_one_object_counts_it_once() -> None:
    s: Store[Item] = Store(indexers={"twice": lambda i: [i.group, i.group]})
    s.upsert(Item("ns", "a", "1", "g"))
    assert [i.name for i in s.by_index(index="twice", value="g")] == ["a"]
    s.upsert(Item("ns", "b", "1", "g"))
    assert sorted(i.name for i in s.by_index(index="twice", value="g")) == ["a", "b"]
    s.delete(ObjectKey("ns", "a"))
    s.delete(ObjectKey("ns", "b"))
    assert s.index_values(index="twice") == []


def retained_per_object(indexers: dict[str, object]) -> float:
    count = 5000
    items = [Item("ns", f"name-{n}", "1", "g") for n in range(count)]
    s: Store[Item] = Store(indexers=indexers)  # type: ignore[arg-type]
    gc.collect()
    tracemalloc.start()
    try:
        for item in items:
            s.upsert(item)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return retained / count


def test_a_unique_index_costs_its_entry_not_a_set_per_object() -> None:
    plain = retained_per_object({})
    indexed = retained_per_object({"uid": uid})
    # The index's own entry (a dict slot, the value's string) and nothing like a set.
    assert indexed - plain < 120, f"{indexed - plain:.0f} B per object for the index"
