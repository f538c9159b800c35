"""The steady pass of one big Consumer, in process: what the scale bench's steady window repeats.

The operator's own wiring (``app.build``'s) of one Consumer, every part real but the
network: the ``ConsumerController`` over a Consumer in the watch cache, the ``Pipeline``
with the ``KubeActuator``, the ``CrdReporter`` (status by server-side apply, Events),
the ``MetricsProvider`` asking Prometheus its three queries, the ``ConsumerMetrics``
gauges and a ``/metrics`` scrape. The API server and Prometheus are an
``httpx2.MockTransport``: the API server answers a write with the object it would store
(a Deployment's also lands in the watch cache, as the watch would deliver it), and
Prometheus answers the scale bench's series (``scale.exposition``'s rates) for every
partition.

The clock moves one ``minSyncPeriod`` (30 s) and a second a pass, so every steady pass
refreshes the metrics, as in the scale bench's steady window (one pass per Consumer
every 30 s). The first passes create the Deployments (``--converge`` runs them until a
pass writes nothing); ``--passes`` steady passes follow, and the figure is their CPU
seconds. Deterministic: the same inputs every run, so ``valgrind --tool=callgrind``
counts the same instructions for the same code: a steady pass costs the difference
between a run with ``--passes N`` and one with ``--passes 0``, over N. ``--profile``
writes cProfile stats of the steady passes.

    konsumerator-dev bench passes --partitions 2000 --passes 10
"""

import asyncio
import cProfile
import gc
import itertools
import pstats
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx2
import msgspec

from konsumerator.controllers import waking
from konsumerator.controllers.acting import KubeActuator
from konsumerator.controllers.consumer import ConsumerController
from konsumerator.controllers.reconciling import OWNER_INDEX, Pipeline, owner_index
from konsumerator.controllers.reporting import CrdReporter
from konsumerator.domain import planning
from konsumerator.domain.observed import ObservedDeployment
from konsumerator.kube.eventing import EventRecorder
from konsumerator.kube.projections import (
    CUSTOM_OBJECT_PROJECTOR,
    DEPLOYMENT_PROJECTOR,
    CustomObject,
)
from konsumerator.kube.requesting import ApiClient
from konsumerator.kube.writing import Writer
from konsumerator.obs.consumers import ConsumerMetrics
from konsumerator.obs.metrics import RuntimeMetrics
from konsumerator.prom.providing import MetricsProvider
from konsumerator.runtime.collecting import FrozenSurvivors
from konsumerator.runtime.stores import ObjectKey, Store
from konsumerator_dev.bench.scale import consumer

NAMESPACE = "bench"
PROMETHEUS = "http://prometheus.bench:9090"
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=31)
DEPLOYMENT_UID_INDEX = "uid"


class Spent:
    """CPU seconds spent in a few parts of a pass: the plan, and the fakes (not the operator's)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, part: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + time.process_time() - t0

        return timed


SPENT = Spent()


class Collections:
    """CPU seconds in the garbage collector (``gc.callbacks``), by generation."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.process_time()
            return
        generation = info["generation"]
        self.seconds[generation] = (
            self.seconds.get(generation, 0.0) + time.process_time() - self._t0
        )
        self.counts[generation] = self.counts.get(generation, 0) + 1


