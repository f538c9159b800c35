"""Go time.Duration: ParseDuration and String(), bit for bit.

Konsumerator's custom resources carry durations in Go's notation ("30s",
"1h30m", "1.5h"), written for the Go operator and validated by Go clients.
Reading them differently would make the same resource mean different
things to the two operators, so this is Go's algorithm, not an approximation.

This is hand-written because no well-kept Python library implements it
exactly: durationpy, the usual choice, accepts units Go rejects ("2d") and
computes fractions exactly, where Go goes through float64.

What Go does, and therefore what this module does:

* The grammar is ``[-+]?([0-9]*(\\.[0-9]*)?unit)+`` with units ns, us, µs
  (U+00B5), μs (U+03BC), ms, s, m, h, or a lone "0" (with optional sign).
  Each number needs at least one digit on either side of the point ("5.s"
  and ".5s" are fine, ".s" is not); every number needs a unit ("1", "1.5"
  fail) and there is no whitespace.
* Integer parts are exact; a fractional part is accumulated as an integer
  (digits past 2^63 precision are dropped) and scaled through float64, then
  truncated: "0.3333333333333333333h" is exactly 20m in Go, although the
  exact product is a hair below it.
* The total is kept as an unsigned 64-bit sum that may reach 2^63 (for
  "-9223372036854775808ns"); anything larger is "invalid duration". Go's
  sum can wrap past 2^64 when two terms of exactly 2^63 meet
  ("9223372036854775808ns9223372036854775808ns" is 0 in Go); we reproduce
  that too rather than disagree with Go about the same text.
"""

from dataclasses import dataclass

from konsumerator.domain.quoting import go_quote

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_TWO_63 = 2**63
_UINT64_MODULUS = 2**64

_UNITS = {
    "ns": _NANOSECOND,
    "us": _MICROSECOND,
    "\u00b5s": _MICROSECOND,  # micro sign
    "\u03bcs": _MICROSECOND,  # Greek small letter mu
    "ms": _MILLISECOND,
    "s": _SECOND,
    "m": _MINUTE,
    "h": _HOUR,
}
_DIGITS = frozenset("0123456789")


