"""bench/scale.py's per-phase bound of the longest pass, from two readings of the
reconcile histogram (cumulative buckets, summed over labels)."""

import pytest

from konsumerator_dev.bench.scale import histogram_buckets, longest_between

NAME = "controller_runtime_reconcile_time_seconds"


def exposition(counts: dict[str, float]) -> str:
    return "\n".join(
        f'{NAME}_bucket{{controller="consumer",le="{le}"}} {n}' for le, n in counts.items()
    )


@pytest.mark.parametrize(
    ("before", "after", "longest"),
    [
        # Passes of the phase all within 50 ms, however long the earlier ones were.
        ({"0.05": 3, "0.1": 5, "+Inf": 6}, {"0.05": 9, "0.1": 11, "+Inf": 12}, 0.05),
        # One pass of the phase took more than 100 ms.
        ({"0.05": 3, "0.1": 5, "+Inf": 6}, {"0.05": 4, "0.1": 5, "+Inf": 8}, float("inf")),
        ({"0.05": 3, "0.1": 5, "+Inf": 6}, {"0.05": 3, "0.1": 6, "+Inf": 7}, 0.1),
        # No pass in the phase.
        ({"0.05": 3, "+Inf": 6}, {"0.05": 3, "+Inf": 6}, 0.0),
    ],
)
def test_the_longest_pass_of_a_phase_is_bounded_by_its_own_passes(
    before: dict[str, float], after: dict[str, float], longest: float
) -> None:
    assert (
        longest_between(
            histogram_buckets(exposition(before), NAME), histogram_buckets(exposition(after), NAME)
        )
        == longest
    )
