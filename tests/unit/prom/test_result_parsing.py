"""Mapping query results to partitions.

Aspects tested:
- vector samples map `int(labels[partition_label])` → float value;
- matrix series use their last sample; a series without samples is rejected;
- missing, non-integer (incl. " 1", "+1", "1_0", "1.0") and negative partition
  labels are skipped and counted by reason;
- partitions >= num_partitions are dropped and counted;
- NaN / ±Inf values are treated as missing and counted;
- negative values are clamped to 0 and counted;
- duplicate partitions keep the maximum, whatever the order, and are counted;
- scalar and string results are unsupported: empty mapping, flagged, no error;
- native-histogram samples (no float value) are rejected, not fatal;
- the examples kept for logs are bounded;
- decoded samples and series are not tracked by the cyclic garbage collector.
"""

import gc
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator.prom import parsing
from konsumerator.prom.parsing import RejectReason
from konsumerator.prom.responses import (
    MatrixData,
    MatrixSeries,
    ScalarData,
    StringData,
    VectorData,
    VectorSample,
    decode_envelope,
)


def vec(*samples: tuple[dict[str, str], str]) -> VectorData:
    return VectorData(result=[VectorSample(metric=m, value=(1.0, v)) for m, v in samples])


def p(n: str) -> dict[str, str]:
    return {"partition": n}


@pytest.mark.parametrize(
    ("samples", "expected", "rejected"),
    [
        pytest.param([(p("1"), "100")], {1: 100.0}, {}, id="go-vector-partition-1"),
        pytest.param([(p("0"), "1.5"), (p("2"), "3")], {0: 1.5, 2: 3.0}, {}, id="several"),
        pytest.param([(p("002"), "7")], {2: 7.0}, {}, id="leading-zeros"),
        pytest.param(
            [({"topic": "t"}, "1")], {}, {RejectReason.MISSING_LABEL: 1}, id="missing-label"
        ),
        pytest.param(
            [(p("abc"), "1"), (p(" 1"), "1"), (p("+1"), "1"), (p("1_0"), "1"), (p("1.0"), "1")],
            {},
            {RejectReason.INVALID_LABEL: 5},
            id="non-integer-labels",
        ),
        pytest.param([(p(""), "1")], {}, {RejectReason.INVALID_LABEL: 1}, id="empty-label"),
        pytest.param([(p("-"), "1")], {}, {RejectReason.INVALID_LABEL: 1}, id="bare-minus"),
        pytest.param(
            [(p("-1"), "1")], {}, {RejectReason.NEGATIVE_PARTITION: 1}, id="negative-partition"
        ),
        pytest.param(
            [(p("3"), "1"), (p("4"), "1"), (p("2"), "5")],
            {2: 5.0},
            {RejectReason.OUT_OF_RANGE: 2},
            id="beyond-num-partitions",
        ),
        pytest.param(
            [(p("0"), "NaN"), (p("1"), "+Inf"), (p("2"), "-Inf"), (p("0"), "bogus")],
            {},
            {RejectReason.NOT_FINITE: 4},
            id="nan-inf-junk-are-missing",
        ),
        pytest.param([(p("0"), "-0.5")], {0: 0.0}, {}, id="negative-clamped"),
        pytest.param([(p("1"), "1e3")], {1: 1000.0}, {}, id="exponent"),
    ],
)
def test_vector_samples_map_to_partitions(
    samples: list[tuple[dict[str, str], str]],
    expected: dict[int, float],
    rejected: dict[RejectReason, int],
) -> None:
    parsed = parsing.parse_partitions(
        data=vec(*samples), partition_label="partition", num_partitions=3
    )
    assert dict(parsed.values) == expected
    assert dict(parsed.report.rejected) == rejected
    assert parsed.report.accepted == len(expected)
    assert parsed.report.series == len(samples)
    assert parsed.report.rejected_total == sum(rejected.values())


def test_negative_values_are_clamped_and_counted() -> None:
    parsed = parsing.parse_partitions(
        data=vec((p("0"), "-3"), (p("1"), "-0"), (p("2"), "4")),
        partition_label="partition",
        num_partitions=3,
    )
    assert dict(parsed.values) == {0: 0.0, 1: 0.0, 2: 4.0}
    assert parsed.report.clamped == 1  # "-0" is not negative
    assert not parsed.report.rejected


