"""Kubernetes quantities behave exactly as apimachinery's resource.Quantity.

Aspects tested:
- parsing: the upstream TestQuantityParse vectors (value and remembered
  format), with and without an explicit sign; the upstream invalid inputs
  and the ones Kubernetes rejects but other Python libraries accept;
- rounding: amounts below a nano-unit round up away from zero, binary SI is
  capped at 2^63-1 and turns decimal below 1;
- Go quirks kept on purpose: digit-less numbers are zero (except where Go's
  slow path fails), the exponent wraps like Go's int32 conversion;
- canonical form: the upstream TestQuantityString, TestQuantityParseEmit,
  TestNewSet, TestMilliNewSet and TestNewScaledSet vectors, and the
  upstream fix for decimal values beyond the E suffix;
- value semantics: equality, hashing and ordering ignore the format;
- integer views: Value() and MilliValue() round up away from zero;
- YAML/JSON numbers, constructors, our own magnitude limits;
- properties: canonical text parses back to the same value, canonical is
  idempotent, ordering agrees with Decimal, garbage only ever raises
  QuantityError.
"""

import contextlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from konsumerator.domain.quantities import (
    Format,
    Quantity,
    QuantityError,
    cpu_millis,
    from_int,
    from_millis,
    is_fractional_bytes,
    memory_bytes,
    millis,
    parse_quantity,
    value,
)

DSI, BSI, DEX = Format.DECIMAL_SI, Format.BINARY_SI, Format.DECIMAL_EXPONENT
MAX_INT64 = 2**63 - 1


def dec(mantissa: int, exponent: int, fmt: Format = DSI) -> Quantity:
    """Go's test helper decQuantity: mantissa * 10^exponent, at nano precision."""
    shift = exponent + 9
    if shift >= 0:
        return Quantity(mantissa * 10**shift, fmt)
    nanos, rest = divmod(mantissa, 10**-shift)
    assert rest == 0, "test vector finer than a nano-unit"
    return Quantity(nanos, fmt)