class DurationError(ValueError):
    """A text that Go's time.ParseDuration rejects."""

    def __init__(self, text: str, *, reason: str) -> None:
        super().__init__(f"invalid duration {go_quote(text)}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A Go time.Duration: a signed 64-bit count of nanoseconds."""

    nanoseconds: int

    def __post_init__(self) -> None:
        if isinstance(self.nanoseconds, bool) or not (_INT64_MIN <= self.nanoseconds <= _INT64_MAX):
            shown = str(self.nanoseconds) if self.nanoseconds.bit_length() < 256 else "(huge)"
            raise DurationError(shown, reason="outside the int64 nanosecond range")

    @property
    def seconds(self) -> float:
        """Go's Duration.Seconds(): whole seconds plus the remainder, as float64."""
        whole, rest = _go_divmod(self.nanoseconds, _SECOND)
        return float(whole) + rest / 1e9

    @property
    def total_seconds_int(self) -> int:
        """int64(d / time.Second): whole seconds, truncated toward zero."""
        return _go_divmod(self.nanoseconds, _SECOND)[0]

    def __str__(self) -> str:
        return format_duration(self)


def _go_divmod(a: int, b: int) -> tuple[int, int]:
    # Go's / and % truncate toward zero; Python's floor. They differ for negatives.
    q = abs(a) // abs(b)
    q = q if (a >= 0) == (b > 0) else -q
    return q, a - q * b


def parse_duration(text: str) -> Duration:
    """Go's time.ParseDuration."""
    if not isinstance(text, str):
        raise DurationError(repr(text), reason="expected a string")
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return Duration(0)
    if not rest:
        raise DurationError(text, reason="empty")
    # An unsigned 64-bit sum, as in Go; it may hold 2^63 for the most negative value.
    total = 0
    while rest:
        if rest[0] != "." and rest[0] not in _DIGITS:
            raise DurationError(text, reason="expected a number")
        whole, rest, consumed_whole = _leading_int(text, rest)
        fraction, scale, consumed_fraction = 0, 1.0, False
        if rest[:1] == ".":
            fraction, scale, rest, consumed_fraction = _leading_fraction(rest[1:])
        if not consumed_whole and not consumed_fraction:
            raise DurationError(text, reason="no digits")
        end = 0
        while end < len(rest) and rest[end] != "." and rest[end] not in _DIGITS:
            end += 1
        if end == 0:
            raise DurationError(text, reason="missing unit")
        unit_text, rest = rest[:end], rest[end:]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise DurationError(text, reason=f"unknown unit {go_quote(unit_text)}")
        if whole > _TWO_63 // unit:
            raise DurationError(text, reason="overflow")
        term = whole * unit
        if fraction > 0:
            # Go: v += uint64(float64(f) * (float64(unit) / scale)); the
            # float64 rounding (and truncation) is part of the result.
            term += int(float(fraction) * (float(unit) / scale))
            if term > _TWO_63:
                raise DurationError(text, reason="overflow")
        total = (total + term) % _UINT64_MODULUS
        if total > _TWO_63:
            raise DurationError(text, reason="overflow")
    if negative:
        return Duration(-total)
    if total > _INT64_MAX:
        raise DurationError(text, reason="overflow")
    return Duration(total)


def _leading_int(text: str, s: str) -> tuple[int, str, bool]:
    """Go's leadingInt: the leading digits as a value of at most 2^63."""
    value, i = 0, 0
    while i < len(s) and s[i] in _DIGITS:
        if value > _TWO_63 // 10:
            raise DurationError(text, reason="overflow")
        value = value * 10 + ord(s[i]) - ord("0")
        if value > _TWO_63:
            raise DurationError(text, reason="overflow")
        i += 1
    return value, s[i:], i > 0


def _leading_fraction(s: str) -> tuple[int, float, str, bool]:
    """Go's leadingFraction: digits accumulate until the next would overflow.

    Later digits are consumed but ignored, which is how a 30-digit fraction
    parses without error and without effect.
    """
    value, scale, i = 0, 1.0, 0
    overflow = False
    while i < len(s) and s[i] in _DIGITS:
        if not overflow:
            if value > _INT64_MAX // 10:
                overflow = True
            else:
                candidate = value * 10 + ord(s[i]) - ord("0")
                if candidate > _TWO_63:
                    overflow = True
                else:
                    value = candidate
                    scale *= 10
        i += 1
    return value, scale, s[i:], i > 0


def format_duration(d: Duration) -> str:
    """Go's Duration.String(): "1h30m0s", "1.5s", "300ms", "1µs", "0s"."""
    magnitude = abs(d.nanoseconds)
    sign = "-" if d.nanoseconds < 0 else ""
    if magnitude == 0:
        return "0s"
    if magnitude < _SECOND:
        # Below a second Go switches to the largest unit that keeps an
        # integer part: ns, µs (U+00B5), or ms, with a trimmed fraction.
        if magnitude < _MICROSECOND:
            return f"{sign}{magnitude}ns"
        if magnitude < _MILLISECOND:
            return f"{sign}{_with_fraction(magnitude, places=3)}\u00b5s"
        return f"{sign}{_with_fraction(magnitude, places=6)}ms"
    seconds_text = _with_fraction(magnitude % _MINUTE, places=9)
    minutes, hours = (magnitude // _MINUTE) % 60, magnitude // _HOUR
    # Go stops at hours (days vary in length) and writes every unit below
    # the largest non-zero one: "1h0m0s", "1m0s".
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds_text}s"
    if minutes:
        return f"{sign}{minutes}m{seconds_text}s"
    return f"{sign}{seconds_text}s"


def _with_fraction(value: int, *, places: int) -> str:
    whole, fraction = divmod(value, 10**places)
    digits = f"{fraction:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)
