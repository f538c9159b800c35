"""Kubernetes resource quantities, with the exact semantics of apimachinery.

The planner compares what a Deployment asks for with what it should ask for,
and writes quantities back into pod specs. Both only work if we read and
write quantities exactly as the apiserver does (k8s.io/apimachinery,
pkg/api/resource/quantity.go): "1000m" must equal "1", "1Gi" must not equal
"1G", and what we emit must be the string the apiserver itself would emit,
or every reconcile looks like a change.

This is hand-written because no well-kept Python library does that exactly.
kubernetes.utils.quantity accepts "1K", which Kubernetes rejects, and has had
precision bugs; lightkube's parser accepts "1Z" and rounds "0.1m" the wrong
way; neither reproduces Go's canonical form. The behaviour here was checked
against the Go source and its test vectors (ported, not the code, in
tests/unit/domain/test_quantities.py).

What Go does, and therefore what this module does:

* The grammar is ``[+-]? digits [. digits] suffix`` where either digit run
  may be empty ("5.", ".5", even "." is zero), and the suffix is one of
  n u m "" k M G T P E (decimal SI), Ki Mi Gi Ti Pi Ei (binary SI) or an
  e/E exponent ("1e3", "1E-3", "1e+3"). Nothing else: no whitespace, no
  "K", no "Z", no "KiB". A number with no digits at all ("-", "k", "Mi")
  is zero, except where Go's slow path then fails to read it ("e-10",
  "Pi", "Ei"); that quirk is reproduced.
* The exponent is read as an int64 and then truncated to int32, as Go does.
* Values are exact decimals rounded *away from zero* to nano precision
  ("0.1n" is 1n, "-0.1n" is -1n): asking for a tiny amount should give some.
* Binary-SI values are capped at 2^63-1 in magnitude ("9Ei" is
  9223372036854775807); decimal values are not capped. A binary value
  strictly between -1 and 1 becomes decimal SI at parse time.
* Canonical form (Go's CanonicalizeBytes): no fractional digits and the
  largest suffix that keeps the mantissa an integer; binary SI only for
  integral values of magnitude 1024 or more, decimal SI otherwise.

Deliberate limits, each documented where enforced: texts over 1024
characters and values with more than 1024 integer digits are refused
(Go accepts both, but no resource comes near, and Python refuses to convert
integers of more than 4300 digits to text). Decimal-SI values of 10^21 and
more are written in exponent form ("1e21"), as fixed upstream
(kubernetes/kubernetes#140459); older apimachinery silently dropped the
suffix and wrote "1".

A note on Go's String(): when a parsed text already looks canonical, Go
keeps and re-emits the text itself, so "+1", "01" and "1E3" round-trip
through the apiserver verbatim. canonical() never does that; compare
quantities by value, never by text.
"""

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from konsumerator.domain.quoting import go_quote

_NANOS_PER_UNIT = 10**9
_NANOS_PER_MILLI = 10**6
_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)

#: The largest amount, in thousandths, that every Kubernetes component can
#: hold: the scheduler and the kubelet read resources with MilliValue(), an
#: int64, which silently overflows beyond this. Every quantity Konsumerator
#: accepts in a spec or writes into a pod spec stays within it.
MAX_MILLIS = _INT64_MAX

# Go caps binary-SI amounts at the largest int64 (apimachinery's maxAllowed).
_BINARY_CAP_NANOS = _INT64_MAX * _NANOS_PER_UNIT

# Our own limits, not Go's (see the module docstring). With at most 1024
# characters every digit run converts with int(); with at most 1024 integer
# digits every value, in nanos, stays far below Python's 4300-digit limit on
# int <-> str conversion.
_MAX_TEXT_LENGTH = 1024
_MAX_INTEGER_DIGITS = 1024
_MAGNITUDE_LIMIT_NANOS = 10 ** (_MAX_INTEGER_DIGITS + 9)