@pytest.mark.parametrize("order", [("5", "9", "7"), ("9", "7", "5"), ("7", "5", "9")])
def test_duplicate_partitions_keep_the_maximum_in_any_order(order: tuple[str, ...]) -> None:
    parsed = parsing.parse_partitions(
        data=vec(*[({"partition": "1", "pod": v}, v) for v in order]),
        partition_label="partition",
        num_partitions=2,
    )
    assert dict(parsed.values) == {1: 9.0}
    assert parsed.report.duplicates == 2
    assert parsed.report.accepted == 1


def test_duplicate_of_a_negative_value_merges_after_clamping() -> None:
    parsed = parsing.parse_partitions(
        data=vec((p("0"), "-5"), (p("0"), "-1")), partition_label="partition", num_partitions=1
    )
    assert dict(parsed.values) == {0: 0.0}
    assert parsed.report.duplicates == 1
    assert parsed.report.clamped == 2


def test_partition_label_is_configurable() -> None:
    parsed = parsing.parse_partitions(
        data=vec(({"partition": "0", "kafka_partition": "2"}, "8")),
        partition_label="kafka_partition",
        num_partitions=3,
    )
    assert dict(parsed.values) == {2: 8.0}


def test_matrix_series_use_their_last_sample() -> None:
    data = MatrixData(
        result=[
            MatrixSeries(metric=p("1"), values=[(1.0, "1"), (2.0, "5"), (3.0, "100")]),
            MatrixSeries(metric=p("0"), values=[(1.0, "7"), (2.0, "NaN")]),
            MatrixSeries(metric=p("2"), values=[]),
        ]
    )
    parsed = parsing.parse_partitions(data=data, partition_label="partition", num_partitions=3)
    assert dict(parsed.values) == {1: 100.0}
    assert parsed.report.result_type == "matrix"
    assert dict(parsed.report.rejected) == {RejectReason.NOT_FINITE: 1, RejectReason.NO_VALUE: 1}


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (ScalarData(result=(1.0, "42")), "scalar"),
        (StringData(result=(1.0, "hello")), "string"),
    ],
)
def test_scalar_and_string_results_are_unsupported_but_not_errors(
    data: ScalarData | StringData, kind: str
) -> None:
    parsed = parsing.parse_partitions(data=data, partition_label="partition", num_partitions=3)
    assert dict(parsed.values) == {}
    assert parsed.report.unsupported_result_type
    assert parsed.report.result_type == kind
    assert parsed.report.examples  # a message to log


def test_native_histogram_samples_without_float_value_are_rejected() -> None:
    data = VectorData(result=[VectorSample(metric=p("0"), value=None)])
    parsed = parsing.parse_partitions(data=data, partition_label="partition", num_partitions=1)
    assert dict(parsed.values) == {}
    assert dict(parsed.report.rejected) == {RejectReason.NO_VALUE: 1}


def test_examples_for_logs_are_bounded() -> None:
    samples = [(p(f"x{i}"), "1") for i in range(1000)]
    parsed = parsing.parse_partitions(
        data=vec(*samples), partition_label="partition", num_partitions=3
    )
    assert parsed.report.rejected[RejectReason.INVALID_LABEL] == 1000
    assert len(parsed.report.examples) == parsing.MAX_EXAMPLES


def test_result_mappings_are_read_only() -> None:
    parsed = parsing.parse_partitions(
        data=vec((p("0"), "1")), partition_label="partition", num_partitions=1
    )
    with pytest.raises(TypeError):
        parsed.values[0] = 2.0  # type: ignore[index]


@pytest.mark.parametrize(("raw", "expected"), [("1", 1.0), ("NaN", None), ("-Inf", None)])
def test_parse_value(raw: str, expected: float | None) -> None:
    value = parsing.parse_value(raw)
    assert value == expected or (expected is not None and math.isclose(value or 0, expected))


