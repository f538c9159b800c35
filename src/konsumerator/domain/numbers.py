"""Bounded decimal integers read back from text others can edit.

The operator reads numbers back from annotations, labels and status fields
that anyone allowed to edit the object can set to anything. Python's ``int()``
is the wrong parser for those: it accepts ``" 7"``, ``"+7"``, ``"1_000"`` and
non-ASCII digits (``"²"`` passes ``str.isdigit``, ``"٣"`` converts), and it
raises ``ValueError`` past 4,300 digits instead of returning. A ``ValueError``
escaping a projection stopped the Deployment watch of the whole operator.

``parse_decimal`` is the one parser for such values: ASCII digits only, at
most ``MAX_DIGITS`` of them (leading zeros count), at most ``maximum``;
anything else is ``None`` ("absent"), never an exception. The bounds are
those of the Go operator's fields (``strconv`` into int32 or int64).
"""

from typing import Final

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1
# Enough for every int64 (19 digits) with one leading zero; the length check
# comes before any conversion, so the cost is bounded whatever the input.
MAX_DIGITS: Final = 20

_DIGITS: Final = frozenset("0123456789")


def is_decimal(text: str) -> bool:
    """Whether ``text`` is a non-empty run of ASCII digits (of any length)."""
    return bool(text) and text.isascii() and text.isdigit()


def parse_decimal(text: str, *, maximum: int = INT64_MAX) -> int | None:
    """``text`` as a non-negative integer of at most ``maximum``, else None.

    ``"007"`` is 7; ``""``, ``"-1"``, ``"+1"``, ``" 1"``, ``"1_0"``, ``"²"``
    and anything longer than ``MAX_DIGITS`` or above ``maximum`` are None.
    """
    if not text or len(text) > MAX_DIGITS or not set(text) <= _DIGITS:
        return None
    value = int(text)
    return value if value <= maximum else None
