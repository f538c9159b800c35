"""Every log line of a reconcile carries that reconcile's id (controller-runtime's ``reconcileID``).

Aspects tested:
- two reconciles running at once, each logging before and after a sleep and from a task it
  starts, tag every line with their own id, the controller's name and their key;
- lines logged outside any reconcile (by another task while they run, and after the
  controller stops) carry none of these;
- the controller's own outcome line (a failure) carries the failed reconcile's id, and the
  retry is a new reconcile with a new id;
- the default ids are fresh random hex strings.
"""

from __future__ import annotations

import asyncio
import itertools
import string
from collections.abc import Awaitable, Callable

import pytest
import structlog
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs
from structlog.typing import EventDict

from konsumerator.runtime.controlling import Controller, Result, new_reconcile_id

log = structlog.stdlib.get_logger(__name__)

BOUND = ("reconcileID", "controller", "key")


def controller_for(
    reconcile: Callable[[str], Awaitable[Result]], *, workers: int = 2
) -> Controller[str]:
    ids = (f"id-{n}" for n in itertools.count(1))
    return Controller(
        name="things",
        reconcile=reconcile,
        max_concurrent_reconciles=workers,
        reconcile_ids=lambda: next(ids),
    )


async def run_for(controller: Controller[str], seconds: float) -> None:
    task = asyncio.create_task(controller.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def lines(logs: list[EventDict], event: str) -> list[EventDict]:
    return [e for e in logs if e["event"] == event]


async def test_concurrent_reconciles_tag_every_line_with_their_own_id() -> None:
    async def child(key: str) -> None:
        log.info("from a child task", item=key)

    async def reconcile(key: str) -> Result:
        log.info("gathering", item=key)
        await asyncio.sleep(1)  # both reconciles are now running
        await asyncio.create_task(child(key))
        log.info("acting", item=key)
        return Result()

    async def bystander() -> None:
        for _ in range(4):
            log.info("not a reconcile")
            await asyncio.sleep(0.5)

    controller = controller_for(reconcile)
    with capture_logs(processors=[merge_contextvars]) as logs:
        controller.enqueue("a")
        controller.enqueue("b")
        other = asyncio.create_task(bystander())
        await run_for(controller, 10)
        await other
        log.info("after the controller")

    inside = [e for e in logs if "item" in e]
    assert len(inside) == 6
    ids = {e["item"]: e["reconcileID"] for e in lines(logs, "gathering")}
    assert sorted(ids.values()) == ["id-1", "id-2"]
    for e in inside:
        assert (e["reconcileID"], e["controller"], e["key"]) == (
            ids[e["item"]],
            "things",
            e["item"],
        )
    outside = [e for e in logs if "item" not in e]
    assert [e["event"] for e in outside] == ["not a reconcile"] * 4 + ["after the controller"]
    assert all(name not in e for e in outside for name in BOUND)


async def test_a_failed_reconcile_logs_its_outcome_with_its_id_and_the_retry_gets_a_new_one() -> (
    None
):
    attempts = 0

    async def reconcile(key: str) -> Result:
        nonlocal attempts
        attempts += 1
        log.info("trying", attempt=attempts)
        if attempts == 1:
            raise RuntimeError("boom")
        return Result()

    controller = controller_for(reconcile, workers=1)
    with capture_logs(processors=[merge_contextvars]) as logs:
        controller.enqueue("a")
        await run_for(controller, 1)

    assert [(e["event"], e["reconcileID"]) for e in logs] == [
        ("trying", "id-1"),
        ("reconcile failed; will retry", "id-1"),
        ("trying", "id-2"),
    ]


def test_default_reconcile_ids_are_fresh_random_hex() -> None:
    ids = [new_reconcile_id() for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(len(i) == 32 and set(i) <= set(string.hexdigits.lower()) for i in ids)
