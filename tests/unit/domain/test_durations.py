"""Go time.Duration parsing and printing, checked against Go's own vectors.

Aspects tested:
- parsing: Go's parseDurationTests (signs, fractions, every unit including
  both micro signs, composites, the int64 extremes, huge fractions) and
  parseDurationErrorTests (malformed texts, overflow), plus units Go lacks;
- Go's float64 fraction arithmetic and its uint64 wrap-around, reproduced;
- printing: Go's durationTests for Duration.String(), negatives, sub-second
  units;
- the Duration value: range, ordering, Seconds() and whole seconds;
- properties: printing then parsing any int64 gives it back; arbitrary
  text only ever raises DurationError.
"""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.durations import (
    Duration,
    DurationError,
    format_duration,
    parse_duration,
)

NS, US, MS, S = 1, 1_000, 1_000_000, 1_000_000_000
M, H = 60 * S, 3600 * S
MAX, MIN = 2**63 - 1, -(2**63)

# Go's parseDurationTests.
PARSE_VECTORS = [
    ("0", 0),
    ("5s", 5 * S),
    ("30s", 30 * S),
    ("1478s", 1478 * S),
    ("-5s", -5 * S),
    ("+5s", 5 * S),
    ("-0", 0),
    ("+0", 0),
    ("5.0s", 5 * S),
    ("5.6s", 5 * S + 600 * MS),
    ("5.s", 5 * S),
    (".5s", 500 * MS),
    ("1.0s", 1 * S),
    ("1.00s", 1 * S),
    ("1.004s", 1 * S + 4 * MS),
    ("1.0040s", 1 * S + 4 * MS),
    ("100.00100s", 100 * S + 1 * MS),
    ("10ns", 10 * NS),
    ("11us", 11 * US),
    ("12\u00b5s", 12 * US),  # U+00B5 micro sign
    ("12\u03bcs", 12 * US),  # U+03BC Greek mu
    ("13ms", 13 * MS),
    ("14s", 14 * S),
    ("15m", 15 * M),
    ("16h", 16 * H),
    ("3h30m", 3 * H + 30 * M),
    ("10.5s4m", 4 * M + 10 * S + 500 * MS),
    ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
    ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
    ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    ("52763797000ns", 52763797000 * NS),
    ("0.3333333333333333333h", 20 * M),
    ("9007199254740993ns", (1 << 53) + 1),
    ("9223372036854775807ns", MAX),
    ("9223372036854775.807us", MAX),
    ("9223372036s854ms775us807ns", MAX),
    ("-9223372036854775808ns", MIN),
    ("-9223372036854775.808us", MIN),
    ("-9223372036s854ms775us808ns", MIN),
    ("-2562047h47m16.854775808s", MIN),
    ("0.100000000000000000000h", 6 * M),
    ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
    # the brief's examples
    ("1.5h", 90 * M),
    ("1h30m", 90 * M),
    ("300ms", 300 * MS),
]

# Go's parseDurationErrorTests, then units and spacing Go rejects.
INVALID = [
    "",
    "3",
    "-",
    "s",
    ".",
    "-.",
    ".s",
    "+.s",
    "1d",
    "\x85\x85",
    "\xffff",
    "hello \xffff world",
    "\ufffd",
    "\ufffd hello \ufffd world",
    "9223372036854775810ns",
    "9223372036854775808ns",
    "-9223372036854775809ns",
    "9223372036854776us",
    "3000000h",
    "9223372036854775.808us",
    "9223372036854ms775us808ns",
    "1",
    "1.5",
    "1y",
    "1w",
    "2d",
    "1mm",
    "1S",
    "1H",
    " 1s",
    "1s ",
    "1 s",
    "1s 2m",
    "--1s",
    "+-1s",
    "1s-2s",
    "0s0",
    "00",
    "1\u0663s",  # an Arabic-Indic digit is not a digit to Go
]