def test_negative_num_partitions_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="num_partitions"):
        parsing.parse_partitions(data=vec(), partition_label="partition", num_partitions=-1)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("0", 0),
        ("002", 2),
        ("3", RejectReason.OUT_OF_RANGE),
        ("9" * 25, RejectReason.OUT_OF_RANGE),
        ("9" * 5000, RejectReason.OUT_OF_RANGE),
        ("-1", RejectReason.NEGATIVE_PARTITION),
        ("-" + "9" * 5000, RejectReason.NEGATIVE_PARTITION),
        ("²", RejectReason.INVALID_LABEL),
        ("+1", RejectReason.INVALID_LABEL),
        ("", RejectReason.INVALID_LABEL),
        (None, RejectReason.MISSING_LABEL),
    ],
    ids=lambda v: repr(v)[:14],
)
def test_partition_labels_of_any_length_are_a_partition_or_a_reason(
    label: str | None, expected: int | RejectReason
) -> None:
    assert parsing.parse_partition(label, num_partitions=3) == expected


@given(st.text(max_size=30) | st.from_regex(r"\A-?[0-9]{1,6000}\Z"))
def test_any_partition_label_is_a_partition_in_range_or_a_reason(label: str) -> None:
    result = parsing.parse_partition(label, num_partitions=100)
    assert isinstance(result, RejectReason) or 0 <= result < 100


def _by_the_rules(
    samples: list[tuple[str | None, str | None]], *, num_partitions: int
) -> tuple[dict[int, float], dict[RejectReason, int], int, int]:
    """The module's rules, one series at a time: what ``parse_partitions`` must give."""
    values: dict[int, float] = {}
    rejected: dict[RejectReason, int] = {}
    duplicates = clamped = 0
    for raw, text in samples:
        partition = parsing.parse_partition(raw, num_partitions=num_partitions)
        value = None if text is None else parsing.parse_value(text)
        reason = (
            partition
            if isinstance(partition, RejectReason)
            else RejectReason.NO_VALUE
            if text is None
            else RejectReason.NOT_FINITE
            if value is None
            else RejectReason.TOO_LARGE
            if value >= parsing.INT64_LIMIT
            else None
        )
        if reason is not None:
            rejected[reason] = rejected.get(reason, 0) + 1
            continue
        assert isinstance(partition, int)
        assert value is not None
        if value < 0:
            clamped += 1
            value = 0.0
        if partition in values:
            duplicates += 1
            value = max(value, values[partition])
        values[partition] = value
    return values, rejected, duplicates, clamped


_LABELS = (
    st.none()
    | st.integers(min_value=0, max_value=12).map(str)
    | st.sampled_from(["007", "-1", "+1", " 1", "1_0", "²", "", "9" * 25, "x"])
    | st.text(max_size=4)
)
_VALUES = (
    st.none()
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.sampled_from(
        ["NaN", "+Inf", "-Inf", "-0", "-0.5", "1e3", "9.3e18", "9223372036854775808", "x"]
    )
    | st.integers(min_value=-5, max_value=10**6).map(str)
)


@given(st.lists(st.tuples(_LABELS, _VALUES), max_size=30), st.integers(min_value=0, max_value=10))
def test_parsing_gives_what_the_rules_give_one_series_at_a_time(
    samples: list[tuple[str | None, str | None]], num_partitions: int
) -> None:
    """The inline path for the common series is an early exit with the same result."""
    data = VectorData(
        result=[
            VectorSample(
                metric={} if raw is None else {"partition": raw},
                value=None if text is None else (1.0, text),
            )
            for raw, text in samples
        ]
    )
    parsed = parsing.parse_partitions(
        data=data, partition_label="partition", num_partitions=num_partitions
    )
    values, rejected, duplicates, clamped = _by_the_rules(samples, num_partitions=num_partitions)
    assert dict(parsed.values) == values
    assert all(math.copysign(1, parsed.values[p]) == math.copysign(1, v) for p, v in values.items())
    assert dict(parsed.report.rejected) == rejected
    assert (parsed.report.duplicates, parsed.report.clamped) == (duplicates, clamped)
    assert parsed.report.accepted == len(values)


