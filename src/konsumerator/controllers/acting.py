"""The "act" step: carry out a plan's writes, and nothing else.

No write can touch a Deployment that is not ours, whatever happens between
the cache we planned from and the request:

* A creation is one server-side apply that can only create
  (``Writer.apply(create_only=True)``): if anything holds the name by the
  time it arrives, nothing is written. Only then do we look (one GET): a
  Deployment controlled by our owner that the cache has not shown us (left by
  the Go operator, which did not set our managed-by label; or created by us
  and not delivered by the watch yet) is ours, and gets the apply,
  conditional on its UID; anything else is a name conflict, reported and
  never touched. So a creation costs one request, and a foreign name two per
  pass. Our own creations rarely take that path: the pipeline does not send
  a creation of the last passes again until the cache shows it or
  ``runtime.expecting.TIMEOUT_S`` has passed (``Pipeline._unawaited``), so
  the AlreadyExists, the GET and the apply are left for what the cache
  cannot know (a Deployment the Go operator or our previous process left, or
  a watch slower than the timeout). A creation left out writes nothing, so
  none of the guarantees here depends on it.
* Every other apply is conditional on the UID of the Deployment we planned
  from (``Writer.apply(uid=...)``): one deleted and re-created by someone else
  in the meantime is refused, and the next pass sees what is there now.
* Deletes carry ``preconditions.uid`` for the same reason.
* A template rollout reaches every outdated instance or none (``controllers.vetting``):
  before the first rollout of a template generation each one is dry-run, and a refusal
  of any holds them all, so admission or a quota that judges instances differently
  cannot leave a Consumer half on the new template.
* A body is rendered for its request and dropped with it (``Apply.render``, not the
  cached ``Apply.body``): a pass creating 2,000 Deployments would otherwise hold 2,000
  rendered bodies (~5 KB of dicts each) until it ends.
* Pod resizes (in-place mode) are strategic merge patches of the
  ``pods/resize`` subresource, conditional on the pod's UID, their bodies
  rendered here (``rendering.resize_patch``). A pod that is gone is skipped
  (the watch shows its successor); a resize the server refuses as invalid
  (a QoS class change, a node that cannot resize) or forbids (beyond the node's
  allocatable) is reported in
  ``Outcome.resize_refused``, and the next pass rolls the instance out with
  the size instead; a server without the subresource sets
  ``Outcome.resize_unsupported`` (the Consumer then runs as ``Recreate``).
* Writes run concurrently up to a bound, so 1,000 instances converge in
  seconds without flooding the API server; every failure is collected and
  reported, none stops the others.
* One pass makes at most ``SLICE`` writes (in plan order: deletes, creations, the
  other applies, pod resizes: ``Plan.applies`` lists creations first, so a cut pass
  defers the rewrites of running instances before any missing one's creation, but
  for a tenth of the slice kept for rewrites when creations alone would fill it,
  ``_with_room_for_rewrites``), and
  once another Consumer waits for a worker (``contended``) it starts no new write
  after ``YIELD_AFTER_S`` seconds of writing, provided it has started as many writes
  as a tenth of the Consumer's instances (at least ``YIELD_MIN_WRITES``): every pass
  plans each instance again, so a wave is cut into at most about ten passes however
  slow the apiserver is (a tenth of the writes *left* made a 2,000-Deployment wave
  some 45 passes). The rest is left for the next pass (``Outcome.deferred``), which
  the pipeline asks for at once. A Consumer creating 2,000 Deployments used to hold
  its worker for the whole wave (minutes on a busy apiserver) while a Consumer without
  a worker waited; now it holds it for one slice, and the work queue, which serves the
  key served least recently first, hands the next worker to the waiting one. The next
  pass plans afresh from the watch cache, so a deferred write is never stale.
"""

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog

from konsumerator.controllers import vetting
from konsumerator.controllers.outcomes import Outcome, write_kind
from konsumerator.domain import rendering
from konsumerator.domain.planning import Action, Apply, Delete, Plan
from konsumerator.domain.pods import PodResize
from konsumerator.kube import reading, resources
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.writing import Writer
from konsumerator.runtime import errors

log = structlog.stdlib.get_logger(__name__)

# How the apiserver's server-side apply refuses a field its Deployment schema does not
# declare (500 "failed to create typed patch object (...): .spec.x: field not declared in
# schema"): the field's path in the Deployment. Under ``.spec`` it can only come from the
# Consumer's free-form ``deploymentTemplate`` (the CRD keeps it unchecked, to take a
# DeploymentSpec of any Kubernetes version): every field the operator adds is declared.
_UNDECLARED: Final = re.compile(r"(?<!\S)\.spec(\S*): field not declared in schema")


