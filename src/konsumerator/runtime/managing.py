"""The composition that turns caches, an elector and controllers into a process.

Lifecycle, in order (controller-runtime's manager, on asyncio):

1. Serve ``/healthz``, ``/readyz`` (and ``/metrics`` if given) from a thread.
2. Start every reflector and wait until every store has synced. A controller
   that reconciled from a half-filled cache would "fix" objects that are
   merely not listed yet, e.g. create Deployments that already exist.
3. With leader election, wait for the lease. Followers stay here with warm
   caches and ready probes (so a rolling update can proceed).
4. Run the controllers until told to stop.

Shutdown (SIGTERM, SIGINT or ``stop()``) runs the other way round: stop the
controllers' queues, let in-flight reconciles finish (up to
``shutdown_timeout``), cancel what remains, *then* release the lease (so the
successor never overlaps with our last writes), then stop the reflectors and
the HTTP servers.

Failure: if a component ends unexpectedly, everything is shut down the same
way and the error propagates out of ``run`` so that the process exits
non-zero and is restarted with a clean slate. A lost lease is different: the
controllers are cancelled at once, without draining, because another replica
may already be writing (and the writer's fence refuses anything they still
try); then the error propagates the same way.

Health: a heartbeat task in the loop records, every ``heartbeat_interval``,
whether the reflectors make progress and the caches are synced; the HTTP
thread answers from that record and fails ``/healthz`` if the record itself
is stale (the loop is stuck).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog

from konsumerator.runtime.controlling import Controller
from konsumerator.runtime.electing import LeaderElector
from konsumerator.runtime.reflecting import Reflector
from konsumerator.runtime.serving import HttpServer, text_response

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class _Health:
    at: float  # time.monotonic(), read from another thread
    healthy: bool
    ready: bool
    detail: str


class ComponentEnded(RuntimeError):
    """A component that should run forever returned or failed."""


class Manager:
    def __init__(
        self,
        *,
        reflectors: Sequence[Reflector[Any]],
        controllers: Sequence[Controller[Any]],
        elector: LeaderElector | None = None,
        health_endpoint: Endpoint | None = None,
        metrics_endpoint: Endpoint | None = None,
        metrics_app: WSGIApplication | None = None,
        heartbeat_interval: float = 1.0,
        heartbeat_timeout: float = 20.0,
        shutdown_timeout: float = 30.0,
        handle_signals: bool = True,
    ) -> None:
        self._reflectors = list(reflectors)
        self._controllers = list(controllers)
        self._elector = elector
        self._health_endpoint = health_endpoint
        self._metrics_endpoint = metrics_endpoint
        self._metrics_app = metrics_app
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._shutdown_timeout = shutdown_timeout
        self._handle_signals = handle_signals
        self._stop = asyncio.Event()
        self._health = _Health(at=time.monotonic(), healthy=True, ready=False, detail="starting")
        self._servers: list[HttpServer] = []
        self.leading = asyncio.Event()

    # -- control -----------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful shutdown (idempotent; safe from signal handlers)."""
        if not self._stop.is_set():
            log.info("shutting down")
        self._stop.set()

    @property
    def synced(self) -> bool:
        return all(r.has_synced for r in self._reflectors)

    @property
    def server_ports(self) -> list[int]:
        return [s.port for s in self._servers]

    # -- probes ------------------------------------------------------------

    def healthz(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        health = self._health
        age = time.monotonic() - health.at
        if age > self._heartbeat_timeout:
            body = f"event loop heartbeat stale ({age:.1f}s)\n"
            return text_response(start_response, status="500 Internal Server Error", body=body)
        if not health.healthy:
            return text_response(
                start_response, status="500 Internal Server Error", body=health.detail + "\n"
            )
        return text_response(start_response, status="200 OK", body="ok\n")

    def readyz(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._health.ready:
            return text_response(start_response, status="200 OK", body="ok\n")
        body = "caches not synced\n"
        return text_response(start_response, status="503 Service Unavailable", body=body)

    # -- running -----------------------------------------------------------

    async def run(self) -> None:
        """Run until stopped; raises ``LeadershipLost`` or ``ComponentEnded`` on failure."""
        self._install_signals()
        self._start_servers()
        background = [asyncio.create_task(self._heartbeat(), name="heartbeat")]
        background += [
            asyncio.create_task(r.run(), name=f"reflector-{r.name}") for r in self._reflectors
        ]
        elector_task: asyncio.Task[None] | None = None
        controller_tasks: list[asyncio.Task[None]] = []
        try:
            if not await self._until(self._wait_synced(), watched=background):
                return
            log.info("caches synced", reflectors=[r.name for r in self._reflectors])
            if self._elector is not None:
                elector_task = asyncio.create_task(self._elector.run(), name="leader-elector")
                leading = await self._until(
                    self._elector.wait_until_leading(), watched=[*background, elector_task]
                )
                if not leading:
                    return
            self.leading.set()
            controller_tasks = [
                asyncio.create_task(c.run(), name=f"controller-{c.name}") for c in self._controllers
            ]
            watched = [*background, *controller_tasks]
            if elector_task is not None:
                watched.append(elector_task)
            await self._until(self._stop.wait(), watched=watched)
        finally:
            self.leading.clear()
            # Drain only while we still hold the lease (a graceful stop, a failed
            # component): a deposed leader must not finish its reconciles.
            deposed = self._elector is not None and not self._elector.is_leader
            await self._stop_controllers(controller_tasks, drain=not deposed)
            if elector_task is not None:
                await _cancel_and_wait([elector_task])
            await _cancel_and_wait(background)
            await self._stop_servers()
            self._remove_signals()

    async def _until(
        self, goal: Coroutine[Any, Any, Any], *, watched: Sequence[asyncio.Task[Any]]
    ) -> bool:
        """Await ``goal``; False if stopped first; raise if a watched task ends first."""
        goal_task = asyncio.ensure_future(goal)
        stop_task = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait(
                {goal_task, stop_task, *watched}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            await _cancel_and_wait([goal_task, stop_task])
        for task in watched:
            if task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    raise exc
                raise ComponentEnded(f"{task.get_name()} ended unexpectedly")
        return goal_task in done and not goal_task.cancelled()

    async def _wait_synced(self) -> None:
        # Polling is fine here: it happens once per process start.
        while True:
            if self.synced:
                return
            await asyncio.sleep(0.05)

    async def _stop_controllers(self, tasks: list[asyncio.Task[None]], *, drain: bool) -> None:
        if not tasks:
            return
        for controller in self._controllers:
            controller.queue.shutdown()
        if drain:
            _, pending = await asyncio.wait(tasks, timeout=self._shutdown_timeout)
            if pending:
                log.warning("reconciles still running at shutdown; cancelling", count=len(pending))
        else:
            log.warning("leadership lost; cancelling in-flight reconciles")
        await _cancel_and_wait(tasks)

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            stalled = [r.name for r in self._reflectors if r.stalled(now=now)]
            self._health = _Health(
                at=time.monotonic(),
                healthy=not stalled,
                ready=self.synced,
                detail=f"reflectors stalled: {', '.join(stalled)}" if stalled else "ok",
            )
            await asyncio.sleep(self._heartbeat_interval)

    # -- plumbing ----------------------------------------------------------

    def _start_servers(self) -> None:
        probes: dict[str, WSGIApplication] = {"/healthz": self.healthz, "/readyz": self.readyz}
        metrics: dict[str, WSGIApplication] = (
            {"/metrics": self._metrics_app} if self._metrics_app is not None else {}
        )
        plan: dict[Endpoint, dict[str, WSGIApplication]] = {}
        if self._health_endpoint is not None:
            plan.setdefault(self._health_endpoint, {}).update(probes)
        if self._metrics_endpoint is not None:
            plan.setdefault(self._metrics_endpoint, {}).update(metrics)
        for endpoint, routes in plan.items():
            server = HttpServer(host=endpoint.host, port=endpoint.port, routes=routes)
            server.start()
            self._servers.append(server)
            log.info("serving", host=endpoint.host, port=server.port, paths=sorted(routes))

    async def _stop_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await asyncio.to_thread(server.stop)

    def _install_signals(self) -> None:
        if not self._handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.stop)

    def _remove_signals(self) -> None:
        if not self._handle_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


async def _cancel_and_wait(tasks: Sequence[asyncio.Future[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    # Retrieve exceptions so asyncio does not log "never retrieved".
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
