"""``domain.quoting.go_quote``: a user's text in a duration's or quantity's message.

Table: what Go's strconv.Quote writes for printable text, control characters and the
other unprintable characters. Property: whatever the text, the quoted form is one
printable line, and the two parsers' messages quote it so.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain import durations, quantities
from konsumerator.domain.quoting import go_quote


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("1x", '"1x"'),
        ("µs", '"µs"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("a\nb\tc", '"a\\nb\\tc"'),
        ("\x7f", '"\\x7f"'),
        ("a\u2028b", '"a\\u2028b"'),
        ("\x85", '"\\u0085"'),
        ("x\U000e0001", '"x\\U000e0001"'),
    ],
)
def test_text_is_quoted_as_go_quotes_it(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@given(st.text())
def test_any_text_quotes_to_one_printable_line(text: str) -> None:
    assert go_quote(text).isprintable()


@given(st.text(max_size=12))
def test_duration_and_quantity_messages_are_printable(text: str) -> None:
    messages: list[str] = []
    try:
        durations.parse_duration(text)
    except durations.DurationError as e:
        messages.append(str(e))
    try:
        quantities.parse_quantity(text)
    except quantities.QuantityError as e:
        messages.append(str(e))
    assert all(m.isprintable() for m in messages), messages