# The longest refusal one failure quotes: a 422 lists every invalid field, an admission
# policy names itself and its binding; the status condition holds 1,024 characters of
# all the failures of a pass, so one refusal must leave room for the others.
REFUSAL_CHARS: Final = 400


def refusal(error: errors.ApiError) -> str:
    """Why the apiserver refused a Deployment write, for the status and the Events: the
    apiserver's own words (at most ``REFUSAL_CHARS``), or, for an undeclared field of the
    template, that field by its path in the Consumer
    (``spec.deploymentTemplate.template.spec.containers[...]``)."""
    fields = _UNDECLARED.findall(error.message)
    if not fields:
        text = str(error)
        return text if len(text) <= REFUSAL_CHARS else f"{text[: REFUSAL_CHARS - 3]}..."
    named = ", ".join(f"spec.deploymentTemplate{path}" for path in dict.fromkeys(fields))
    return (
        f"{named}: not a field of an apps/v1 DeploymentSpec (a typo, or a field of another"
        f" Kubernetes version); the apiserver refused the write ({error.status},"
        " field not declared in schema)"
    )


# The most writes one pass makes. Large enough that a 1,000-instance wave is two
# passes (each pass plans every instance once: fewer, larger slices cost less CPU),
# small enough that one slice holds a worker for seconds, not minutes.
SLICE: Final = 500
# How long a pass writes before it gives its worker up to a waiting Consumer, and the
# fewest writes it starts first (or a tenth of its instances, if more): each slice plans
# every instance again (a fraction of a second at 2,000), so slices are not much smaller.
YIELD_AFTER_S: Final = 5.0
YIELD_MIN_WRITES: Final = 50


def _never() -> bool:
    return False


def unsupported(e: errors.ApiError) -> bool:
    """Whether ``e`` says the server has no ``pods/resize`` (before Kubernetes 1.33).

    A missing pod is a 404 too, but names the pod; a missing resource says the
    server "could not find the requested resource", and 405 refuses the verb.
    """
    return e.status == 405 or (
        isinstance(e, errors.NotFound) and "could not find the requested resource" in e.message
    )


def refused(e: errors.ApiError) -> bool:
    """Whether the server refused this resize for good (the instance then rolls out).

    422: not allowed in place (a QoS class change, a node that cannot resize). 403
    from admission: beyond the node's allocatable (the apiserver's PodResizeValidator,
    ``NodeCapacity``). A 403 of RBAC ("cannot patch resource") is not a refusal of
    the resize but a missing permission: a failure, reported as such.
    """
    if isinstance(e, errors.Invalid):
        return True
    return isinstance(e, errors.Forbidden) and "cannot patch resource" not in e.message


async def _resize(*, writer: Writer, item: PodResize, namespace: str, outcome: Outcome) -> None:
    try:
        await writer.strategic_patch(
            resource=resources.PODS,
            namespace=namespace,
            name=item.pod,
            patch=rendering.resize_patch(item.containers, memory_format=item.memory_format),
            subresource="resize",
            uid=item.uid,
        )
    except errors.ApiError as e:
        if unsupported(e):
            outcome.resize_unsupported = True
        elif isinstance(e, errors.NotFound | errors.Conflict):
            log.info("pod to resize is gone", pod=item.pod, error=str(e))
        elif refused(e):
            outcome.resize_refused[item.instance] = f"pod {item.pod}: {e.message}"[:300]
        else:
            outcome.failures.append(f"resize {item.pod}: {e}")
            outcome.refused["resize"] += 1
        return
    outcome.resized.append(item)


async def _create(
    *, client: ApiClient, writer: Writer, item: Apply, namespace: str, owner_uid: str
) -> str | None:
    """Create ``item``: the UID of the Deployment that now stands for it (ours, created
    or found); None when its name belongs to somebody else."""
    body = item.render()
    try:
        written = await writer.apply(
            resource=resources.DEPLOYMENTS,
            namespace=namespace,
            name=item.name,
            body=body,
            create_only=True,
        )
        return written.uid
    except errors.AlreadyExists:
        existing = await reading.get_deployment(client=client, namespace=namespace, name=item.name)
    if existing is None:
        # Gone again between the two requests: the next pass creates it.
        raise errors.Conflict(status=409, reason="Conflict", message=f"{item.name} came and went")
    if existing.controller_uid != owner_uid:
        return None
    await writer.apply(
        resource=resources.DEPLOYMENTS,
        namespace=namespace,
        name=item.name,
        body=body,
        uid=existing.uid,
    )
    return existing.uid