# Upstream TestQuantityParse: input, expected value, expected format.
PARSE_VECTORS = [
    ("0", dec(0, 0), DSI),
    ("0n", dec(0, 0), DSI),
    ("0u", dec(0, 0), DSI),
    ("0m", dec(0, 0), DSI),
    ("0Ki", dec(0, 0), BSI),
    ("0k", dec(0, 0), DSI),
    ("0Mi", dec(0, 0), BSI),
    ("0M", dec(0, 0), DSI),
    ("0Gi", dec(0, 0), BSI),
    ("0G", dec(0, 0), DSI),
    ("0Ti", dec(0, 0), BSI),
    ("0T", dec(0, 0), DSI),
    ("1", dec(1, 0), DSI),
    ("1Ki", dec(1024, 0), BSI),
    ("8Ki", dec(8 * 1024, 0), BSI),
    ("7Mi", dec(7 * 1024**2, 0), BSI),
    ("6Gi", dec(6 * 1024**3, 0), BSI),
    ("5Ti", dec(5 * 1024**4, 0), BSI),
    ("4Pi", dec(4 * 1024**5, 0), BSI),
    ("3Ei", dec(3 * 1024**6, 0), BSI),
    ("10Ti", dec(10 * 1024**4, 0), BSI),
    ("100Ti", dec(100 * 1024**4, 0), BSI),
    ("5n", dec(5, -9), DSI),
    ("4u", dec(4, -6), DSI),
    ("3m", dec(3, -3), DSI),
    ("9", dec(9, 0), DSI),
    ("8k", dec(8, 3), DSI),
    ("50k", dec(5, 4), DSI),
    ("7M", dec(7, 6), DSI),
    ("6G", dec(6, 9), DSI),
    ("5T", dec(5, 12), DSI),
    ("40T", dec(4, 13), DSI),
    ("300T", dec(3, 14), DSI),
    ("2P", dec(2, 15), DSI),
    ("1E", dec(1, 18), DSI),
    ("1E-3", dec(1, -3), DEX),
    ("1e3", dec(1, 3), DEX),
    ("1E6", dec(1, 6), DEX),
    ("1e9", dec(1, 9), DEX),
    ("1E12", dec(1, 12), DEX),
    ("1e15", dec(1, 15), DEX),
    ("1E18", dec(1, 18), DEX),
    ("1e14", dec(1, 14), DEX),
    ("1e13", dec(1, 13), DEX),
    ("100.035k", dec(100035, 0), DSI),
    ("0.001", dec(1, -3), DSI),
    ("0.0005k", dec(5, -1), DSI),
    ("0.005", dec(5, -3), DSI),
    ("0.05", dec(5, -2), DSI),
    ("0.5", dec(5, -1), DSI),
    ("0.00050k", dec(5, -1), DSI),
    ("0.00500", dec(5, -3), DSI),
    ("0.05000", dec(5, -2), DSI),
    ("0.50000", dec(5, -1), DSI),
    ("0.5e0", dec(5, -1), DEX),
    ("0.5e-1", dec(5, -2), DEX),
    ("0.5e-2", dec(5, -3), DEX),
    ("10.035M", dec(10035, 3), DSI),
    ("1.2e3", dec(12, 2), DEX),
    ("1.3E+6", dec(13, 5), DEX),
    ("1.40e9", dec(14, 8), DEX),
    ("1.53E12", dec(153, 10), DEX),
    ("1.6e15", dec(16, 14), DEX),
    ("1.7E18", dec(17, 17), DEX),
    ("9.01", dec(901, -2), DSI),
    ("8.1k", dec(81, 2), DSI),
    ("7.123456M", dec(7123456, 0), DSI),
    ("6.987654321G", dec(6987654321, 0), DSI),
    ("5.444T", dec(5444, 9), DSI),
    ("40.1T", dec(401, 11), DSI),
    ("300.2T", dec(3002, 11), DSI),
    ("2.5P", dec(25, 14), DSI),
    ("1.01E", dec(101, 16), DSI),
    ("3.001n", dec(4, -9), DSI),
    ("1.1E-9", dec(2, -9), DEX),
    ("0.0000000001", dec(1, -9), DSI),
    ("0.0000000005", dec(1, -9), DSI),
    ("0.00000000050", dec(1, -9), DSI),
    ("0.5e-9", dec(1, -9), DEX),
    ("0.9n", dec(1, -9), DSI),
    ("0.00000012345", dec(124, -9), DSI),
    ("0.00000012354", dec(124, -9), DSI),
    ("9Ei", dec(MAX_INT64, 0), BSI),
    ("9223372036854775807Ki", dec(MAX_INT64, 0), BSI),
    ("12E", dec(12, 18), DSI),
    ("100.035Ki", dec(10243584, -2), BSI),
    ("0.5Mi", dec(512 * 1024, 0), BSI),
    ("0.05Gi", dec(536870912, -1), BSI),
    ("0.025Ti", dec(274877906944, -1), BSI),
    ("0.000000000001Ki", dec(2, -9), DSI),
    (".001", dec(1, -3), DSI),
    (".0001k", dec(100, -3), DSI),
    ("1.", dec(1, 0), DSI),
    ("1.G", dec(1, 9), DSI),
]

# Upstream invalid inputs, then ones other Python parsers wrongly accept.
INVALID = [
    "1.1.M",
    "1+1.0M",
    "0.1mi",
    "0.1am",
    "aoeu",
    ".5i",
    "1i",
    "-3.01i",
    "-3.01e-",
    " 1",
    "1 ",
    "",
    "Non-Numeric",
    "1K",
    "1Z",
    "1.2.3",
    "--1",
    "+-1",
    "1mi",
    "1KiB",
    "1Gb",
    "1e",
    "1ee3",
    "1e3k",
    "1Ki3",
    "1e1.5",
    "1\n",
    "\t1",
    "1_000",
    "١",  # an Arabic-Indic digit: Go only knows ASCII digits
    "1e99999999999999999999",  # exponent beyond int64: strconv.ParseInt fails
]