# Mirrors the shape apimachinery's scanner accepts: a sign, digits, an
# optional fraction, then any run of suffix letters, an optional sign and
# digits. Whether that suffix means anything is decided afterwards.
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")
_EXPONENT = re.compile(r"[+-]?[0-9]+")

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9}
_DECIMAL_SUFFIXES |= {"T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {e: s for s, e in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {p // 10: s for s, p in _BINARY_SUFFIXES.items()}


class QuantityError(ValueError):
    """A text that Kubernetes would not accept as a quantity (or that we refuse)."""

    def __init__(self, text: str, *, reason: str) -> None:
        super().__init__(f"invalid quantity {go_quote(text)}: {reason}")
        self.text = text
        self.reason = reason


class Format(StrEnum):
    """How a quantity prefers to be written; never part of its value."""

    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


@dataclass(frozen=True, slots=True, order=True)
class Quantity:
    """An exact amount, in nano-units, and the format it prefers.

    Equality, hashing and ordering look at the amount only, so "1000m" == "1"
    and a change of format alone is never a change. Every amount Go can hold
    after parsing is a whole number of nano-units, hence the integer.
    """

    nanos: int
    format: Format = field(default=Format.DECIMAL_SI, compare=False)

    def __post_init__(self) -> None:
        if abs(self.nanos) >= _MAGNITUDE_LIMIT_NANOS:
            raise QuantityError(
                _approximately(self.nanos) + "n",
                reason=f"more than {_MAX_INTEGER_DIGITS} integer digits",
            )
        # Binary SI has no suffix above Ei; Go guarantees this cap at parse
        # time and we keep it an invariant so canonical() never runs out.
        if self.format is Format.BINARY_SI and abs(self.nanos) > _BINARY_CAP_NANOS:
            raise QuantityError(f"{self.nanos}n", reason="binary SI quantities stop at 2^63-1")

    @property
    def decimal(self) -> Decimal:
        """The exact value (built from digits, so no context rounding)."""
        sign, digits = (1 if self.nanos < 0 else 0), str(abs(self.nanos))
        return Decimal((sign, tuple(int(d) for d in digits), -9))

    def canonical(self) -> str:
        """Go's Quantity.String() for a freshly computed value (CanonicalizeBytes)."""
        if self.nanos == 0:
            return "0"
        sign = "-" if self.nanos < 0 else ""
        magnitude = abs(self.nanos)
        if self.format is Format.BINARY_SI:
            binary = _binary_canonical(magnitude)
            if binary is not None:
                return sign + binary
            fmt = Format.DECIMAL_SI
        else:
            fmt = self.format
        return sign + _decimal_canonical(magnitude, exponent_form=fmt is Format.DECIMAL_EXPONENT)

    def __str__(self) -> str:
        return self.canonical()


def _binary_canonical(magnitude: int) -> str | None:
    # Go only writes binary SI for whole amounts of at least 1024; anything
    # else would need rounding, so it falls back to decimal SI.
    whole, fraction = divmod(magnitude, _NANOS_PER_UNIT)
    if fraction or whole < 1024:
        return None
    power = 0
    while whole % 1024 == 0 and power < len(_BINARY_SUFFIXES):
        whole //= 1024
        power += 1
    return f"{whole}{_BINARY_BY_POWER.get(power, '')}"


def _decimal_canonical(magnitude: int, *, exponent_form: bool) -> str:
    mantissa, exponent = magnitude, -9
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    # Suffixes come in steps of 10^3: move down to the nearest step so the
    # mantissa stays an integer (1.5 is 1500m, not 1.5).
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if exponent_form or exponent not in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def parse_quantity(text: str | int | float) -> Quantity:
    """Go's resource.ParseQuantity; ints and floats are read as JSON numbers are.

    A YAML/JSON number reaches Go's UnmarshalJSON as its literal text, so an
    int is parsed from its digits and a finite float from its repr ("1e+20"
    is an exponent quantity, "1.5" a decimal one).
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(repr(text), reason="expected a string or a number")
    if isinstance(text, int):
        if abs(text) >= 10**_MAX_INTEGER_DIGITS:
            raise QuantityError(
                _approximately(text), reason=f"more than {_MAX_INTEGER_DIGITS} integer digits"
            )
        return _parse_text(str(text))
    if isinstance(text, float):
        if not math.isfinite(text):
            raise QuantityError(repr(text), reason="not a finite number")
        return _parse_text(repr(text))
    return _parse_text(text)


def _parse_text(text: str) -> Quantity:
    if not text:
        raise QuantityError(text, reason="empty")
    if len(text) > _MAX_TEXT_LENGTH:
        raise QuantityError(text[:32] + "...", reason=f"longer than {_MAX_TEXT_LENGTH} characters")
    if text == "0":
        return Quantity(0, Format.DECIMAL_SI)
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise QuantityError(text, reason="not of the form <sign><number><suffix>")
    sign, whole, fraction, suffix = match.groups()
    fraction = fraction or ""
    fmt, base, exponent = _interpret_suffix(text, suffix)
    if not whole and not fraction and _needs_slow_path_without_digits(fmt, exponent):
        # Go's fast path reads a digit-less number as zero, but its slow path
        # (decimal scale below nano, or Pi/Ei) hands "" to inf.Dec, which fails.
        raise QuantityError(text, reason="no digits")
    digits = (whole + fraction).lstrip("0")
    if base == 10:
        nanos = _decimal_nanos(text, digits, exponent - len(fraction))
    else:
        numerator = int(digits or "0") * int(2**exponent) * _NANOS_PER_UNIT
        nanos = min(-(-numerator // int(10 ** len(fraction))), _BINARY_CAP_NANOS)
        if 0 < nanos < _NANOS_PER_UNIT:
            fmt = Format.DECIMAL_SI
    return Quantity(-nanos if sign == "-" else nanos, fmt)


def _interpret_suffix(text: str, suffix: str) -> tuple[Format, int, int]:
    """(format, base, exponent) for a suffix, as apimachinery's suffixer reads it."""
    if suffix in _DECIMAL_SUFFIXES:
        return Format.DECIMAL_SI, 10, _DECIMAL_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return Format.BINARY_SI, 2, _BINARY_SUFFIXES[suffix]
    if len(suffix) > 1 and suffix[0] in "eE" and _EXPONENT.fullmatch(suffix[1:]):
        exponent = int(suffix[1:])
        if not _INT64_MIN <= exponent <= _INT64_MAX:
            raise QuantityError(text, reason=f"exponent {suffix[1:]} out of range")
        # strconv.ParseInt gives an int64 that Go then converts with int32():
        # the exponent wraps around. "1e4294967296" is 1, as in Kubernetes.
        wrapped = (exponent + 2**31) % 2**32 - 2**31
        return Format.DECIMAL_EXPONENT, 10, wrapped
    raise QuantityError(text, reason=f"unknown suffix {go_quote(suffix)}")


def _needs_slow_path_without_digits(fmt: Format, exponent: int) -> bool:
    if fmt is Format.BINARY_SI:
        # Go's precision estimate 15 - 1 - int(exponent*3/10) - 1 goes
        # negative from Pi (2^50) on, which forces the slow path.
        return exponent >= 50
    return exponent < -9


def _decimal_nanos(text: str, digits: str, exponent: int) -> int:
    """ceil-away-from-zero of |int(digits) * 10^exponent| in nano-units.

    The exponent may be anywhere in int32 range, so no power of ten is built
    before the magnitude is known to be within our limit.
    """
    if not digits:
        return 0
    if len(digits) + exponent > _MAX_INTEGER_DIGITS:
        raise QuantityError(text, reason=f"more than {_MAX_INTEGER_DIGITS} integer digits")
    shift = exponent + 9
    if shift >= 0:
        return int(digits) * int(10**shift)
    keep = len(digits) + shift
    if keep <= 0:
        return 1  # below one nano-unit, and not zero: Go rounds up to 1n
    head, tail = digits[:keep], digits[keep:]
    return int(head) + (1 if tail.strip("0") else 0)


def _round_away(nanos: int, *, per: int) -> int:
    whole, rest = divmod(abs(nanos), per)
    whole += 1 if rest else 0
    return -whole if nanos < 0 else whole


def millis(q: Quantity) -> int:
    """Go's MilliValue(): the amount in thousandths, rounded up away from zero.

    Go documents rounding away from zero and does so for int64-backed
    amounts; its inf.Dec path rounds negatives toward +inf instead. Only
    negative fractional milli-amounts differ, and no resource is negative.
    Unlike Go, the result never overflows: it is a Python int.
    """
    return _round_away(q.nanos, per=_NANOS_PER_MILLI)


def value(q: Quantity) -> int:
    """Go's Value(): the amount rounded up away from zero to an integer."""
    return _round_away(q.nanos, per=_NANOS_PER_UNIT)


def cpu_millis(text: str | int | float) -> int:
    """Millicores of a CPU quantity ("1.5" is 1500, "0.1m" is 1)."""
    return millis(parse_quantity(text))


def memory_bytes(text: str | int | float) -> int:
    """Bytes of a memory quantity, fractions rounded up ("100m" is 1)."""
    return value(parse_quantity(text))


def is_fractional_bytes(q: Quantity) -> bool:
    """Whether the amount has a fractional part ("100m" of memory is 0.1 byte).

    Kubernetes accepts such memory and rounds it up wherever it is used; a
    resource policy that says "100m" for memory is almost certainly a typo
    for CPU, so the API layer refuses it.
    """
    return q.nanos % _NANOS_PER_UNIT != 0


def fits_int64_millis(q: Quantity) -> bool:
    """Whether ``q`` in thousandths (rounded up, as MilliValue) fits an int64."""
    return _INT64_MIN <= millis(q) <= MAX_MILLIS


def _require_int64(n: int, *, what: str) -> None:
    # Go's NewQuantity and NewMilliQuantity take an int64; so do we.
    if isinstance(n, bool) or not _INT64_MIN <= n <= _INT64_MAX:
        shown = _approximately(n) if n.bit_length() > 256 else str(n)
        raise QuantityError(f"{what}={shown}", reason="outside the int64 range Go accepts")


def from_millis(m: int) -> Quantity:
    """Go's NewMilliQuantity(m, DecimalSI)."""
    _require_int64(m, what="millis")
    return Quantity(m * _NANOS_PER_MILLI, Format.DECIMAL_SI)


def from_int(n: int, *, format: Format) -> Quantity:
    """Go's NewQuantity(n, format)."""
    _require_int64(n, what="value")
    return Quantity(n * _NANOS_PER_UNIT, format)


def _approximately(n: int) -> str:
    # str() of a huge int is refused (and pointless) in an error message.
    digits = math.floor(n.bit_length() * math.log10(2))
    return f"{'-' if n < 0 else ''}~10^{digits}"
