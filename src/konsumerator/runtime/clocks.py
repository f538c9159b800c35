"""Where the runtime reads the time from.

Every deadline in the runtime is measured on a monotonic clock, never on wall
time (a leader whose node's clock jumps must not think its lease is still
valid). The default clock is the running event loop's ``time()``: it *is*
``time.monotonic()`` in production, and tests swap the loop for one whose time
is virtual, so that a 1000 s backoff takes no real time at all. Components
take a ``clock`` argument so that a test can also hand in a plain callable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Seconds on a monotonic scale; only differences mean anything."""

WallClock = Callable[[], datetime]
"""Timezone-aware "now", only for timestamps written into API objects."""


def loop_clock() -> float:
    """The running loop's monotonic time (virtual under the test loop)."""
    # Imported here, not with the module: ``konsumerator simulate`` imports this module
    # through the controllers and runs without an event loop, so it would pay for
    # ``asyncio`` (some 30 ms of start-up) for nothing.
    import asyncio

    return asyncio.get_running_loop().time()


def utc_now() -> datetime:
    return datetime.now(tz=UTC)
