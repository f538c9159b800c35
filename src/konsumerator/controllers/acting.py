"""The "act" step: carry out a plan's writes, and nothing else.

* Deletes carry ``preconditions.uid``: we delete the Deployment we planned
  to delete, never a same-named successor created in the meantime.
* Applies are server-side applies with field manager ``konsumerator``.
* A create is guarded by a read, because server-side apply creates *or
  takes over*: applied onto somebody else's Deployment of the same name it
  would silently adopt it. The read finds three cases: nothing (create), one
  of ours that the cache has not seen yet (ours to apply: e.g. a Deployment
  left by the Go operator, which lacks our managed-by label and so is not in
  the label-selected cache), or a foreign one (a conflict; never touched).
  A few creations read with one GET each; a wave of them (a new Consumer
  with hundreds of partitions) with one metadata-only LIST of the namespace.
* Writes run concurrently up to a bound, so 1,000 instances converge in
  seconds without flooding the API server; every failure is collected and
  reported, none stops the others.
"""

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from konsumerator.domain.planning import Action, Apply, Delete, Plan
from konsumerator.kube import reading, resources
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors

log = structlog.stdlib.get_logger(__name__)


@dataclass(slots=True)
class Outcome:
    done: list[Apply | Delete] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # Failed writes by kind (``write_kind``), for the per-Consumer error counters.
    refused: Counter[str] = field(default_factory=Counter)
    # Conflicts of the optimistic kind (409 on a write): a retry will do.
    retry: bool = False


def write_kind(item: Apply | Delete) -> str:
    """``create``, ``update`` or ``delete``: the Go operator's kinds of Deployment write."""
    if isinstance(item, Delete):
        return "delete"
    return "create" if item.action is Action.CREATE else "update"


# From this many creations in one pass on, one LIST beats a GET per name.
LIST_GUARD_FROM = 8


async def _safe_to_create(
    *,
    client: ApiClient,
    namespace: str,
    name: str,
    owner_uid: str,
    controllers: Mapping[str, str | None] | None,
) -> bool:
    """Whether applying ``name`` is safe: absent, or controlled by our owner."""
    if controllers is not None:
        return name not in controllers or controllers[name] == owner_uid
    existing = await reading.get_deployment(client=client, namespace=namespace, name=name)
    return existing is None or existing.controller_uid == owner_uid


async def act(
    *,
    client: ApiClient,
    writer: Writer,
    plan: Plan,
    namespace: str,
    owner_uid: str,
    concurrency: int = 16,
) -> Outcome:
    outcome = Outcome()
    gate = asyncio.Semaphore(concurrency)
    controllers = None
    if sum(a.action is Action.CREATE for a in plan.applies) >= LIST_GUARD_FROM:
        try:
            controllers = await reading.deployment_controllers(client=client, namespace=namespace)
        except errors.ApiError as e:
            outcome.failures.append(f"list deployments in {namespace}: {e}")
            # No write of this pass is attempted: count each one as failed.
            planned: list[Apply | Delete] = [*plan.deletes, *plan.applies]
            outcome.refused.update(write_kind(item) for item in planned)
            return outcome

    async def delete(item: Delete) -> None:
        async with gate:
            try:
                await writer.delete(
                    resource=resources.DEPLOYMENTS,
                    namespace=namespace,
                    name=item.name,
                    uid=item.uid,
                )
            except errors.NotFound:
                pass
            except errors.ApiError as e:
                outcome.failures.append(f"delete {item.name}: {e}")
                outcome.refused["delete"] += 1
                outcome.retry |= isinstance(e, errors.Conflict)
                return
            outcome.done.append(item)

    async def apply(item: Apply) -> None:
        async with gate:
            try:
                if item.action is Action.CREATE and not await _safe_to_create(
                    client=client,
                    namespace=namespace,
                    name=item.name,
                    owner_uid=owner_uid,
                    controllers=controllers,
                ):
                    outcome.conflicts.append(item.name)
                    return
                await writer.apply(
                    resource=resources.DEPLOYMENTS,
                    namespace=namespace,
                    name=item.name,
                    body=item.body,
                )
            except errors.ApiError as e:
                outcome.failures.append(f"{item.action.value} {item.name}: {e}")
                outcome.refused[write_kind(item)] += 1
                outcome.retry |= isinstance(e, errors.Conflict)
                return
            outcome.done.append(item)

    tasks: Sequence[asyncio.Task[None]] = [
        *(asyncio.create_task(delete(d)) for d in plan.deletes),
        *(asyncio.create_task(apply(a)) for a in plan.applies),
    ]
    if tasks:
        await asyncio.gather(*tasks)
    if outcome.failures:
        log.warning("writes failed", failures=outcome.failures[:10], total=len(outcome.failures))
    return outcome
