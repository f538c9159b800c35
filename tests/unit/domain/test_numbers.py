"""The one parser for numbers read back from text others can edit (``domain.numbers``).

Aspects tested (table-driven and property-based):
- an ASCII decimal within the bound is its value, leading zeros included;
- anything else is None, never an exception: signs, spaces, underscores, non-ASCII
  digits, empty text, more digits than any int64 has, values past the bound;
- for any text whatsoever the result is None or agrees with ``int()`` within the bound.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.numbers import INT32_MAX, INT64_MAX, MAX_DIGITS, parse_decimal

READ = {
    "0": 0,
    "7": 7,
    "007": 7,
    str(INT64_MAX): INT64_MAX,
    "0" + str(INT64_MAX): INT64_MAX,
}
UNREADABLE = [
    "",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1_000",
    "1e3",
    "0x10",
    "²",
    "٣",
    "１",
    str(INT64_MAX + 1),
    "9" * 5000,
    "0" * (MAX_DIGITS + 1),
]


@pytest.mark.parametrize(("text", "value"), list(READ.items()))
def test_an_ascii_decimal_within_the_bound_is_its_value(text: str, value: int) -> None:
    assert parse_decimal(text) == value


@pytest.mark.parametrize("text", UNREADABLE, ids=lambda t: repr(t[:12]))
def test_anything_else_is_absent_never_an_exception(text: str) -> None:
    assert parse_decimal(text) is None


def test_the_bound_is_inclusive() -> None:
    assert parse_decimal(str(INT32_MAX), maximum=INT32_MAX) == INT32_MAX
    assert parse_decimal(str(INT32_MAX + 1), maximum=INT32_MAX) is None


@given(st.text(max_size=40) | st.from_regex(r"\A[0-9]{1,25}\Z"))
def test_any_text_is_absent_or_agrees_with_int(text: str) -> None:
    value = parse_decimal(text, maximum=INT32_MAX)
    if value is not None:
        assert text.isascii()
        assert text.isdigit()
        assert int(text) == value <= INT32_MAX


@given(st.integers(min_value=0, max_value=INT64_MAX))
def test_every_int64_round_trips(value: int) -> None:
    assert parse_decimal(str(value)) == value


@given(st.integers(min_value=1, max_value=20_000))
def test_long_digit_strings_are_absent(length: int) -> None:
    assert parse_decimal("9" * (MAX_DIGITS + length)) is None