async def _delete(*, writer: Writer, item: Delete, namespace: str, outcome: Outcome) -> None:
    """Delete one redundant Deployment (by uid); one already gone counts as done.

    A conflict (the name now holds another object) asks for a retry pass.
    """
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


async def _write(
    *,
    client: ApiClient,
    writer: Writer,
    item: Apply,
    namespace: str,
    owner_uid: str,
    outcome: Outcome,
) -> None:
    """Create or apply one Deployment, recording the result in ``outcome``.

    A create whose name is taken by an object we do not own is a conflict
    (reported, never touched); a write conflict asks for a retry pass.
    """
    try:
        if item.action is Action.CREATE:
            uid = await _create(
                client=client,
                writer=writer,
                item=item,
                namespace=namespace,
                owner_uid=owner_uid,
            )
            if uid is None:
                outcome.conflicts.append(item.name)
                return
            outcome.created[item.name] = uid
        else:
            await writer.apply(
                resource=resources.DEPLOYMENTS,
                namespace=namespace,
                name=item.name,
                body=item.render(),
                uid=item.uid,
            )
    except errors.Conflict as e:
        # The Deployment changed hands or came and went: look again.
        log.info("write conflicted; retrying", name=item.name, error=str(e))
        outcome.refused[write_kind(item)] += 1
        outcome.retry = True
        return
    except errors.ApiError as e:
        outcome.failures.append(f"{item.action.value} {item.name}: {refusal(e)}")
        outcome.refused[write_kind(item)] += 1
        return
    outcome.done.append(item)


# The most refused instances the summary of a held rollout names (each also has a
# failure of its own, and an Event).
NAMED: Final = 10


def _held(*, verdict: vetting.Verdict, rollouts: Sequence[Apply], outcome: Outcome) -> None:
    """Report rollouts held back by their dry runs (``vetting``): which instances the
    apiserver refused and why; a conflict only asks for a retry pass."""
    outcome.retry |= verdict.conflicted
    if not verdict.refused:
        return
    named = [name for _, name, _ in verdict.refused[:NAMED]]
    more = len(verdict.refused) - len(named)
    names = ", ".join(named) + (f" and {more} more" if more else "")
    untried = f"; the other {verdict.untried} were not tried" if verdict.untried else ""
    outcome.failures.append(
        f"the new template is rolled out to none of the {len(rollouts)} outdated instances:"
        f" the apiserver refuses it for {names} (a server-side dry run{untried}); every"
        " instance keeps the template it runs"
    )
    outcome.failures.extend(f"rollout {name}: {refusal(e)}" for _, name, e in verdict.refused)
    outcome.refused["update"] += len(verdict.refused)


async def _vetted_applies(
    *,
    writer: Writer,
    vetted: vetting.Vetting,
    plan: Plan,
    namespace: str,
    owner_uid: str,
    concurrency: int,
    limit: int,
    outcome: Outcome,
) -> Sequence[Apply]:
    """The plan's applies, but for its template rollouts while their dry runs
    (``vetting``) have not all passed: those are reported in ``outcome``."""
    rollouts = [a for a in plan.applies if vetting.gated(a)]
    if not rollouts:
        return plan.applies
    verdict = await vetting.vet(
        writer=writer,
        vetting=vetted,
        rollouts=rollouts,
        namespace=namespace,
        owner_uid=owner_uid,
        concurrency=concurrency,
        limit=limit,
    )
    # Dry runs left for the next passes: the rollouts wait for them, asked for at once.
    outcome.deferred += verdict.pending
    if not verdict.held:
        return plan.applies
    _held(verdict=verdict, rollouts=rollouts, outcome=outcome)
    return [a for a in plan.applies if not vetting.gated(a)]


def _writes(
    *,
    client: ApiClient,
    writer: Writer,
    plan: Plan,
    applies: Sequence[Apply],
    namespace: str,
    owner_uid: str,
    outcome: Outcome,
) -> list[Callable[[], Awaitable[None]]]:
    """The plan's writes in the order they start: deletes, then ``applies`` (the plan's,
    creations first, but for rollouts held back), then pod resizes."""
    return [
        *(
            functools.partial(_delete, writer=writer, item=d, namespace=namespace, outcome=outcome)
            for d in plan.deletes
        ),
        *(
            functools.partial(
                _write,
                client=client,
                writer=writer,
                item=a,
                namespace=namespace,
                owner_uid=owner_uid,
                outcome=outcome,
            )
            for a in applies
        ),
        *(
            functools.partial(_resize, writer=writer, item=r, namespace=namespace, outcome=outcome)
            for r in plan.resizes
        ),
    ]


# The share of a slice (1/REWRITE_SHARE) kept for the writes to existing Deployments
# when the creations alone would fill it (``_with_room_for_rewrites``).
REWRITE_SHARE: Final = 10