# Go's durationTests for Duration.String().
STRING_VECTORS = [
    ("0s", 0),
    ("1ns", 1 * NS),
    ("1.1\u00b5s", 1100 * NS),
    ("2.2ms", 2200 * US),
    ("3.3s", 3300 * MS),
    ("4m5s", 4 * M + 5 * S),
    ("4m5.001s", 4 * M + 5001 * MS),
    ("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
    ("8m0.000000001s", 8 * M + 1 * NS),
    ("2562047h47m16.854775807s", MAX),
    ("-2562047h47m16.854775808s", MIN),
    # the brief's examples
    ("1h30m0s", 90 * M),
    ("1.5s", 1500 * MS),
    ("300ms", 300 * MS),
    ("1\u00b5s", 1 * US),
    ("-1m0s", -M),
    ("1h0m0s", H),
    ("1m0.5s", M + 500 * MS),
    ("999ns", 999),
    ("999.999999ms", S - 1),
]


@pytest.mark.parametrize(("text", "nanoseconds"), PARSE_VECTORS)
def test_parse_matches_go_vectors(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == Duration(nanoseconds)


@pytest.mark.parametrize("text", INVALID)
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert caught.value.text == text


def test_error_names_the_text_and_the_unit() -> None:
    with pytest.raises(DurationError, match=r'^invalid duration "1d": unknown unit "d"$'):
        parse_duration("1d")
    with pytest.raises(DurationError, match="missing unit"):
        parse_duration("1")
    with pytest.raises(DurationError, match="overflow"):
        parse_duration("3000000h")


def test_fractions_go_through_float64_like_go() -> None:
    # Exactly, 0.3333333333333333333h is 1199999999999.99988 ns; Go's float64
    # product rounds up to 1.2e12 before truncating.
    assert parse_duration("0.3333333333333333333h").nanoseconds == 1_200_000_000_000
    # Digits past int64 precision are read and ignored.
    assert parse_duration("1." + "9" * 40 + "ns") == parse_duration("1.9999999999999999999ns")


def test_sum_wraps_like_go_uint64() -> None:
    # Go adds terms in uint64: two terms of exactly 2^63 wrap to 0 and pass.
    assert parse_duration("9223372036854775808ns9223372036854775808ns") == Duration(0)
    with pytest.raises(DurationError):
        parse_duration("9223372036854775808ns1ns")


@pytest.mark.parametrize(("text", "nanoseconds"), STRING_VECTORS)
def test_format_matches_go_string(text: str, nanoseconds: int) -> None:
    d = Duration(nanoseconds)
    assert format_duration(d) == text
    assert str(d) == text
    if nanoseconds > 0:
        assert format_duration(Duration(-nanoseconds)) == "-" + text


@pytest.mark.parametrize("nanoseconds", [MAX + 1, MIN - 1, 10**30])
def test_duration_is_an_int64(nanoseconds: int) -> None:
    with pytest.raises(DurationError):
        Duration(nanoseconds)


@pytest.mark.parametrize(
    ("nanoseconds", "seconds", "whole"),
    [
        (1500 * MS, 1.5, 1),
        (-1500 * MS, -1.5, -1),
        (999 * MS, 0.999, 0),
        (-999 * MS, -0.999, 0),
        (0, 0.0, 0),
        (MAX, 9223372036.854775807, 9223372036),
    ],
)
def test_seconds_views_follow_go(nanoseconds: int, seconds: float, whole: int) -> None:
    d = Duration(nanoseconds)
    assert d.seconds == seconds
    assert d.total_seconds_int == whole


def test_durations_order_by_length() -> None:
    assert parse_duration("90s") == parse_duration("1m30s") == parse_duration("1.5m")
    assert parse_duration("59s") < parse_duration("1m") < parse_duration("1h")
    assert sorted([parse_duration("1h"), parse_duration("-1s"), parse_duration("0")]) == [
        Duration(-S),
        Duration(0),
        Duration(H),
    ]


@given(st.integers(MIN, MAX))
def test_format_then_parse_round_trips_every_int64(nanoseconds: int) -> None:
    d = Duration(nanoseconds)
    assert parse_duration(format_duration(d)) == d


@given(st.text(max_size=30))
def test_garbage_only_ever_raises_duration_error(text: str) -> None:
    with contextlib.suppress(DurationError):
        parse_duration(text)


@given(st.text(alphabet="0123456789.+-nsuµμmh", max_size=30))
def test_near_miss_texts_only_ever_raise_duration_error(text: str) -> None:
    try:
        d = parse_duration(text)
    except DurationError:
        return
    assert MIN <= d.nanoseconds <= MAX