class FakeCluster:
    """The API server and Prometheus of one Consumer, behind one transport."""

    def __init__(self, *, partitions: int, deployments: Store[ObservedDeployment]) -> None:
        self.partitions = partitions
        self.deployments = deployments
        self.versions = itertools.count(1000)
        # Requests by kind: prometheus, deployment (writes), status (writes), event.
        self.requests: Counter[str] = Counter()
        # Each Consumer's object as the API server holds it, by name.
        self.consumer_bodies: dict[str, dict[str, Any]] = {}
        self.consumer_raw: dict[str, bytes] = {}
        # Prometheus' answers, by query text: built once (Prometheus' work, not ours).
        self.answers: dict[str, bytes] = {}

    def answer(self, query: str) -> bytes:
        cached = self.answers.get(query)
        if cached is not None:
            return cached
        # The scale bench's exposition: the same rates for every topic.
        lag = "bench_lag" in query
        result = []
        for p in range(self.partitions):
            rate = 500 + 37 * (p % 11)
            value = rate * (p % 3) if lag else rate
            result.append({"metric": {"partition": str(p)}, "value": [1767225600.0, str(value)]})
        body = msgspec.json.encode(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )
        self.answers[query] = body
        return body

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        verb = f"{request.method} {request.url.path}"
        path = request.url.path
        self.requests[
            "prometheus"
            if request.url.host.startswith("prometheus")
            else "event"
            if "/events" in path
            else "status"
            if path.endswith("/status")
            else "deployment"
            if "/deployments/" in path
            else verb
        ] += 1
        if request.url.path == "/api/v1/query":
            form = urllib.parse.parse_qs(request.content.decode())
            return httpx2.Response(200, content=self.answer(form["query"][0]))
        # msgspec, not json: the fakes' own cost is kept small beside the operator's.
        body = msgspec.json.decode(request.content) if request.content else {}
        if "/events" in request.url.path:  # a new Event, or a repeat's count
            return httpx2.Response(
                201 if request.method == "POST" else 200, content=msgspec.json.encode(body)
            )
        if request.method == "PATCH" and request.url.path.endswith("/status"):
            name = request.url.path.split("/")[-2]
            stored = self.consumer_bodies[name]
            stored["status"] = body["status"]
            stored["metadata"]["resourceVersion"] = str(next(self.versions))
            # The watch event's bytes, encoded once: the answer and the event are the same.
            self.consumer_raw[name] = msgspec.json.encode(stored)
            return httpx2.Response(200, content=self.consumer_raw[name])
        if request.method == "PATCH" and "/deployments/" in request.url.path:
            meta = body.setdefault("metadata", {})
            meta["uid"] = f"uid-{meta['name']}"
            meta["resourceVersion"] = str(next(self.versions))
            meta["generation"] = 1
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            raw = msgspec.json.encode(body)
            self.deployments.upsert(DEPLOYMENT_PROJECTOR.decode(raw))
            return httpx2.Response(200, content=raw)
        raise AssertionError(f"unexpected request {verb}")

    def consumer_object(self, name: str) -> CustomObject:
        raw = self.consumer_raw.get(name)
        if raw is None:
            raw = self.consumer_raw[name] = msgspec.json.encode(self.consumer_bodies[name])
        return CUSTOM_OBJECT_PROJECTOR.decode(raw)


