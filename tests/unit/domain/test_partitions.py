"""Partition assignment, the partition list annotation and the range label.

Aspects tested:

* ``assign``: the Go SplitIntoBuckets vectors (lwolf/konsumerator
  ``pkg/helpers/util.go``), including the
  empty cases (a count below 1 gives no instances).
* ``assign`` invariants (hypothesis): every partition exactly once, buckets
  consecutive from 0, sizes differ by at most 1, larger buckets first, no
  bucket above ``per_instance``, bucket count ``ceil(n / per_instance)``.
* ``parse_list`` / ``format_list``: strict parsing as in Go's
  ParsePartitionsListAnnotation (same file): empty, ranges, spaces, letters and
  empty elements are rejected; round trip with ``format_list``.
* ``range_label``: the ``partitions`` label vectors (Go's ConsecutiveIntsToRange
  and EnsureValidLabelValue, same file) and its 63
  character bound.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.domain.partitions import assign, format_list, parse_list, range_label


@pytest.mark.parametrize(
    ("num_partitions", "per_instance", "expected"),
    [
        (0, 0, ()),
        (0, 10, ()),
        (10, 0, ()),
        (1, 1, ((0,),)),
        (3, 5, ((0, 1, 2),)),
        (10, 3, ((0, 1, 2), (3, 4, 5), (6, 7), (8, 9))),
        (9, 3, ((0, 1, 2), (3, 4, 5), (6, 7, 8))),
        (5, 1, ((0,), (1,), (2,), (3,), (4,))),
        (12, 3, ((0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11))),
        (10, 4, ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9))),
    ],
)
def test_assignment_matches_go_split_into_buckets(num_partitions, per_instance, expected):
    assert assign(num_partitions=num_partitions, per_instance=per_instance) == expected


@pytest.mark.parametrize(("num_partitions", "per_instance"), [(-1, 3), (3, -1), (-5, -5)])
def test_negative_counts_give_no_instances(num_partitions, per_instance):
    assert assign(num_partitions=num_partitions, per_instance=per_instance) == ()


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=1, max_value=500), per=st.integers(min_value=1, max_value=600))
def test_assignment_invariants(n, per):
    buckets = assign(num_partitions=n, per_instance=per)
    flat = [p for bucket in buckets for p in bucket]
    # Every partition exactly once, consecutive from 0, in order.
    assert flat == list(range(n))
    # Bucket count is ceil(n / per).
    assert len(buckets) == -(-n // per)
    sizes = [len(b) for b in buckets]
    assert all(size >= 1 for size in sizes)
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= per
    # The larger buckets come first.
    assert sizes == sorted(sizes, reverse=True)
    for bucket in buckets:
        assert list(bucket) == list(range(bucket[0], bucket[0] + len(bucket)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", (0,)),
        ("1", (1,)),
        ("0,1,2", (0, 1, 2)),
        ("10,11", (10, 11)),
        ("3,1", (3, 1)),
    ],
)
def test_partition_list_parses(text, expected):
    assert parse_list(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "0-1", "0,1,a", " 0", "0, 1", "0,,1", ",0", "0,", "-1", "+1", "1.0", "٣", "a"],
)
def test_partition_list_rejects_anything_but_plain_ids(text):
    assert parse_list(text) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=50))
def test_partition_list_round_trips(partitions):
    assert parse_list(format_list(partitions)) == tuple(partitions)


def test_partition_list_format_is_comma_joined():
    assert format_list([3, 4, 5]) == "3,4,5"
    assert format_list([0]) == "0"


@pytest.mark.parametrize(
    ("partitions", "label"),
    [
        ([0], "0"),
        ([6, 7], "6-7"),
        ([0, 1, 2], "0-2"),
        (list(range(2, 30)), "2-29"),
        ([], ""),
    ],
)
def test_range_label(partitions, label):
    assert range_label(tuple(partitions)) == label


def test_range_label_is_at_most_63_characters():
    huge = (10**40, 10**40 + 1)
    assert len(range_label(huge)) == 63
    assert range_label(huge) == f"{10**40}-{10**40 + 1}"[:63]