# Upstream TestQuantityString (value, canonical, alternate spelling) plus
# TestQuantityParseEmit-style inputs.
STRING_VECTORS = [
    (dec(1024**3, 0, BSI), "1Gi", "1024Mi"),
    (dec(300 * 1024**2, 0, BSI), "300Mi", "307200Ki"),
    (dec(6 * 1024, 0, BSI), "6Ki", ""),
    (dec(1001 * 1024**3, 0, BSI), "1001Gi", "1025024Mi"),
    (dec(1024**4, 0, BSI), "1Ti", "1024Gi"),
    (dec(5, 0, BSI), "5", "5000m"),
    (dec(500, -3, BSI), "500m", "0.5"),
    (dec(1, 9, DSI), "1G", "1000M"),
    (dec(1000, 6, DSI), "1G", "0.001T"),
    (dec(1000000, 3, DSI), "1G", ""),
    (dec(1000000000, 0, DSI), "1G", ""),
    (dec(1, -3, DSI), "1m", "1000u"),
    (dec(80, -3, DSI), "80m", ""),
    (dec(1080, -3, DSI), "1080m", "1.08"),
    (dec(108, -2, DSI), "1080m", "1080000000n"),
    (dec(10800, -4, DSI), "1080m", ""),
    (dec(300, 6, DSI), "300M", ""),
    (dec(1, 12, DSI), "1T", ""),
    (dec(1234567, 6, DSI), "1234567M", ""),
    (dec(1234567, -3, BSI), "1234567m", ""),
    (dec(3, 3, DSI), "3k", ""),
    (dec(1025, 0, BSI), "1025", ""),
    (dec(0, 0, DSI), "0", ""),
    (dec(0, 0, BSI), "0", ""),
    (dec(1, 9, DEX), "1e9", ".001e12"),
    (dec(1, -3, DEX), "1e-3", "0.001e0"),
    (dec(1, -9, DEX), "1e-9", "1000e-12"),
    (dec(80, -3, DEX), "80e-3", ""),
    (dec(300, 6, DEX), "300e6", ""),
    (dec(1, 12, DEX), "1e12", ""),
    (dec(1, 3, DEX), "1e3", ""),
    (dec(3, 3, DEX), "3e3", ""),
    (dec(3, 3, DSI), "3k", ""),
    (dec(0, 0, DEX), "0", "00"),
    (dec(1, -9, DSI), "1n", ""),
    (dec(80, -9, DSI), "80n", ""),
    (dec(1080, -9, DSI), "1080n", ""),
    (dec(108, -8, DSI), "1080n", ""),
    (dec(10800, -10, DSI), "1080n", ""),
    (dec(1, -6, DSI), "1u", ""),
    (dec(80, -6, DSI), "80u", ""),
    (dec(1080, -6, DSI), "1080u", ""),
]

PARSE_EMIT = [
    ("1Ki", "1Ki"),
    ("1Mi", "1Mi"),
    ("1Gi", "1Gi"),
    ("1024Mi", "1Gi"),
    ("1000M", "1G"),
    (".001Ki", "1024m"),
    (".000001Ki", "1024u"),
    (".000000001Ki", "1024n"),
    (".000000000001Ki", "2n"),
    # the cases named in the design brief
    ("1.5", "1500m"),
    ("0.1", "100m"),
    ("1500000", "1500k"),
    ("100m", "100m"),
    ("1536Mi", "1536Mi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"),
    ("2048Ki", "2Mi"),
    ("1.3E+6", "1300e3"),
    ("0.1n", "1n"),
    ("9Ei", "9223372036854775807"),
    ("12E", "12E"),
    ("100E", "100E"),
]


def _vector_id(item: object) -> str:
    return repr(item)


@pytest.mark.parametrize(("text", "expected", "fmt"), PARSE_VECTORS, ids=_vector_id)
def test_parse_matches_apimachinery_vectors(text: str, expected: Quantity, fmt: Format) -> None:
    got = parse_quantity(text)
    assert got == expected
    assert got.format is fmt


@pytest.mark.parametrize(("text", "expected", "fmt"), PARSE_VECTORS, ids=_vector_id)
def test_explicit_sign_negates_or_keeps_value_and_format(
    text: str, expected: Quantity, fmt: Format
) -> None:
    negative = parse_quantity("-" + text)
    positive = parse_quantity("+" + text)
    assert negative.nanos == -expected.nanos
    assert positive.nanos == expected.nanos
    assert negative.format is fmt
    assert positive.format is fmt