class Harness:
    def __init__(self, *, partitions: int, consumers: int, scrape: bool) -> None:
        self.clock = [START]
        self.scrape = scrape
        self.deployments: Store[ObservedDeployment] = Store(
            indexers={
                OWNER_INDEX: owner_index,
                DEPLOYMENT_UID_INDEX: lambda d: [d.uid] if d.uid else [],
            }
        )
        self.deployments.subscribe(waking.keep_drift_memo)
        self.cluster = FakeCluster(partitions=partitions, deployments=self.deployments)
        self.names = [f"c{i}" for i in range(consumers)]
        for name in self.names:
            doc = consumer(
                name=name,
                namespace=NAMESPACE,
                partitions=partitions,
                prometheus=PROMETHEUS,
                replicas=0,
            )
            doc["metadata"].update(uid=f"uid-consumer-{name}", generation=1, resourceVersion="1")
            self.cluster.consumer_bodies[name] = doc
        transport = httpx2.MockTransport(SPENT.wrap("fakes", self.cluster.handle))
        client = ApiClient(
            http=httpx2.AsyncClient(transport=transport, base_url="https://apiserver")
        )
        writer = Writer(client=client)
        self.runtime_metrics = RuntimeMetrics()
        self.consumer_metrics = ConsumerMetrics(registry=self.runtime_metrics.registry)
        self.wsgi = self.runtime_metrics.wsgi_app(rendered=[self.consumer_metrics.per_instance])
        reporter = CrdReporter(
            events=EventRecorder(writer=writer, clock=self.monotonic, wall_clock=self.now),
            writer=writer,
        )
        provider = MetricsProvider(client=httpx2.AsyncClient(transport=transport))
        pipeline = Pipeline(
            actuator=KubeActuator(client=client, writer=writer),
            reporter=reporter,
            provider=provider,
            deployments=self.deployments,
            now=self.now,
            metrics=self.consumer_metrics,
        )
        self.consumers: Store[CustomObject] = Store(indexers={"uid": lambda o: [o.uid]})
        self.controller = ConsumerController(
            consumers=self.consumers, pipeline=pipeline, reporter=reporter
        )

    async def converge(self) -> int:
        """Passes until one writes no Deployment, and two more (the first steady passes
        still settle memories and recent peaks); how many passes wrote."""
        passes = 0
        while True:
            passes += 1
            if not (await self.one())["deployment"]:
                break
            if passes > 50:
                raise SystemExit("did not converge in 50 passes")
        for _ in range(2):
            await self.one()
        return passes

    def now(self) -> datetime:
        return self.clock[0]

    def monotonic(self) -> float:
        return (self.clock[0] - START).total_seconds()

    async def one(self) -> Counter[str]:
        """One pass of every Consumer (the watch then shows each one's new status), and a
        scrape; the requests they made, by kind (``FakeCluster.requests``)."""
        self.clock[0] += STEP
        before = self.cluster.requests.copy()
        for name in self.names:
            self.consumers.upsert(SPENT.wrap("watch", self.cluster.consumer_object)(name))
            await self.controller.reconcile(ObjectKey(NAMESPACE, name))
        if self.scrape:
            SPENT.wrap("scrape", self._scrape)()
        return self.cluster.requests - before

    async def steady(self) -> Counter[str]:
        """``one`` under a name of its own: a sampling profiler's stacks tell the steady
        passes from the converging ones by it."""
        return await self.one()

    def _scrape(self) -> int:
        """A ``/metrics`` scrape, as Prometheus makes it; the bytes it answered."""

        def start_response(*_: Any) -> Callable[[bytes], object]:
            return lambda _: None

        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
        return sum(len(chunk) for chunk in self.wsgi(environ, start_response))


@click.command("passes", help=__doc__.splitlines()[0] if __doc__ else None)
@click.option("--partitions", type=int, default=2000)
@click.option("--consumers", type=int, default=1, help="Consumers of --partitions each")
@click.option("--passes", type=int, default=10, help="steady passes of each Consumer measured")
@click.option("--scrape/--no-scrape", default=True, help="a /metrics scrape after each pass")
@click.option(
    "--profile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="cProfile stats of the steady passes into this file (and the top 40 printed)",
)
def main(**options: Any) -> None:
    asyncio.run(_main(**options))


async def _main(
    *, partitions: int, consumers: int, passes: int, scrape: bool, profile: Path | None
) -> None:
    # Pipeline calls ``planning.plan`` through the module: its CPU is counted apart.
    planning.plan = SPENT.wrap("plan", planning.plan)
    # As ``konsumerator run`` does: full collections examine what came after the caches.
    FrozenSurvivors().install()
    harness = Harness(partitions=partitions, consumers=consumers, scrape=scrape)
    converge = await harness.converge()
    print(f"converged in {converge} passes; {len(harness.deployments)} Deployments", flush=True)
    profiler = cProfile.Profile() if profile is not None else None
    t0 = time.process_time()
    if profiler is not None:
        profiler.enable()
    requests: Counter[str] = Counter()
    SPENT.seconds.clear()
    collections = Collections()
    gc.callbacks.append(collections)
    for _ in range(passes):
        requests += await harness.steady()
    gc.callbacks.remove(collections)
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - t0
    each = max(passes * consumers, 1)
    print(
        f"{passes} x {consumers} steady passes: {cpu:.3f} CPU s, {1000 * cpu / each:.1f} ms a"
        f" pass; requests {dict(requests)}"
    )
    parts = dict(SPENT.seconds)
    parts["gc"] = sum(collections.seconds.values())
    parts["the rest"] = cpu - sum(parts.values())
    print(
        "a pass: "
        + ", ".join(f"{k} {1000 * v / each:.1f} ms" for k, v in parts.items())
        + " (fakes: the fake API server and Prometheus; watch: decoding the Consumer's"
        " new status as the watch would; gc: collections, also inside the others:"
        f" {collections.counts} by generation)"
    )
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        pstats.Stats(str(profile)).sort_stats("cumulative").print_stats(40)