def _with_room_for_rewrites(applies: Sequence[Apply], *, plan: Plan, limit: int) -> Sequence[Apply]:
    """``applies`` (creations first) with a tenth of the slice moved ahead of the
    creations for the other writes, when the creations would fill it.

    Why: creations go first so a cut pass starts a missing instance's consumer before
    it rewrites a running one (``Plan.applies``); but creations the apiserver refuses
    pass after pass (a ResourceQuota's ``count/deployments.apps``, an admission webhook)
    took the whole slice every pass, and no scale-up, rollout or first size of a running
    instance was ever written. A slice of fewer than REWRITE_SHARE writes keeps none;
    pod resizes (after every apply) are not given room."""
    room = limit - len(plan.deletes)
    creations = 0
    for a in applies:
        if a.action is not Action.CREATE:
            break
        creations += 1
    keep = min(len(applies) - creations, limit // REWRITE_SHARE)
    if keep == 0 or creations <= room - keep:
        return applies
    first = max(0, room - keep)
    return [*applies[:first], *applies[creations:], *applies[first:creations]]


async def act(
    *,
    client: ApiClient,
    writer: Writer,
    plan: Plan,
    namespace: str,
    owner_uid: str,
    concurrency: int = 16,
    limit: int = SLICE,
    contended: Callable[[], bool] = _never,
    yield_after_s: float = YIELD_AFTER_S,
    min_writes: int = YIELD_MIN_WRITES,
    clock: Callable[[], float] = time.monotonic,
    vetted: vetting.Vetting | None = None,
) -> Outcome:
    """Carry out a plan's deletes, writes and pod resizes, at most ``concurrency`` at once
    and at most ``limit`` of them in all; once ``contended()`` (another key waits for a
    worker) after ``yield_after_s`` and a tenth of the plan's instances (at least
    ``min_writes``), no more are started. What is not started is ``Outcome.deferred``.

    With ``vetted``, a template rollout is dry-run for every outdated instance first
    (``vetting``), and held for all of them if the apiserver refuses any."""
    outcome = Outcome()
    applies = (
        plan.applies
        if vetted is None
        else await _vetted_applies(
            writer=writer,
            vetted=vetted,
            plan=plan,
            namespace=namespace,
            owner_uid=owner_uid,
            concurrency=concurrency,
            limit=limit,
            outcome=outcome,
        )
    )
    applies = _with_room_for_rewrites(applies, plan=plan, limit=limit)
    gate = asyncio.Semaphore(concurrency)
    started = clock()
    stopped = False
    begun = 0
    least = max(min_writes, plan.counters.expected // 10)

    def yielding() -> bool:
        nonlocal stopped, begun
        stopped = stopped or (begun >= least and clock() - started >= yield_after_s and contended())
        begun += not stopped
        return stopped

    async def gated(write: Callable[[], Awaitable[None]]) -> None:
        # The write starts only once the gate admits it (a cancelled waiter leaves
        # no coroutine unawaited), and only while the pass keeps its worker.
        async with gate:
            if yielding():
                outcome.deferred += 1
                return
            await write()

    writes = _writes(
        client=client,
        writer=writer,
        plan=plan,
        applies=applies,
        namespace=namespace,
        owner_uid=owner_uid,
        outcome=outcome,
    )
    outcome.deferred += max(0, len(writes) - limit)
    tasks: Sequence[asyncio.Task[None]] = [
        asyncio.create_task(gated(write)) for write in writes[:limit]
    ]
    if tasks:
        await asyncio.gather(*tasks)
    if outcome.failures:
        log.warning("writes failed", failures=outcome.failures[:10], total=len(outcome.failures))
    return outcome


class KubeActuator:
    """The ``ports.Actuator`` of the operator: server-side apply on the API server."""

    def __init__(
        self,
        *,
        client: ApiClient,
        writer: Writer,
        concurrency: int = 16,
        limit: int = SLICE,
        contended: Callable[[], bool] = _never,
    ) -> None:
        """``contended()``: whether another key waits for a worker (the work queue's)."""
        self._client = client
        self._writer = writer
        self._concurrency = concurrency
        self._limit = limit
        self._contended = contended
        self._vetted = vetting.Vetting()

    async def act(self, *, plan: Plan, namespace: str, owner_uid: str) -> Outcome:
        return await act(
            client=self._client,
            writer=self._writer,
            plan=plan,
            namespace=namespace,
            owner_uid=owner_uid,
            concurrency=self._concurrency,
            limit=self._limit,
            contended=self._contended,
            vetted=self._vetted,
        )