@pytest.mark.parametrize("text", INVALID)
def test_rejects_what_kubernetes_rejects(text: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert caught.value.text == text


def test_error_names_the_text_and_the_reason() -> None:
    with pytest.raises(QuantityError, match=r'^invalid quantity "1K": unknown suffix "K"$'):
        parse_quantity("1K")


@pytest.mark.parametrize(
    ("text", "fmt"),
    [(".", DSI), ("-.", DSI), ("-", DSI), ("+", DSI), ("k", DSI), ("Mi", BSI), ("Ti", BSI)],
)
def test_number_without_digits_is_zero_as_in_go(text: str, fmt: Format) -> None:
    got = parse_quantity(text)
    assert got.nanos == 0
    assert got.format is fmt


@pytest.mark.parametrize("text", ["e-10", "-E-12", ".e-10", "Pi", "Ei", "+.Ei"])
def test_number_without_digits_fails_where_go_takes_the_slow_path(text: str) -> None:
    with pytest.raises(QuantityError, match="no digits"):
        parse_quantity(text)


def test_digits_rescue_the_slow_path() -> None:
    assert parse_quantity("0e-10").nanos == 0
    assert parse_quantity("0Ei").format is BSI


def test_exponent_wraps_like_go_int32_conversion() -> None:
    assert parse_quantity("1e4294967296") == parse_quantity("1")
    assert parse_quantity("1e4294967299") == parse_quantity("1e3")


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("0.1n", 1), ("-0.1n", -1), ("1.000000001", 1_000_000_001), ("1.0000000001", 1_000_000_001)],
)
def test_amounts_below_a_nano_unit_round_up_away_from_zero(text: str, nanos: int) -> None:
    assert parse_quantity(text).nanos == nanos


@pytest.mark.parametrize("text", ["9Ei", "8Ei", "9223372036854775808", "-9Ei"])
def test_binary_si_is_capped_at_max_int64_but_decimal_is_not(text: str) -> None:
    q = parse_quantity(text)
    if q.format is BSI:
        assert abs(value(q)) == MAX_INT64
    else:
        assert value(q) == 2**63


def test_tiny_binary_amount_becomes_decimal_si() -> None:
    q = parse_quantity("0.5Ki")
    assert q.format is BSI  # 512: still binary at parse time, written "512"
    assert q.canonical() == "512"
    tiny = parse_quantity(".0001Ki")
    assert tiny.format is DSI
    assert tiny.canonical() == "102400u"


@pytest.mark.parametrize(("q", "canonical", "alternate"), STRING_VECTORS, ids=_vector_id)
def test_canonical_matches_apimachinery_string(q: Quantity, canonical: str, alternate: str) -> None:
    assert q.canonical() == canonical
    assert str(q) == canonical
    assert parse_quantity(canonical) == q
    if alternate:
        assert parse_quantity(alternate).canonical() == canonical
    if q.nanos:
        assert Quantity(-q.nanos, q.format).canonical() == "-" + canonical


@pytest.mark.parametrize(("text", "canonical"), PARSE_EMIT)
def test_parse_then_emit(text: str, canonical: str) -> None:
    assert parse_quantity(text).canonical() == canonical
    if canonical != "0":
        assert parse_quantity("-" + text).canonical() == "-" + canonical


def test_decimal_si_picks_largest_suffix_with_integer_mantissa() -> None:
    assert parse_quantity("1000000k").canonical() == "1G"
    assert parse_quantity("1100000k").canonical() == "1100M"
    assert parse_quantity("0.000001").canonical() == "1u"


def test_binary_si_needs_a_whole_multiple_of_1024() -> None:
    assert parse_quantity("1.5Ki").canonical() == "1536"
    assert parse_quantity("1.1Ki").canonical() == "1126400m"
    assert from_int(512, format=BSI).canonical() == "512"
    assert from_int(1023 * 1024, format=BSI).canonical() == "1023Ki"


def test_decimal_beyond_the_e_suffix_uses_exponent_form() -> None:
    # apimachinery before kubernetes/kubernetes#140459 wrote these as "1" and "5".
    assert parse_quantity("1000E").canonical() == "1e21"
    assert parse_quantity("5000000E").canonical() == "5e24"
    assert parse_quantity("1500E").canonical() == "1500E"
    assert parse_quantity("1000000000000000000000").canonical() == "1e21"


