"""Full garbage collections freeze their survivors (``runtime.collecting``).

Aspects tested:
* after a full collection, what survived it is frozen, so the next ones skip it;
* a reference cycle that forms among frozen objects is still collected, by the full
  collection that examines everything (at most ``rescan_every`` full collections later);
* uninstalling stops it and unfreezes everything; installing twice installs once.
"""

import gc
import weakref
from collections.abc import Iterator

import pytest

from konsumerator.runtime.collecting import FrozenSurvivors


class Node:
    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture
def survivors() -> Iterator[FrozenSurvivors]:
    collector = FrozenSurvivors(rescan_every=3)
    collector.install()
    try:
        yield collector
    finally:
        collector.uninstall()


def test_what_survives_a_full_collection_is_frozen(survivors: FrozenSurvivors) -> None:
    kept = [Node() for _ in range(100)]
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)
    assert survivors.full_collections == 1


def test_a_cycle_among_frozen_objects_is_collected_by_a_rescan(
    survivors: FrozenSurvivors,
) -> None:
    node = Node()
    node.other = node
    alive = weakref.ref(node)
    gc.collect()  # node survives (referenced) and is frozen
    del node
    collections = 0
    while alive() is not None:
        assert collections <= 3, "the cycle outlived a rescan"
        gc.collect()
        collections += 1
    # Frozen, the cycle was not found by the full collections before the rescan.
    assert collections > 1


def test_uninstall_unfreezes_and_stops(survivors: FrozenSurvivors) -> None:
    survivors.install()
    kept = Node()
    gc.collect()
    assert survivors.full_collections == 1
    survivors.uninstall()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert survivors.full_collections == 1
    assert gc.get_freeze_count() == 0
    assert kept is not None


def test_rescan_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rescan_every"):
        FrozenSurvivors(rescan_every=0)
