"""The repository stands on its own, and its references to docs/compatibility.md are true.

Aspects tested:

* the rows of docs/compatibility.md are numbered 1..N without gaps or repeats, across
  all its tables, in a leading ``#`` column;
* every "difference N" (or "differences N and M") in the code, tests, scripts and docs, and
  every "row N" / "rows N-M" inside docs/compatibility.md, names a row that exists;
* no file of the repository (what ``.gitignore`` does not exclude) points at material
  outside it: machine paths under the work directory, a sibling ``shared`` directory, or
  sections of a private reference;
* the README's commands do what the install guide says: the CRD is applied server-side,
  ``konsumerator run`` binds its metrics and probe endpoints to loopback, and every flag
  it passes exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from konsumerator import cli

ROOT = Path(__file__).resolve().parents[2]
COMPATIBILITY = ROOT / "docs" / "compatibility.md"
SCANNED = ("src", "dev", "tests", "hack", "docs", "README.md")

# Spelled in pieces so that this file does not match itself.
FORBIDDEN = ("/" + "work/", "../" + "shared", "reference " + "§")

_ROW = re.compile(r"^\| (\d+) \|", re.M)
_NUMBERS = r"(\d+(?:(?:, | and | or |-)\d+)*)"
_DIFFERENCE = re.compile(r"\b[Dd]ifferences? " + _NUMBERS)
_ROW_REFERENCE = re.compile(r"\brows? " + _NUMBERS)


def _numbers(text: str) -> set[int]:
    """``"3-5"`` → {3, 4, 5}; ``"1 and 2"`` → {1, 2}."""
    found: set[int] = set()
    for part in re.split(r", | and | or ", text):
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def rows() -> list[int]:
    return [int(n) for n in _ROW.findall(COMPATIBILITY.read_text())]


def _ignored() -> tuple[set[str], set[str], set[str]]:
    """``.gitignore`` as (names ignored anywhere, root-relative paths, suffixes)."""
    names, rooted, suffixes = {".git"}, set(), set()
    for line in (ROOT / ".gitignore").read_text().splitlines():
        entry = line.strip().rstrip("/")
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("*"):
            suffixes.add(entry[1:])
        elif entry.startswith("/"):
            rooted.add(entry[1:])
        else:
            names.add(entry)
    return names, rooted, suffixes


def repository_files() -> Iterator[Path]:
    names, rooted, suffixes = _ignored()

    def walk(directory: Path) -> Iterator[Path]:
        for path in sorted(directory.iterdir()):
            relative = path.relative_to(ROOT).as_posix()
            if path.name in names or relative in rooted or path.name.endswith(tuple(suffixes)):
                continue
            if path.is_dir():
                yield from walk(path)
            elif path.is_file():
                yield path

    yield from walk(ROOT)


def scanned_files() -> Iterator[Path]:
    for path in repository_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.split("/")[0] in SCANNED and path.suffix in {".py", ".md"}:
            yield path


def test_compatibility_rows_are_numbered_one_to_n_in_a_hash_column() -> None:
    numbers = rows()
    assert numbers == list(range(1, len(numbers) + 1))
    text = COMPATIBILITY.read_text()
    headers = [line for line in text.splitlines() if line.startswith("| # |")]
    tables = re.findall(r"^\|---", text, re.M)
    assert len(headers) == len(tables) >= 1


def test_every_difference_mentioned_names_an_existing_row() -> None:
    existing = set(rows())
    dangling = []
    for path in scanned_files():
        text = path.read_text()
        mentions = [m.group(1) for m in _DIFFERENCE.finditer(text)]
        if path == COMPATIBILITY:
            mentions += [m.group(1) for m in _ROW_REFERENCE.finditer(text)]
        for mention in mentions:
            missing = _numbers(mention) - existing
            if missing:
                dangling.append(f"{path.relative_to(ROOT)}: {mention} ({sorted(missing)})")
    assert dangling == []


def test_difference_mentions_are_found_where_the_tests_make_them() -> None:
    """The scan sees the references it is meant to check (not a vacuous pass)."""
    planning = (ROOT / "tests" / "unit" / "domain" / "test_planning.py").read_text()
    assert {int(m.group(1)) for m in _DIFFERENCE.finditer(planning) if m.group(1).isdigit()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7", {7}), ("1 and 2", {1, 2}), ("3-5", {3, 4, 5}), ("1, 4 and 9", {1, 4, 9})],
)
def test_number_lists_are_read_whole(text: str, expected: set[int]) -> None:
    assert _numbers(text) == expected


def test_no_file_points_outside_the_repository() -> None:
    offending = []
    for path in repository_files():
        text = path.read_bytes().decode("utf-8", errors="ignore")
        offending += [f"{path.relative_to(ROOT)}: {n!r}" for n in FORBIDDEN if n in text]
    assert offending == []


def readme_commands() -> list[str]:
    """The README's shell commands, continuation lines joined, comments dropped."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    joined = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("#")[0].strip() for line in joined.splitlines() if line.strip()]


def test_readme_applies_the_crd_server_side() -> None:
    applies = [c for c in readme_commands() if c.startswith("konsumerator crd |")]
    assert applies
    for command in applies:
        assert "kubectl apply --server-side" in command, command


def test_readme_runs_the_operator_with_its_endpoints_on_loopback() -> None:
    runs = [c for c in readme_commands() if c.startswith("konsumerator run")]
    assert runs
    known = {opt for p in cli.run.params for opt in p.opts}
    for command in runs:
        flags = re.findall(r"(--[a-z-]+)", command)
        assert set(flags) <= known, command
        for flag in ("--metrics-bind-address", "--health-probe-bind-address"):
            assert re.search(flag + r"[ =]127\.0\.0\.1:\d+", command), (flag, command)