@pytest.mark.parametrize(
    ("n", "fmt", "canonical"),
    [
        (1, DSI, "1"),
        (1000, DSI, "1k"),
        (1234000, DSI, "1234k"),
        (1024, BSI, "1Ki"),
        (1024 * 1024, BSI, "1Mi"),
        (1000000, DEX, "1e6"),
    ],
)
def test_from_int_matches_go_new_quantity(n: int, fmt: Format, canonical: str) -> None:
    q = from_int(n, format=fmt)
    assert q.canonical() == canonical
    assert value(parse_quantity(canonical)) == n


@pytest.mark.parametrize(
    ("m", "canonical"), [(1, "1m"), (1000, "1"), (1234000, "1234"), (0, "0"), (-1500, "-1500m")]
)
def test_from_millis_matches_go_new_milli_quantity(m: int, canonical: str) -> None:
    q = from_millis(m)
    assert q.canonical() == canonical
    assert millis(parse_quantity(canonical)) == m


def test_new_milli_quantity_in_binary_format_is_written_decimal() -> None:
    assert Quantity(1024 * 10**6, BSI).canonical() == "1024m"
    assert Quantity(1024 * 1024 * 10**6, BSI).canonical() == "1048576m"


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 10**30])
def test_constructors_take_int64_like_go(n: int) -> None:
    with pytest.raises(QuantityError):
        from_int(n, format=DSI)
    with pytest.raises(QuantityError):
        from_millis(n)


def test_equal_values_are_equal_whatever_the_format() -> None:
    assert parse_quantity("1000m") == parse_quantity("1")
    assert parse_quantity("1Ki") == parse_quantity("1024")
    assert hash(parse_quantity("1e3")) == hash(parse_quantity("1k"))
    assert parse_quantity("1Gi") != parse_quantity("1G")
    assert len({parse_quantity("1"), parse_quantity("1000m"), parse_quantity("1e0")}) == 1


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [("0", "0", 0), ("100m", "50m", 1), ("50m", "100m", -1), ("10000T", "100Gi", 1)],
)
def test_ordering_matches_go_cmp(a: str, b: str, expected: int) -> None:
    x, y = parse_quantity(a), parse_quantity(b)
    assert (x > y) - (x < y) == expected


@pytest.mark.parametrize(
    ("text", "whole", "thousandths"),
    [
        ("1", 1, 1000),
        ("1.5", 2, 1500),
        ("0.1m", 1, 1),
        ("100m", 1, 100),
        ("1n", 1, 1),
        ("1Ki", 1024, 1024000),
        ("-1.5", -2, -1500),
        ("-0.1m", -1, -1),
        ("0", 0, 0),
        ("12E", 12 * 10**18, 12 * 10**21),  # no int64 overflow here
    ],
)
def test_value_and_millis_round_up_away_from_zero(text: str, whole: int, thousandths: int) -> None:
    q = parse_quantity(text)
    assert value(q) == whole
    assert millis(q) == thousandths


def test_cpu_and_memory_helpers() -> None:
    assert cpu_millis("1.5") == 1500
    assert cpu_millis("250m") == 250
    assert cpu_millis(2) == 2000
    assert memory_bytes("1Gi") == 2**30
    assert memory_bytes("1G") == 10**9
    assert memory_bytes("100m") == 1


def test_fractional_bytes_are_detected() -> None:
    assert is_fractional_bytes(parse_quantity("100m"))
    assert is_fractional_bytes(parse_quantity("1.5"))
    assert not is_fractional_bytes(parse_quantity("2000m"))
    assert not is_fractional_bytes(parse_quantity("1Gi"))


@pytest.mark.parametrize(
    ("number", "canonical", "fmt"),
    [
        (1, "1", DSI),
        (1000, "1k", DSI),
        (-5, "-5", DSI),
        (1.5, "1500m", DSI),
        (0.1, "100m", DSI),
        (1e20, "100e18", DEX),
        (2.5e-7, "250e-9", DEX),
        (-0.0, "0", DSI),
    ],
)
def test_yaml_numbers_parse_from_their_literal_text(
    number: float, canonical: str, fmt: Format
) -> None:
    q = parse_quantity(number)
    assert q.canonical() == canonical
    assert q.format is fmt


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, None, b"1", [1]])
def test_non_numbers_and_non_finite_floats_are_rejected(bad: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)  # type: ignore[arg-type]