def test_decoded_samples_and_series_are_not_tracked_by_the_garbage_collector() -> None:
    body = (
        b'{"status":"success","data":{"resultType":"vector","result":'
        b'[{"metric":{"partition":"0"},"value":[1.5,"2"]}]}}'
    )
    matrix_body = (
        b'{"status":"success","data":{"resultType":"matrix","result":'
        b'[{"metric":{"partition":"0"},"values":[[1.5,"2"]]}]}}'
    )
    vector_data = decode_envelope(body).data
    matrix_data = decode_envelope(matrix_body).data
    assert isinstance(vector_data, VectorData)
    assert isinstance(matrix_data, MatrixData)
    assert not gc.is_tracked(vector_data.result[0])
    assert not gc.is_tracked(matrix_data.result[0])


# One series that is not common, planted among common ones: (what is odd, the label or
# the value it has; "n": the partition count itself, one past the last partition).
_ODD = [
    *(("label", raw) for raw in [None, "", " 1", "+1", "1_0", "٣", "²", "-1", "n", "9" * 25]),
    ("label", "9" * 5000),
    *(("value", v) for v in [None, "NaN", "+Inf", "-Inf", "-0.5", "-0", "1e400", "x", " 5"]),
    ("value", "9223372036854775808"),
    ("duplicate", None),
]


@st.composite
def _common(draw: st.DrawFn) -> tuple[list[tuple[str | None, str | None]], int]:
    """A whole answer of common series (what nearly every refresh parses)."""
    num_partitions = draw(st.integers(min_value=10, max_value=40))
    partitions = draw(st.permutations(range(num_partitions)))
    size = draw(st.integers(min_value=1, max_value=num_partitions))
    values = draw(
        st.lists(
            st.floats(min_value=0, max_value=2.0**63, exclude_max=True).map(repr)
            | st.integers(min_value=0, max_value=10**6).map(str),
            min_size=size,
            max_size=size,
        )
    )
    return [(str(p), v) for p, v in zip(partitions[:size], values, strict=True)], num_partitions


def _parsed_as_the_rules_say(
    samples: list[tuple[str | None, str | None]], *, num_partitions: int
) -> None:
    data = VectorData(
        result=[
            VectorSample(
                metric={} if raw is None else {"partition": raw},
                value=None if text is None else (1.0, text),
            )
            for raw, text in samples
        ]
    )
    parsed = parsing.parse_partitions(
        data=data, partition_label="partition", num_partitions=num_partitions
    )
    values, rejected, duplicates, clamped = _by_the_rules(samples, num_partitions=num_partitions)
    assert dict(parsed.values) == values
    assert all(math.copysign(1, parsed.values[p]) == math.copysign(1, v) for p, v in values.items())
    assert dict(parsed.report.rejected) == rejected
    assert (parsed.report.duplicates, parsed.report.clamped) == (duplicates, clamped)
    assert (parsed.report.accepted, parsed.report.series) == (len(values), len(samples))


@given(_common())
def test_an_answer_of_common_series_read_at_once_gives_what_the_rules_give(
    answer: tuple[list[tuple[str | None, str | None]], int],
) -> None:
    """The answer whose every series is common is read in one go (``_all_common``)."""
    samples, num_partitions = answer
    _parsed_as_the_rules_say(samples, num_partitions=num_partitions)


@pytest.mark.parametrize(("odd", "what"), _ODD, ids=lambda v: repr(v)[:12])
@settings(max_examples=30)
@given(answer=_common(), where=st.integers(min_value=0), among=st.integers(min_value=0))
def test_one_odd_series_sends_the_answer_to_the_rules_with_the_same_result(
    odd: str,
    what: str | None,
    answer: tuple[list[tuple[str | None, str | None]], int],
    where: int,
    among: int,
) -> None:
    """A series that is not common, anywhere in an answer of common ones: the answer goes
    by the rules, series by series (the same values, rejections, duplicates, clamps)."""
    samples, num_partitions = answer
    planted: tuple[str | None, str | None]
    if odd == "label":
        planted = (str(num_partitions) if what == "n" else what, "1")
    elif odd == "value":
        # A partition the answer does not have, so only the value is odd.
        planted = (str(num_partitions - 1 if len(samples) < num_partitions else 0), what)
        samples = [s for s in samples if s[0] != planted[0]]
    else:
        planted = (samples[among % len(samples)][0], "1")
    samples.insert(where % (len(samples) + 1), planted)
    _parsed_as_the_rules_say(samples, num_partitions=num_partitions)
