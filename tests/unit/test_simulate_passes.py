"""A replay runs each pass to its end at once, without an event loop.

Every port of a replay (the in-memory cluster, the timeline's metrics, the silent
reporter) answers without waiting, so a pass never suspends; one that did would be
a pass the replay cannot finish, and says so instead of returning half a pass.
"""

import asyncio

import pytest

from konsumerator import simulating


async def answers(value: int) -> int:
    return value


async def waits() -> int:
    await asyncio.sleep(0)
    return 1


def test_a_pass_that_never_waits_returns_its_result() -> None:
    assert simulating._at_once(answers(7)) == 7


def test_a_pass_that_waits_is_refused_loudly() -> None:
    with pytest.raises(RuntimeError, match="waited"):
        simulating._at_once(waits())