def test_absurd_magnitudes_are_refused_not_crashed_on() -> None:
    texts: list[str | int] = ["1e1025", "1e2147483647", "1" * 1025, 10**1100]
    for text in texts:
        with pytest.raises(QuantityError):
            parse_quantity(text)
    assert parse_quantity("1e1023").canonical() == "1e1023"
    assert parse_quantity("1e-2147483648").canonical() == "1e-9"
    with pytest.raises(QuantityError):
        Quantity(10**2000)
    with pytest.raises(QuantityError):
        Quantity(2**64 * 10**9, BSI)


def test_decimal_view_is_exact() -> None:
    assert parse_quantity("1.5Gi").decimal == Decimal(1610612736)
    assert parse_quantity("123456789012345678901234567890.123456789").decimal == Decimal(
        "123456789012345678901234567890.123456789"
    )


# --- properties -----------------------------------------------------------

_NANO_LIMIT = 10**40


@st.composite
def quantities(draw: st.DrawFn) -> Quantity:
    fmt = draw(st.sampled_from(list(Format)))
    if fmt is BSI:
        limit = MAX_INT64 * 10**9
        nanos = draw(
            st.one_of(
                st.integers(-limit, limit),
                # whole multiples of powers of 1024, the binary suffixes' home
                st.builds(
                    lambda m, p: m * 1024**p * 10**9,
                    st.integers(-1023, 1023),
                    st.integers(0, 6),
                ).filter(lambda n: abs(n) <= limit),
            )
        )
    else:
        nanos = draw(
            st.one_of(
                st.integers(-_NANO_LIMIT, _NANO_LIMIT),
                st.builds(lambda m, e: m * 10**e, st.integers(-999, 999), st.integers(0, 40)),
            )
        )
    return Quantity(nanos, fmt)


quantity_texts = st.builds(
    lambda sign, whole, point, fraction, suffix: sign + whole + point + fraction + suffix,
    st.sampled_from(["", "+", "-"]),
    st.text("0123456789", max_size=25),
    st.sampled_from(["", "."]),
    st.text("0123456789", max_size=25),
    st.one_of(
        st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E"]),
        st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
        st.builds(lambda e, n: f"{e}{n}", st.sampled_from("eE"), st.integers(-40, 40)),
    ),
)


@given(quantities())
def test_canonical_text_parses_back_to_the_same_value(q: Quantity) -> None:
    assert parse_quantity(q.canonical()) == q


@given(quantities())
def test_canonical_is_idempotent_after_one_reparse(q: Quantity) -> None:
    """Like Go: a BinarySI value that is not a multiple of 1024 prints without a
    suffix ("3125000"), which re-parses as DecimalSI and then prints "3125k";
    from there the text is a fixed point."""
    once = parse_quantity(q.canonical()).canonical()
    assert parse_quantity(once).canonical() == once


def test_binary_si_without_a_binary_suffix_reparses_as_decimal_si() -> None:
    q = from_int(3125000, format=Format.BINARY_SI)
    assert q.canonical() == "3125000"
    assert parse_quantity(q.canonical()).canonical() == "3125k"


@given(quantity_texts)
def test_well_formed_texts_parse_or_fail_cleanly_and_round_trip(text: str) -> None:
    try:
        q = parse_quantity(text)
    except QuantityError:
        return
    assert parse_quantity(q.canonical()) == q


@given(quantities(), quantities())
def test_ordering_agrees_with_decimal(a: Quantity, b: Quantity) -> None:
    assert (a < b) == (a.decimal < b.decimal)
    assert (a == b) == (a.decimal == b.decimal)
    if a == b:
        assert hash(a) == hash(b)


@given(st.text(max_size=40))
def test_garbage_only_ever_raises_quantity_error(text: str) -> None:
    with contextlib.suppress(QuantityError):
        parse_quantity(text)


@given(st.integers(-(2**63), 2**63 - 1))
def test_from_millis_round_trips_through_text(m: int) -> None:
    assert millis(parse_quantity(from_millis(m).canonical())) == m
