"""A user's text inside a message, quoted as Go's ``strconv.Quote`` writes it.

Durations and quantities say what they refused the way the Go operator (and the
apiserver) do: ``invalid duration "1x": unknown unit "x"``. Control characters get
JSON's escapes and every other unprintable character (DEL, U+2028, a tag character)
Go's ``\\x``, ``\\u`` or ``\\U`` escape, so that the message stays one printable line
whatever the text holds.
"""

import json


def go_quote(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    if quoted.isprintable():
        return quoted
    return "".join(c if c.isprintable() else _escape(c) for c in quoted)


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
