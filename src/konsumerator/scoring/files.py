"""The user's input files for ``konsumerator score``: opened, size-bounded, one-line errors.

``-`` is standard input. A file that is missing, a directory, unreadable or
larger than the caller's limit is refused with one line naming it, before
anything is parsed; reading is bounded so that a huge file (or an endless
pipe) costs at most the limit in memory, never the whole of it.
"""

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

STDIN = "-"


class InputFileError(ValueError):
    """A file that cannot be read; the message is one line naming it."""


class TooLarge(Exception):
    """Raised from inside a read once more than the limit has been read."""


class _Bounded(io.RawIOBase):
    """A binary stream that raises ``TooLarge`` once more than ``limit`` bytes have come."""

    def __init__(self, raw: BinaryIO, *, limit: int) -> None:
        self._raw = raw
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # One byte more than the limit proves the file is larger without reading all of it.
        want = min(len(buffer), self._left + 1)
        data = self._raw.read(want)
        self._left -= len(data)
        if self._left < 0:
            raise TooLarge
        buffer[: len(data)] = data
        return len(data)


def describe(path: str) -> str:
    """How a file is named in messages: as given, or by its repr when it holds a
    newline or another unprintable character (an error is one line, whatever the name)."""
    if path == STDIN:
        return "stdin"
    return path if path.isprintable() else repr(path)


def _why_not(error: OSError) -> str:
    if isinstance(error, IsADirectoryError):
        return "is a directory, expected a file"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    return (error.strerror or str(error)).lower()


@contextmanager
def open_bounded(path: str, *, limit: int) -> Iterator[io.BufferedReader]:
    """``path`` (or stdin for ``-``) as a binary stream that refuses to go past ``limit`` bytes."""
    if path == STDIN:
        raw: BinaryIO = sys.stdin.buffer
        yield io.BufferedReader(_Bounded(raw, limit=limit))
        return
    try:
        if Path(path).is_dir():
            raise IsADirectoryError(path)
        # Opened apart from the with below so that only opening errors name the file here.
        handle = Path(path).open("rb")  # noqa: SIM115
    except OSError as e:
        raise InputFileError(f"{describe(path)}: {_why_not(e)}") from None
    with handle:
        yield io.BufferedReader(_Bounded(handle, limit=limit))


def read_text(path: str, *, limit: int) -> str:
    """The whole of a small UTF-8 file (a byte-order mark is dropped)."""
    name = describe(path)
    try:
        with open_bounded(path, limit=limit) as stream:
            data = stream.read()
    except TooLarge:
        raise InputFileError(f"{name}: larger than {limit:,} bytes") from None
    except OSError as e:
        raise InputFileError(f"{name}: {_why_not(e)}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputFileError(f"{name}: line {line}: not UTF-8 text") from None
