"""The virtual-time loop itself.

Aspects tested:
- sleeps advance virtual time exactly and take no real time;
- timers fire in deadline order;
- asyncio.timeout expires at the virtual deadline.
"""

import asyncio
import time

import pytest


async def test_long_sleeps_take_no_real_time() -> None:
    loop = asyncio.get_running_loop()
    start_real = time.monotonic()
    start = loop.time()
    await asyncio.sleep(1000)
    assert loop.time() - start == pytest.approx(1000)
    assert time.monotonic() - start_real < 1.0


async def test_timers_fire_in_deadline_order() -> None:
    order: list[int] = []

    async def sleeper(n: int) -> None:
        await asyncio.sleep(n)
        order.append(n)

    async with asyncio.TaskGroup() as group:
        for n in (3, 1, 2):
            group.create_task(sleeper(n))
    assert order == [1, 2, 3]


async def test_timeout_expires_at_the_virtual_deadline() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await asyncio.sleep(10)
    assert loop.time() - start == pytest.approx(5)
