"""Runtime unit tests run on a virtual-time event loop.

The idea is looptime's: when the loop would block in ``select()`` waiting for
its next timer, it does not wait; it advances its clock to that timer. Every
``asyncio.sleep``, ``asyncio.timeout`` and ``call_later`` then completes
instantly in real time but in the right order and at the right virtual
instant, so a test can wait out a 15 s lease or a 1000 s backoff in
microseconds and assert on exact times.

If nothing at all is scheduled and no I/O is ready, the test is deadlocked;
the loop raises instead of hanging until the global pytest timeout.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any

import pytest


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Give threads (call_soon_threadsafe) a real chance before giving up.
            ready = super().select(1.0)
            if ready:
                return ready
            raise RuntimeError("virtual-time loop deadlocked: nothing scheduled, nothing ready")
        self._loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return {"virtual_time": VirtualTimeLoop}
